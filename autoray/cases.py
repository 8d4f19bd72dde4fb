"""Golden cases and the dataset loader.

Golden cases are data: one YAML file per task type (``<task_type>.yaml`` holding ``task_type``
and ``cases``) or JSONL files with one case object per line. They load into pydantic models
that forbid unknown fields, so a misspelt key fails loudly instead of silently changing what
is graded. Every loader error is a :class:`DatasetError` naming the file, the case and the
field.

Case order is canonical route order, then file order (files by name, cases as written). The
planner cuts chunks out of this order, so it must be stable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autoray.checks import Check, ProgramCheck, validate_relative_path
from autoray.errors import DatasetError
from autoray.identity import PROMPT_VERSION, dataset_identity
from autoray.taxonomy import ROUTES, TASK_TYPES, parse_route, route_index, validate_route

__all__ = [
    "AGENTIC_SYSTEM_PROMPT",
    "BUILTIN_DATASET",
    "DEFAULT_SYSTEM_PROMPT",
    "PROMPT_VERSION",
    "BashStep",
    "Dataset",
    "GoldenCase",
    "ReadFileStep",
    "Reference",
    "ToolStep",
    "WriteFileStep",
    "load_dataset",
    "system_prompt_for",
]

BUILTIN_DATASET = "builtin:decider"
_BUILTIN_PREFIX = "builtin:"
_SUFFIXES = (".yaml", ".yml", ".jsonl")
_ID_PATTERN = re.compile(r"^[a-z_]+-[a-z_]+-[a-z0-9]+(?:-[a-z0-9]+)*$")
_LANGUAGE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9+#._-]*$")
_FILE_KEYS = frozenset({"task_type", "cases"})
_TAG_VALUES = frozenset(
    {"exact", "contains_all", "regex", "json_equal", "program", "bash", "write_file", "read_file"}
)

DEFAULT_SYSTEM_PROMPT = (
    "You are an expert software engineer helping with a coding task. Answer the request "
    "directly and correctly. When the request asks for code, give the complete code in a "
    "single fenced code block. When it asks for a single value (a number, a name, a command), "
    "put that value alone on the last line of your answer."
)

AGENTIC_SYSTEM_PROMPT = (
    "You are an expert software engineer working in a sandboxed working directory that "
    "holds the files of the task. You have three tools: `bash` runs a shell command in the "
    "working directory and returns its output and exit status; `write_file` writes a file "
    "(path relative to the working directory); `read_file` returns a file's content. The "
    "sandbox has python3 (standard library only), bash, coreutils, grep, sed, find, tar, "
    "gzip and diff, and no network. Use the tools to inspect and change the files, then "
    "reply without a tool call to give your final answer. When the request asks for a single "
    "value, put that value alone on the last line of your final answer."
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BashStep(_Model):
    tool: Literal["bash"]
    command: str = Field(min_length=1)


class WriteFileStep(_Model):
    tool: Literal["write_file"]
    path: str
    content: str

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        return validate_relative_path(path)


class ReadFileStep(_Model):
    tool: Literal["read_file"]
    path: str

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        return validate_relative_path(path)


ToolStep = Annotated[BashStep | WriteFileStep | ReadFileStep, Field(discriminator="tool")]


class Reference(_Model):
    """What a correct model does: its tool calls in order, then its final answer."""

    answer: str
    steps: list[ToolStep] = Field(default_factory=list)

    @field_validator("answer")
    @classmethod
    def _not_blank(cls, answer: str) -> str:
        return _require_text(answer, "reference.answer")


class GoldenCase(_Model):
    """One benchmark case: what the model is asked, and how its answer is graded."""

    id: str
    route: str
    language: str
    difficulty: Literal["easy", "medium", "hard"]
    system: str | None = None
    prompt: str
    files: dict[str, str] = Field(default_factory=dict)
    check: Check
    reference: Reference
    wrong_answer: str

    @field_validator("id")
    @classmethod
    def _id_shape(cls, case_id: str) -> str:
        if not _ID_PATTERN.match(case_id):
            raise ValueError(
                f"id {case_id!r} must read '<task type>-<subtask>-<kebab-topic>', "
                "e.g. 'debugging-bug_fixing-pagination-off-by-one'"
            )
        return case_id

    @field_validator("route")
    @classmethod
    def _known_route(cls, route: str) -> str:
        return validate_route(route)

    @field_validator("language")
    @classmethod
    def _language_shape(cls, language: str) -> str:
        if not _LANGUAGE_PATTERN.match(language):
            raise ValueError(
                f"language {language!r} must be a lower-case name such as 'python' or 'go'"
            )
        return language

    @field_validator("files")
    @classmethod
    def _relative_files(cls, files: dict[str, str]) -> dict[str, str]:
        for path in files:
            validate_relative_path(path)
        return files

    @field_validator("prompt", "wrong_answer")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        return _require_text(text, "this field")

    @model_validator(mode="after")
    def _consistent(self) -> GoldenCase:
        prefix = f"{self.task_type}-{self.subtask_type}-"
        if not self.id.startswith(prefix):
            raise ValueError(
                f"id {self.id!r} does not start with {prefix!r} as route {self.route!r} "
                "requires; rename the case or fix its route"
            )
        if self.wrong_answer.strip() == self.reference.answer.strip():
            raise ValueError("wrong_answer equals reference.answer; give a wrong answer")
        return self

    @property
    def task_type(self) -> str:
        return parse_route(self.route).task_type

    @property
    def subtask_type(self) -> str:
        return parse_route(self.route).subtask_type

    @property
    def uses_tools(self) -> bool:
        """The reference makes tool calls, so a model needs tools to match it."""
        return bool(self.reference.steps)

    @property
    def offers_tools(self) -> bool:
        """The runner offers the tools: the case has steps or files to inspect."""
        return self.uses_tools or bool(self.files)

    @property
    def needs_sandbox(self) -> bool:
        return isinstance(self.check, ProgramCheck) or self.offers_tools

    @property
    def system_prompt(self) -> str:
        return system_prompt_for(self)


def system_prompt_for(case: GoldenCase) -> str:
    """The case's own system prompt, else the agentic one when tools are offered."""
    if case.system is not None:
        return case.system
    return AGENTIC_SYSTEM_PROMPT if case.offers_tools else DEFAULT_SYSTEM_PROMPT


