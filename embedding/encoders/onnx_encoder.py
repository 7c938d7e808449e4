"""The fast CPU backend: an exported model (fp32 or int8) on ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped, unused-ignore]

from embedding.encoders.base import EncoderError, Vectors
from embedding.settings import Backend
from embedding.tokenizer import Features

OUTPUT = "sentence_embedding"


def open_session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle workers sleep instead of spinning: the event loop, the tokenizer and
    # other services share these cores, and a spinning pool starves them.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxEncoder:
    """One ONNX Runtime session; its graph ends with the model's pooling and normalization."""

    def __init__(self, path: Path, threads: int, name: Backend) -> None:
        self._session = open_session(path, threads)
        self._inputs = tuple(str(i.name) for i in self._session.get_inputs())
        shape = self._session.get_outputs()[0].shape
        if not shape or not isinstance(shape[-1], int):
            raise EncoderError(f"{path} has no fixed embedding dimension")
        self._dimension = int(shape[-1])
        self._name = name

    @property
    def name(self) -> Backend:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, features: Features) -> Vectors:
        feeds = {name: features[name] for name in self._inputs}
        try:
            (output,) = self._session.run([OUTPUT], feeds)
        except (RuntimeError, ValueError) as exc:
            raise EncoderError(f"ONNX Runtime failed: {exc}") from exc
        return np.ascontiguousarray(output, dtype=np.float32)
