"""OpenAI request schemas the inference server accepts: every field honoured or refused.

A field this server does not know is a 400 naming it (``extra="forbid"``), never
silently dropped: a client asking for something P2 cannot do learns so at once.
Fields OpenAI defines but P2 does not honour are refused by name with the reason
(``REFUSED``). A few are accepted because honouring them changes nothing here:
``user`` and ``safety_identifier`` (end-user ids for OpenAI's abuse monitoring; P2
runs none), ``prompt_cache_key`` (P2 reuses prompt prefixes per slot without a key),
``store: false``, ``service_tier`` ``auto``/``default`` (P2 has one tier) and
``modalities: ["text"]``. llama.cpp extensions: ``top_k``, ``min_p``,
``repeat_penalty``, ``ignore_eos``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from p2.core.errors import BadRequest

MAX_STOPS = 8
MAX_TOOLS = 128
MAX_TOP_LOGPROBS = 20  # chat (OpenAI's bound)
MAX_COMPLETION_LOGPROBS = 5  # legacy completions (OpenAI's bound)
SEED_MODULUS = 2**32 - 1  # llama.cpp seeds are uint32, and 0xFFFFFFFF means "random"

# Fields OpenAI defines that this server refuses, with what to do instead.
REFUSED = {
    "audio": "This server does not produce audio.",
    "functions": "'functions' is deprecated by OpenAI and not supported here: use 'tools'.",
    "function_call": "'function_call' is deprecated by OpenAI and not supported here: use "
    "'tool_choice'.",
    "prediction": "This server does not support predicted outputs.",
    "reasoning_effort": "These models do not reason: 'reasoning_effort' is not supported.",
    "verbosity": "This server does not support 'verbosity'.",
    "web_search_options": "This server does not search the web.",
    "metadata": "'metadata' is kept only with stored completions, and this server stores none.",
}
REFUSED_COMPLETION = {
    "best_of": "This server does not support 'best_of': use 'n'.",
    "suffix": "This server does not support 'suffix' (insertion).",
}


def _refuse(table: dict[str, str], name: str, value: Any) -> Any:
    if value is not None:
        raise ValueError(table[name])
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class FunctionCall(_Strict):
    name: str
    arguments: str


class ToolCall(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    tool_calls: list[ToolCall] | None = None  # assistant turns that called tools
    tool_call_id: str | None = None  # tool turns: the call this answers
    refusal: None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    @model_validator(mode="after")
    def _tool_fields_fit_the_role(self) -> ChatMessage:
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry 'tool_calls'")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a 'tool' message needs the 'tool_call_id' it answers")
        if self.tool_call_id is not None and self.role != "tool":
            raise ValueError("only 'tool' messages carry 'tool_call_id'")
        return self

    def chars(self) -> int:
        size = len(self.text())
        for call in self.tool_calls or ():
            size += len(call.function.name) + len(call.function.arguments)
        return size


class StreamOptions(_Strict):
    include_usage: bool = False
    include_obfuscation: Literal[False] | None = None  # P2 never pads its chunks


class JsonSchemaFormat(_Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None  # output is always grammar-constrained: strict either way


class TextFormat(_Strict):
    type: Literal["text"]


class JsonObjectFormat(_Strict):
    type: Literal["json_object"]


class JsonSchemaResponseFormat(_Strict):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaResponseFormat, Field(discriminator="type")
]


class FunctionDefinition(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None  # calls are grammar-constrained for required/named anyway


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice

Stop = str | Annotated[list[str], Field(max_length=MAX_STOPS)] | None


class SamplingFields(_Strict):
    """What both endpoints share."""

    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    top_k: int = Field(default=40, ge=0)
    min_p: float = Field(default=0.05, ge=0.0, le=1.0)
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    repeat_penalty: float = Field(default=1.0, gt=0.0, le=10.0)
    ignore_eos: bool = False  # llama.cpp extension: generate exactly max_tokens
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**64)
    stop: Stop = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=64)  # and at most the server's slots (service)
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = Field(
        default=None, max_length=1024
    )
    user: str | None = None
    safety_identifier: str | None = None

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        return [s for s in stops if s]

    def seed_value(self) -> int | None:
        return None if self.seed is None else self.seed % SEED_MODULUS

    def check(self) -> None:
        """Rules across fields, as 400s naming the field (pydantic would name the body)."""
        if self.stream_options is not None and not self.stream:
            raise BadRequest(
                "'stream_options' is only allowed when 'stream' is true.", param="stream_options"
            )


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: ResponseFormat | None = None
    tools: Annotated[list[Tool], Field(max_length=MAX_TOOLS)] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    store: Literal[False] | None = None
    service_tier: Literal["auto", "default"] | None = None
    modalities: list[Literal["text"]] | None = None
    prompt_cache_key: str | None = None
    audio: Any = None
    functions: Any = None
    function_call: Any = None
    prediction: Any = None
    reasoning_effort: Any = None
    verbosity: Any = None
    web_search_options: Any = None
    metadata: Any = None

    @field_validator(*REFUSED, mode="before")
    @classmethod
    def _refused(cls, value: Any, info: Any) -> Any:
        return _refuse(REFUSED, str(info.field_name), value)

    def check(self) -> None:
        super().check()
        if self.top_logprobs is not None and not self.logprobs:
            raise BadRequest("'top_logprobs' needs 'logprobs': true.", param="top_logprobs")
        if self.tool_choice is not None and self.tool_choice != "none" and not self.tools:
            raise BadRequest("'tool_choice' needs 'tools'.", param="tool_choice")
        if isinstance(self.tool_choice, NamedToolChoice) and self.tools:
            names = {tool.function.name for tool in self.tools}
            if self.tool_choice.function.name not in names:
                raise BadRequest(
                    f"'tool_choice' names the function '{self.tool_choice.function.name}', "
                    "which is not in 'tools'.",
                    param="tool_choice",
                )
        format_type = self.response_format.type if self.response_format else "text"
        if self.tools and self.tool_choice != "none" and format_type != "text":
            raise BadRequest(
                "'response_format' and 'tools' cannot be combined: a tool call is JSON already.",
                param="response_format",
            )

    def token_budget(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def logprob_count(self) -> int | None:
        """None: no logprobs; k: the chosen token's and ``k`` alternatives."""
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(SamplingFields):
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)] | list[int]
    logprobs: int | None = Field(default=None, ge=0, le=MAX_COMPLETION_LOGPROBS)
    echo: Literal[False] | None = None  # echoing the prompt back is not supported
    best_of: Any = None
    suffix: Any = None

    @field_validator(*REFUSED_COMPLETION, mode="before")
    @classmethod
    def _refused(cls, value: Any, info: Any) -> Any:
        return _refuse(REFUSED_COMPLETION, str(info.field_name), value)

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, value: str | list[str] | list[int]) -> str | list[str] | list[int]:
        if isinstance(value, list) and not value:
            raise ValueError("prompt must not be empty")
        return value

    def prompt_value(self) -> str | list[int]:
        if isinstance(self.prompt, list) and self.prompt and isinstance(self.prompt[0], str):
            return str(self.prompt[0])
        return self.prompt  # type: ignore[return-value]

    def logprob_count(self) -> int | None:
        return self.logprobs