def _require_text(text: str, what: str) -> str:
    if not text.strip():
        raise ValueError(f"{what} is empty; write the text it needs")
    return text


@dataclass(frozen=True)
class Dataset:
    """A loaded golden set, in canonical order, with its content-derived identity."""

    name: str
    cases: tuple[GoldenCase, ...]
    identity: str
    _by_id: dict[str, GoldenCase] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {case.id: case for case in self.cases})

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[GoldenCase]:
        return iter(self.cases)

    def by_id(self, case_id: str) -> GoldenCase:
        try:
            return self._by_id[case_id]
        except KeyError:
            raise DatasetError(
                f"no case {case_id!r} in dataset {self.name!r}; "
                "list the ids with `autoray cases list`"
            ) from None

    def by_route(self, route: str) -> tuple[GoldenCase, ...]:
        canonical = validate_route(route)
        return tuple(case for case in self.cases if case.route == canonical)

    def routes(self) -> tuple[str, ...]:
        """Routes that have at least one case, in canonical order."""
        present = {case.route for case in self.cases}
        return tuple(route for route in ROUTES if route in present)


@dataclass(frozen=True, slots=True)
class _Source:
    label: str
    text: str


@dataclass(frozen=True, slots=True)
class _Loaded:
    case: GoldenCase
    source: str
    where: str


def load_dataset(spec: str) -> Dataset:
    """Load ``builtin:<name>`` (package data), a directory of YAML/JSONL files, or one file."""
    name, sources = _resolve(spec)
    loaded = [item for source in sources for item in _load_source(source)]
    if not loaded:
        raise DatasetError(f"dataset {spec!r} holds no cases; add cases to its files")
    _reject_duplicates(loaded)
    ordered = sorted(loaded, key=lambda item: route_index(item.case.route))
    cases = tuple(item.case for item in ordered)
    return Dataset(name=name, cases=cases, identity=dataset_identity(name, cases))


def _resolve(spec: str) -> tuple[str, list[_Source]]:
    if spec.startswith(_BUILTIN_PREFIX):
        return _resolve_builtin(spec)
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in _SUFFIXES)
        if not files:
            raise DatasetError(f"directory {spec!r} has no {'/'.join(_SUFFIXES)} files")
        return path.name or "dataset", [_Source(str(p), _read(p)) for p in files]
    if path.is_file():
        return path.stem, [_Source(str(path), _read(path))]
    raise DatasetError(
        f"dataset {spec!r} is neither {BUILTIN_DATASET!r} nor an existing file or directory; "
        "give a builtin name or a path to YAML/JSONL golden-case files"
    )


# Folders of autoray/data that hold other data than golden cases (the classifier's labelled
# request set), so that they are never offered as builtin datasets.
_NOT_GOLDEN = frozenset({"requests"})


def _resolve_builtin(spec: str) -> tuple[str, list[_Source]]:
    name = spec.removeprefix(_BUILTIN_PREFIX)
    root = resources.files("autoray").joinpath("data")
    choices = sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_dir() and entry.name not in _NOT_GOLDEN and not entry.name.startswith("_")
    )
    if name not in choices:
        valid = ", ".join(f"builtin:{choice}" for choice in choices) or "none installed"
        raise DatasetError(f"unknown builtin dataset {spec!r}; valid: {valid}")
    entries = sorted(_builtin_files(root.joinpath(name)), key=lambda entry: entry.name)
    return name, [_Source(entry.name, entry.read_text(encoding="utf-8")) for entry in entries]


