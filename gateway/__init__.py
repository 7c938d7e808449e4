"""P2 gateway: one OpenAI-compatible endpoint with priority failover."""
