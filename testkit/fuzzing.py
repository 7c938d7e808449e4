"""Schemathesis against a running service's own OpenAPI: what ``p2 bench fuzz`` and the
short fuzz run in the tests share.

A run passes when no response has a status >= 500 and none breaks the service's own
schema (body or content type): the checks below.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHECKS = ("not_a_server_error", "response_schema_conformance", "content_type_conformance")


@dataclass
class FuzzReport:
    """One service's run: requests sent and the distinct failures found."""

    service: str
    requests: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    output: str = ""

    @property
    def failed(self) -> int:
        return sum(int(f.get("count", 1)) for f in self.failures) + len(self.errors)

    def describe(self) -> str:
        found = "; ".join(
            f"{f['code']} {f['title']} x{f.get('count', 1)} on {', '.join(f['operations'])}"
            for f in self.failures
        )
        return f"{self.service}: {self.requests} requests, {self.failed} failures {found}".strip()


def _schemathesis() -> str:
    return str(Path(sys.executable).with_name("schemathesis"))


def fuzz(
    service: str,
    schema_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    max_examples: int = 20,
    seed: int = 1,
    max_time: float | None = None,
    exclude_paths: tuple[str, ...] = (),
    timeout: float = 1800,
) -> FuzzReport:
    """Run schemathesis against ``schema_url`` (its base URL is the schema's own origin)."""
    with tempfile.TemporaryDirectory(prefix="p2-fuzz-") as tmp:
        argv = [
            _schemathesis(),
            "run",
            schema_url,
            "--checks",
            ",".join(CHECKS),
            "--max-examples",
            str(max_examples),
            "--seed",
            str(seed),
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--no-color",
            "--generation-database",
            "none",
            "--report",
            "json",
            "--report-json-path",
            f"{tmp}/report.json",
        ]
        for name, value in (headers or {}).items():
            argv += ["--header", f"{name}: {value}"]
        for path in exclude_paths:
            argv += ["--exclude-path", path]
        if max_time is not None:
            argv += ["--max-time", str(int(max_time))]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        report_path = Path(tmp) / "report.json"
        if not report_path.is_file():
            return FuzzReport(service, 0, errors=["no report"], output=done.stdout + done.stderr)
        report = json.loads(report_path.read_text())
    errors = [json.dumps(e)[:300] for e in report.get("errors") or []]
    return FuzzReport(
        service,
        int(report["test_cases"]["generated"]),
        list(report.get("failures") or []),
        errors,
        done.stdout[-4000:],
    )
