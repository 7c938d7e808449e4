"""LiteLLM-format routing config (``model_list``, ``router_settings``, ...) read into typed objects.

One file serves both LiteLLM's proxy and P2's gateway. Every key is read
here or named by the audit (``gateway.config_keys``): ignored keys in one
warning at start, keys whose omission would change routing or security as a
``ConfigError`` unless ``lenient``. ``os.environ/NAME`` values are resolved
from ``environment_variables`` and then the process environment, as LiteLLM
does; each provider prefix brings its default ``api_base`` and key variable
(``gateway.providers``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.config_keys import REQUEST_DEFAULTS, SECTIONS, Audit, Treat
from gateway.providers import (
    AZURE_API_VERSION_ENV,
    AZURE_DEFAULT_API_VERSION,
    Probe,
    Provider,
    resolve,
)


class ConfigError(ValueError):
    """The config file is missing, unreadable or not a usable LiteLLM config."""


STRATEGIES = (
    "simple-shuffle",
    "least-busy",
    "latency-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",
)
# LiteLLM's exception classes, as retry_policy / allowed_fails_policy name them.
ERROR_CLASSES = (
    "BadRequestError",
    "AuthenticationError",
    "TimeoutError",
    "RateLimitError",
    "ContentPolicyViolationError",
    "InternalServerError",
    "ServiceUnavailableError",
    "BadGatewayError",
    "NotFoundError",
)
_P2_PARAMS = frozenset(
    {
        "order",
        "weight",
        "rpm",
        "tpm",
        "max_parallel_requests",
        "timeout",
        "stream_timeout",
        "ssl_verify",
        "organization",
        "extra_headers",
        "headers",
    }
)


@dataclass(frozen=True)
class DeploymentSpec:
    """One ``model_list`` entry: a model group served by one backend."""

    group: str
    model: str  # the name the backend is asked for ("*" is filled from a wildcard request)
    api_base: str  # "" for a native provider LiteLLM finds by itself
    api_key: str | None
    order: int
    index: int
    provider: str = "openai"
    native: bool = False  # no OpenAI-compatible endpoint: through LiteLLM's adapter
    azure_api_version: str | None = None  # set for Azure deployments
    weight: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_parallel_requests: int | None = None
    timeout: float | None = None
    stream_timeout: float | None = None
    probe: Probe = Probe.HEALTH
    ssl_verify: bool | str = True  # a string is a CA bundle
    headers: tuple[tuple[str, str], ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict, compare=False)
    litellm_params: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    model_id: str | None = None  # model_info.id

    @property
    def name(self) -> str:
        """A label for logs and metrics: ``host:port`` (a native provider: ``prefix/model``)."""
        if not self.api_base:
            return self.model
        base = self.api_base.split("://", 1)[-1]
        return base.split("/", 1)[0]

    @property
    def deployment_id(self) -> str:
        """Stable across restarts and instances: ``model_info.id``, else api_base + model."""
        if self.model_id:
            return self.model_id
        digest = hashlib.sha256(f"{self.api_base}\n{self.model}".encode()).hexdigest()
        return digest[:16]

    @property
    def wildcard(self) -> bool:
        return "*" in self.group


@dataclass(frozen=True)
class RouterSettings:
    num_retries: int = 0
    timeout: float = 600.0
    allowed_fails: int = 3
    cooldown_time: float = 5.0
    routing_strategy: str = "simple-shuffle"
    stream_timeout: float | None = None
    retry_after: float = 0.0
    disable_cooldowns: bool = False
    lowest_latency_buffer: float = 0.0
    retry_policy: Mapping[str, int] = field(default_factory=dict)
    model_group_retry_policy: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    allowed_fails_policy: Mapping[str, int] = field(default_factory=dict)
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    context_window_fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    content_policy_fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    default_fallbacks: tuple[str, ...] = ()
    max_fallbacks: int = 5
    default_max_parallel_requests: int | None = None
    model_group_alias: Mapping[str, tuple[str, bool]] = field(default_factory=dict)
    redis_url: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GatewayConfig:
    deployments: tuple[DeploymentSpec, ...]
    router: RouterSettings = field(default_factory=RouterSettings)
    master_key: str | None = field(default=None, repr=False)  # general_settings: an admin key
    audit: Audit = field(default_factory=Audit, compare=False, repr=False)

    def groups(self) -> dict[str, list[DeploymentSpec]]:
        """Deployments per model group, by ascending ``order`` (then file order)."""
        groups: dict[str, list[DeploymentSpec]] = {}
        for spec in self.deployments:
            groups.setdefault(spec.group, []).append(spec)
        for specs in groups.values():
            specs.sort(key=lambda s: (s.order, s.index))
        return groups

    @property
    def native(self) -> bool:
        """Whether any deployment needs LiteLLM's adapters."""
        return any(d.native for d in self.deployments)


