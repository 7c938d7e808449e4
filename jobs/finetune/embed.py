"""Embedding fine-tuning: a sentence-transformers model trained on (query, positive)
pairs with MultipleNegativesRankingLoss (every other positive in the batch is a
negative), evaluated by that loss and by recall@1 on the validation pairs.

Measured here (docs/finetuning.md): all-MiniLM-L6-v2 on Debian package
summaries -> descriptions, 2 epochs of batch 32, held-out R@1 0.748 -> 0.815.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from jobs.finetune.data import read_pairs
from jobs.finetune.loop import StepResult
from jobs.finetune.spec import TrainSpec

MAX_SEQ_LENGTH = 128


def _loss_class() -> Any:
    # sentence-transformers 6 moved the losses here (the old path warns)
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss


class EmbeddingTask:
    def __init__(self, spec: TrainSpec, device: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.spec = spec
        self.device = device
        source = spec.resume or spec.base  # a checkpoint is a whole model
        self.model = SentenceTransformer(source, device=device)
        self.model.max_seq_length = min(self.model.max_seq_length or MAX_SEQ_LENGTH, MAX_SEQ_LENGTH)
        self.loss = _loss_class()(self.model)
        self.train = read_pairs(Path(spec.train_file))
        self.valid: list[tuple[str, str]] = []
        if spec.valid_file is not None:
            self.valid = read_pairs(Path(spec.valid_file))[: spec.eval_max_examples]
        self.model.train()
        self.examples = len(self.train)
        prepare = getattr(self.model, "preprocess", None) or self.model.tokenize
        self._prepare = prepare  # sentence-transformers 6 renamed tokenize to preprocess

    def describe(self) -> dict[str, Any]:
        count = sum(p.numel() for p in self.model.parameters())
        return {
            "parameters": count,
            "trainable": count,
            "examples": self.examples,
            "valid_examples": len(self.valid),
            "truncated": 0,
        }

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.parameters())

    def _features(self, texts: list[str]) -> dict[str, torch.Tensor]:
        features: dict[str, torch.Tensor] = self._prepare(texts)
        return {k: v.to(self.device) if hasattr(v, "to") else v for k, v in features.items()}

    def _batch_loss(self, pairs: Sequence[tuple[str, str]]) -> tuple[torch.Tensor, int]:
        queries = self._features([q for q, _ in pairs])
        positives = self._features([p for _, p in pairs])
        tokens = int(queries["attention_mask"].sum() + positives["attention_mask"].sum())
        return self.loss([queries, positives], None), tokens

    def step(self, batch: Sequence[int]) -> StepResult:
        loss, tokens = self._batch_loss([self.train[i] for i in batch])
        return StepResult(loss, tokens)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        size = self.spec.batch_size
        losses = []
        for start in range(0, len(self.valid), size):
            part = self.valid[start : start + size]
            if len(part) > 1:  # a lone pair has no negative
                losses.append(float(self._batch_loss(part)[0]))
        queries = self.model.encode(
            [q for q, _ in self.valid], convert_to_tensor=True, normalize_embeddings=True
        )
        passages = self.model.encode(
            [p for _, p in self.valid], convert_to_tensor=True, normalize_embeddings=True
        )
        best = (queries @ passages.T).argmax(dim=1).cpu()
        recall = float((best == torch.arange(len(self.valid))).float().mean())
        self.model.train()
        valid_loss = sum(losses) / len(losses) if losses else float("nan")
        return {"valid_loss": valid_loss, "valid_recall_at_1": recall}

    def save(self, folder: Path) -> None:
        self.model.save(str(folder))
