"""Chat messages to a prompt: the GGUF's own template, or a named built-in format.

The default Gemma 3 270M is a base model and ships no template, so P2 falls
back to Gemma's turn format; ``<ROLE>_CHAT_FORMAT`` picks another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from inference.protocol import ChatMessage


@dataclass(frozen=True)
class Prompt:
    text: str
    stop: tuple[str, ...]
    add_bos: bool


Formatter = Callable[[Sequence[ChatMessage]], Prompt]


class UnknownChatFormat(ValueError):
    """The configured chat format is not one P2 knows."""


def _system_and_turns(messages: Sequence[ChatMessage]) -> tuple[str, list[ChatMessage]]:
    system = "\n\n".join(m.text() for m in messages if m.role in ("system", "developer"))
    return system, [m for m in messages if m.role not in ("system", "developer")]


def gemma(messages: Sequence[ChatMessage]) -> Prompt:
    """Gemma's turns; Gemma has no system role, so it leads the first user turn."""
    system, turns = _system_and_turns(messages)
    parts: list[str] = []
    for index, message in enumerate(turns):
        role = "model" if message.role == "assistant" else "user"
        text = message.text()
        if index == 0 and system:
            text = f"{system}\n\n{text}"
        parts.append(f"<start_of_turn>{role}\n{text}<end_of_turn>\n")
    if not turns and system:
        parts.append(f"<start_of_turn>user\n{system}<end_of_turn>\n")
    parts.append("<start_of_turn>model\n")
    return Prompt("".join(parts), ("<end_of_turn>",), add_bos=True)


def chatml(messages: Sequence[ChatMessage]) -> Prompt:
    parts = []
    for message in messages:
        role = "system" if message.role == "developer" else message.role
        parts.append(f"<|im_start|>{role}\n{message.text()}<|im_end|>\n")
    parts.append("<|im_start|>assistant\n")
    return Prompt("".join(parts), ("<|im_end|>",), add_bos=False)


BUILTIN: dict[str, Formatter] = {"gemma": gemma, "chatml": chatml}


def jinja(template: str, bos_token: str, eos_token: str) -> Formatter:
    """The GGUF's ``tokenizer.chat_template``, rendered in a sandbox."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    formatter = Jinja2ChatFormatter(template=template, eos_token=eos_token, bos_token=bos_token)

    def render(messages: Sequence[ChatMessage]) -> Prompt:
        turns: Any = [{"role": m.role, "content": m.text()} for m in messages]
        result = formatter(messages=turns)
        stops = result.stop if isinstance(result.stop, list) else [result.stop or eos_token]
        return Prompt(result.prompt, tuple(s for s in stops if s), add_bos=not result.added_special)

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
