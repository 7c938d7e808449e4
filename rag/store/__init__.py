"""Vector stores: Qdrant Edge in-process (default) or a Qdrant server (``QDRANT_URL``)."""
