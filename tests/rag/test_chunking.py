"""Chunking by characters: bounded chunks that cover the text, with overlap, at natural cuts."""

from __future__ import annotations

import itertools

import pytest

from rag.chunking import split
from tests.rag.corpus import DOCS

TEXT = " ".join(DOCS.values())


@pytest.mark.parametrize(("size", "overlap"), [(100, 0), (300, 50), (800, 120)])
def test_chunks_are_bounded_and_cover_every_word(size: int, overlap: int) -> None:
    chunks = split(TEXT, size, overlap)
    assert all(len(c.text) <= size for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    covered = " ".join(c.text for c in chunks).split()
    assert set(TEXT.split()) <= set(covered)
    for c in chunks:
        assert TEXT[c.start : c.start + len(c.text)] == c.text


def test_consecutive_chunks_overlap_and_cut_at_sentence_or_word_ends() -> None:
    chunks = split(TEXT, 300, 60)
    for first, second in itertools.pairwise(chunks):
        assert second.start < first.start + len(first.text)  # they share text
        assert first.text[-1] in ".!?,;" or TEXT[first.start + len(first.text)].isspace()


def test_short_and_blank_texts() -> None:
    assert [c.text for c in split("  one line  ", 100, 10)] == ["one line"]
    assert split(" \n\n ", 100, 10) == []
    with pytest.raises(ValueError):
        split("x", 10, 10)
