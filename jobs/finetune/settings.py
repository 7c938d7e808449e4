"""Settings of fine-tuning on a worker (``FINETUNE_*``), and the model locations it shares
with the services that serve the results (``CHAT_MODEL_PATH``, ``EMBEDDING_MODEL``, ...)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from p2.core.settings import ServiceSettings


class FinetuneSettings(ServiceSettings):
    """Env names are ``FINETUNE_<FIELD>``, plus the documented names of the served models."""

    model_config = SettingsConfigDict(env_prefix="FINETUNE_", extra="ignore")

    adapter_dir: Path | None = None  # None: $P2_HOME/adapters (where inference looks)
    # A llama.cpp tree with convert_lora_to_gguf.py; None: fetched from the sdist, cached.
    llama_cpp_dir: Path | None = None
    device: str = "auto"  # auto: cuda when torch sees one, else cpu
    threads: int = Field(default=0, ge=0)  # torch threads on CPU; 0: every core
    max_tokens: int = Field(default=1024, ge=16)  # longer chat examples are cut
    lora_rank: int = Field(default=8, ge=1, le=256)
    lora_alpha: int = Field(default=16, ge=1)
    chat_learning_rate: float = Field(default=1e-3, gt=0)  # times learning_rate_multiplier
    embedding_learning_rate: float = Field(default=5e-5, gt=0)
    checkpoint_steps: int = Field(default=0, ge=0)  # a checkpoint every N steps besides epochs
    keep_checkpoints: int = Field(default=2, ge=1)  # folders kept on disk; every row stays
    eval_max_examples: int = Field(default=200, ge=1)  # validation examples per evaluation
    mlflow_experiment: str = "p2-fine-tuning"
    mlflow_artifact_location: str | None = None  # of a new experiment; None: MLflow's default
    mlflow_tracking_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI")
    )
    # The bases, found as the services that serve the results find them.
    chat_model_path: Path | None = Field(
        default=None, validation_alias=AliasChoices("CHAT_MODEL_PATH")
    )
    code_model_path: Path | None = Field(
        default=None, validation_alias=AliasChoices("CODE_MODEL_PATH")
    )
    embedding_model: Path | None = Field(
        default=None, validation_alias=AliasChoices("EMBEDDING_MODEL")
    )
    embedding_cache_dir: Path | None = Field(
        default=None, validation_alias=AliasChoices("EMBEDDING_CACHE_DIR")
    )

    def adapters(self, home: Path) -> Path:
        return (self.adapter_dir or home / "adapters").expanduser()

    def embedding_models(self, home: Path) -> Path:
        """Where fine-tuned embedding models go: ``ft/`` under the embedding service's cache."""
        return (self.embedding_cache_dir or home / "models" / "embedding").expanduser() / "ft"

    @property
    def torch_threads(self) -> int:
        return self.threads or os.cpu_count() or 1
