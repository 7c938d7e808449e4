"""``p2 bench structured``: structured output and tool calls through the gateway.

The default models (chat: SmolLM2-135M-Instruct, code: Gemma 3 270M) run behind a
real gateway, as ``p2 up`` runs them. The prompts are generated mechanically, so no
model was tuned on them:

* JSON-schema prompts from this machine's Debian package database
  (``/var/lib/dpkg/status``): "describe package X as JSON", with a schema of its name,
  section, priority, whether it is essential and a one-line summary (strings bounded,
  as a grammar cannot end a string the model never closes within ``max_tokens``);
  every k-th package in name order. Without a dpkg database: Python stdlib modules.
* Tool-call prompts from Python standard-library signatures: each function with
  plain parameters becomes a tool (name, first docstring line, parameters typed from
  their defaults); a prompt offers the target and two other tools, ``tool_choice``
  ``required``.

Each JSON prompt runs constrained (``response_format`` ``json_schema``) and free (the
schema in the prompt, no constraint), one streamed request at a time, at most 200 tokens:
valid-JSON and schema-valid rates for both, and tokens/s of constrained against free
generation (the same prompt, with the schema in it, either way; counted from the first
token on, so the prompt's evaluation does not weigh on short answers more than long ones).
Tool calls count as parsed when ``finish_reason`` is ``tool_calls`` and the arguments
validate against the tool's parameters. Last line:
``structured: schema-valid = X, tool-calls parsed = Y, constrained/free tokens/s = Z``.
"""

from __future__ import annotations

import inspect
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]  # a dev dependency: make install-dev

from benchmarks.stats import rounded
from p2.core.litellm_config import config, deployment, write_config
from p2.core.process import free_port, running
from p2.core.settings import CoreSettings

KEY = "sk-bench-structured"
# Enough for every bounded answer here (~100 tokens at most); free text that runs on is cut.
JSON_MAX_TOKENS = 200
TOOL_MAX_TOKENS = 200
DPKG_STATUS = Path("/var/lib/dpkg/status")
PRIORITIES = ["required", "important", "standard", "optional", "extra"]
TOOL_MODULES = ("textwrap", "shutil", "json", "statistics", "fnmatch", "difflib", "calendar")


@dataclass(frozen=True)
class JsonCase:
    prompt: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class ToolCase:
    prompt: str
    tools: list[dict[str, Any]]
    target: str


