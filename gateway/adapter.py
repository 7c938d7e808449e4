"""Deployments without an OpenAI-compatible endpoint, through LiteLLM's own adapters.

Anthropic's native API, Bedrock, Vertex and the like are reached with
``litellm.acompletion`` (``atext_completion``, ``aembedding``). LiteLLM is an
optional extra (``pip install 'p2[litellm]'``), imported only when the config
has such a deployment: the hot path for OpenAI-compatible backends never
touches it. Its retries are off (P2's failover loop is the only one) and its
cost map is read from the package (``LITELLM_LOCAL_MODEL_COST_MAP``: no fetch
at start). Answers are re-framed as the OpenAI bytes an HTTP backend would
send, so the relay, continuation and metrics work unchanged, and LiteLLM's
exceptions become the answers or failures the failure table knows: a status
code and an OpenAI error body, or a connect/timeout/reset failure.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import orjson

from gateway.upstream import ConnectError, DisconnectError, ReadTimeoutError, UpstreamError
from p2.core.errors import error_body
from p2.core.sse import DONE

if TYPE_CHECKING:
    from gateway.backends import Deployment
    from gateway.forwarding import Call

log = logging.getLogger("p2.gateway.adapter")

_P2_ONLY = frozenset({"api_key", "api_base", "model"})


class MissingExtra(RuntimeError):
    """A config needs LiteLLM's adapters and the ``litellm`` extra is not installed."""


def load_litellm() -> Any:
    """Import LiteLLM with its network fetches and its own retries off."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    try:
        import litellm
    except ImportError as exc:
        raise MissingExtra(
            "this config has deployments without an OpenAI-compatible endpoint (Anthropic's "
            "native API, Bedrock, Vertex, ...): install the litellm extra, "
            "pip install 'p2[litellm]'"
        ) from exc
    litellm.suppress_debug_info = True
    litellm.num_retries = 0
    litellm.telemetry = False
    return litellm


class AdapterResponse:
    """A LiteLLM answer with the interface of ``gateway.upstream.Response``."""

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        chunks: AsyncIterator[bytes] | None = None,
        content_type: bytes = b"application/json",
        close: Callable[[], object] | None = None,
    ) -> None:
        self.status = status
        self.on_release: Callable[[], None] | None = None
        self._body = body
        self._chunks = chunks
        self._content_type = content_type
        self._close = close
        self._released = False

    def header(self, name: bytes) -> bytes | None:
        return self._content_type if name == b"content-type" else None

    async def read(self, idle: float) -> bytes:
        self.release()
        return self._body

    async def iter_chunks(self, idle: float) -> AsyncIterator[bytes]:
        try:
            if self._chunks is not None:
                async for chunk in self._chunks:
                    yield chunk
        finally:
            self.release()

    def abort(self) -> None:
        if self._close is not None:
            self._close()
        self.release()

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self.on_release is not None:
            self.on_release()


class Adapter:
    """Calls one native deployment through LiteLLM."""

    def __init__(self, litellm: Any) -> None:
        self.litellm = litellm

    def _kwargs(self, call: Call, deployment: Deployment, deadline: float) -> dict[str, Any]:
        spec = deployment.spec
        kwargs: dict[str, Any] = {**spec.defaults, **call.body}
        kwargs.update({k: v for k, v in spec.litellm_params.items() if k not in _P2_ONLY})
        model = call.target.sent(spec.model) if call.target is not None else spec.model
        kwargs["model"] = model
        if spec.api_base:
            kwargs["api_base"] = spec.api_base
        if spec.api_key:
            kwargs["api_key"] = spec.api_key
        kwargs["num_retries"] = 0
        kwargs["max_retries"] = 0
        kwargs["timeout"] = max(deadline - time.monotonic(), 0.001)
        if spec.headers:
            kwargs["extra_headers"] = dict(spec.headers)
        return kwargs

    async def send(self, call: Call, deployment: Deployment, deadline: float) -> AdapterResponse:
        litellm = self.litellm
        kwargs = self._kwargs(call, deployment, deadline)
        stream = bool(kwargs.get("stream"))
        shown = deployment.model
        try:
            if call.path == "/embeddings":
                kwargs.pop("stream", None)
                result = await litellm.aembedding(**kwargs)
            elif call.path == "/completions":
                result = await litellm.atext_completion(**kwargs)
            else:
                result = await litellm.acompletion(**kwargs)
        except Exception as exc:  # noqa: BLE001 - LiteLLM raises many kinds; mapped below
            return self._failure(exc)
        if not stream:
            return AdapterResponse(200, _dump(result, shown))
        return AdapterResponse(
            200,
            chunks=self._events(result, shown),
            content_type=b"text/event-stream",
            close=getattr(result, "aclose", None),
        )

    async def _events(self, stream: Any, shown: str) -> AsyncIterator[bytes]:
        try:
            async for chunk in stream:
                yield b"data: " + _dump(chunk, shown) + b"\n\n"
        except Exception as exc:
            self._failure(exc)  # raises the gateway's own failure for timeouts and connections
            raise DisconnectError(f"the provider's stream failed: {exc}") from exc
        yield DONE

    def _failure(self, exc: Exception) -> AdapterResponse:
        """LiteLLM's exception as the answer an HTTP backend would have given, or raise the
        gateway's own failure for connection problems and timeouts."""
        litellm = self.litellm
        if isinstance(exc, litellm.Timeout):
            raise ReadTimeoutError(f"the provider did not answer in time: {exc}") from exc
        if isinstance(exc, litellm.APIConnectionError):
            raise ConnectError(f"cannot reach the provider: {exc}") from exc
        if isinstance(exc, UpstreamError):
            raise exc
        status = int(getattr(exc, "status_code", 0) or 500)
        code: str | None = None
        if isinstance(exc, litellm.ContextWindowExceededError):
            code = "context_length_exceeded"
        elif isinstance(exc, litellm.ContentPolicyViolationError):
            code = "content_policy_violation"
        message = str(getattr(exc, "message", "") or exc)
        log.info("provider error %d: %s", status, message[:200])
        kind = "invalid_request_error" if status < 500 else "api_error"
        return AdapterResponse(status, orjson.dumps(error_body(message, kind, code=code)))


def _dump(result: Any, shown: str) -> bytes:
    """A LiteLLM response object as OpenAI's JSON, its model named as the deployment's."""
    data = result.model_dump(exclude_none=True) if hasattr(result, "model_dump") else result
    if isinstance(data, dict) and "model" in data:
        data["model"] = shown
    return orjson.dumps(data)
