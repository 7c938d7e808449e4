from __future__ import annotations

from inference.stop_scanner import StopScanner


def test_stop_string_split_across_tokens_is_not_emitted() -> None:
    scanner = StopScanner(["<end>"])
    out = scanner.feed(b"Hello <e") + scanner.feed(b"nd> more")
    assert out == "Hello "
    assert scanner.stopped


def test_text_that_only_looks_like_a_stop_prefix_is_released() -> None:
    scanner = StopScanner(["<end>"])
    out = scanner.feed(b"a <e") + scanner.feed(b"x") + scanner.flush()
    assert out == "a <ex"
    assert not scanner.stopped


def test_utf8_split_between_tokens_is_reassembled() -> None:
    scanner = StopScanner([])
    data = "h\u00e9llo \u2603".encode()
    out = "".join(scanner.feed(data[i : i + 1]) for i in range(len(data))) + scanner.flush()
    assert out == "h\u00e9llo \u2603"
