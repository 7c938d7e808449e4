"""Citations: the ``[n]`` a model wrote, and the ones its words earn it.

A model that cites is taken at its word. A model that does not (a small base
model, say) still writes its answer mostly from the sources' own words, so a
sentence without a citation is attributed to the source it shares the most
distinctive words with, when that source holds most of them. The words of
the question do not count: restating the question is not evidence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.sparse import Bm25Encoder

_CITATION = re.compile(r"\[(\d{1,3})\]")
# A small model may echo its prompt: a source's own "[n] (from ...)" header is not a citation.
_ECHOED_HEADER = re.compile(r"\[\d{1,3}\] \(from [^)\n]*\)")
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)")
MIN_SUPPORT = 0.5  # share of a sentence's distinctive weight one source must hold


def cited_numbers(answer: str, available: int) -> list[int]:
    """Source numbers the answer cites, in order of first citation, ignoring invalid ones."""
    seen: dict[int, None] = {}
    for match in _CITATION.finditer(_ECHOED_HEADER.sub(" ", answer)):
        n = int(match.group(1))
        if 1 <= n <= available:
            seen.setdefault(n, None)
    return list(seen)


def _terms(encoder: Bm25Encoder, text: str) -> set[int]:
    """Stemmed, stopword-free terms (as BM25 hashes them): "copying" meets "copy"."""
    return set(encoder.query(text).indices)


@dataclass(frozen=True)
class Attribution:
    """An answer with citations added where its words earn them."""

    text: str  # the answer with ``[n]`` inserted after each attributed sentence
    suffix: str  # the added citations alone, for text already sent (streams)
    cited: tuple[int, ...]  # every source number cited, by the model or by attribution


def _best_source(words: set[int], sources: Sequence[set[int]]) -> int | None:
    if not words:
        return None
    count = len(sources)
    weight = {w: math.log(1 + count / (1 + sum(w in s for s in sources))) for w in words}
    total = sum(weight.values())
    scores = [sum(weight[w] for w in words & s) for s in sources]
    best = max(range(count), key=lambda i: (scores[i], -i))  # ties go to the better-ranked
    return best + 1 if scores[best] >= MIN_SUPPORT * total and scores[best] > 0 else None


def attribute(
    answer: str, sources: Sequence[str], question: str, encoder: Bm25Encoder
) -> Attribution:
    """Keep the model's citations; cite the supporting source of each uncited sentence.

    ``encoder`` is the service's BM25 encoder, so terms match as retrieval matched them.
    """
    available = len(sources)
    source_words = [_terms(encoder, text) for text in sources]
    question_words = _terms(encoder, question)
    cited: dict[int, None] = dict.fromkeys(cited_numbers(answer, available))
    pieces: list[str] = []
    added: dict[int, None] = {}
    last = 0
    for match in _SENTENCE.finditer(answer):
        sentence = match.group(0)
        if cited_numbers(sentence, available) or not sentence.strip():
            continue
        words = _terms(encoder, sentence) - question_words
        n = _best_source(words, source_words) if source_words else None
        if n is None:
            continue
        insert_at = match.start() + len(sentence.rstrip().rstrip(".!?"))  # before the stop
        pieces.append(answer[last:insert_at] + f" [{n}]")
        last = insert_at
        cited.setdefault(n, None)
        added.setdefault(n, None)
    pieces.append(answer[last:])
    suffix = "".join(f" [{n}]" for n in added)
    return Attribution("".join(pieces), suffix, tuple(cited))