class _Env:
    """``os.environ/NAME``: the config's ``environment_variables`` first, then the process's."""

    def __init__(self, overlay: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        self.values = {**environ, **{str(k): str(v) for k, v in overlay.items()}}

    def get(self, *names: str) -> str | None:
        for name in names:
            value = self.values.get(name)
            if value:
                return value
        return None

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("os.environ/"):
            return self.values.get(value.removeprefix("os.environ/"))
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value


def _mapping(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a mapping")
    return value


def _number(value: Any, where: str, kind: type[int] | type[float] = float) -> Any:
    if value is None:
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a number, not {value!r}") from None
    if number < 0:
        raise ConfigError(f"{where} must not be negative")
    return number


def _ssl_verify(value: Any, where: str) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, str) and value:
        if not Path(value).expanduser().is_file():
            raise ConfigError(f"{where}: CA bundle {value} does not exist")
        return str(Path(value).expanduser())
    raise ConfigError(f"{where} must be true, false or a CA bundle path")


def _headers(params: Mapping[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    if params.get("organization"):
        headers.append(("OpenAI-Organization", str(params["organization"])))
    for key in ("extra_headers", "headers"):
        extra = params.get(key) or {}
        if not isinstance(extra, dict):
            raise ConfigError(f"{where}.{key} must be a mapping")
        headers.extend((str(k), str(v)) for k, v in extra.items())
    for name, value in headers:
        if "\r" in name + value or "\n" in name + value or ":" in name:
            raise ConfigError(f"{where}: header {name!r} is not a valid header")
    return tuple(headers)


def _api_base(
    provider: Provider, params: Mapping[str, Any], env: _Env, where: str
) -> tuple[str, str]:
    """The deployment's api_base, and where it came from: ``config`` (its api_base), ``env``
    (the provider's base variable) or ``public`` (the provider's public endpoint)."""
    explicit = params.get("api_base")
    if explicit:
        base, source = str(explicit), "config"
    else:
        from_env = env.get(*provider.base_env)
        if from_env:
            base, source = from_env, "env"
        elif provider.base:
            base, source = provider.base, "public"
        else:
            raise ConfigError(f"{where} needs litellm_params.api_base ({provider.name})")
    base = base.rstrip("/")
    if provider.suffix and not base.endswith(provider.suffix):
        base += provider.suffix
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: api_base must be an http:// or https:// URL, not {base!r}")
    return base, source


def _deployment(
    entry: Any,
    index: int,
    env: _Env,
    router: RouterSettings,
    defaults: Mapping[str, Any],
    ssl_default: bool | str,
    audit: Audit,
) -> DeploymentSpec:
    where = f"model_list[{index}]"
    if not isinstance(entry, dict) or "model_name" not in entry:
        raise ConfigError(f"{where} needs a model_name")
    raw = entry.get("litellm_params")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} needs litellm_params")
    audit.section("model_list[]", entry, where)
    params: dict[str, Any] = env.resolve({**defaults, **raw})
    model = str(params.get("model") or "")
    if not model:
        raise ConfigError(f"{where} needs litellm_params.model")
    resolved = resolve(model, params.get("custom_llm_provider"), bool(params.get("api_base")))
    info = entry.get("model_info") or {}
    if not isinstance(info, dict):
        raise ConfigError(f"{where}.model_info must be a mapping")
    audit.section("model_info", info, f"{where}.model_info")
    known = SECTIONS["litellm_params"]
    native = resolved.provider is None
    if not native:  # unknown params would be LiteLLM provider options: not sent here
        audit.section("litellm_params", params, f"{where}.litellm_params")
    else:
        for name in params:
            if name in known and known[name].treat is Treat.REFUSED:
                audit.note(f"{where}.litellm_params.{name}", known[name])
    key = params.get("api_key")
    api_key = str(key) if key not in (None, "", "none") else None
    azure_version = None
    api_base = ""
    probe = Probe.PASSIVE
    provider = resolved.provider
    if provider is not None:
        api_base, source = _api_base(provider, params, env, where)
        # The provider's key variable, as LiteLLM reads it; but an OpenAI key is not sent to
        # a server the config names itself (a local one, usually).
        local = provider.local and source != "public"
        if api_key is None and not (source == "config" and local and provider.base is not None):
            api_key = env.get(*provider.key_env)
        if provider.azure:
            azure_version = (
                str(params.get("api_version") or env.get(AZURE_API_VERSION_ENV) or "")
                or AZURE_DEFAULT_API_VERSION
            )
        probe = Probe.HEALTH if local else provider.probe
    elif params.get("api_base"):
        api_base = str(params["api_base"]).rstrip("/")
    if info.get("p2_probe") is not None:
        try:
            probe = Probe(str(info["p2_probe"]))
        except ValueError:
            raise ConfigError(
                f"{where}.model_info.p2_probe must be health, models or passive"
            ) from None
        if native and probe is not Probe.PASSIVE:
            raise ConfigError(f"{where}: a {resolved.prefix} deployment can only be passive")
    weight = _number(params.get("weight"), f"{where}.weight")
    if weight is not None and weight <= 0:
        raise ConfigError(f"{where}.weight must be positive")
    max_parallel = params.get("max_parallel_requests", router.default_max_parallel_requests)
    return DeploymentSpec(
        group=str(entry["model_name"]),
        model=resolved.model,
        api_base=api_base,
        api_key=api_key,
        order=int(_number(params.get("order", 1), f"{where}.order", int)),
        index=index,
        provider=resolved.prefix or "openai",
        native=native,
        azure_api_version=azure_version,
        weight=weight,
        rpm=_number(params.get("rpm", entry.get("rpm")), f"{where}.rpm", int),
        tpm=_number(params.get("tpm", entry.get("tpm")), f"{where}.tpm", int),
        max_parallel_requests=_number(max_parallel, f"{where}.max_parallel_requests", int),
        timeout=_number(params.get("timeout"), f"{where}.timeout"),
        stream_timeout=_number(
            params.get("stream_timeout", router.stream_timeout), f"{where}.stream_timeout"
        ),
        probe=probe,
        ssl_verify=_ssl_verify(params.get("ssl_verify", ssl_default), f"{where}.ssl_verify"),
        headers=_headers(params, where),
        defaults={k: v for k, v in params.items() if k in REQUEST_DEFAULTS},
        litellm_params={k: v for k, v in params.items() if k not in _P2_PARAMS} if native else {},
        model_id=str(info["id"]) if info.get("id") else None,
    )


def _fallbacks(value: Any, where: str) -> dict[str, tuple[str, ...]]:
    """LiteLLM's ``[{"group": ["other", ...]}, ...]``."""
    if value in (None, []):
        return {}
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list like [{{group: [fallback, ...]}}]")
    out: dict[str, tuple[str, ...]] = {}
    for item in value:
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be a list like [{{group: [fallback, ...]}}]")
        for group, targets in item.items():
            if isinstance(targets, str):
                targets = [targets]
            if not isinstance(targets, list):
                raise ConfigError(f"{where}.{group} must be a list of model groups")
            out[str(group)] = tuple(str(t) for t in targets)
    return out


def _policy(value: Any, where: str, suffix: str) -> dict[str, int]:
    """``{RateLimitErrorRetries: 3}`` -> ``{RateLimitError: 3}``; unknown classes are errors."""
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping")
    out: dict[str, int] = {}
    for name, count in value.items():
        if count is None:
            continue
        base = str(name).removesuffix(suffix)
        if base == "Default" and suffix == "Retries":
            out[base] = int(_number(count, f"{where}.{name}", int))
            continue
        if base not in ERROR_CLASSES or not str(name).endswith(suffix):
            raise ConfigError(f"{where}: unknown key {name} (LiteLLM's are <ErrorClass>{suffix})")
        out[base] = int(_number(count, f"{where}.{name}", int))
    return out


def _aliases(value: Any) -> dict[str, tuple[str, bool]]:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise ConfigError("router_settings.model_group_alias must be a mapping")
    out: dict[str, tuple[str, bool]] = {}
    for alias, target in value.items():
        if isinstance(target, dict):
            if "model" not in target:
                raise ConfigError(f"model_group_alias.{alias} needs a model")
            out[str(alias)] = (str(target["model"]), bool(target.get("hidden", False)))
        else:
            out[str(alias)] = (str(target), False)
    return out


def _redis_url(router: Mapping[str, Any], env: _Env) -> str | None:
    if router.get("redis_url"):
        return str(env.resolve(router["redis_url"]))
    host = env.resolve(router.get("redis_host"))
    if not host:
        return None
    password = env.resolve(router.get("redis_password"))
    auth = f":{password}@" if password else ""
    return f"redis://{auth}{host}:{router.get('redis_port') or 6379}/{router.get('redis_db') or 0}"


def _router(raw: Mapping[str, Any], module: Mapping[str, Any], env: _Env) -> RouterSettings:
    """``router_settings``, with ``litellm_settings`` as the fallback for the keys both have."""

    def pick(key: str, module_key: str | None = None) -> Any:
        if key in raw:
            return raw[key]
        return module.get(module_key or key)

    defaults = RouterSettings()
    strategy = str(raw.get("routing_strategy") or defaults.routing_strategy)
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"router_settings.routing_strategy {strategy!r} is not supported "
            f"(P2 has {', '.join(STRATEGIES)})"
        )
    args = raw.get("routing_strategy_args") or {}
    if not isinstance(args, dict):
        raise ConfigError("router_settings.routing_strategy_args must be a mapping")
    group_policies = raw.get("model_group_retry_policy") or {}
    if not isinstance(group_policies, dict):
        raise ConfigError("router_settings.model_group_retry_policy must be a mapping")
    default_fallbacks = pick("default_fallbacks") or ()
    if isinstance(default_fallbacks, str):
        default_fallbacks = (default_fallbacks,)
    timeout = pick("timeout", "request_timeout")
    return RouterSettings(
        num_retries=int(_number(pick("num_retries"), "num_retries", int) or 0),
        timeout=float(_number(timeout, "router_settings.timeout") or defaults.timeout),
        allowed_fails=int(
            _number(raw.get("allowed_fails", defaults.allowed_fails), "allowed_fails", int)
        ),
        cooldown_time=float(
            _number(raw.get("cooldown_time", defaults.cooldown_time), "cooldown_time")
        ),
        routing_strategy=strategy,
        stream_timeout=_number(raw.get("stream_timeout"), "router_settings.stream_timeout"),
        retry_after=float(_number(raw.get("retry_after"), "retry_after") or 0),
        disable_cooldowns=bool(raw.get("disable_cooldowns", False)),
        lowest_latency_buffer=float(
            _number(args.get("lowest_latency_buffer"), "lowest_latency_buffer") or 0
        ),
        retry_policy=_policy(raw.get("retry_policy"), "retry_policy", "Retries"),
        model_group_retry_policy={
            str(group): _policy(policy, f"model_group_retry_policy.{group}", "Retries")
            for group, policy in group_policies.items()
        },
        allowed_fails_policy=_policy(
            raw.get("allowed_fails_policy"), "allowed_fails_policy", "AllowedFails"
        ),
        fallbacks=_fallbacks(pick("fallbacks"), "fallbacks"),
        context_window_fallbacks=_fallbacks(
            pick("context_window_fallbacks"), "context_window_fallbacks"
        ),
        content_policy_fallbacks=_fallbacks(
            pick("content_policy_fallbacks"), "content_policy_fallbacks"
        ),
        default_fallbacks=tuple(str(g) for g in default_fallbacks),
        max_fallbacks=int(_number(raw.get("max_fallbacks", 5), "max_fallbacks", int)),
        default_max_parallel_requests=_number(
            raw.get("default_max_parallel_requests"), "default_max_parallel_requests", int
        ),
        model_group_alias=_aliases(raw.get("model_group_alias")),
        redis_url=_redis_url(raw, env),
    )


def _check_references(config: GatewayConfig) -> None:
    """Fallbacks and aliases must name groups the config has."""
    groups = {d.group for d in config.deployments}
    router = config.router
    named: list[tuple[str, str]] = []
    for kind in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
        for source, targets in getattr(router, kind).items():
            named.extend((f"{kind}.{source}", t) for t in targets)
    named.extend(("default_fallbacks", g) for g in router.default_fallbacks)
    named.extend((f"model_group_alias.{a}", g) for a, (g, _) in router.model_group_alias.items())
    missing = [f"{where} -> {group}" for where, group in named if group not in groups]
    if missing:
        raise ConfigError("these name no model group of model_list: " + ", ".join(missing))


def parse(
    data: Any, *, lenient: bool = False, environ: Mapping[str, str] | None = None
) -> GatewayConfig:
    """A config from its YAML data; refused keys raise unless ``lenient``."""
    if not isinstance(data, dict) or not isinstance(data.get("model_list"), list):
        raise ConfigError("the config has no model_list")
    audit = Audit()
    audit.section("(top level)", data, "config")
    env = _Env(_mapping(data, "environment_variables"), os.environ if environ is None else environ)
    raw_router = _mapping(data, "router_settings")
    module = _mapping(data, "litellm_settings")
    general = _mapping(data, "general_settings")
    audit.section("router_settings", raw_router)
    audit.section("litellm_settings", module)
    audit.section("general_settings", general)
    try:
        router = _router(raw_router, module, env)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"bad router_settings: {exc}") from exc
    defaults = raw_router.get("default_litellm_params") or {}
    if not isinstance(defaults, dict):
        raise ConfigError("router_settings.default_litellm_params must be a mapping")
    ssl_default = _ssl_verify(module.get("ssl_verify", True), "litellm_settings.ssl_verify")
    deployments = tuple(
        _deployment(e, i, env, router, defaults, ssl_default, audit)
        for i, e in enumerate(data["model_list"])
    )
    if not deployments:
        raise ConfigError("model_list is empty")
    master_key = env.resolve(general.get("master_key"))
    config = GatewayConfig(deployments, router, str(master_key) if master_key else None, audit)
    _check_references(config)
    if audit.refused and not lenient:
        raise ConfigError(
            "config keys P2 does not honour and that change routing or security: "
            + "; ".join(audit.refused)
            + ". Remove them, or set P2_LENIENT_CONFIG=1 to run without them."
        )
    return config


def load(path: Path, *, lenient: bool = False) -> GatewayConfig:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    return parse(data, lenient=lenient)
