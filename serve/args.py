"""The typed arguments of the Serve application (``serve run serve.app:build_app key=value``).

One pydantic model, so ``serve run``, ``serve deploy`` (``serve/config.yaml``), ``autoray serve``
and tests all build the app from the same validated values, and a typo is refused with the
field's name instead of being ignored. Secrets never travel here: ``api_keys_env`` is the NAME of
the environment variable that holds the client keys, read by each replica when it starts.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autoray.config import ModelEntry

DEFAULT_API_KEYS_ENV = "AUTORAY_API_KEYS"
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
_ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class AppArgs(BaseModel):
    """Everything a replica needs to answer; each field says what it is for."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    database_url: str | None = Field(
        default=None,
        min_length=1,
        description="Where the routing tables live; None: $AUTORAY_DATABASE_URL, else the "
        "default SQLite file.",
    )
    classifier: Literal["embedded", "llm"] = Field(
        default="embedded",
        description="'embedded': the small classifier shipped in the package (about 1 ms); "
        "'llm': a model classifies, with the embedded one as fallback.",
    )
    llm_classifier_model: ModelEntry | None = Field(
        default=None, description="The model entry the 'llm' classifier asks."
    )
    classifier_timeout_s: float = Field(
        default=2.0, gt=0, description="How long the 'llm' classifier may take before falling back."
    )
    classification_cache_size: int = Field(
        default=10_000, ge=1, description="Classifications each replica remembers (LRU)."
    )
    classification_cache_ttl_s: float = Field(
        default=600, gt=0, description="How long a remembered classification stays valid."
    )
    session_ttl_s: float = Field(
        default=1800, gt=0, description="A session forgets its sticky model after this idle time."
    )
    max_sessions: int = Field(
        default=100_000, ge=1, description="Sessions remembered at once (least recently used go)."
    )
    fallback_model: str | None = Field(
        default=None,
        min_length=1,
        description="The model autoray/auto forwards to when the decision is null; None: 503.",
    )
    num_replicas: int = Field(default=1, ge=1, description="Replicas of the ingress deployment.")
    max_ongoing_requests: int = Field(
        default=100,
        ge=1,
        description="Requests one replica handles at once (Serve's default 5 throttles bursts).",
    )
    table_check_interval_s: float = Field(
        default=2.0, gt=0, description="The periodic active-version check (the reload backstop)."
    )
    models: list[ModelEntry] = Field(
        default_factory=list,
        description="Endpoints for models the table names, overriding the run's config entries.",
    )
    sim_url: str | None = Field(
        default=None,
        description="A simulated farm for simulated models; None: $AUTORAY_SIM_URL, else the "
        "replica starts its own.",
    )
    api_keys_env: str = Field(
        default=DEFAULT_API_KEYS_ENV,
        description="NAME of the environment variable holding comma-separated client keys; "
        "when it is set, every /v1 route needs one as a bearer token.",
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES, ge=1024, description="Larger request bodies get 413."
    )

    @field_validator("api_keys_env")
    @classmethod
    def _env_var_name(cls, value: str) -> str:
        if not _ENV_VAR_NAME.match(value):
            raise ValueError(
                f"api_keys_env {value[:12]!r}... is not an environment variable name; give the "
                "NAME of the variable that holds the keys (e.g. 'AUTORAY_API_KEYS'), never a key"
            )
        return value

    @field_validator("sim_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(
                f"sim_url {value!r} is not an http(s) URL; write it like 'http://127.0.0.1:8100/v1'"
            )
        return value

    @model_validator(mode="after")
    def _llm_needs_a_model(self) -> AppArgs:
        if self.classifier == "llm" and self.llm_classifier_model is None:
            raise ValueError(
                "classifier 'llm' needs llm_classifier_model: the model entry to ask (with its "
                "provider, base_url and api_key_env); or use classifier 'embedded'"
            )
        return self
