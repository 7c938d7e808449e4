"""LoRA on a GGUF base: transformers dequantizes the GGUF to fp32, peft adds the adapter.

Measured on this machine (docs/finetuning.md): HF's dequantized SmolLM2 Q4_1
agrees with llama.cpp's on the next token at 97 % of positions (KL 0.003), so
training on it targets the model llama.cpp serves. Loss is on the assistant
messages only (their end-of-turn token included, so the model learns to stop),
rendered with the chat template the server uses: the GGUF's own, or Gemma's
turn format for a GGUF without one (as ``inference.prompting`` does).

The base's config and tokenizer (no weights) are saved for the GGUF converter,
fixed for it: ``architectures`` set, the GGUF ``quantization_config`` dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from jobs.finetune.data import read_chat
from jobs.finetune.loop import StepResult
from jobs.finetune.spec import TrainSpec, base_config_dir

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
IGNORE = -100

# Gemma's turns as inference.prompting.gemma renders them: the system text leads the
# first turn; BOS from the template (the tokenizer adds none on top).
GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- set system = messages | selectattr('role', 'in', ['system', 'developer']) "
    "| map(attribute='content') | join('\n\n') -%}"
    "{%- set turns = messages | rejectattr('role', 'in', ['system', 'developer']) | list -%}"
    "{%- for message in turns -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else 'user' -%}"
    "{{ '<start_of_turn>' + role + '\n' }}"
    "{%- if loop.first and system %}{{ system + '\n\n' }}{% endif -%}"
    "{{ message['content'] + '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


class TemplateError(ValueError):
    """The chat template does not render a conversation as a prefix of its continuation."""


class NoExamples(ValueError):
    """No example has a token to learn from (all cut away by the length limit)."""


def load_base(gguf: Path, device: str) -> tuple[Any, Any]:
    """The tokenizer and the fp32 model of a GGUF."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    model.hf_quantizer = None  # the GGUF quantizer stays attached and blocks saving
    if tokenizer.chat_template is None:
        if not str(model.config.model_type).startswith("gemma"):
            raise TemplateError(
                f"{gguf.name} has no chat template and is not a Gemma model; "
                "fine-tune a GGUF that carries one"
            )
        tokenizer.chat_template = GEMMA_TEMPLATE
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(model.config, "architectures", None):
        model.config.architectures = [type(model).__name__]
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    return tokenizer, model.to(device)


class Encoder:
    """Chat examples to (token ids, labels): labels only on assistant messages."""

    def __init__(self, tokenizer: Any, max_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        bos = tokenizer.bos_token_id
        self.bos = bos if getattr(tokenizer, "add_bos_token", False) and bos is not None else None

    def _ids(self, messages: list[dict[str, str]], prompt: bool = False) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=prompt
        )
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if self.bos is not None and (not ids or ids[0] != self.bos):
            ids = [self.bos, *ids]  # as llama.cpp adds it when the template does not
        return ids

    def _blank(self, token: int) -> bool:
        return str(self.tokenizer.decode([token])).strip() == ""

    def encode(self, example: list[dict[str, Any]]) -> tuple[list[int], list[int], bool]:
        """Ids and labels (cut to ``max_tokens``), and whether they were cut."""
        turns = [{"role": m["role"], "content": m["content"]} for m in example]
        ids = self._ids(turns)
        labels = [IGNORE] * len(ids)
        for index, message in enumerate(example):
            if message["role"] != "assistant" or not message["weight"]:
                continue
            start = len(self._ids(turns[:index], prompt=True))
            upto = self._ids(turns[: index + 1])
            end = len(upto)
            if ids[:end] != upto or start >= end:
                raise TemplateError(
                    "the chat template renders a conversation differently from its start; "
                    "its assistant turns cannot be found in the tokens"
                )
            while end > start + 1 and self._blank(ids[end - 1]):
                end -= 1  # the newline after the end-of-turn token is not the model's to say
            labels[start:end] = ids[start:end]
        cut = len(ids) > self.max_tokens
        return ids[: self.max_tokens], labels[: self.max_tokens], cut


