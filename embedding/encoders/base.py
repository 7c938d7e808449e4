"""What every backend offers: a dimension and one batched forward pass."""

from __future__ import annotations

from typing import Protocol

from embedding.batching import Vectors
from embedding.tokenizer import Features


class EncoderError(RuntimeError):
    """The backend could not compute a batch."""


class Encoder(Protocol):
    """A loaded model. ``embed`` is called from one worker thread at a time."""

    @property
    def name(self) -> str:
        """The backend actually in use (``torch``, ``onnx`` or ``onnx-int8``)."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed(self, features: Features) -> Vectors:
        """Sentence vectors, one row per input, as the model's pipeline outputs them."""
        ...
