"""P2: a self-hosted, OpenAI-compatible LLM gateway with failover and RAG."""

__version__ = "0.1.0"
