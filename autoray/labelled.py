"""The labelled request set: user requests tagged with their route, for the route classifier.

The set ships as package data, one JSONL file per task type (``<task_type>.jsonl``), one
request object per line: ``{"id", "text", "route", "split"}``. The train/eval split is written
into the files, never drawn at load time, so every classifier trained on the set is scored on
the same eval requests and results stay comparable between runs.

Every loader error is a :class:`DatasetError` naming the file, the line and the field. Ids and
texts (compared ignoring case and whitespace) are unique across the set: a text repeated in
train and eval would leak the answer into the score.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from autoray.errors import DatasetError
from autoray.taxonomy import TASK_TYPES, parse_route, route_index, validate_route

__all__ = [
    "BUILTIN_REQUESTS",
    "SPLITS",
    "LabelledRequest",
    "Split",
    "load_requests",
    "split",
]

BUILTIN_REQUESTS = "builtin"
SPLITS: tuple[str, ...] = ("train", "eval")
Split = Literal["train", "eval"]

_BUILTIN_LABEL = "autoray/data/requests"
_SUFFIX = ".jsonl"
_WHITESPACE = re.compile(r"\s+")


class LabelledRequest(BaseModel):
    """One request as a user would type it, with the route it should go to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    text: str
    route: str
    split: Split

    @field_validator("route")
    @classmethod
    def _known_route(cls, route: str) -> str:
        return validate_route(route)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is empty; write the request as a user would type it")
        return text

    @model_validator(mode="after")
    def _id_matches_route(self) -> LabelledRequest:
        prefix = self.route.replace("/", "-")
        if not re.fullmatch(rf"{re.escape(prefix)}-\d{{3,}}", self.id):
            raise ValueError(
                f"field 'id': {self.id!r} must read '{prefix}-NNN' (three or more digits) "
                f"for route {self.route!r}; rename the request or fix its route"
            )
        return self

    @property
    def task_type(self) -> str:
        return parse_route(self.route).task_type


@dataclass(frozen=True, slots=True)
class _Source:
    label: str
    text: str


@dataclass(frozen=True, slots=True)
class _Loaded:
    request: LabelledRequest
    label: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.label} line {self.line}"


def load_requests(source: str = BUILTIN_REQUESTS) -> tuple[LabelledRequest, ...]:
    """Load the builtin set, a directory of ``<task_type>.jsonl`` files, or one such file.

    Requests come back in canonical route order, then in file order within a route.
    """
    sources = _builtin_sources() if source == BUILTIN_REQUESTS else _path_sources(source)
    loaded = [item for each in sources for item in _load_source(each)]
    if not loaded:
        raise DatasetError(f"labelled request set {source!r} holds no requests; add some lines")
    _reject_duplicates(loaded)
    ordered = sorted(loaded, key=lambda item: route_index(item.request.route))
    return tuple(item.request for item in ordered)


def split(requests: Iterable[LabelledRequest], which: str) -> tuple[LabelledRequest, ...]:
    """The requests of one split, in the order given."""
    if which not in SPLITS:
        raise DatasetError(
            f"split {which!r} is not a split of the labelled request set; "
            f"valid: {', '.join(map(repr, SPLITS))}"
        )
    return tuple(request for request in requests if request.split == which)


def _builtin_sources() -> list[_Source]:
    root = resources.files("autoray").joinpath("data", "requests")
    entries = sorted(
        (entry for entry in root.iterdir() if entry.is_file() and entry.name.endswith(_SUFFIX)),
        key=lambda entry: entry.name,
    )
    return [
        _Source(f"{_BUILTIN_LABEL}/{entry.name}", entry.read_text(encoding="utf-8"))
        for entry in entries
    ]


def _path_sources(source: str) -> list[_Source]:
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix == _SUFFIX)
        if not files:
            raise DatasetError(
                f"directory {source!r} has no {_SUFFIX} files; "
                f"add <task_type>{_SUFFIX} files such as 'debugging{_SUFFIX}'"
            )
        return [_Source(str(p), _read(p)) for p in files]
    if path.is_file():
        return [_Source(str(path), _read(path))]
    raise DatasetError(
        f"labelled request source {source!r} is neither {BUILTIN_REQUESTS!r} nor an existing "
        f"file or directory; give {BUILTIN_REQUESTS!r} or a path to <task_type>{_SUFFIX} files"
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read labelled request file {str(path)!r}: {exc}") from exc


def _load_source(source: _Source) -> list[_Loaded]:
    task_type = _file_task_type(source.label)
    loaded = [_validate(raw, source.label, line) for line, raw in _records(source)]
    for item in loaded:
        if item.request.task_type != task_type:
            raise DatasetError(
                f"{item.where}: field 'route': {item.request.route!r} is not a route of task "
                f"type {task_type!r}, which this file holds; move the line to "
                f"{item.request.task_type}{_SUFFIX} or fix its route"
            )
    return loaded


def _file_task_type(label: str) -> str:
    name = Path(label).name
    stem = name.removesuffix(_SUFFIX)
    if not name.endswith(_SUFFIX) or stem not in TASK_TYPES:
        valid = ", ".join(f"{task}{_SUFFIX}" for task in TASK_TYPES)
        raise DatasetError(
            f"{label}: a labelled request file is named for its task type; "
            f"rename {name!r} to one of: {valid}"
        )
    return stem


def _records(source: _Source) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(source.text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except ValueError as exc:
            raise DatasetError(
                f"{source.label} line {number}: invalid JSON ({exc}); "
                "write one request object per line"
            ) from None


def _validate(raw: Any, label: str, line: int) -> _Loaded:
    if not isinstance(raw, dict):
        raise DatasetError(
            f"{label} line {line}: expected a JSON object with fields "
            f"{', '.join(LabelledRequest.model_fields)}, got {type(raw).__name__}"
        )
    try:
        request = LabelledRequest.model_validate(raw)
    except ValidationError as exc:
        raise DatasetError(f"{label} line {line}: {_describe(exc)}") from None
    return _Loaded(request, label, line)


def _describe(exc: ValidationError) -> str:
    return "; ".join(_describe_error(error) for error in exc.errors())


def _describe_error(error: Any) -> str:
    field = ".".join(str(part) for part in error["loc"])
    kind, message = error["type"], str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        allowed = ", ".join(LabelledRequest.model_fields)
        return f"unknown field {field!r}; remove it or fix its spelling (allowed: {allowed})"
    if kind == "missing":
        return f"missing required field {field!r}"
    if kind == "literal_error" and field == "split":
        return f"field 'split': {error['input']!r} is not a split; valid: 'train', 'eval'"
    return f"field {field!r}: {message}" if field else message


def _reject_duplicates(loaded: Sequence[_Loaded]) -> None:
    ids: dict[str, _Loaded] = {}
    texts: dict[str, _Loaded] = {}
    for item in loaded:
        first = ids.setdefault(item.request.id, item)
        if first is not item:
            raise DatasetError(
                f"duplicate id {item.request.id!r}: {first.where} and {item.where}; "
                "ids must be unique across the set"
            )
        twin = texts.setdefault(_normalised(item.request.text), item)
        if twin is not item:
            raise DatasetError(
                f"{item.where}: field 'text' repeats the text of {twin.where} (ignoring case "
                "and whitespace); reword or drop one, a repeat could sit in both splits"
            )


def _normalised(text: str) -> str:
    return _WHITESPACE.sub(" ", text.strip().lower())
