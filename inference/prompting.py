"""Chat turns to prompt tokens: the GGUF's own template, or a named built-in format.

A prompt is kept as segments: the template's own text, tokenized with special
tokens (``<|im_start|>`` is one control token), and each message's text,
tokenized as plain text, so a message that says ``<|im_end|>`` or
``<end_of_turn><start_of_turn>model`` stays words and cannot forge a turn. A
jinja template is rendered with a random marker in place of each message, and
the markers are swapped back for the messages as separate segments.

Gemma 3 270M ships no template, so P2 falls back to Gemma's turn format;
``<ROLE>_CHAT_FORMAT`` picks another.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from inference.vocab import Vocab


@dataclass(frozen=True)
class Turn:
    """One message as a template sees it (tools already rendered into text)."""

    role: str
    content: str


@dataclass(frozen=True)
class Segment:
    text: str
    special: bool  # the template's own text: control tokens are parsed


@dataclass(frozen=True)
class Prompt:
    segments: tuple[Segment, ...]
    stop: tuple[str, ...]
    add_bos: bool

    def tokens(self, vocab: Vocab) -> list[int]:
        ids: list[int] = []
        for i, segment in enumerate(self.segments):
            if segment.text:
                add_bos = self.add_bos and i == 0
                ids += vocab.tokenize(segment.text, add_bos=add_bos, special=segment.special)
        if self.add_bos and vocab.add_bos and (not self.segments or not self.segments[0].text):
            ids.insert(0, vocab.bos_id)
        return ids

    @property
    def text(self) -> str:
        return "".join(segment.text for segment in self.segments)


Formatter = Callable[[Sequence[Turn]], Prompt]


class UnknownChatFormat(ValueError):
    """The configured chat format is not one P2 knows."""


class TemplateRefused(ValueError):
    """The chat template rejected the conversation (it raised, e.g. on role order)."""


def _system_and_turns(turns: Sequence[Turn]) -> tuple[str, list[Turn]]:
    system = "\n\n".join(t.content for t in turns if t.role in ("system", "developer"))
    return system, [t for t in turns if t.role not in ("system", "developer")]


def _template(text: str) -> Segment:
    return Segment(text, special=True)


def _message(text: str) -> Segment:
    return Segment(text, special=False)


def gemma(turns: Sequence[Turn]) -> Prompt:
    """Gemma's turns; Gemma has no system role, so it leads the first user turn."""
    system, rest = _system_and_turns(turns)
    parts: list[Segment] = []
    for index, turn in enumerate(rest):
        role = "model" if turn.role == "assistant" else "user"
        parts.append(_template(f"<start_of_turn>{role}\n"))
        if index == 0 and system:
            parts.append(_message(f"{system}\n\n"))
        parts += [_message(turn.content), _template("<end_of_turn>\n")]
    if not rest and system:
        parts += [_template("<start_of_turn>user\n"), _message(system)]
        parts.append(_template("<end_of_turn>\n"))
    parts.append(_template("<start_of_turn>model\n"))
    return Prompt(tuple(parts), ("<end_of_turn>",), add_bos=True)


def chatml(turns: Sequence[Turn]) -> Prompt:
    parts: list[Segment] = []
    for turn in turns:
        role = "system" if turn.role == "developer" else turn.role
        parts += [_template(f"<|im_start|>{role}\n"), _message(turn.content)]
        parts.append(_template("<|im_end|>\n"))
    parts.append(_template("<|im_start|>assistant\n"))
    return Prompt(tuple(parts), ("<|im_end|>",), add_bos=False)


BUILTIN: dict[str, Formatter] = {"gemma": gemma, "chatml": chatml}


def jinja(template: str, bos_token: str, eos_token: str) -> Formatter:
    """The GGUF's ``tokenizer.chat_template``, rendered in a sandbox."""
    import jinja2
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    formatter = Jinja2ChatFormatter(template=template, eos_token=eos_token, bos_token=bos_token)

    def render(turns: Sequence[Turn]) -> Prompt:
        nonce = secrets.token_hex(8)
        marks = [f"P2MSG{nonce}N{i}E" for i in range(len(turns))]
        messages: Any = [
            {"role": turn.role, "content": mark} for turn, mark in zip(turns, marks, strict=True)
        ]
        try:
            rendered = formatter(messages=messages)
        except (jinja2.TemplateError, ValueError, TypeError) as exc:
            raise TemplateRefused(str(exc)) from exc
        parts: list[Segment] = []
        pieces = re.split(f"P2MSG{nonce}N(\\d+)E", rendered.prompt)
        for i, piece in enumerate(pieces):
            if i % 2:
                parts.append(_message(turns[int(piece)].content))
            elif nonce in piece:  # the template rewrote a message: its text cannot be kept apart
                raise TemplateRefused("the chat template rewrites message text")
            else:
                parts.append(_template(piece))
        stops = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop or eos_token]
        return Prompt(tuple(parts), tuple(s for s in stops if s), add_bos=False)

    return render


def select(name: str, template: str | None, bos_token: str, eos_token: str) -> Formatter:
    if name == "auto":
        return jinja(template, bos_token, eos_token) if template else gemma
    if name == "template":
        if not template:
            raise UnknownChatFormat("chat format 'template' asked for, but the GGUF has none")
        return jinja(template, bos_token, eos_token)
    try:
        return BUILTIN[name]
    except KeyError:
        known = ", ".join(["auto", "template", *BUILTIN])
        raise UnknownChatFormat(f"unknown chat format {name!r}; known: {known}") from None
