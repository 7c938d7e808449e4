"""The chaos benchmark's own bookkeeping: what a broken stream is, which fault a request
is charged to, and how lost, duplicate and partial chunks are counted."""

from __future__ import annotations

import json

import orjson

from benchmarks.chaos import (
    BROKEN,
    ERROR,
    OK,
    Outcome,
    Proc,
    SentDoc,
    Window,
    attribute,
    audit_chunks,
    compact_json,
    first_ok,
    marker,
    outside_tree,
    stream_problem,
    window_report,
)


def sse(*payloads: dict[str, object], done: bool = True) -> bytes:
    events = b"".join(b"data: " + orjson.dumps(p) + b"\n\n" for p in payloads)
    return events + (b"data: [DONE]\n\n" if done else b"")


def chunk(content: str | None, finish: str | None = None, ident: str = "x") -> dict[str, object]:
    delta = {"content": content} if content is not None else {}
    return {"id": ident, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_a_complete_stream_passes_with_keep_alives_and_a_trailing_sources_chunk() -> None:
    assert stream_problem(sse(chunk("Hel"), chunk("lo"), chunk(None, "stop"))) is None
    with_comment = b": keep-alive\n\n" + sse(chunk("Hi"), chunk(None, "length"))
    assert stream_problem(with_comment) is None
    rag = sse(chunk("Hi"), chunk(None, "stop"), {"object": "chat.completion.chunk", "choices": []})
    assert stream_problem(rag) is None


def test_a_stream_cut_off_errored_or_spliced_is_broken() -> None:
    assert stream_problem(sse(chunk("Hel"), done=False)) == "no [DONE] at the end"
    assert stream_problem(b"") == "no [DONE] at the end"
    error = sse(chunk("Hel"), {"error": {"message": "gone", "code": "upstream_error"}})
    assert stream_problem(error) == "error event (upstream_error)"
    spliced = sse(chunk("Hel"), chunk("lo", ident="y"), chunk(None, "stop"))
    assert stream_problem(spliced) == "2 different ids"
    assert stream_problem(sse(chunk("Hel"))) == "0 finish reasons"
    assert stream_problem(sse(chunk(None, "stop"), chunk(None, "stop"))) == "2 finish reasons"
    twice = sse(chunk(None, "stop")) + b"data: [DONE]\n\n"
    assert stream_problem(twice) == "[DONE] more than once"
    assert stream_problem(b"data: {not json\n\ndata: [DONE]\n\n") == "malformed event"
    assert stream_problem(b"event: x\n\ndata: [DONE]\n\n") == "malformed event"


def outcome(kind: str, started: float, ended: float, verdict: str = OK) -> Outcome:
    return Outcome(kind, started, ended, verdict, "" if verdict == OK else "HTTP 503")


def test_a_request_is_charged_to_the_window_in_which_it_ended() -> None:
    windows = [
        Window("baseline", 0.0),
        Window("rag/kill", 10.0, "rag", "kill"),
        Window("gateway/kill", 20.0, "gateway", "kill"),
    ]
    early = outcome("chat", -2.0, -1.0)  # before the load's first window: the first
    in_flight = outcome("rag_query", 9.5, 10.5, ERROR)  # started before the fault it met
    at_start = outcome("chat", 19.0, 20.0)  # ends the instant the next window begins
    late = outcome("index", 25.0, 26.0)
    found = attribute([early, in_flight, at_start, late], windows)
    assert found == {
        "baseline": [early],
        "rag/kill": [in_flight],
        "gateway/kill": [at_start, late],
    }


def test_failures_count_against_redundancy_unless_the_service_is_the_only_path() -> None:
    window = Window("embedding/hang", 10.0, "embedding", "hang")
    mine = [
        outcome("embeddings", 10.1, 12.0, ERROR),  # the one embedding server: expected
        outcome("chat", 10.2, 10.4, ERROR),  # chat does not need embedding: must not fail
        outcome("chat_stream", 10.2, 10.9, BROKEN),
        outcome("embeddings", 11.0, 20.0),
    ]
    report = window_report(window, mine, mine)
    assert report["failed"] == 3
    assert report["failed_where_redundant"] == 2
    assert report["failed_without_redundant_path"] == 1
    assert report["broken_streams"] == 1
    assert report["broken_streams_inherent"] == 0
    assert report["by_kind"]["embeddings"] == {"requests": 2, "errors": 1, "broken": 0}
    assert report["first_ok_s"]["embeddings"] == 10.0
    assert report["first_ok_s"]["rag_query"] is None  # none succeeded after the fault


def test_streams_cut_by_the_gateway_are_inherent_and_chat_failing_over_is_not() -> None:
    cut = [outcome("chat_stream", 0.5, 1.5, BROKEN), outcome("rag_stream", 0.5, 1.5, BROKEN)]
    gateway = window_report(Window("gateway/kill", 1.0, "gateway", "kill"), cut, cut)
    assert gateway["broken_streams_inherent"] == 2
    assert gateway["failed_where_redundant"] == 0
    rag = window_report(Window("rag/kill", 1.0, "rag", "kill"), cut, cut)
    assert rag["broken_streams_inherent"] == 1  # only the stream RAG relays
    chat = window_report(Window("inference-chat/kill", 1.0, "inference-chat", "kill"), cut, cut)
    assert chat["broken_streams_inherent"] == 0
    assert chat["failed_where_redundant"] == 2  # the code server could have served both


def test_first_success_counts_only_requests_started_after_the_fault() -> None:
    outcomes = [
        outcome("rag_query", 4.0, 6.0),  # in flight before the fault, done after it
        outcome("rag_query", 5.5, 7.0, ERROR),
        outcome("rag_query", 6.0, 8.5),
        outcome("chat", 5.1, 5.2),
    ]
    assert first_ok(outcomes, "rag_query", 5.0) == 3.5
    assert first_ok(outcomes, "index", 5.0) is None


def doc(n: int, acked: int | None, request: int | None = None) -> SentDoc:
    return SentDoc(f"doc-{n}", marker(n), n if request is None else request, acked)


def test_every_acknowledged_chunk_present_once_counts_nothing() -> None:
    sent = [doc(1, 2), doc(2, 1), doc(3, None)]
    audit = audit_chunks(
        sent, {"doc-1": 2, "doc-2": 1}, {"doc-1": [1, 0], "doc-2": [0]}, {"chunks": 3}
    )
    assert audit.bad_chunks == 0
    assert (audit.acked_documents, audit.acked_chunks, audit.unacked_documents) == (2, 3, 1)


def test_lost_duplicate_and_dead_chunks_are_counted() -> None:
    sent = [doc(1, 3), doc(2, 2), doc(3, 1), doc(4, 2)]
    manifests = {"doc-1": 3, "doc-2": 2, "doc-4": 3}
    found = {"doc-1": [0, 2], "doc-2": [0, 1, 1], "doc-4": [0, 1, 2]}
    audit = audit_chunks(sent, manifests, found, {"chunks": 10})
    assert audit.lost_chunks == 1 + 1  # doc-1's chunk 1; doc-3 entirely
    assert audit.duplicate_chunks == 1 + 1  # doc-2's chunk 1 twice; doc-4's extra chunk 2
    assert audit.manifest_mismatches == 2  # doc-3 unlisted, doc-4 listed with 3
    assert audit.dead_chunk_points == 10 - 8
    assert audit.bad_chunks == 6


def test_an_unacknowledged_document_must_be_absent_or_whole() -> None:
    sent = [doc(1, None, 7), doc(2, None, 7), doc(3, None, 8), doc(4, None, 9)]
    manifests = {"doc-1": 2, "doc-2": 3}
    found = {"doc-1": [0, 1], "doc-2": [0], "doc-3": [1]}  # doc-3: chunks without manifest
    audit = audit_chunks(sent, manifests, found, {"chunks": 5})
    assert audit.unacked_present_whole == 1
    assert audit.partial_documents == 2
    assert audit.partial_chunks == 2 + 1  # doc-2 lacks chunks 1 and 2; doc-3's stray chunk
    assert audit.torn_requests == 0  # request 7 is all there (doc-2 partly)
    assert audit.bad_chunks == 3


def test_torn_requests_and_unknown_documents_are_reported() -> None:
    sent = [doc(1, None, 5), doc(2, None, 5)]
    audit = audit_chunks(sent, {"doc-1": 1, "stranger": 4}, {"doc-1": [0]}, {"chunks": 5})
    assert audit.torn_requests == 1
    assert (audit.unknown_documents, audit.unknown_chunks) == (1, 4)
    assert audit.bad_chunks == 4


def test_markers_are_distinct_consonant_words() -> None:
    words = {marker(n) for n in range(5000)}
    assert len(words) == 5000
    assert all(w.isalpha() and not set(w) & set("aeiouysl") for w in words)


def test_only_processes_outside_the_supervisors_tree_are_left_over() -> None:
    procs = {
        10: Proc(10, 1, "p2 up"),  # the supervisor
        11: Proc(11, 10, "p2 serve inference --role code"),
        12: Proc(12, 11, "llama-server"),
        13: Proc(13, 1, "llama-server"),  # its parent was killed: reparented to init
        14: Proc(14, 10, "redis-server"),
    }
    assert outside_tree(procs, 10) == [procs[13]]
    assert outside_tree(procs, None) == list(procs.values())  # after p2 down: all of them


def test_the_printed_report_is_json_with_count_tables_on_one_line() -> None:
    report = {
        "requests": 3,
        "faults": [{"fault": "rag/kill", "by_kind": {"chat": {"requests": 3, "errors": 0}}}],
        "orphans": [],
    }
    text = compact_json(report)
    assert json.loads(text) == report
    assert '    "chat": {"requests": 3, "errors": 0}' in text.splitlines()