def collate(
    items: Sequence[tuple[list[int], list[int]]], pad: int, device: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in items)
    ids = torch.full((len(items), width), pad, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (a, b) in enumerate(items):
        ids[row, : len(a)] = torch.tensor(a)
        labels[row, : len(b)] = torch.tensor(b)
        mask[row, : len(a)] = 1
    return ids.to(device), mask.to(device), labels.to(device)


class LoraTask:
    """The loop's task for a chat model: LoRA r/alpha on the attention projections."""

    def __init__(self, spec: TrainSpec, device: str) -> None:
        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

        self.spec = spec
        self.device = device
        self.tokenizer, base = load_base(Path(spec.base), device)
        folder = base_config_dir(Path(spec.workdir))
        base.config.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        self.parameters_total = sum(p.numel() for p in base.parameters())
        encoder = Encoder(self.tokenizer, spec.max_tokens)
        self.train, self.cut = self._encode(encoder, Path(spec.train_file), None)
        if not self.train:
            raise NoExamples(
                "no training example keeps a token to learn from within "
                f"FINETUNE_MAX_TOKENS={spec.max_tokens}"
            )
        self.valid: list[tuple[list[int], list[int]]] = []
        if spec.valid_file is not None:
            self.valid, _ = self._encode(encoder, Path(spec.valid_file), spec.eval_max_examples)
        config = LoraConfig(
            r=spec.lora_rank,
            lora_alpha=spec.lora_alpha,
            lora_dropout=0.0,  # no randomness in a step: a resumed run repeats the original
            target_modules=list(TARGETS),
            task_type="CAUSAL_LM",
        )
        self.model = get_peft_model(base, config)
        if spec.resume is not None:
            from safetensors.torch import load_file

            weights = load_file(str(Path(spec.resume) / "adapter_model.safetensors"))
            set_peft_model_state_dict(self.model, weights)
        self.model.train()
        self.examples = len(self.train)
        self._trainable = [p for p in self.model.parameters() if p.requires_grad]

    def _encode(
        self, encoder: Encoder, path: Path, limit: int | None
    ) -> tuple[list[tuple[list[int], list[int]]], int]:
        rows = read_chat(path)[:limit]
        encoded, cut = [], 0
        for example in rows:
            ids, labels, was_cut = encoder.encode(example)
            cut += was_cut
            if any(label != IGNORE for label in labels):
                encoded.append((ids, labels))
        return encoded, cut

    def describe(self) -> dict[str, Any]:
        return {
            "parameters": self.parameters_total,
            "trainable": sum(p.numel() for p in self._trainable),
            "examples": self.examples,
            "valid_examples": len(self.valid),
            "truncated": self.cut,
        }

    def parameters(self) -> list[torch.nn.Parameter]:
        return self._trainable

    def _loss(
        self, items: Sequence[tuple[list[int], list[int]]]
    ) -> tuple[torch.Tensor, int, int, int]:
        """Summed token NLL, labelled tokens, correct argmax predictions, all tokens."""
        pad = int(self.tokenizer.pad_token_id)
        ids, mask, labels = collate(items, pad, self.device)
        logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        target = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)),
            target.reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        )
        labelled = target != IGNORE
        correct = int(((logits.argmax(-1) == target) & labelled).sum())
        return nll, int(labelled.sum()), correct, int(mask.sum())

    def step(self, batch: Sequence[int]) -> StepResult:
        nll, labelled, correct, tokens = self._loss([self.train[i] for i in batch])
        count = max(labelled, 1)
        return StepResult(nll / count, tokens, {"train_mean_token_accuracy": correct / count})

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        total, labelled, correct = 0.0, 0, 0
        size = self.spec.batch_size
        for start in range(0, len(self.valid), size):
            nll, count, right, _ = self._loss(self.valid[start : start + size])
            total, labelled, correct = total + float(nll), labelled + count, correct + right
        self.model.train()
        count = max(labelled, 1)
        return {"valid_loss": total / count, "valid_mean_token_accuracy": correct / count}

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(str(folder))
