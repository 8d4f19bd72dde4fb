"""The benchmark config: typed models for the YAML file a user writes, and its loader.

Every model forbids unknown fields, so a typo (``max_live_container``) fails loudly instead of
silently running with a default. Every failure of :func:`load_config` / :func:`parse_config`
is a :class:`~autoray.errors.ConfigError` naming the file, the field path
(``models[1].price.input_per_mtok``) and the fix or the valid choices.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from autoray.errors import ConfigError, InvalidRouteError
from autoray.results import ModelKey
from autoray.taxonomy import TASK_TYPES, validate_route

DEFAULT_SANDBOX_IMAGE = "autoray-sandbox:latest"
SKILL_DEFAULT_KEY = "default"

_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
_ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REPR_MAX = 80


class PriceConfig(BaseModel):
    """Price per million tokens, in USD; the cost of a case comes from its token usage."""

    model_config = _STRICT

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        if input_tokens < 0 or output_tokens < 0:
            raise ValueError(
                f"token counts must be >= 0, got input {input_tokens!r}, output {output_tokens!r}"
            )
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


class SandboxFaults(BaseModel):
    """TEST FAULTS for the ``fault`` sandbox backend: never for a real run.

    Engine tests and the chaos soak use them to make sandbox starts fail or hang on purpose.
    Start counts and the time switch live in files under ``state_dir``, so they survive a lane
    being recreated in a new process (the reason this is not a Python object in one process).
    """

    model_config = _STRICT

    state_dir: str = Field(min_length=1)
    fail_first: int = Field(default=0, ge=0)
    always: list[str] = Field(default_factory=list)
    hang: list[str] = Field(default_factory=list)


class SandboxConfig(BaseModel):
    """Where tool calls and graders run. ``image`` defaults to the autoray base image for docker.

    ``root`` is where the process backend keeps its per-lane directories
    (``<root>/<run>/<lane>``, default ``autoray-sandboxes`` under the system temp directory):
    fixed, so a retried lane and a cleanup at the end of a run find what an earlier (maybe
    killed) lane process left behind. ``faults`` configures the ``fault`` backend: test faults.
    """

    model_config = _STRICT

    backend: Literal["process", "docker", "fault"] = "process"
    timeout_s: float = Field(default=180, gt=0)
    memory_mb: int = Field(default=512, ge=64)
    image: str | None = Field(default=None, min_length=1)
    pids_limit: int = Field(default=256, ge=1)
    output_cap_bytes: int = Field(default=1_000_000, ge=1)
    cpu_time_s: int = Field(default=120, ge=1)
    root: str | None = Field(default=None, min_length=1)
    faults: SandboxFaults | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_docker_image(cls, data: Any) -> Any:
        """Fill the image for docker so a run's snapshot records exactly what it ran in."""
        is_docker = isinstance(data, Mapping) and data.get("backend") == "docker"
        if is_docker and data.get("image") is None:
            return {**data, "image": DEFAULT_SANDBOX_IMAGE}
        return data

    @model_validator(mode="after")
    def _faults_only_for_the_fault_backend(self) -> SandboxConfig:
        """Test faults must never ride along silently with a real backend, nor be missing."""
        if self.faults is not None and self.backend != "fault":
            raise ValueError(
                f"faults is set but backend is {self.backend!r}; faults are test faults for "
                "backend 'fault' only: remove faults, or set backend to 'fault'"
            )
        if self.faults is None and self.backend == "fault":
            raise ValueError(
                "backend 'fault' (test faults) needs faults; set faults with at least "
                "state_dir, or choose backend 'process' or 'docker'"
            )
        return self


class RunnerConfig(BaseModel):
    """Bounds of the agent loop for one case."""

    model_config = _STRICT

    max_steps: int = Field(default=12, ge=1, le=100)
    case_timeout_s: float = Field(default=300, gt=0)
    step_timeout_s: float = Field(default=60, gt=0)


_SWEEP_HEARTBEATS = 3
"""A lane is swept after this many heartbeats' worth of silence, at the least."""


