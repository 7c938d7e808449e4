"""A small client of the job API for ``p2 jobs``: list, show (and follow), cancel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx


class JobsClientError(RuntimeError):
    """The job API refused or could not be reached; the message says why."""


class JobsClient:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = 70.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> JobsClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise JobsClientError(
                f"cannot reach the job API at {self._http.base_url} ({type(exc).__name__}); "
                "is P2 up (`p2 status`)?"
            ) from exc
        body: dict[str, Any] = response.json() if response.content else {}
        if response.status_code >= 400:
            message = (body.get("error") or {}).get("message") or response.text
            raise JobsClientError(f"{response.status_code}: {message}")
        return body

    def jobs(
        self, *, status: str | None = None, task: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"status": status, "task": task, "limit": limit}.items() if v}
        return list(self._call("GET", "/v1/jobs", params=params)["data"])

    def get(self, job_id: str, wait: float | None = None) -> dict[str, Any]:
        params = {"wait": wait} if wait else {}
        return self._call("GET", f"/v1/jobs/{job_id}", params=params)

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/jobs/{job_id}/cancel")

    def follow(self, job_id: str, seen: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Report the job to ``seen`` about every second until it is final; the final job."""
        while True:
            job = self.get(job_id, wait=1.0)
            seen(job)
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
