"""Reading citations back out of an answer."""

from __future__ import annotations

from rag.prompting import cited_numbers, sources_json
from rag.retrieval import Result


def test_citations_in_order_of_first_use_and_only_valid_numbers() -> None:
    answer = "Ash melts in engines [2]. Lava flows slowly [1][2]. See also [7] and [0]."
    assert cited_numbers(answer, 3) == [2, 1]


def test_an_echoed_source_list_is_not_a_citation() -> None:
    echo = "Sources:\n\n[1] (from bread.txt) Baking bread starts with flour.\n\n[2] (from x) y"
    assert cited_numbers(echo, 2) == []
    assert cited_numbers(echo + "\nBread needs flour [1].", 2) == [1]


def test_sources_json_flags_the_cited_ones() -> None:
    results = [Result(f"d{i}", 0, 1.0 - i / 10, f"text {i}", {}, f"d{i}") for i in range(3)]
    flags = [(s["index"], s["document_id"], s["cited"]) for s in sources_json(results, "x [3]")]
    assert flags == [(1, "d0", False), (2, "d1", False), (3, "d2", True)]
