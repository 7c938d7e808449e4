"""Fine-tuned embedding models, served beside the base model and loaded on first use.

A fine-tuning job publishes its model as a sentence-transformers folder in
``<cache>/ft/<job id>/`` with ``p2-model.json`` naming it
(``ft:embedding:<suffix>:<job id>``). A request for that name loads it (in a
worker thread, once however many requests wait) with the service's backend;
its ONNX files are cached like the base model's, keyed by the folder's
fingerprint. At most ``EMBEDDING_MAX_EXTRA_MODELS`` stay loaded (least recently
used leaves first). A model whose folder is gone (deleted through the job
service) is unloaded and is a 404 from then on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from embedding.micro_batcher import MicroBatcher
from embedding.runtime import Runtime, load_runtime
from embedding.settings import EmbeddingSettings

log = logging.getLogger("p2.embedding")

FT_DIR = "ft"
MARKER = "p2-model.json"
PREFIX = "ft:embedding:"


@dataclass
class Served:
    """A loaded model and the batcher its requests share."""

    runtime: Runtime
    batcher: MicroBatcher


def ft_folder(cache_root: Path, name: str) -> Path | None:
    """The published folder of the fine-tuned model ``name``, if it is there."""
    if not name.startswith(PREFIX):
        return None
    job_id = name.rsplit(":", 1)[-1]
    if not job_id or "/" in job_id or job_id.startswith("."):
        return None
    folder = cache_root / FT_DIR / job_id
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return folder if isinstance(marker, dict) and marker.get("id") == name else None


class ExtraModels:
    def __init__(
        self,
        settings: EmbeddingSettings,
        cache_root: Path,
        serve: Callable[[Runtime], Served],
    ) -> None:
        self.settings = settings
        self.cache_root = cache_root
        self._serve = serve
        self._loaded: OrderedDict[str, Served] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    def available(self) -> list[str]:
        """Names of the fine-tuned models published here."""
        names = []
        for marker in sorted((self.cache_root / FT_DIR).glob(f"*/{MARKER}")):
            try:
                name = json.loads(marker.read_text()).get("id")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(name, str) and ft_folder(self.cache_root, name) is not None:
                names.append(name)
        return names

    def exists(self, name: str) -> bool:
        return ft_folder(self.cache_root, name) is not None

    @property
    def served(self) -> list[Served]:
        return list(self._loaded.values())

    async def get(self, name: str) -> Served | None:
        """The loaded model ``name`` (loading it first); None if no such model is published."""
        folder = ft_folder(self.cache_root, name)
        if folder is None:
            await self._unload(name)
            return None
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            served = self._loaded.get(name)
            if served is None:
                started = time.perf_counter()
                settings = self.settings.model_copy(
                    update={"model": folder, "model_name": name, "model_alias": None}
                )
                runtime = await asyncio.to_thread(load_runtime, settings, self.cache_root)
                served = self._loaded[name] = self._serve(runtime)
                log.info(
                    "fine-tuned embedding model %s loaded in %.2fs (%s)",
                    name,
                    time.perf_counter() - started,
                    runtime.backend,
                )
                await self._evict()
            self._loaded.move_to_end(name)
            return served

    async def _evict(self) -> None:
        while len(self._loaded) > self.settings.max_extra_models:
            name, served = self._loaded.popitem(last=False)
            log.info("fine-tuned embedding model %s unloaded (least recently used)", name)
            await served.batcher.aclose()

    async def _unload(self, name: str) -> None:
        served = self._loaded.pop(name, None)
        if served is not None:
            log.info("fine-tuned embedding model %s is gone (deleted); unloaded", name)
            await served.batcher.aclose()

    async def aclose(self) -> None:
        for served in self._loaded.values():
            await served.batcher.aclose()
        self._loaded.clear()
