"""``p2 check-config FILE``: what the gateway will do with a LiteLLM config, group by group.

A LiteLLM user's config should hold no surprise: this prints, for every model
group, the deployments in the order they are tried (provider, address, model
asked for, probe, weight and limits), the group's retries and fallbacks,
then the aliases, and finally every key P2 ignores and every key it refuses
(which stops the gateway unless ``P2_LENIENT_CONFIG=1``). Keys are never shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from gateway.config import ConfigError, DeploymentSpec, GatewayConfig, RouterSettings, load

OK, REFUSED, INVALID = 0, 1, 2  # exit codes


def _deployment(spec: DeploymentSpec) -> str:
    where = spec.api_base
    if spec.native:
        where = "through LiteLLM" + (f" at {spec.api_base}" if spec.api_base else "")
    parts = [f"order {spec.order}: {spec.provider} {where}, model {spec.model!r}"]
    parts.append(f"probe {spec.probe.value}")
    if spec.api_key:
        parts.append("key set")
    if spec.azure_api_version:
        parts.append(f"api-version {spec.azure_api_version}")
    if spec.api_base.startswith("https:") and spec.ssl_verify is False:
        parts.append("TLS not verified")
    elif spec.api_base.startswith("https:") and isinstance(spec.ssl_verify, str):
        parts.append(f"CA {spec.ssl_verify}")
    for name in ("weight", "rpm", "tpm", "max_parallel_requests", "timeout", "stream_timeout"):
        value = getattr(spec, name)
        if value is not None:
            parts.append(f"{name} {value:g}")
    return ", ".join(parts)


def _routes(group: str, router: RouterSettings) -> Iterator[str]:
    policy = router.model_group_retry_policy.get(group) or router.retry_policy
    retries = f"{router.num_retries} extra passes"
    if policy:
        retries += " (" + ", ".join(f"{k} {v}" for k, v in sorted(policy.items())) + ")"
    yield f"  retries: {retries}"
    fallbacks = router.fallbacks.get(group, router.default_fallbacks)
    for label, groups in (
        ("fallbacks", fallbacks),
        ("context_window_fallbacks", router.context_window_fallbacks.get(group, ())),
        ("content_policy_fallbacks", router.content_policy_fallbacks.get(group, ())),
    ):
        if groups:
            yield f"  {label}: " + " -> ".join(groups[: router.max_fallbacks])


def describe(config: GatewayConfig) -> list[str]:
    """The lines ``p2 check-config`` prints for a parsed config."""
    router = config.router
    lines = [
        f"routing_strategy {router.routing_strategy} within one order; lower order first",
        f"timeout {router.timeout:g}s per request; cooldown {router.cooldown_time:g}s after "
        f"{router.allowed_fails} failed answers in a minute"
        + (" (cooldowns disabled)" if router.disable_cooldowns else ""),
        "cooldowns shared through Redis" if router.redis_url else "cooldowns per process",
    ]
    for group, specs in config.groups().items():
        kind = "wildcard group" if "*" in group else "group"
        lines.append(f"{kind} {group}:")
        lines.extend(f"  {_deployment(spec)}" for spec in specs)
        lines.extend(_routes(group, router))
    for alias, (group, hidden) in router.model_group_alias.items():
        lines.append(f"alias {alias} -> {group}" + (" (hidden from /v1/models)" if hidden else ""))
    if config.native:
        lines.append("needs the litellm extra (pip install 'p2[litellm]') for its adapters")
    audit = config.audit
    if audit.ignored:
        lines.append("ignored (named in the start-up warning): " + ", ".join(audit.ignored))
    if audit.refused:
        lines.append(
            "refused (the gateway does not start unless P2_LENIENT_CONFIG=1): "
            + "; ".join(audit.refused)
        )
    return lines


def check(path: Path, *, lenient: bool) -> tuple[int, list[str]]:
    """The exit code and lines for the config at ``path``."""
    try:
        config = load(path, lenient=True)
    except ConfigError as exc:
        return INVALID, [f"{path}: {exc}"]
    lines = [f"{path}:", *describe(config)]
    if config.audit.refused and not lenient:
        return REFUSED, lines
    return OK, lines
