"""P2's embedding service: OpenAI ``/v1/embeddings`` on sentence-transformers models."""
