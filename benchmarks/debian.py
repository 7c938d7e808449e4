"""Fine-tuning data derived from this machine's Debian package database, with a held-out
split: no download, and every Debian or Ubuntu machine has one.

``/var/lib/dpkg/status`` lists the installed packages with their section,
priority, one-line summary and long description. The split is by *source*
package (a hash of its name, 25 % held out), so ``libfoo1`` and ``libfoo-dev``
never land on both sides. Two tasks:

- **classify** (chat): the user gives a package's name and summary; the assistant
  answers ``Section: <section>`` and ``Priority: <priority>`` on two lines.
- **pairs** (embedding): the summary as the query, the long description (up to
  600 characters, duplicates and near-empty ones dropped) as the positive.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATUS = Path("/var/lib/dpkg/status")
SYSTEM = "You are a Debian packaging assistant."
HELD_OUT_PERCENT = 25
MAX_LONG = 600
FORMAT = re.compile(r"^Section: [a-z0-9-]+\nPriority: [a-z]+$")


@dataclass(frozen=True)
class Package:
    name: str
    source: str
    summary: str
    long: str
    section: str
    priority: str


def _records(text: str) -> Iterable[dict[str, str]]:
    record: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line:
            if record:
                yield record
            record, key = {}, ""
        elif line[0] in " \t" and key:
            record[key] += "\n" + line
        else:
            key, _, value = line.partition(":")
            record[key] = value.strip()
    if record:
        yield record


def _long(description: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in description.split("\n")[1:]]
    text = "\n".join("" if line.strip() == "." else line for line in lines).strip()
    return re.sub(r"\n{3,}", "\n\n", text)


def packages(status: Path = STATUS) -> list[Package]:
    found = []
    for r in _records(status.read_text(encoding="utf-8", errors="replace")):
        if not {"Package", "Description", "Section"} <= r.keys():
            continue
        found.append(
            Package(
                name=r["Package"],
                source=r.get("Source", r["Package"]).split()[0],
                summary=r["Description"].split("\n")[0].strip(),
                long=_long(r["Description"]),
                section=r["Section"].split("/")[-1],
                priority=r.get("Priority", "optional"),
            )
        )
    return sorted(found, key=lambda p: p.name)


def held_out(package: Package) -> bool:
    digest = int(hashlib.sha256(package.source.encode()).hexdigest(), 16)
    return digest % 100 < HELD_OUT_PERCENT


def split(found: list[Package]) -> tuple[list[Package], list[Package]]:
    """(train, held out), each shuffled with a fixed seed."""
    train = [p for p in found if not held_out(p)]
    test = [p for p in found if held_out(p)]
    random.Random(0).shuffle(train)
    random.Random(0).shuffle(test)
    return train, test


def classify(package: Package) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": prompt(package)},
            {"role": "assistant", "content": answer(package)},
        ]
    }


def prompt(package: Package) -> str:
    return f"Classify this Debian package.\nPackage: {package.name}\nSummary: {package.summary}"


def answer(package: Package) -> str:
    return f"Section: {package.section}\nPriority: {package.priority}"


def pairs(found: list[Package], seen: set[str]) -> list[dict[str, str]]:
    """Summary -> description pairs; descriptions already in ``seen`` (or too short) are
    dropped, and added to ``seen``."""
    rows = []
    for package in found:
        if len(package.long) < 40 or package.long in seen:
            continue
        seen.add(package.long)
        rows.append({"query": package.summary, "positive": package.long[:MAX_LONG]})
    return rows


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
