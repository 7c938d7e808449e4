"""``p2 bench fuzz``: schemathesis against every service's own OpenAPI, on a real stack.

Each service (gateway, inference chat and code, embedding, RAG, the job API) is fuzzed
through its ``/openapi.json`` with an admin key: generated and mutated requests,
checked for responses with status >= 500 and responses that break the service's own
schema (body or content type). The reference is the schema itself; the ratio is
failures per request, which must be 0.

Last line: ``fuzz: requests = N, failures = F`` and the failures per service.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from testkit.fuzzing import FuzzReport, fuzz
from testkit.stack import ADMIN_KEY, running_stack

SERVICES = ("gateway", "chat", "code", "embedding", "rag", "jobs")


def fuzz_stack(max_examples: int, seed: int = 1, home: Path | None = None) -> list[FuzzReport]:
    """Fuzz every service of a fresh stack; one report per service."""
    with (
        tempfile.TemporaryDirectory(prefix="p2-bench-fuzz-") as tmp,
        running_stack(home or Path(tmp)) as stack,
    ):
        return [
            fuzz(
                name,
                f"{stack.url(name)}/openapi.json",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                max_examples=max_examples,
                seed=seed,
            )
            for name in SERVICES
        ]


def summary(reports: list[FuzzReport]) -> str:
    requests = sum(r.requests for r in reports)
    failures = sum(r.failed for r in reports)
    each = ", ".join(f"{r.service} {r.failed}/{r.requests}" for r in reports)
    return f"fuzz: requests = {requests}, failures = {failures} ({each})"


def run(*, max_examples: int = 200, seed: int = 1) -> None:
    reports = fuzz_stack(max_examples, seed)
    for report in reports:
        print(
            json.dumps(
                {
                    "service": report.service,
                    "requests": report.requests,
                    "failures": report.failures,
                    "errors": report.errors,
                }
            )
        )
        if report.failed:
            print(report.output)
    print(summary(reports))
