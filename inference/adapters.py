"""Fine-tuned models as LoRA adapters over a served base: names and files.

A model named ``ft:<base>:<suffix>:<id>``, where ``<base>`` is one of this
server's names, is this server's model with the adapter ``<id>.gguf`` from
``<ROLE>_ADAPTER_DIR`` (default ``$P2_HOME/adapters``) applied to that request
only. An optional ``<id>.json`` beside it, ``{"base": "<model name>",
"suffix": "<suffix>"}``, says which base and suffix the adapter was trained
for: such adapters are listed in ``/v1/models`` under their full name, and a
name that contradicts it is not found. The fine-tuning job writes both files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from inference.engines.base import Adapter
from p2.core.errors import NotFound
from p2.core.finetuned import FineTunedName, parse_finetuned

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # a file name, never a path

AdapterName = FineTunedName


def parse(name: str) -> AdapterName | None:
    """``ft:<base>:<suffix>:<id>`` parsed, or None when ``name`` is no adapter name (or its
    id could not name a file in the adapter directory)."""
    parsed = parse_finetuned(name)
    return parsed if parsed is not None and _ID.match(parsed.id) else None


@dataclass(frozen=True)
class _Card:
    base: str
    suffix: str


class AdapterDirectory:
    """The adapters in ``root`` that this server (answering to ``names``) may apply."""

    def __init__(self, root: Path, names: tuple[str, ...]) -> None:
        self.root = root
        self.names = names

    def _card(self, adapter_id: str) -> _Card | None:
        try:
            data = json.loads((self.root / f"{adapter_id}.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        base, suffix = data.get("base"), data.get("suffix", "")
        if not isinstance(base, str) or not isinstance(suffix, str):
            return None
        return _Card(base, suffix)

    def resolve(self, name: AdapterName) -> Adapter:
        """The adapter a model name asks for; 404 ``model_not_found`` if there is none."""
        path = self.root / f"{name.id}.gguf"
        card = self._card(name.id)
        fits = name.base in self.names and path.is_file()
        if card is not None:
            fits = fits and card.base in self.names and card.suffix == name.suffix
        if not fits:
            raise NotFound(
                f"The model '{name}' does not exist: no adapter '{name.id}' for "
                f"'{name.base}' on this server.",
                param="model",
                code="model_not_found",
            )
        return Adapter(name.id, path)

    def present(self) -> list[Adapter]:
        """The adapters trained for this server's model, by their cards."""
        return [self.resolve(name) for name in map(parse, self.listed(None)) if name is not None]

    def listed(self, servable: frozenset[str] | None) -> list[str]:
        """Full names of the adapters trained for this server's model (and, when the engine
        can apply only some, of those)."""
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob("*.gguf")):
            adapter_id = path.name.removesuffix(".gguf")
            card = self._card(adapter_id)
            if not _ID.match(adapter_id) or card is None or card.base not in self.names:
                continue
            if servable is None or adapter_id in servable:
                found.append(str(AdapterName(card.base, card.suffix, adapter_id)))
        return found


def misfit(adapter: Path, model: Path) -> str | None:
    """Why the LoRA GGUF ``adapter`` cannot apply to ``model``, or None if it can: the checks
    llama.cpp makes when it loads one (architecture, and each low-rank pair's shape against
    the weight it adapts), made from the two files' headers."""
    from gguf import GGUFReader

    try:
        lora, base = GGUFReader(adapter), GGUFReader(model)
    except (OSError, ValueError, IndexError, KeyError) as exc:  # what a broken header raises
        return f"unreadable: {exc}"

    def text(reader: GGUFReader, key: str) -> str | None:
        field = reader.fields.get(key)
        return str(field.contents()) if field is not None else None

    if text(lora, "general.type") != "adapter" or text(lora, "adapter.type") != "lora":
        return "not a LoRA adapter GGUF"
    if text(lora, "general.architecture") != text(base, "general.architecture"):
        return "trained for another model architecture"
    weights = {t.name: tuple(int(d) for d in t.shape) for t in base.tensors}
    pairs = {t.name: tuple(int(d) for d in t.shape) for t in lora.tensors}
    for name, a in pairs.items():
        if not name.endswith(".lora_a"):
            continue
        target = name.removesuffix(".lora_a")
        b = pairs.get(f"{target}.lora_b")
        shape = weights.get(target)
        if b is None or shape is None or len(a) != 2 or len(b) != 2:
            return f"no weight {target} to adapt"
        if a[1] != b[0] or (a[0], b[1]) != shape[:2]:
            return f"shapes do not fit {target}"
    return None
