"""LiteLLM's provider prefixes (``model: groq/llama-3.1-8b``): where each one's API is, its key.

A deployment's ``litellm_params.model`` starts with a provider prefix. For
every provider with an OpenAI-compatible endpoint the gateway talks to it
itself, on the fast path: this table gives the default ``api_base`` and the
environment variables LiteLLM reads for the base and the key (the same names,
so one environment serves both). Azure takes its key in an ``api-key`` header
and an ``api-version`` query parameter. Providers without an OpenAI-compatible
endpoint (Anthropic's native API, Bedrock, Vertex, ...) go through LiteLLM's
own adapters (``gateway.adapter``), when the ``litellm`` extra is installed.

The probe default says how the gateway checks a backend's health when the
config does not (``model_info.p2_probe``): a local server answers ``/health``;
Ollama and LM Studio have ``GET /v1/models`` instead; a cloud API is judged by
its answers to real requests only (``passive``: probing it every half second
would spend its rate limit).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Probe(enum.StrEnum):
    """How a backend's health is checked (``model_info.p2_probe``)."""

    HEALTH = "health"  # GET <root>/health, like llama.cpp, vLLM and P2's own services
    MODELS = "models"  # GET <api_base>/models, with the deployment's key
    PASSIVE = "passive"  # no probe: failures of real requests only


@dataclass(frozen=True)
class Provider:
    name: str
    base: str | None = None  # the public endpoint; None: api_base is required
    base_env: tuple[str, ...] = ()
    key_env: tuple[str, ...] = ()
    probe: Probe = Probe.PASSIVE  # with the default base (or with any base, for local kinds)
    local: bool = False  # a server the operator runs: an explicit api_base means /health
    suffix: str = ""  # appended to the api_base: Ollama's OpenAI API is under /v1
    azure: bool = False


_OPENAI_COMPATIBLE = (
    Provider(
        "openai",
        "https://api.openai.com/v1",
        ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
        ("OPENAI_API_KEY",),
        local=True,
    ),
    Provider("text-completion-openai", "https://api.openai.com/v1", (), ("OPENAI_API_KEY",)),
    Provider("custom_openai", None, ("OPENAI_API_BASE",), ("OPENAI_API_KEY",), local=True),
    Provider("hosted_vllm", None, ("HOSTED_VLLM_API_BASE",), ("HOSTED_VLLM_API_KEY",), local=True),
    Provider(
        "lm_studio",
        "http://localhost:1234/v1",
        ("LM_STUDIO_API_BASE",),
        ("LM_STUDIO_API_KEY",),
        Probe.MODELS,
    ),
    Provider(
        "ollama",
        "http://localhost:11434",
        ("OLLAMA_API_BASE",),
        ("OLLAMA_API_KEY",),
        Probe.MODELS,
        suffix="/v1",
    ),
    Provider(
        "ollama_chat",
        "http://localhost:11434",
        ("OLLAMA_API_BASE",),
        ("OLLAMA_API_KEY",),
        Probe.MODELS,
        suffix="/v1",
    ),
    Provider("azure", None, ("AZURE_API_BASE",), ("AZURE_API_KEY",), azure=True),
    Provider("groq", "https://api.groq.com/openai/v1", ("GROQ_API_BASE",), ("GROQ_API_KEY",)),
    Provider(
        "openrouter",
        "https://openrouter.ai/api/v1",
        ("OPENROUTER_API_BASE",),
        ("OPENROUTER_API_KEY",),
    ),
    Provider("mistral", "https://api.mistral.ai/v1", ("MISTRAL_API_BASE",), ("MISTRAL_API_KEY",)),
    Provider(
        "codestral",
        "https://codestral.mistral.ai/v1",
        ("CODESTRAL_API_BASE",),
        ("CODESTRAL_API_KEY",),
    ),
    Provider(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta/openai",
        (),
        ("GEMINI_API_KEY",),
    ),
    Provider(
        "deepseek", "https://api.deepseek.com/beta", ("DEEPSEEK_API_BASE",), ("DEEPSEEK_API_KEY",)
    ),
    Provider(
        "together_ai",
        "https://api.together.xyz/v1",
        ("TOGETHERAI_API_BASE",),
        ("TOGETHERAI_API_KEY", "TOGETHER_AI_API_KEY"),
    ),
    Provider(
        "fireworks_ai",
        "https://api.fireworks.ai/inference/v1",
        ("FIREWORKS_API_BASE",),
        ("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY"),
    ),
    Provider("xai", "https://api.x.ai/v1", ("XAI_API_BASE",), ("XAI_API_KEY",)),
    Provider(
        "cerebras", "https://api.cerebras.ai/v1", ("CEREBRAS_API_BASE",), ("CEREBRAS_API_KEY",)
    ),
    Provider(
        "perplexity",
        "https://api.perplexity.ai",
        (),
        ("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"),
    ),
    Provider(
        "deepinfra",
        "https://api.deepinfra.com/v1/openai",
        ("DEEPINFRA_API_BASE",),
        ("DEEPINFRA_API_KEY",),
    ),
    Provider(
        "nvidia_nim",
        "https://integrate.api.nvidia.com/v1",
        ("NVIDIA_NIM_API_BASE",),
        ("NVIDIA_NIM_API_KEY",),
    ),
    Provider(
        "sambanova",
        "https://api.sambanova.ai/v1",
        ("SAMBANOVA_API_BASE",),
        ("SAMBANOVA_API_KEY",),
    ),
)

