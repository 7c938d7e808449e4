"""A validated request to an engine job: template, tokens, grammar, sampling, limits.

Cheap checks (sizes, counts) run on the event loop before anything else; the
heavy part (template rendering, tokenizing, grammar building, loading an adapter)
runs on a worker thread, so ``/health`` keeps answering whatever a request holds.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from inference import tools
from inference.engines.base import Adapter, AdapterError, Engine, Grammar, Job, Sampling
from inference.prompting import Formatter, Prompt, Segment, TemplateRefused
from inference.protocol import (
    SEED_MODULUS,
    ChatCompletionRequest,
    CompletionRequest,
    NamedToolChoice,
    SamplingFields,
)
from inference.settings import InferenceSettings
from inference.structured import response_format_grammar
from p2.core.errors import BadRequest


@dataclass(frozen=True)
class Plan:
    """What the service needs to run a request and shape its answer."""

    job: Job
    stops: list[str]
    tools: bool  # parse tool calls out of the text
    single_call: bool  # at most one call (a named function, or parallel_tool_calls false)
    logprobs: bool


def too_long(chars: int, limit: int, setting: str, param: str) -> BadRequest | None:
    if chars <= limit:
        return None
    return BadRequest(
        f"The prompt is {chars} characters long, more than this server accepts ({limit}, "
        f"{setting}). Please shorten it.",
        param=param,
        code="context_length_exceeded",
    )


def chat_chars(body: ChatCompletionRequest) -> int:
    size = sum(message.chars() for message in body.messages)
    if body.tools:
        size += sum(len(json.dumps(tool.function.model_dump())) for tool in body.tools)
    return size


class Planner:
    """Builds jobs for one loaded engine and template (call ``chat``/``completion`` off the
    event loop)."""

    def __init__(self, engine: Engine, formatter: Formatter, settings: InferenceSettings) -> None:
        self.engine = engine
        self.formatter = formatter
        self.settings = settings

    def chat(self, body: ChatCompletionRequest, adapter: Adapter | None) -> Plan:
        turns = tools.turns(body.messages, body.tools, body.tool_choice)
        try:
            prompt = self.formatter(turns)
        except TemplateRefused as exc:
            raise BadRequest(
                f"The model's chat template refused these messages: {exc}", param="messages"
            ) from exc
        tokens = prompt.tokens(self.engine.vocab)
        grammar = tools.call_grammar(body.tools, body.tool_choice, body.parallel_tool_calls)
        with_tools = grammar is not None
        if grammar is None and body.response_format is not None:
            fmt = body.response_format
            schema = fmt.json_schema.schema_ if fmt.type == "json_schema" else None
            gbnf = response_format_grammar(fmt.type, schema)
            grammar = Grammar(gbnf) if gbnf is not None else None
        self._check_grammar(grammar, "tools" if with_tools else "response_format")
        single = with_tools and (
            isinstance(body.tool_choice, NamedToolChoice) or body.parallel_tool_calls is False
        )
        return Plan(
            job=self._job(body, tokens, body.token_budget(), "messages", grammar, adapter),
            stops=[*prompt.stop, *body.stop_list()],
            tools=with_tools,
            single_call=single,
            logprobs=body.logprobs is True,
        )

    def completion(self, body: CompletionRequest, adapter: Adapter | None) -> Plan:
        value = body.prompt_value()
        vocab = self.engine.vocab
        if isinstance(value, list):
            bad = vocab.out_of_range(value)
            if bad is not None:
                raise BadRequest(
                    f"The prompt holds the token id {bad}, which this model's vocabulary "
                    f"(0 to {vocab.n_vocab - 1}) does not have.",
                    param="prompt",
                )
            tokens = list(value)
        else:  # plain text: a prompt is the client's text, never control tokens
            tokens = Prompt((Segment(value, special=False),), (), add_bos=True).tokens(vocab)
        return Plan(
            job=self._job(body, tokens, body.max_tokens, "prompt", None, adapter),
            stops=body.stop_list(),
            tools=False,
            single_call=False,
            logprobs=body.logprobs is not None,
        )

    def _check_grammar(self, grammar: Grammar | None, param: str) -> None:
        if grammar is None:
            return
        error = self.engine.vocab.grammar_error(grammar.gbnf, grammar.triggers)
        if error is not None:
            raise BadRequest(f"The output constraint cannot be applied: {error}.", param=param)

    def _job(
        self,
        body: ChatCompletionRequest | CompletionRequest,
        tokens: list[int],
        budget: int | None,
        prompt_param: str,
        grammar: Grammar | None,
        adapter: Adapter | None,
    ) -> Job:
        n_ctx = self.engine.n_ctx
        if not tokens:
            raise BadRequest("The prompt is empty.", param=prompt_param)
        if len(tokens) >= n_ctx:
            raise BadRequest(
                f"This model's maximum context length is {n_ctx} tokens. However, your "
                f"prompt is {len(tokens)} tokens long. Please shorten it.",
                param=prompt_param,
                code="context_length_exceeded",
            )
        room = n_ctx - len(tokens)
        if budget is not None and budget > room:
            raise BadRequest(
                f"This model's maximum context length is {n_ctx} tokens. However, you requested "
                f"{len(tokens) + budget} tokens ({len(tokens)} in the prompt, {budget} for the "
                "completion). Please reduce the prompt or max_tokens.",
                param="max_tokens",
                code="context_length_exceeded",
            )
        if adapter is not None:
            try:
                self.engine.use_adapter(adapter)
            except AdapterError as exc:
                raise BadRequest(f"Cannot use this model: {exc}.", param="model") from exc
        default = min(self.settings.max_tokens_default, room)
        return Job(
            prompt=tuple(tokens),
            max_tokens=budget if budget is not None else default,
            sampling=self._sampling(body),
            n=body.n,
            grammar=grammar,
            logprobs=body.logprob_count(),
            adapter=adapter,
        )

    def _sampling(self, body: SamplingFields) -> Sampling:
        seed = body.seed_value()
        return Sampling(
            seed=seed if seed is not None else random.randrange(SEED_MODULUS),
            temperature=body.temperature,
            top_p=body.top_p,
            top_k=body.top_k,
            min_p=body.min_p,
            presence_penalty=body.presence_penalty,
            frequency_penalty=body.frequency_penalty,
            repeat_penalty=body.repeat_penalty,
            logit_bias=self._logit_bias(body.logit_bias),
            ignore_eos=body.ignore_eos,
        )

    def _logit_bias(self, bias: dict[str, float] | None) -> tuple[tuple[int, float], ...]:
        if not bias:
            return ()
        out = []
        n_vocab = self.engine.vocab.n_vocab
        for key, value in bias.items():
            try:
                token = int(key)
            except ValueError:
                token = -1
            if not 0 <= token < n_vocab:
                raise BadRequest(
                    f"'logit_bias' keys are token ids of this model (0 to {n_vocab - 1}); "
                    f"{key!r} is not one.",
                    param="logit_bias",
                )
            out.append((token, value))
        return tuple(out)
