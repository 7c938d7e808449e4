"""Export a sentence-transformers model, pooling and normalization included, to ONNX.

The whole pipeline is traced through a wrapper taking keyword arguments
(transformers 5 reordered ``BertModel.forward``) with the TorchScript exporter
(``dynamo=False``, offline and a few seconds). Attention is traced in its eager
form, which ONNX Runtime fuses into its ``Attention`` kernel.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

from embedding.encoders.onnx_encoder import OUTPUT
from embedding.encoders.torch_encoder import model_inputs

OPSET = 17


class _Pipeline(torch.nn.Module):
    def __init__(self, model: SentenceTransformer, inputs: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.inputs = inputs

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        features = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            features["token_type_ids"] = token_type_ids
        output: torch.Tensor = self.model(features)["sentence_embedding"]
        return output


def export_onnx(model_dir: Path, target: Path) -> None:
    """Write ``model_dir``'s full embedding pipeline to ``target`` (fp32, dynamic shapes)."""
    model = SentenceTransformer(
        str(model_dir), device="cpu", model_kwargs={"attn_implementation": "eager"}
    )
    model.eval()
    inputs = model_inputs(model)
    sample = model.preprocess(["An example sentence to trace.", "Another, a little longer one."])
    kwargs = {name: sample[name] for name in inputs}
    axes = {name: {0: "batch", 1: "sequence"} for name in inputs}
    axes[OUTPUT] = {0: "batch"}
    with torch.inference_mode(), warnings.catch_warnings():
        # The tracer's notes (legacy exporter, constant-folded shape checks) are expected.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Pipeline(model, inputs),
            (),
            str(target),
            kwargs=kwargs,
            input_names=list(inputs),
            output_names=[OUTPUT],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
