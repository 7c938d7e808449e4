"""llama.cpp inference servers: one OpenAI-compatible server per role (chat, code)."""
