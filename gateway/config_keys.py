"""What P2 does with every LiteLLM config key: the table behind the start-up audit and the docs.

A key P2 honours is read by ``gateway.config``. Any other key is named in one
warning at start (``audit``), so a LiteLLM user never finds a setting
silently dropped; a key whose omission would change where requests go or who
may make them is an error unless ``P2_LENIENT_CONFIG=1``. ``docs/gateway.md``
shows this table (a test holds the two together).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class Treat(enum.StrEnum):
    HONOURED = "honoured"
    PARTLY = "honoured, differently"  # the note says how
    IGNORED = "ignored, named in the start-up warning"
    REFUSED = "error unless P2_LENIENT_CONFIG=1"


@dataclass(frozen=True)
class Key:
    treat: Treat
    note: str


H, P, IGN, R = Treat.HONOURED, Treat.PARTLY, Treat.IGNORED, Treat.REFUSED

# OpenAI request parameters a deployment may set as defaults (LiteLLM merges them into the call).
REQUEST_DEFAULTS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "response_format",
        "tools",
        "tool_choice",
        "reasoning_effort",
        "user",
        "n",
    }
)

_DEPLOYMENT = {
    "model_name": Key(H, "the model group a client asks for; `*` and `prefix/*` are wildcards"),
    "litellm_params": Key(H, "below"),
    "model_info": Key(P, "`id` names the deployment, `p2_probe` sets its probe; the rest below"),
    "tpm": Key(H, "as `litellm_params.tpm`"),
    "rpm": Key(H, "as `litellm_params.rpm`"),
}

_PARAMS = {
    "model": Key(H, "`provider/name`: the provider picks base, key env and wire format"),
    "api_base": Key(H, "http or https; default: the provider's (see Providers)"),
    "api_key": Key(H, "default: the provider's key variable; `os.environ/NAME` works"),
    "api_version": Key(H, "Azure: the `api-version` query (default `AZURE_API_VERSION`)"),
    "custom_llm_provider": Key(H, "overrides the prefix of `model`"),
    "order": Key(H, "lower first; failover moves down the orders (no pre-call checks needed)"),
    "weight": Key(H, "`simple-shuffle` share within one order"),
    "rpm": Key(H, "requests per minute; a deployment at its limit is skipped"),
    "tpm": Key(H, "tokens per minute (from answers' usage); at its limit it is skipped"),
    "max_parallel_requests": Key(
        P, "requests in flight; a deployment at its limit is skipped (LiteLLM queues)"
    ),
    "timeout": Key(H, "seconds for one attempt on this deployment"),
    "stream_timeout": Key(H, "seconds to a streamed answer's head and between its chunks"),
    "ssl_verify": Key(H, "false, true, or a CA bundle path"),
    "organization": Key(H, "sent as `OpenAI-Organization`"),
    "extra_headers": Key(H, "sent with every request"),
    "headers": Key(H, "sent with every request"),
    "max_retries": Key(IGN, "P2's failover loop is the only retry loop"),
    "drop_params": Key(IGN, "P2 forwards the client's parameters as they are"),
    "tags": Key(IGN, "tag routing is not supported"),
    "region_name": Key(IGN, "no region-based routing"),
    "input_cost_per_token": Key(IGN, "no cost tracking"),
    "output_cost_per_token": Key(IGN, "no cost tracking"),
    "mock_response": Key(IGN, "not supported"),
    "use_in_pass_through": Key(IGN, "not supported"),
    "litellm_credential_name": Key(R, "credentials from `credential_list` are not read"),
    **{
        name: Key(H, "a default for requests that do not set it")
        for name in sorted(REQUEST_DEFAULTS)
    },
}

_MODEL_INFO = {
    "id": Key(H, "the deployment's id (default: derived from api_base and model)"),
    "p2_probe": Key(H, "P2's own: `health`, `models` or `passive` (see Probes)"),
}

_ROUTER = {
    "routing_strategy": Key(
        H,
        "`simple-shuffle`, `least-busy`, `latency-based-routing`, `usage-based-routing(-v2)` "
        "within one order; others are refused",
    ),
    "routing_strategy_args": Key(P, "`lowest_latency_buffer` only"),
    "num_retries": Key(H, "extra passes over a group after every deployment failed"),
    "retry_policy": Key(H, "retries per error class (table below)"),
    "model_group_retry_policy": Key(H, "`retry_policy` per group"),
    "retry_after": Key(H, "seconds before a retry pass at least"),
    "timeout": Key(H, "seconds for a whole request (`LLM_REQUEST_TIMEOUT` overrides)"),
    "stream_timeout": Key(H, "default of every deployment's `stream_timeout`"),
    "allowed_fails": Key(H, "failures in one minute before a deployment cools down"),
    "allowed_fails_policy": Key(H, "`allowed_fails` per error class"),
    "cooldown_time": Key(H, "seconds a deployment stays out after that"),
    "disable_cooldowns": Key(H, "no cooldowns"),
    "fallbacks": Key(H, "other groups after a group failed (not after a 400)"),
    "context_window_fallbacks": Key(H, "after `context_length_exceeded`"),
    "content_policy_fallbacks": Key(H, "after a content-policy refusal"),
    "default_fallbacks": Key(H, "for groups without `fallbacks`"),
    "max_fallbacks": Key(H, "fallback groups tried at most"),
    "model_group_alias": Key(H, "`alias: group` or `{model: group, hidden: true}`"),
    "default_max_parallel_requests": Key(H, "every deployment's `max_parallel_requests`"),
    "default_litellm_params": Key(H, "merged under every deployment's `litellm_params`"),
    "enable_pre_call_checks": Key(
        P, "`order` is always honoured; no context-window pre-check (the backend's 400 is used)"
    ),
    "enable_mid_stream_fallback_continuation": Key(P, "always on, for text streams"),
    "redis_host": Key(H, "shared cooldowns (`REDIS_URL` wins)"),
    "redis_port": Key(H, "shared cooldowns"),
    "redis_password": Key(H, "shared cooldowns"),
    "redis_url": Key(H, "shared cooldowns (`REDIS_URL` wins)"),
    "redis_db": Key(H, "shared cooldowns"),
    "optional_pre_call_checks": Key(R, "deployment filters P2 does not apply"),
    "routing_groups": Key(R, "one strategy for all groups"),
    "enable_tag_filtering": Key(R, "no tag routing"),
    "tag_filtering_match_any": Key(R, "no tag routing"),
    "tag_routing_prefix": Key(R, "no tag routing"),
    "provider_budget_config": Key(R, "no budgets"),
    "model_group_affinity_config": Key(R, "no session affinity"),
    "deployment_affinity_ttl_seconds": Key(R, "no session affinity"),
    "session_affinity_repin_on_failover": Key(R, "no session affinity"),
    "enable_weighted_failover": Key(R, "failover follows `order`"),
    "fallback_access_check": Key(R, "no per-key model access"),
    "fallback_budget_check": Key(R, "no budgets"),
    "guardrail_list": Key(R, "no guardrails"),
    "enable_health_check_routing": Key(IGN, "P2 always routes by its own probes"),
    "health_check_ignore_transient_errors": Key(IGN, "P2's probes"),
    "health_check_staleness_threshold": Key(IGN, "P2's probes"),
    "background_health_check_model_groups": Key(IGN, "P2 probes every backend"),
    "fallback_on_unsupported_params": Key(IGN, "parameters are forwarded as they are"),
    "cache_responses": Key(IGN, "no response cache"),
    "cache_kwargs": Key(IGN, "no response cache"),
    "caching_groups": Key(IGN, "no response cache"),
    "client_ttl": Key(IGN, "P2 keeps its connections"),
    "polling_interval": Key(IGN, "not used"),
    "set_verbose": Key(IGN, "`P2_LOG_LEVEL`"),
    "debug_level": Key(IGN, "`P2_LOG_LEVEL`"),
    "alerting_config": Key(IGN, "no alerting"),
    "default_priority": Key(IGN, "no priority queue"),
    "auto_router_capability_limit": Key(IGN, "no auto router"),
    "assistants_config": Key(IGN, "not served"),
    "search_tools": Key(IGN, "not served"),
    "plugins": Key(IGN, "not loaded"),
    "router_general_settings": Key(IGN, "not read"),
}

_LITELLM = {
    "num_retries": Key(H, "as `router_settings.num_retries` (which wins)"),
    "request_timeout": Key(H, "as `router_settings.timeout` (which wins)"),
    "fallbacks": Key(H, "as in `router_settings` (which wins)"),
    "context_window_fallbacks": Key(H, "as in `router_settings` (which wins)"),
    "content_policy_fallbacks": Key(H, "as in `router_settings` (which wins)"),
    "default_fallbacks": Key(H, "as in `router_settings` (which wins)"),
    "ssl_verify": Key(H, "every deployment's default `ssl_verify`"),
    "drop_params": Key(IGN, "P2 forwards the client's parameters as they are"),
    "modify_params": Key(IGN, "requests are not rewritten"),
    "set_verbose": Key(IGN, "`P2_LOG_LEVEL`"),
    "json_logs": Key(IGN, "P2's log format"),
    "success_callback": Key(IGN, "no logging integrations"),
    "failure_callback": Key(IGN, "no logging integrations"),
    "service_callback": Key(IGN, "no logging integrations"),
    "turn_off_message_logging": Key(IGN, "P2 never logs messages"),
    "redact_user_api_key_info": Key(IGN, "P2 never logs keys"),
    "cache": Key(IGN, "no response cache"),
    "cache_params": Key(IGN, "no response cache"),
    "callbacks": Key(R, "hooks that may check or change requests are not run"),
    "guardrails": Key(R, "no guardrails"),
    "max_budget": Key(R, "no budgets"),
    "budget_duration": Key(R, "no budgets"),
    "default_team_settings": Key(R, "no teams"),
    "key_generation_settings": Key(R, "no virtual keys"),
    "default_key_generate_params": Key(R, "no virtual keys"),
    "upperbound_key_generate_params": Key(R, "no virtual keys"),
}

_GENERAL = {
    "master_key": Key(H, "an admin key"),
    "database_url": Key(R, "no virtual keys, budgets or per-key limits: P2's keys only"),
    "store_model_in_db": Key(R, "models come from this file only"),
    "allowed_routes": Key(R, "P2's route scopes (docs: Keys)"),
    "admin_only_routes": Key(R, "P2's route scopes"),
    "public_routes": Key(R, "`GATEWAY_OPEN_PATHS`"),
    "allowed_ips": Key(R, "no IP allow-list"),
    "enable_jwt_auth": Key(R, "bearer keys only"),
    "litellm_jwtauth": Key(R, "bearer keys only"),
    "custom_auth": Key(R, "bearer keys only"),
    "enforce_user_param": Key(R, "not enforced"),
    "max_parallel_requests": Key(R, "`P2_MAX_CONNECTIONS`"),
    "global_max_parallel_requests": Key(R, "`P2_MAX_CONNECTIONS`"),
    "max_request_size_mb": Key(R, "`GATEWAY_MAX_BODY_BYTES`"),
    "max_response_size_mb": Key(R, "not limited"),
    "pass_through_endpoints": Key(R, "P2's own pass-through routes only"),
    "background_health_checks": Key(IGN, "P2 always probes (`GATEWAY_PROBE_INTERVAL`)"),
    "health_check_interval": Key(IGN, "`GATEWAY_PROBE_INTERVAL`"),
    "health_check_details": Key(IGN, "admins see details"),
    "alerting": Key(IGN, "no alerting"),
    "alerting_threshold": Key(IGN, "no alerting"),
    "disable_spend_logs": Key(IGN, "no spend logs"),
    "proxy_batch_write_at": Key(IGN, "no database"),
}

_TOP = {
    "model_list": Key(H, "the deployments"),
    "router_settings": Key(H, "above"),
    "litellm_settings": Key(P, "the keys above"),
    "general_settings": Key(P, "`master_key` only"),
    "environment_variables": Key(H, "read before the process environment"),
    "include": Key(R, "one file only"),
    "credential_list": Key(R, "keys come from `api_key` or the environment"),
    "guardrails": Key(R, "no guardrails"),
    "mcp_servers": Key(IGN, "not served"),
    "finetune_settings": Key(IGN, "fine-tuning is P2's job service"),
    "files_settings": Key(IGN, "files are P2's job service"),
    "vector_store_registry": Key(IGN, "RAG is P2's own"),
}

SECTIONS: Mapping[str, Mapping[str, Key]] = {
    "(top level)": _TOP,
    "model_list[]": _DEPLOYMENT,
    "litellm_params": _PARAMS,
    "model_info": _MODEL_INFO,
    "router_settings": _ROUTER,
    "litellm_settings": _LITELLM,
    "general_settings": _GENERAL,
}
UNKNOWN = Key(IGN, "not a key P2 knows")


@dataclass
class Audit:
    """What a config asks for that P2 does not do: ``ignored`` warns, ``refused`` stops."""

    ignored: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def note(self, where: str, key: Key) -> None:
        if key.treat is Treat.REFUSED:
            self.refused.append(f"{where} ({key.note})")
        elif key.treat is Treat.IGNORED:
            self.ignored.append(where)

    def section(self, name: str, values: Mapping[str, Any], where: str | None = None) -> None:
        """Note every key of ``values`` (config section ``name``) P2 does not honour."""
        table = SECTIONS[name]
        for key in values:
            self.note(f"{where or name}.{key}", table.get(key, UNKNOWN))

    def warning(self) -> str | None:
        """The one start-up warning, or None when every key is honoured."""
        names = self.ignored + [f"{r} [P2_LENIENT_CONFIG]" for r in self.refused]
        if not names:
            return None
        return "config keys P2 does not honour (ignored): " + ", ".join(names)


def table_rows() -> Iterable[tuple[str, str, str, str]]:
    """(section, key, what P2 does, note) for every key of the table."""
    for section, keys in SECTIONS.items():
        for name, key in keys.items():
            yield section, name, key.treat.value, key.note
