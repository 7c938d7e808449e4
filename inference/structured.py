"""JSON schemas to GBNF grammars, refusing what would be unsafe or cannot be honoured.

The converter is llama.cpp's own (``json_schema_to_gbnf``, the Python port of
the one ``llama-server`` uses). A grammar guarantees a valid *prefix*: the
output parses when generation ends on its own, not when ``max_tokens`` cuts it
(``finish_reason: "length"`` says so). Schemas are checked before converting:
only local ``$ref`` (``#/...``; no fetching), bounded size and depth, and
length/count bounds small enough that the grammar llama.cpp expands from them
stays small.
"""

from __future__ import annotations

import json
import re
from typing import Any

from p2.core.errors import BadRequest

MAX_SCHEMA_CHARS = 65_536
MAX_DEPTH = 32
MAX_BOUND = 4096  # minLength/maxLength/minItems/maxItems: llama.cpp expands repetitions
_BOUNDS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")

ANY_OBJECT: dict[str, Any] = {"type": "object"}

# llama-cpp-python's port lets a JSON string hold raw control characters (a newline), which
# JSON forbids; llama.cpp's own converter excludes them. P2 uses llama.cpp's rule.
_LOOSE_CHAR = re.compile(r"^char ::= .*$", re.MULTILINE)
_JSON_CHAR = (
    r'char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] '
    r"[0-9a-fA-F] [0-9a-fA-F])"
)


class SchemaError(ValueError):
    """The schema cannot become a grammar; the message says why."""


def check_schema(schema: Any) -> None:
    """Refuse schemas that are not objects, too big or deep, fetch remote ``$ref``s, or
    have repetition bounds past ``MAX_BOUND``."""
    if not isinstance(schema, dict):
        raise SchemaError("a JSON schema must be an object")
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        raise SchemaError(f"the schema is longer than {MAX_SCHEMA_CHARS} characters")
    stack: list[tuple[Any, int]] = [(schema, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SchemaError(f"the schema nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None and (not isinstance(ref, str) or not ref.startswith("#")):
                raise SchemaError("only local '$ref's ('#/...') are supported")
            for key in _BOUNDS:
                bound = node.get(key)
                if isinstance(bound, int) and not 0 <= bound <= MAX_BOUND:
                    raise SchemaError(f"'{key}' must be between 0 and {MAX_BOUND}")
            stack += [(value, depth + 1) for value in node.values()]
        elif isinstance(node, list):
            stack += [(value, depth + 1) for value in node]


def schema_to_gbnf(schema: dict[str, Any]) -> str:
    """GBNF (root rule ``root``) for output valid under ``schema``; ``SchemaError`` if not."""
    check_schema(schema)
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        gbnf = str(json_schema_to_gbnf(json.dumps(schema)))
    # The converter signals an unsupported or broken schema with whatever its code hits.
    except (AssertionError, AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise SchemaError(f"unsupported JSON schema: {exc}") from exc
    except RecursionError:
        raise SchemaError("the schema refers to itself too deeply") from None
    return _LOOSE_CHAR.sub(lambda _: _JSON_CHAR, gbnf, count=1)


def response_format_grammar(kind: str, schema: dict[str, Any] | None) -> str | None:
    """The grammar for ``response_format`` (None for ``text``); 400 on a bad schema."""
    if kind == "text":
        return None
    try:
        return schema_to_gbnf(schema if kind == "json_schema" and schema else ANY_OBJECT)
    except SchemaError as exc:
        raise BadRequest(f"Invalid JSON schema: {exc}.", param="response_format") from exc