def _packages(limit: int) -> list[dict[str, str]]:
    if not DPKG_STATUS.is_file():
        return []
    packages: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in [*DPKG_STATUS.read_text(errors="replace").splitlines(), ""]:
        if not line:
            if current.get("Package") and current.get("Description"):
                packages.append(current)
            current = {}
        elif not line.startswith(" ") and ":" in line:
            key, _, value = line.partition(":")
            current[key] = value.strip()
    packages.sort(key=lambda p: p["Package"])
    step = max(1, len(packages) // limit)
    return packages[::step][:limit]


def json_cases(limit: int) -> list[JsonCase]:
    packages = _packages(limit)
    sections = sorted({p.get("Section", "misc") for p in _packages(10_000)}) or ["misc"]
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 64},
            "section": {"enum": sections},
            "priority": {"enum": PRIORITIES},
            "essential": {"type": "boolean"},
            "summary": {"type": "string", "maxLength": 120},
        },
        "required": ["name", "section", "priority", "essential", "summary"],
        "additionalProperties": False,
    }
    cases = [
        JsonCase(
            f"Debian package {p['Package']}: {p['Description']}. "
            "Describe this package as a JSON object with its name, section, priority, "
            "whether it is essential, and a one-line summary.",
            schema,
        )
        for p in packages
    ]
    if cases:
        return cases
    module_schema = {
        "type": "object",
        "properties": {
            "module": {"type": "string", "maxLength": 40},
            "purpose": {"type": "string", "maxLength": 120},
            "standard_library": {"type": "boolean"},
        },
        "required": ["module", "purpose", "standard_library"],
        "additionalProperties": False,
    }
    return [
        JsonCase(f"Describe the Python module {name} as JSON.", module_schema)
        for name in sorted(sys.stdlib_module_names)[:: max(1, 300 // limit)][:limit]
    ]


_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _tool(module: str, name: str, function: Any) -> dict[str, Any] | None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    properties: dict[str, Any] = {}
    required = []
    for param in signature.parameters.values():
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            return None
        kind = _TYPES.get(type(param.default), "string")
        properties[param.name] = {"type": kind, **({"maxLength": 80} if kind == "string" else {})}
        if param.default is param.empty:
            required.append(param.name)
    if not properties or len(properties) > 4:
        return None
    doc = (inspect.getdoc(function) or name).splitlines()[0][:120]
    return {
        "type": "function",
        "function": {
            "name": f"{module}_{name}",
            "description": doc,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


def tool_cases(limit: int) -> list[ToolCase]:
    import importlib

    by_module = []
    for module_name in TOOL_MODULES:
        module = importlib.import_module(module_name)
        found = []
        for name, value in sorted(vars(module).items()):
            if name.startswith("_") or not inspect.isfunction(value):
                continue
            tool = _tool(module_name, name, value)
            if tool is not None:
                found.append(tool)
        by_module.append(found)
    tools = []  # the modules in turn, so no one module fills the set
    for i in range(max(len(found) for found in by_module)):
        tools += [found[i] for found in by_module if i < len(found)]
    cases = []
    for i, tool in enumerate(tools[:limit]):
        others = [tools[(i + 7) % len(tools)], tools[(i + 13) % len(tools)]]
        function = tool["function"]
        prompt = f"Use the right tool to do this: {function['description']}"
        cases.append(ToolCase(prompt, [tool, *others], function["name"]))
    return cases


@dataclass
class Tally:
    requests: int = 0
    valid_json: int = 0
    schema_valid: int = 0
    cut: int = 0  # finish_reason "length"
    right: int = 0  # tool calls: the first call is the tool the prompt describes
    tokens: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def summary(self, tools: bool = False) -> dict[str, Any]:
        n = max(self.requests, 1)
        out = {
            "requests": self.requests,
            "valid_json_rate": rounded(self.valid_json / n, 3),
            "schema_valid_rate": rounded(self.schema_valid / n, 3),
            "length_cut": self.cut,
            "tokens_per_second": rounded(self.tokens / self.seconds, 2) if self.seconds else 0.0,
            "examples_of_failures": self.failures[:3],
        }
        if tools:  # valid_json: a call came back; schema_valid: all calls fit their tools
            out["right_tool_rate"] = rounded(self.right / n, 3)
        return out


def _post(client: httpx.Client, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    response = client.post("/v1/chat/completions", json=body)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return response.json(), elapsed


def _stream(client: httpx.Client, body: dict[str, Any]) -> tuple[str, str, int, float]:
    """Text, finish reason, completion tokens, and seconds from the first token to the end:
    generation speed without the prompt's evaluation, which weighs more on short answers."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    text, finish, tokens = [], "", 0
    first = end = 0.0
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk["choices"]:
                if choice["delta"].get("content"):
                    first = first or time.perf_counter()
                    text.append(choice["delta"]["content"])
                finish = choice.get("finish_reason") or finish
        end = time.perf_counter()
    return "".join(text), finish, tokens, (end - first) if first else 0.0


def run_json(client: httpx.Client, model: str, cases: list[JsonCase], constrained: bool) -> Tally:
    tally = Tally()
    for case in cases:
        instruction = f"{case.prompt}\nAnswer with JSON only, following this schema: "
        content = instruction + json.dumps(case.schema)
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": JSON_MAX_TOKENS,
            "temperature": 0,
        }
        if constrained:  # the only difference: the same prompt, with the grammar
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": case.schema, "strict": True},
            }
        text, finish, tokens, seconds = _stream(client, body)
        tally.requests += 1
        tally.tokens += max(0, tokens - 1)  # the first token's time is not counted
        tally.seconds += seconds
        tally.cut += finish == "length"
        try:
            value = json.loads(text)
        except ValueError:
            tally.failures.append(text[:80])
            continue
        tally.valid_json += 1
        try:
            jsonschema.validate(value, case.schema)
        except jsonschema.ValidationError as exc:
            tally.failures.append(exc.message[:80])
            continue
        tally.schema_valid += 1
    return tally


def run_tools(client: httpx.Client, model: str, cases: list[ToolCase]) -> Tally:
    tally = Tally()
    for case in cases:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": case.prompt}],
            "tools": case.tools,
            "tool_choice": "required",
            "max_tokens": TOOL_MAX_TOKENS,
            "temperature": 0,
        }
        answer, elapsed = _post(client, body)
        choice = answer["choices"][0]
        tally.requests += 1
        tally.tokens += answer["usage"]["completion_tokens"]
        tally.seconds += elapsed
        calls = choice["message"].get("tool_calls") or []
        if choice["finish_reason"] != "tool_calls" or not calls:
            tally.failures.append(str(choice["message"].get("content"))[:80])
            continue
        tally.valid_json += 1
        schemas = {t["function"]["name"]: t["function"]["parameters"] for t in case.tools}
        try:
            for call in calls:
                arguments = json.loads(call["function"]["arguments"])
                jsonschema.validate(arguments, schemas[call["function"]["name"]])
        except (ValueError, KeyError, jsonschema.ValidationError) as exc:
            tally.failures.append(str(exc)[:80])
            continue
        tally.schema_valid += 1  # here: every call parsed and its arguments fit
        tally.right += calls[0]["function"]["name"] == case.target
    return tally


def _stage(role: str, what: str, measure: Callable[[], Tally]) -> Tally:
    """One measurement, its result on stderr at once (a cut-short run still tells)."""
    print(f"[bench] {role}: {what}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    tally = measure()
    summary = {k: v for k, v in tally.summary().items() if k != "examples_of_failures"}
    elapsed = time.perf_counter() - started
    print(f"[bench] {role}: {what}: {summary} in {elapsed:.0f} s", file=sys.stderr, flush=True)
    return tally


@contextmanager
def gateway_stack(work: Path, roles: tuple[str, ...]) -> Iterator[str]:
    """The default models' inference servers and a gateway in front; yields its URL."""
    with ExitStack() as stack:
        deployments = []
        for role in roles:
            port = free_port()
            argv = [sys.executable, "-m", "inference", "--role", role, "--port", str(port)]
            stack.enter_context(
                running(
                    argv,
                    health_url=f"http://127.0.0.1:{port}/health",
                    timeout=600,
                    env={"P2_HOME": str(CoreSettings().home), "P2_LOG_LEVEL": "warning"},
                    log_path=work / f"inference-{role}.log",
                )
            )
            deployments.append(deployment(role, f"http://127.0.0.1:{port}/v1", role))
        path = write_config(work / "gateway.yaml", config(deployments))
        port = free_port()
        stack.enter_context(
            running(
                [sys.executable, "-m", "gateway", "--config", str(path), "--port", str(port)],
                health_url=f"http://127.0.0.1:{port}/health/ready",
                timeout=120,
                env={"P2_API_KEYS": KEY, "P2_LOG_LEVEL": "warning"},
                log_path=work / "gateway.log",
            )
        )
        yield f"http://127.0.0.1:{port}"


def run(
    *, prompts: int = 24, tool_prompts: int = 24, roles: tuple[str, ...] = ("chat", "code")
) -> dict[str, Any]:
    cases, tools = json_cases(prompts), tool_cases(tool_prompts)
    report: dict[str, Any] = {
        "json_prompts": len(cases),
        "json_source": "dpkg" if _packages(1) else "python stdlib",
        "tool_prompts": len(tools),
        "models": {},
    }
    with (
        tempfile.TemporaryDirectory(prefix="p2-bench-structured-") as tmp,
        gateway_stack(Path(tmp), roles) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=600
        ) as client,
    ):
        for role in roles:
            constrained = _stage(
                role, "json schema, constrained", partial(run_json, client, role, cases, True)
            )
            free = _stage(role, "json schema, free", partial(run_json, client, role, cases, False))
            called = _stage(role, "tool calls", partial(run_tools, client, role, tools))
            report["models"][role] = {
                "constrained": constrained.summary(),
                "free": free.summary(),
                "tools": called.summary(tools=True),
                "_tallies": (constrained, free, called),
            }
    tallies = [m.pop("_tallies") for m in report["models"].values()]
    constrained_all = [t[0] for t in tallies]
    free_all = [t[1] for t in tallies]
    tools_all = [t[2] for t in tallies]
    schema_valid = sum(t.schema_valid for t in constrained_all) / max(
        1, sum(t.requests for t in constrained_all)
    )
    parsed = sum(t.schema_valid for t in tools_all) / max(1, sum(t.requests for t in tools_all))
    speed = (sum(t.tokens for t in constrained_all) / sum(t.seconds for t in constrained_all)) / (
        sum(t.tokens for t in free_all) / sum(t.seconds for t in free_all)
    )
    report["summary"] = {
        "schema_valid": rounded(schema_valid, 3),
        "tool_calls_parsed": rounded(parsed, 3),
        "constrained_over_free_tokens_per_second": rounded(speed, 3),
    }
    print(json.dumps(report, indent=2))
    print(
        f"structured: schema-valid = {schema_valid:.2f}, tool-calls parsed = {parsed:.2f}, "
        f"constrained/free tokens/s = {speed:.2f}"
    )
    return report
