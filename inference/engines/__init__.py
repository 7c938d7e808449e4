"""Inference engines behind one contract: in-process llama.cpp or a native llama-server."""

from inference.engines.base import (
    Engine,
    EngineError,
    Finish,
    FinishReason,
    GenerationParams,
    Usage,
)

__all__ = ["Engine", "EngineError", "Finish", "FinishReason", "GenerationParams", "Usage"]
