"""The alignment methods the study compares: GainRAG (gainrag), RADIO (rationale), FiGRet (figret)."""
