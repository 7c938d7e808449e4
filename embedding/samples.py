"""Real English passages available on any machine that runs P2: the stdlib's docstrings.

Used to check an int8 model against its fp32 original, by the tests and by
``p2 bench embedding``. Paragraphs of prose (code-like text filtered out) are
joined per docstring into passages of a few sentences; the order is stable.
"""

from __future__ import annotations

import ast
import re
import sysconfig
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

_PARAGRAPH = re.compile(r"\n\s*\n")
_WORD = re.compile(r"^[A-Za-z][a-z]*[,.;:]?$")
_DOC_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _is_prose(paragraph: str) -> bool:
    words = paragraph.split()
    return len(words) >= 8 and sum(bool(_WORD.match(w)) for w in words) >= 0.75 * len(words)


def _docstrings(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return
    for node in ast.walk(tree):
        if isinstance(node, _DOC_NODES):
            doc = ast.get_docstring(node)
            if doc:
                yield doc


def _passages_of(doc: str, min_words: int, max_words: int) -> Iterator[str]:
    current: list[str] = []
    for paragraph in _PARAGRAPH.split(doc):
        text = " ".join(paragraph.split())
        if not _is_prose(text):
            continue
        current.extend(text.split())
        if len(current) >= min_words:
            yield _clip(current, max_words)
            current = []
    if len(current) >= min_words:
        yield _clip(current, max_words)


def _clip(words: list[str], max_words: int) -> str:
    """At most ``max_words``, ending at a sentence end when one is in the second half."""
    kept = words[:max_words]
    if len(words) > max_words:
        ends = [i for i, w in enumerate(kept) if w.endswith(".") and i >= max_words // 2]
        if ends:
            kept = kept[: ends[-1] + 1]
    return " ".join(kept)


@lru_cache(maxsize=4)
def stdlib_passages(
    limit: int = 2000, min_words: int = 40, max_words: int = 160
) -> tuple[str, ...]:
    """Up to ``limit`` distinct passages of ``min_words`` to ``max_words`` words."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py")) + sorted(root.glob("*/*.py"))
    seen: dict[str, None] = {}
    for path in files:
        if "test" in path.parts or "site-packages" in path.parts:
            continue
        for doc in _docstrings(path):
            for passage in _passages_of(doc, min_words, max_words):
                seen.setdefault(passage)
                if len(seen) >= limit:
                    return tuple(seen)
    return tuple(seen)
