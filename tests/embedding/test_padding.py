"""The padding plan: inputs grouped into model calls by length, within a budget."""

from __future__ import annotations

import pytest

from embedding.padding import plan_chunks


@pytest.mark.parametrize(("budget", "padding"), [(1, 0.0), (64, 0.5), (1000, 0.0), (1000, 9.0)])
def test_chunks_cover_every_input_once_within_budget_and_padding(
    budget: int, padding: float
) -> None:
    lengths = [5, 300, 12, 12, 40, 7, 256, 3, 90, 41]
    chunks = plan_chunks(lengths, budget, padding)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(lengths)))
    for chunk in chunks:
        padded = len(chunk) * max(lengths[i] for i in chunk)
        real = sum(lengths[i] for i in chunk)
        assert len(chunk) == 1 or (padded <= budget and padded <= real * (1 + padding))
    flat = [lengths[i] for chunk in chunks for i in chunk]
    assert flat == sorted(flat)
    if padding == 0.0 and budget == 1000:
        assert [lengths[i] for i in chunks[3]] == [12, 12]  # equal lengths still share a call