def _builtin_files(directory: Traversable) -> Iterator[Traversable]:
    for entry in directory.iterdir():
        if entry.is_file() and entry.name.endswith(_SUFFIXES):
            yield entry


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read golden-case file {str(path)!r}: {exc}") from exc


def _load_source(source: _Source) -> list[_Loaded]:
    if source.label.endswith(".jsonl"):
        return [_validate(raw, source, where) for where, raw in _jsonl_records(source)]
    task_type, records = _yaml_records(source)
    loaded = [_validate(raw, source, where) for where, raw in records]
    for item in loaded:
        _require_task_type(item, task_type)
    return loaded


def _yaml_records(source: _Source) -> tuple[str, list[tuple[str, Any]]]:
    try:
        data = yaml.safe_load(source.text)
    except yaml.YAMLError as exc:
        raise DatasetError(f"{source.label}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or "task_type" not in data or "cases" not in data:
        raise DatasetError(
            f"{source.label}: the file must be a mapping with 'task_type' and 'cases' keys"
        )
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise DatasetError(
            f"{source.label}: unknown top-level field(s) {', '.join(map(repr, unknown))}; "
            "allowed: 'task_type', 'cases'"
        )
    task_type = _file_task_type(source, data["task_type"])
    if not isinstance(data["cases"], list):
        raise DatasetError(f"{source.label}: 'cases' must be a list of case mappings")
    return task_type, [(_where(raw, index), raw) for index, raw in enumerate(data["cases"])]


def _file_task_type(source: _Source, task_type: Any) -> str:
    if task_type not in TASK_TYPES:
        raise DatasetError(
            f"{source.label}: task_type {task_type!r} is not a task type; "
            f"valid: {', '.join(TASK_TYPES)}"
        )
    stem = Path(source.label).stem
    if stem in TASK_TYPES and stem != task_type:
        raise DatasetError(
            f"{source.label}: declares task_type {task_type!r} but the file is named for "
            f"{stem!r}; rename the file or fix task_type"
        )
    return str(task_type)


def _jsonl_records(source: _Source) -> Iterator[tuple[str, Any]]:
    for number, line in enumerate(source.text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError as exc:
            raise DatasetError(f"{source.label} line {number}: invalid JSON ({exc})") from exc
        yield _where(raw, number - 1, line_number=number), raw


def _where(raw: Any, index: int, *, line_number: int | None = None) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return f"case {raw['id']!r}"
    return f"line {line_number}" if line_number is not None else f"cases[{index}]"


def _validate(raw: Any, source: _Source, where: str) -> _Loaded:
    if not isinstance(raw, dict):
        raise DatasetError(f"{where} in {source.label} must be a mapping of case fields")
    try:
        case = GoldenCase.model_validate(raw)
    except ValidationError as exc:
        raise DatasetError(f"{where} in {source.label}: {_describe(exc)}") from None
    return _Loaded(case, source.label, where)


def _require_task_type(item: _Loaded, task_type: str) -> None:
    if item.case.task_type != task_type:
        raise DatasetError(
            f"{item.where} in {item.source} has route {item.case.route!r} but the file is "
            f"for task type {task_type!r}; move the case to {item.case.task_type}.yaml "
            "or fix its route"
        )


def _describe(exc: ValidationError) -> str:
    return "; ".join(_describe_error(error) for error in exc.errors())


def _describe_error(error: Any) -> str:
    loc = _field_path(error["loc"])
    kind, message = error["type"], str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        allowed = f"; allowed: {', '.join(GoldenCase.model_fields)}" if "." not in loc else ""
        return f"unknown field {loc!r}; remove it or fix its spelling{allowed}"
    if kind == "missing":
        return f"missing required field {loc!r}"
    return f"field {loc!r}: {message}" if loc else message


def _field_path(loc: Sequence[Any]) -> str:
    parts: list[str] = []
    for part in loc:
        after_tagged = bool(parts) and (parts[-1] == "check" or parts[-1].isdigit())
        if after_tagged and part in _TAG_VALUES:
            continue
        parts.append(str(part))
    return ".".join(parts)


def _reject_duplicates(loaded: Sequence[_Loaded]) -> None:
    ids: dict[str, _Loaded] = {}
    prompts: dict[str, _Loaded] = {}
    for item in loaded:
        first = ids.setdefault(item.case.id, item)
        if first is not item:
            raise DatasetError(
                f"duplicate case id {item.case.id!r}: in {first.source} and in {item.source}; "
                "ids must be unique across the dataset"
            )
        twin = prompts.setdefault(item.case.prompt.strip(), item)
        if twin is not item:
            raise DatasetError(
                f"{item.where} in {item.source} has the same prompt as {twin.where} in "
                f"{twin.source}; prompts must be unique across the dataset"
            )
