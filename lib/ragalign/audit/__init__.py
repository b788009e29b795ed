"""The RAG-E audit: Shapley estimators, prefix-shared coalition values, the audit games, Integrated Gradients, WARG and failure modes, the audited variants."""
