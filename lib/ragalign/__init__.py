"""ragalign: a reproducible study of retriever-generator alignment in RAG."""

__version__ = "0.1.0"