class EngineConfig(BaseModel):
    """Ray tunables, as plain numbers: the actors turn them into resources and retry policy.

    A lane mostly waits on its model and its container, so its bundle asks for 0.01 CPU: the
    default budget of 100 lanes then reserves one CPU, and fits a 2-core machine. Its memory
    (150 MB) is what an idle lane process was measured to hold (about 90 MB RSS) plus headroom.
    """

    model_config = _STRICT

    lane_cpu: float = Field(default=0.01, gt=0)
    lane_memory_mb: int = Field(default=150, ge=0)
    placement_timeout_s: float = Field(default=60, gt=0)
    max_attempts: int = Field(default=6, ge=1)
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    heartbeat_s: float = Field(default=5.0, gt=0)
    sweep_after_s: float = Field(default=60, gt=0)

    @model_validator(mode="after")
    def _backoff_order(self) -> EngineConfig:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s!r}) is below backoff_base_s "
                f"({self.backoff_base_s!r}); raise backoff_max_s or lower backoff_base_s"
            )
        return self

    @model_validator(mode="after")
    def _sweep_hears_heartbeats(self) -> EngineConfig:
        """A lane beats every ``heartbeat_s``, also while a case runs; ``sweep_after_s`` is the
        silence after which it counts as lost, so it must span several beats: one late beat on
        a loaded node must not cost a retry. The case deadline plays no part in it."""
        if self.sweep_after_s < _SWEEP_HEARTBEATS * self.heartbeat_s:
            raise ValueError(
                f"sweep_after_s ({self.sweep_after_s!r}) is shorter than {_SWEEP_HEARTBEATS} "
                f"heartbeats (heartbeat_s={self.heartbeat_s!r}); raise sweep_after_s to at "
                f"least {_SWEEP_HEARTBEATS * self.heartbeat_s:g} or lower heartbeat_s"
            )
        return self


class ModelEntry(BaseModel):
    """One candidate model: identity ``(id, variant)``, provider settings and prices.

    ``skill`` (simulated models only) maps ``default``, ``taskType/*`` or a full route to the
    probability of a correct answer; the most specific key wins (``autoray.simulation``).
    """

    model_config = _STRICT

    id: str = Field(min_length=1)
    variant: str | None = None
    provider: Literal["simulated", "openai"]
    price: PriceConfig
    skill: dict[str, float] | None = None
    latency_ms: float = Field(default=0, ge=0)
    base_url: str | None = None
    api_key_env: str | None = None
    api_model: str | None = Field(default=None, min_length=1)
    context_length: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=60, gt=0)
    max_retries: int = Field(default=3, ge=0)

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(f"id {value!r} is blank; give the model a name such as 'gpt-4o'")
        return value

    @field_validator("variant")
    @classmethod
    def _empty_variant_is_none(cls, value: str | None) -> str | None:
        """'' and None would render the same lane identity, so they must be the same variant."""
        return value or None

    @field_validator("skill")
    @classmethod
    def _check_skill(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None:
            for key, prob in value.items():
                _check_skill_key(key)
                _check_skill_value(key, prob)
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url {value!r} is not an http(s) URL; "
                "write it like 'https://api.openai.com/v1'"
            )
        return value

    @field_validator("api_key_env")
    @classmethod
    def _check_api_key_env(cls, value: str | None) -> str | None:
        """Reject what looks like a key: a secret pasted into a config ends up in run snapshots."""
        if value is not None and (value.startswith("sk-") or not _ENV_VAR_NAME.match(value)):
            raise ValueError(
                "api_key_env must be the NAME of the environment variable that holds the key "
                "(e.g. 'OPENAI_API_KEY'), not the key itself; put the variable name here and "
                "export the key in that variable"
            )
        return value

    @model_validator(mode="after")
    def _check_provider_fields(self) -> ModelEntry:
        if self.provider == "simulated":
            _require_simulated_skill(self.skill)
        else:
            _require_openai_fields(self)
        return self

    @property
    def key(self) -> ModelKey:
        return ModelKey(self.id, self.variant)


class BenchConfig(BaseModel):
    """A whole benchmark: what to run, how often, on what budget, and against which models."""

    model_config = _STRICT

    name: str = Field(min_length=1)
    dataset: str = Field(default="builtin:decider", min_length=1)
    repetitions: int = Field(default=1, ge=1, le=5)
    chunk_size: int = Field(default=5, ge=1)
    max_live_containers: int = Field(default=100, ge=1)
    min_accuracy: float = Field(default=0.7, ge=0, le=1)
    switch_cost_factor: float = Field(default=3.0, ge=1)
    best_accuracy_gap: float = Field(default=0.05, ge=0, le=1)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    database_url: str | None = Field(default=None, min_length=1)
    seed: int = 0
    models: list[ModelEntry] = Field(min_length=1)

    @field_validator("models")
    @classmethod
    def _no_duplicate_models(cls, value: list[ModelEntry]) -> list[ModelEntry]:
        seen: dict[ModelKey, int] = {}
        for index, entry in enumerate(value):
            if entry.key in seen:
                raise ValueError(
                    f"duplicate model entry (id {entry.id!r}, variant {entry.variant!r}) at "
                    f"models[{seen[entry.key]}] and models[{index}]; remove one or give each "
                    "a distinct variant"
                )
            seen[entry.key] = index
        return value

    @property
    def model_keys(self) -> list[ModelKey]:
        return [entry.key for entry in self.models]


