"""Citations: read back from an answer, or earned by the words of an uncited sentence."""

from __future__ import annotations

from rag.citations import attribute, cited_numbers
from rag.prompting import completion_prompt, sources_json
from rag.retrieval import Result
from rag.sparse import Bm25Encoder

BM25 = Bm25Encoder()

SOURCES = [
    "The gateway listens on port 8000. The chat inference server uses port 8001.",
    "To rotate a key without downtime, add the new key, restart the gateway, move every "
    "client over, then remove the old key.",
    "Qdrant data lives in the qdrant folder. Back it up by copying that folder while the "
    "rag service is stopped.",
]


def test_citations_in_order_of_first_use_and_only_valid_numbers() -> None:
    answer = "Ash melts in engines [2]. Lava flows slowly [1][2]. See also [7] and [0]."
    assert cited_numbers(answer, 3) == [2, 1]


def test_an_echoed_source_list_is_not_a_citation() -> None:
    echo = "Sources:\n\n[1] (from bread.txt) Baking bread starts with flour.\n\n[2] (from x) y"
    assert cited_numbers(echo, 2) == []
    assert cited_numbers(echo + "\nBread needs flour [1].", 2) == [1]


def test_sources_json_flags_the_cited_ones() -> None:
    results = [Result(f"d{i}", 0, 1.0 - i / 10, f"text {i}", {}, f"d{i}") for i in range(3)]
    flags = [(s["index"], s["document_id"], s["cited"]) for s in sources_json(results, [3])]
    assert flags == [(1, "d0", False), (2, "d1", False), (3, "d2", True)]


def test_an_uncited_sentence_cites_the_source_its_words_come_from() -> None:
    done = attribute(
        "Copy the qdrant folder while rag is stopped. It listens on port 8000.",
        SOURCES,
        "How do I back up the Qdrant data?",
        BM25,
    )
    assert (
        done.text == "Copy the qdrant folder while rag is stopped [3]. It listens on port 8000 [1]."
    )
    assert done.cited == (3, 1)
    assert done.suffix == " [3] [1]"


def test_the_question_s_own_words_earn_no_citation() -> None:
    question = "How do I rotate a key without downtime?"
    assert attribute("Rotate the key without downtime.", SOURCES, question, BM25).cited == ()
    assert attribute("Bananas are yellow.", SOURCES, question, BM25).cited == ()


def test_the_model_s_own_citations_are_kept_and_not_doubled() -> None:
    done = attribute("Restart the gateway [2]. Copy that folder.", SOURCES, "how?", BM25)
    assert done.text == "Restart the gateway [2]. Copy that folder [3]."
    assert done.cited == (2, 3)
    assert done.suffix == " [3]"


def test_completion_prompt_lists_the_best_excerpt_last_and_keeps_the_conversation() -> None:
    results = [Result(f"d{i}", 0, 1.0, f"text\n{i}", {}, f"d{i}.md") for i in (1, 2)]
    messages = [
        {"role": "user", "content": "First question?"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "Second  question?"},
    ]
    prompt = completion_prompt(messages, 2, results)
    assert prompt == (
        "Documentation excerpts:\n\n[2] (d2.md) text 2\n\n[1] (d1.md) text 1\n\n"
        "Q: First question?\nA: First answer.\n\nQ: Second question?\nA:"
    )
