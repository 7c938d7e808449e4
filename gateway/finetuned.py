"""The fine-tuned models the job service lists, for the gateway's ``GET /v1/models``.

The job service (``JOBS_URL``) knows which fine-tuned models exist and whose
they are: it is asked with the caller's own ``Authorization``, so a user key
sees its own models and an admin key all of them. Answers are cached for a
few seconds per key. The job service being down, slow or wrong never breaks
``/v1/models``: the groups are listed without the fine-tuned models (or with
the last answer still in the cache) and the failure goes to the log.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

import httpx
import orjson

log = logging.getLogger("p2.gateway.finetuned")

TTL = 5.0  # seconds an answer is reused
_MAX_KEYS = 1024


class FineTunedModels:
    def __init__(self, jobs_url: str, *, timeout: float = 1.0, ttl: float = TTL) -> None:
        self.url = jobs_url.rstrip("/").removesuffix("/v1") + "/v1/models"
        self.ttl = ttl
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._cache: OrderedDict[bytes, tuple[float, list[dict[str, Any]]]] = OrderedDict()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, trust_env=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def cards(self, authorization: bytes | None) -> list[dict[str, Any]]:
        """The model cards the job service lists for this caller (possibly none)."""
        key = authorization or b""
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        cards = await self._fetch(authorization)
        if cards is None:  # failed: keep what we had, try again after the TTL
            cards = cached[1] if cached is not None else []
        self._cache[key] = (now + self.ttl, cards)
        self._cache.move_to_end(key)
        while len(self._cache) > _MAX_KEYS:
            self._cache.popitem(last=False)
        return cards

    async def _fetch(self, authorization: bytes | None) -> list[dict[str, Any]] | None:
        headers = {"authorization": authorization.decode("latin-1")} if authorization else {}
        try:
            response = await self._http().get(self.url, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("fine-tuned models: the job service is not available (%r)", exc)
            return None
        if response.status_code != 200:
            log.warning("fine-tuned models: the job service answered %d", response.status_code)
            return None
        try:
            data = orjson.loads(response.content).get("data")
        except (orjson.JSONDecodeError, AttributeError):
            data = None
        if not isinstance(data, list):
            log.warning("fine-tuned models: the job service's answer is not a model list")
            return None
        return [c for c in data if isinstance(c, dict) and isinstance(c.get("id"), str)]
