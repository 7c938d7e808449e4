"""Split text into overlapping chunks of at most ``size`` characters.

Characters, not tokens: chunking needs no tokenizer and is stable across
embedding models. 800 characters of English are about 180-220 MiniLM word
pieces, under its 256-token window. Cuts prefer a paragraph break, then a
line break, then a sentence end, then a space, in the second half of the window.
"""

from __future__ import annotations

from dataclasses import dataclass

_SEPARATORS = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ")


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    start: int  # character offset in the document


def _cut(text: str, start: int, size: int) -> int:
    end = start + size
    if end >= len(text):
        return len(text)
    floor = start + size // 2
    for sep in _SEPARATORS:
        at = text.rfind(sep, floor, end)
        if at != -1:
            return at + len(sep)
    return end


def split(text: str, size: int, overlap: int) -> list[Chunk]:
    """Chunks covering all of ``text``; consecutive chunks share about ``overlap`` characters."""
    if overlap >= size:
        raise ValueError("overlap must be smaller than size")
    chunks: list[Chunk] = []
    start = 0
    length = len(text)
    while start < length:
        # Skip leading whitespace so chunks do not start blank.
        while start < length and text[start].isspace():
            start += 1
        if start >= length:
            break
        end = _cut(text, start, size)
        piece = text[start:end].strip()
        if piece:
            chunks.append(Chunk(len(chunks), piece, start))
        if end >= length:
            break
        nxt = max(end - overlap, start + 1)
        # Start the overlap at a word boundary when one is near.
        space = text.find(" ", nxt, end)
        start = space + 1 if space != -1 and space + 1 < end else nxt
    return chunks
