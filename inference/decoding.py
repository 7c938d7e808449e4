"""One choice's tokens to what the client sees: text, tool calls and logprobs, in step.

Stop strings hold text back until it cannot be one; tool calls hold it back until
the call is complete. A token's logprob is released together with the text it
produced, and dropped with it when a stop string cuts the text.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from inference.engines.base import Event, Token, TokenLogprob
from inference.stop_scanner import StopScanner
from inference.tools import Call, CallScanner


@dataclass
class Piece:
    """What one choice can send now."""

    text: str = ""
    calls: list[Call] = field(default_factory=list)
    logprobs: list[tuple[int, TokenLogprob]] = field(default_factory=list)  # (text offset, …)

    def __bool__(self) -> bool:
        return bool(self.text or self.calls or self.logprobs)


class ChoiceDecoder:
    """Feed a choice's ``Token`` events; ``stopped`` once a stop string matched (the engine
    may stop generating it)."""

    def __init__(self, stops: list[str], calls: CallScanner | None) -> None:
        self._scanner = StopScanner(stops)
        self._calls = calls
        self._logprobs: deque[tuple[int, int, TokenLogprob]] = deque()  # (start, end, …)
        self.text: list[str] = []  # the released content, for a non-streamed answer

    @property
    def stopped(self) -> bool:
        return self._scanner.stopped

    @property
    def calls(self) -> list[Call]:
        return self._calls.calls if self._calls is not None else []

    def feed(self, token: Token) -> Piece:
        if self._scanner.stopped:
            return Piece()
        start = self._scanner.decoded
        text = self._scanner.feed(token.piece)
        if token.logprob is not None:
            self._logprobs.append((start, self._scanner.decoded, token.logprob))
        return self._piece(text, final=False)

    def finish(self) -> Piece:
        return self._piece(self._scanner.flush(), final=True)

    def _piece(self, text: str, *, final: bool) -> Piece:
        released = self._scanner.released
        logprobs = []
        while self._logprobs and (self._logprobs[0][1] <= released or final):
            start, end, logprob = self._logprobs.popleft()
            if end <= released or not self._scanner.stopped:
                logprobs.append((start, logprob))
        calls: list[Call] = []
        if self._calls is not None:
            text, calls = self._calls.feed(text, final=final or self._scanner.stopped)
        if text:
            self.text.append(text)
        return Piece(text, calls, logprobs)


class Answer:
    """All choices of one request: events in, what to send out, finish reasons at the end."""

    def __init__(self, n: int, stops: list[str], tools: bool, single_call: bool) -> None:
        self.choices = [
            ChoiceDecoder(stops, CallScanner(single_call) if tools else None) for _ in range(n)
        ]
        self.finish: dict[int, str] = {}
        self.tokens = 0

    def feed(self, events: list[Event]) -> list[tuple[int, Piece]]:
        """Pieces to send for ``events`` (a choice's last piece comes with its ``Done``)."""
        out = []
        for event in events:
            choice = self.choices[event.index]
            if isinstance(event, Token):
                piece = choice.feed(event)
            else:
                piece = choice.finish()
                self.tokens += event.tokens
                reason = "stop" if choice.stopped else event.reason.value
                self.finish[event.index] = "tool_calls" if choice.calls else reason
            if piece:
                out.append((event.index, piece))
        return out

    def stopped(self) -> list[int]:
        """Choices a stop string ended that are still generating."""
        return [
            i for i, choice in enumerate(self.choices) if choice.stopped and i not in self.finish
        ]
