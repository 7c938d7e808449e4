"""Inference engines behind one contract: in-process llama.cpp or a native llama-server."""
