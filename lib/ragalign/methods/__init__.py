"""The alignment methods the study compares: GainRAG (gain), RADIO (rationale), FiGRet (figret)."""
