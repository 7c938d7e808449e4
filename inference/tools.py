"""OpenAI tools for any chat template, the same way for every model and engine.

The default models' templates know nothing of tools (SmolLM2's is plain ChatML,
Gemma 3 270M has none), and llama-server silently drops ``tools`` for them. So P2
renders tools itself, in the Hermes/Qwen format small instruction models are tuned
on: the function signatures in a system block, calls as
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, results as
``<tool_response>`` user turns. ``tool_choice`` ``required`` and a named function
constrain the output with a grammar, so the call always parses and its arguments
match the function's schema; ``auto`` uses the same grammar lazily (free text until
the model writes ``<tool_call>``); ``none`` leaves the tools out.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from inference.engines.base import Grammar
from inference.prompting import Turn
from inference.protocol import ChatMessage, NamedToolChoice, Tool, ToolChoice
from inference.structured import ANY_OBJECT, SchemaError, schema_to_gbnf
from p2.core.errors import BadRequest

OPEN, CLOSE = "<tool_call>", "</tool_call>"
TRIGGER = re.escape(OPEN)  # the lazy grammar wakes up where this regular expression matches


def system_block(tools: list[Tool]) -> str:
    signatures = "\n".join(
        json.dumps(tool.function.model_dump(exclude_none=True), ensure_ascii=False)
        for tool in tools
    )
    return (
        "You are a function calling AI model. You may call one or more functions to assist "
        "with the user query. Function signatures are within <tools></tools> XML tags:\n"
        f"<tools>\n{signatures}\n</tools>\n"
        "For each function call, return a JSON object with the function name and arguments "
        f"within {OPEN}{CLOSE} XML tags:\n"
        f'{OPEN}\n{{"name": <function-name>, "arguments": <args-json-object>}}\n{CLOSE}'
    )


def _call_text(name: str, arguments: str) -> str:
    try:
        args = json.loads(arguments or "{}")
    except ValueError:
        args = arguments  # replayed as the client sent it
    return f"{OPEN}\n{json.dumps({'name': name, 'arguments': args}, ensure_ascii=False)}\n{CLOSE}"


def turns(
    messages: list[ChatMessage], tools: list[Tool] | None, choice: ToolChoice | None
) -> list[Turn]:
    """OpenAI messages as turns any template renders: system messages first (with the tool
    block), assistant calls and tool results as text."""
    system = [m.text() for m in messages if m.role in ("system", "developer") and m.text()]
    if tools and choice != "none":
        system.append(system_block(tools))
    out = [Turn("system", "\n\n".join(system))] if system else []
    for message in messages:
        if message.role in ("system", "developer"):
            continue
        if message.role == "tool":
            out.append(Turn("user", f"<tool_response>\n{message.text()}\n</tool_response>"))
        elif message.role == "assistant" and message.tool_calls:
            calls = [_call_text(c.function.name, c.function.arguments) for c in message.tool_calls]
            out.append(Turn("assistant", "\n".join([message.text(), *calls]).strip()))
        else:
            out.append(Turn(message.role, message.text()))
    return out


def _rebase_refs(node: Any, base: str) -> Any:
    """A schema's local ``$ref``s, valid again once it is nested under ``base``."""
    if isinstance(node, dict):
        out = {key: _rebase_refs(value, base) for key, value in node.items()}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            out["$ref"] = base + ref[1:]
        return out
    if isinstance(node, list):
        return [_rebase_refs(value, base) for value in node]
    return node


def call_grammar(
    tools: list[Tool] | None, choice: ToolChoice | None, parallel: bool | None
) -> Grammar | None:
    """The grammar tool calls follow (None: no tools, or ``tool_choice: "none"``)."""
    if not tools or choice == "none":
        return None
    named = choice.function.name if isinstance(choice, NamedToolChoice) else None
    chosen = [t for t in tools if named is None or t.function.name == named]
    alternatives = []
    for i, tool in enumerate(chosen):
        base = "#/properties/arguments" if len(chosen) == 1 else f"#/oneOf/{i}/properties/arguments"
        parameters = tool.function.parameters or ANY_OBJECT
        alternatives.append(
            {
                "type": "object",
                "properties": {
                    "name": {"const": tool.function.name},
                    "arguments": _rebase_refs(parameters, base),
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    schema = alternatives[0] if len(alternatives) == 1 else {"oneOf": alternatives}
    try:
        calls = schema_to_gbnf(schema)
    except SchemaError as exc:
        raise BadRequest(f"Invalid tool parameters: {exc}.", param="tools") from exc
    calls = re.sub(r"^root ::=", "p2-call ::=", calls, count=1, flags=re.MULTILINE)
    one = f'"{OPEN}" p2-nl p2-call p2-nl "{CLOSE}"'
    more = "" if named is not None or parallel is False else f" (p2-nl {one})*"
    root = f'root ::= {one}{more}\np2-nl ::= "\\n"?\n'
    lazy = choice is None or choice == "auto"
    return Grammar(root + calls, (TRIGGER,) if lazy else ())


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


@dataclass(frozen=True)
class Call:
    id: str
    name: str
    arguments: str  # a JSON string, as OpenAI sends it

    def message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


def _parse_call(body: str) -> Call | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    arguments = data.get("arguments", {})
    return Call(new_call_id(), data["name"], json.dumps(arguments, ensure_ascii=False))


class CallScanner:
    """Generated text in; content text and finished calls out, as they become certain.

    Text that may be the start of ``<tool_call>`` is held back; a call is released
    when its ``</tool_call>`` arrives. A call whose JSON does not parse stays text.
    With ``single``, text after the first call is dropped (``parallel_tool_calls``
    false, or a named function).
    """

    def __init__(self, single: bool = False) -> None:
        self._buffer = ""
        self._space = ""  # whitespace held back: between calls it is no content
        self._single = single
        self.calls: list[Call] = []

    def feed(self, text: str, *, final: bool = False) -> tuple[str, list[Call]]:
        self._buffer += text
        content: list[str] = []
        calls: list[Call] = []
        while self._buffer:
            if self._single and self.calls:
                self._buffer = ""
                break
            start = self._buffer.find(OPEN)
            if start < 0:
                keep = 0 if final else _partial_tail(self._buffer, OPEN)
                content.append(self._buffer[: len(self._buffer) - keep])
                self._buffer = self._buffer[len(self._buffer) - keep :]
                break
            content.append(self._buffer[:start])
            end = self._buffer.find(CLOSE, start)
            if end < 0:
                if final and not self.calls:  # an unfinished call: the text as it is
                    content.append(self._buffer[start:])
                if final:  # after complete calls, a cut-off one is dropped
                    self._buffer = ""
                else:
                    self._buffer = self._buffer[start:]
                break
            call = _parse_call(self._buffer[start + len(OPEN) : end].strip())
            if call is None:
                content.append(self._buffer[start : end + len(CLOSE)])
            else:
                calls.append(call)
                self.calls.append(call)
            self._buffer = self._buffer[end + len(CLOSE) :]
        text = self._space + "".join(content)
        if text.strip():
            self._space = ""
        else:
            self._space, text = text, ""
        if final and not self.calls:
            text, self._space = text + self._space, ""
        return text, calls


def _partial_tail(text: str, marker: str) -> int:
    """Length of the longest tail of ``text`` that ``marker`` starts with."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-size:]):
            return size
    return 0