def load_config(path: str | Path) -> BenchConfig:
    """Read and validate a YAML benchmark config."""
    source = str(path)
    return parse_config(_read_yaml(Path(path), source), source)


def parse_config(data: Any, source: str) -> BenchConfig:
    """Validate already-parsed config data; ``source`` names it in error messages."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"config {source!r}: the top level must be a mapping with at least 'name' and "
            f"'models', got {type(data).__name__}"
        )
    try:
        return BenchConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_describe_errors(exc, source)) from None


def config_snapshot(cfg: BenchConfig) -> dict[str, Any]:
    """JSON-safe dump persisted with a run; ``parse_config`` reads it back unchanged."""
    return cfg.model_dump(mode="json")


def resolve_dataset_spec(spec: str, config_path: str | Path) -> str:
    """A relative dataset path in a config file means relative to that file, not to the cwd."""
    if spec.startswith("builtin:") or Path(spec).is_absolute():
        return spec
    return str((Path(config_path).parent / spec).resolve())


def _read_yaml(path: Path, source: str) -> Any:
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"config file {source!r} {what}; pass the path of a YAML config file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {source!r} cannot be read ({exc}); check it") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {source!r} is not valid YAML{_yaml_where(exc)}") from None


def _yaml_where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "syntax error"
    if mark is None:
        return f": {problem}; fix the syntax"
    return f" at line {mark.line + 1}, column {mark.column + 1}: {problem}; fix the syntax there"


def _check_skill_key(key: str) -> None:
    if key == SKILL_DEFAULT_KEY:
        return
    task, _, subtask = key.partition("/")
    if subtask == "*" and task in TASK_TYPES:
        return
    try:
        canonical: str | None = validate_route(key)
    except InvalidRouteError:
        canonical = None
    if canonical != key:
        raise ValueError(
            f"skill key {key!r} is not valid; use 'default', 'taskType/*' with a task type in "
            f"({', '.join(TASK_TYPES)}), or a full route 'taskType/subtaskType' such as "
            "'debugging/bug_fixing'"
        )


def _check_skill_value(key: str, prob: float) -> None:
    if not 0.0 <= prob <= 1.0:
        raise ValueError(
            f"skill[{key!r}] is {prob!r}, outside [0, 1]; give the probability of a correct answer"
        )


def _require_simulated_skill(skill: dict[str, float] | None) -> None:
    if not skill or SKILL_DEFAULT_KEY not in skill:
        raise ValueError(
            "a simulated model needs a 'skill' mapping with a 'default' key, e.g. "
            "skill: {default: 0.8, 'debugging/*': 0.9}"
        )


def _require_openai_fields(entry: ModelEntry) -> None:
    missing = [name for name in ("base_url", "api_key_env") if getattr(entry, name) is None]
    if missing:
        raise ValueError(
            f"an openai model needs {' and '.join(missing)}; set base_url to the endpoint "
            "(e.g. 'https://api.openai.com/v1') and api_key_env to the NAME of the variable "
            "holding the key"
        )
    if entry.skill is not None:
        raise ValueError(
            "'skill' is only for simulated models; remove it from this openai entry "
            "(its skill is what the benchmark measures)"
        )


def _describe_errors(exc: ValidationError, source: str) -> str:
    lines = [_describe_error(error) for error in exc.errors()]
    noun = "problem" if len(lines) == 1 else "problems"
    return f"invalid config {source!r} ({len(lines)} {noun}):\n" + "\n".join(
        f"  - {line}" for line in lines
    )


def _describe_error(error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    path = _format_loc(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        valid = _valid_fields_at(loc[:-1])
        return f"{path}: unknown field {loc[-1]!r}; valid fields: {', '.join(valid)}"
    if kind == "missing":
        return f"{path}: required field is missing; add {loc[-1]!r}"
    message = str(error["msg"])
    if kind == "value_error":
        return f"{path}: {message.removeprefix('Value error, ')}"
    return f"{path}: {message} (got {_short_repr(error.get('input'))})"


def _format_loc(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _REPR_MAX else text[: _REPR_MAX - 3] + "..."


def _valid_fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the config model found at ``loc``, to list them next to an unknown one."""
    current: Any = BenchConfig
    for part in loc:
        if isinstance(part, int):
            current = _element_type(current)
        elif _is_model(current) and part in current.model_fields:
            current = _strip_optional(current.model_fields[part].annotation)
        else:
            return []
    return list(current.model_fields) if _is_model(current) else []


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _element_type(tp: Any) -> Any:
    return _strip_optional(get_args(tp)[0]) if get_origin(tp) is list else None


def _strip_optional(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        options = [arg for arg in get_args(tp) if arg is not type(None)]
        return options[0] if len(options) == 1 else tp
    return tp
