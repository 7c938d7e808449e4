"""What every backend offers: a dimension and one batched forward pass."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from embedding.settings import Backend
from embedding.tokenizer import Features

Vectors = NDArray[np.float32]


class EncoderError(RuntimeError):
    """The backend could not compute a batch."""


class Encoder(Protocol):
    """A loaded model. ``embed`` is called from one worker thread at a time."""

    @property
    def name(self) -> Backend:
        """The backend actually in use (an int8 request may be served by fp32 ONNX)."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed(self, features: Features) -> Vectors:
        """Sentence vectors, one row per input, as the model's pipeline outputs them."""
        ...