PROVIDERS: Mapping[str, Provider] = {p.name: p for p in _OPENAI_COMPATIBLE}

# LiteLLM providers with an API of their own: through LiteLLM's adapters, api_base or not.
NATIVE = frozenset(
    {
        "anthropic",
        "bedrock",
        "bedrock_converse",
        "vertex_ai",
        "vertex_ai_beta",
        "cohere",
        "cohere_chat",
        "replicate",
        "huggingface",
        "sagemaker",
        "sagemaker_chat",
        "watsonx",
        "ai21",
        "cloudflare",
        "predibase",
        "databricks",
        "snowflake",
        "azure_ai",
        "oci",
        "triton",
        "clarifai",
        "aleph_alpha",
        "nlp_cloud",
    }
)

# Unprefixed models with an api_base, and unknown prefixes with one: an OpenAI-compatible server.
GENERIC = Provider("openai", None, (), (), local=True)

AZURE_API_VERSION_ENV = "AZURE_API_VERSION"
AZURE_DEFAULT_API_VERSION = "2025-02-01-preview"  # LiteLLM's default when none is set


@dataclass(frozen=True)
class Resolved:
    """Where a deployment's provider prefix leads."""

    provider: Provider | None  # None: no OpenAI-compatible endpoint (LiteLLM's adapter)
    prefix: str  # the provider prefix as written ("" when there is none)
    model: str  # the model name the backend is asked for


def resolve(model: str, custom_provider: str | None, has_api_base: bool) -> Resolved:
    """The provider of ``litellm_params.model`` (``custom_llm_provider`` wins over the prefix).

    A known OpenAI-compatible prefix is stripped; a native provider's prefix is
    kept (LiteLLM reads it); a model with no prefix, or an unknown one, is sent
    whole to an ``api_base`` (a local server named it so); an unknown prefix
    without an ``api_base`` is left to LiteLLM.
    """
    if custom_provider:
        provider = PROVIDERS.get(custom_provider)
        return Resolved(provider, custom_provider, model.removeprefix(f"{custom_provider}/"))
    prefix, slash, rest = model.partition("/")
    if slash and prefix in PROVIDERS:
        return Resolved(PROVIDERS[prefix], prefix, rest)
    if slash and prefix in NATIVE:
        return Resolved(None, prefix, model)
    if not slash or has_api_base:
        return Resolved(GENERIC, "", model)
    return Resolved(None, prefix, model)
