"""RAG service: documents in, cited answers out (port 8002)."""
