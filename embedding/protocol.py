"""OpenAI's embeddings request and response, and the checks that make bad input a 400.

Unknown fields are ignored (clients send ``user`` and others). ``input`` is
checked here rather than by the schema so each mistake gets a plain message:
token arrays are refused by name, since this server embeds text.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from embedding.encoders.base import Vectors
from p2.core.errors import BadRequest


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: Any = Field(description="A string or a list of strings.")
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = None
    user: str | None = None


def input_texts(value: Any, max_inputs: int, max_chars: int) -> list[str]:
    """The texts to embed, or a ``BadRequest`` naming what is wrong with ``input``.

    Lengths are checked in characters before any tokenizing: a huge input costs
    a length check, not a tokenizer run.
    """
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list):
        if not value:
            raise BadRequest("'input' must not be an empty list.", param="input")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value) or all(
            isinstance(v, list) for v in value
        ):
            raise BadRequest(
                "Token arrays are not supported by this server: send 'input' as text "
                "(a string or a list of strings).",
                param="input",
                code="token_input_unsupported",
            )
        bad = next((i for i, v in enumerate(value) if not isinstance(v, str)), None)
        if bad is not None:
            raise BadRequest(
                f"'input[{bad}]' must be a string; 'input' is a string or a list of strings.",
                param="input",
            )
        texts = list(value)
    else:
        raise BadRequest("'input' must be a string or a list of strings.", param="input")
    if len(texts) > max_inputs:
        raise BadRequest(
            f"Too many inputs: {len(texts)}; at most {max_inputs} per request.",
            param="input",
            code="too_many_inputs",
        )
    empty = next((i for i, text in enumerate(texts) if not text), None)
    if empty is not None:
        where = "'input'" if isinstance(value, str) else f"'input[{empty}]'"
        raise BadRequest(
            f"{where} is an empty string; every input must contain text.", param="input"
        )
    long = next((i for i, text in enumerate(texts) if len(text) > max_chars), None)
    if long is not None:
        where = "'input'" if isinstance(value, str) else f"'input[{long}]'"
        raise BadRequest(
            f"{where} is longer than {max_chars} characters (EMBEDDING_MAX_INPUT_CHARS); "
            "split it into several inputs.",
            param="input",
            code="input_too_long",
        )
    return texts


def check_dimensions(requested: int | None, dimension: int) -> None:
    """Vectors have the model's size; a request for another size is refused, not cut."""
    if requested is not None and requested != dimension:
        raise BadRequest(
            f"This model produces {dimension}-dimensional embeddings and cannot shorten them: "
            f"'dimensions' must be omitted or {dimension} (got {requested}).",
            param="dimensions",
            code="unsupported_dimensions",
        )


def render(vectors: Vectors, *, model: str, encoding_format: str, prompt_tokens: int) -> bytes:
    """OpenAI's ``{"object": "list", "data": [...], "model", "usage"}`` as JSON bytes."""
    if encoding_format == "base64":
        rows: list[Any] = [
            base64.b64encode(np.asarray(row, dtype="<f4").tobytes()).decode("ascii")
            for row in vectors
        ]
    else:
        rows = list(vectors)
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
