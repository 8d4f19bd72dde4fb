"""The routing table: every route's ranked candidates, under a version that hashes its content.

The version is ``rt-`` + 16 hex of a sha256 over what a routing decision can see: each route's
ordered candidates (model, variant, accuracy, average cost, whether it meets the bar, context
length) and the table-wide settings (``min_accuracy``, ``switch_cost_factor``,
``best_accuracy_gap``). Equal tables therefore have equal versions whatever run produced them, so
a replica that already serves a version never reloads for a re-run that ranked the same, and any
change a decision could see makes a new version. Provenance (run, dataset, model entries),
``generated_at`` and measured latency are stored beside the content and stay out of the hash.

A table that misses a route is never published: the decision endpoint would have nothing to say
for requests on that route, and the previous table stays active instead.

The JSON form (:meth:`RoutingTable.as_dict`, what ``autoray table show --json`` prints) carries
``schema_version`` and is described by ``autoray/schemas/routing_table.schema.json``. Readers
ignore fields they do not know, so a Serve replica keeps working when a newer writer adds one;
they reject only a missing required field or a value of the wrong type, naming the field.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from autoray.ranking import Candidate, rank_routes
from autoray.results import ModelKey
from autoray.summaries import RouteSummary
from autoray.taxonomy import ROUTES, validate_route

SCHEMA_VERSION = 1
DEFAULT_BEST_ACCURACY_GAP = 0.05
VERSION_PREFIX = "rt-"
SCHEMA_RESOURCE = "schemas/routing_table.schema.json"
_VERSION_HEX_CHARS = 16
_HASH_DIGITS = 12
_COMPARE_DIGITS = 12


@dataclass(frozen=True)
class RoutingTable:
    """Content (settings and ranked routes), its version, and provenance kept beside it.

    ``run_id``, ``dataset_identity`` and ``models`` say which run, dataset and model entries
    produced the table; they are shown and stored but never part of the version.
    """

    version: str
    generated_at: str
    min_accuracy: float
    switch_cost_factor: float
    routes: Mapping[str, tuple[Candidate, ...]]
    run_id: str | None
    dataset_identity: str | None
    best_accuracy_gap: float = DEFAULT_BEST_ACCURACY_GAP
    models: tuple[ModelKey, ...] = ()

    def missing_routes(self) -> list[str]:
        """Routes, in canonical order, that are absent or have no candidate."""
        return [route for route in ROUTES if not self.routes.get(route)]

    @property
    def is_publishable(self) -> bool:
        return not self.missing_routes()

    def candidates(self, route: str) -> tuple[Candidate, ...]:
        return tuple(self.routes.get(validate_route(route), ()))

    def content_version(self) -> str:
        """The version this table's content hashes to (a table read from a v0 body differs)."""
        return content_version(
            routes=self.routes,
            min_accuracy=self.min_accuracy,
            switch_cost_factor=self.switch_cost_factor,
            best_accuracy_gap=self.best_accuracy_gap,
        )

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of schema :data:`SCHEMA_VERSION`, whatever schema it was read from."""
        return {
            "schema_version": SCHEMA_VERSION,
            "version": self.version,
            "generated_at": self.generated_at,
            "min_accuracy": self.min_accuracy,
            "switch_cost_factor": self.switch_cost_factor,
            "best_accuracy_gap": self.best_accuracy_gap,
            "routes": {
                route: [candidate.as_dict() for candidate in candidates]
                for route, candidates in self.routes.items()
            },
            "provenance": {
                "run_id": self.run_id,
                "dataset_identity": self.dataset_identity,
                "models": [{"model_id": m.model_id, "variant": m.variant} for m in self.models],
            },
        }

    @classmethod
    def from_dict(cls, data: Any) -> RoutingTable:
        """Read any schema version's JSON form; unknown fields are ignored.

        A body without ``schema_version`` is schema 0 (written before the field existed): its
        missing ``best_accuracy_gap`` is the default 0.05 and its provenance sits at the top
        level. Raises ``ValueError`` naming the field for a missing or mistyped one, and
        :class:`~autoray.errors.InvalidRouteError` for an unknown route.
        """
        top = _as_object(data, "")
        _get(top, "schema_version", "", _INT, default=0)
        return cls(
            version=_get(top, "version", "", _STR),
            generated_at=_get(top, "generated_at", "", _STR),
            min_accuracy=float(_get(top, "min_accuracy", "", _NUM)),
            switch_cost_factor=float(_get(top, "switch_cost_factor", "", _NUM)),
            best_accuracy_gap=float(
                _get(top, "best_accuracy_gap", "", _NUM, DEFAULT_BEST_ACCURACY_GAP)
            ),
            routes=_read_routes(_get(top, "routes", "", _OBJ)),
            **_read_provenance(top),
        )


def content_version(
    *,
    routes: Mapping[str, Sequence[Candidate]],
    min_accuracy: float,
    switch_cost_factor: float,
    best_accuracy_gap: float,
) -> str:
    """``rt-`` + 16 hex of a sha256 over canonical JSON of what decisions use.

    Routes are hashed in canonical order (an absent route hashes like one with no candidate),
    candidates in their ranked order; floats are rounded to 12 significant digits so that float
    noise from summing in another order does not make a new version.
    """
    for route in routes:
        validate_route(route)
    payload = {
        "settings": {
            "min_accuracy": _canonical_float(min_accuracy),
            "switch_cost_factor": _canonical_float(switch_cost_factor),
            "best_accuracy_gap": _canonical_float(best_accuracy_gap),
        },
        "routes": [
            [route, [_hashed_candidate(c) for c in routes.get(route, ())]] for route in ROUTES
        ],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return VERSION_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:_VERSION_HEX_CHARS]


def routing_table_schema() -> dict[str, Any]:
    """The JSON Schema of :meth:`RoutingTable.as_dict`, as shipped in the package."""
    text = resources.files("autoray").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def build_table(
    *,
    summaries: Iterable[RouteSummary],
    run_id: str | None,
    models: Iterable[ModelKey],
    dataset_identity: str | None,
    min_accuracy: float,
    switch_cost_factor: float,
    generated_at: str,
    best_accuracy_gap: float = DEFAULT_BEST_ACCURACY_GAP,
    context_lengths: Mapping[ModelKey, int | None] | None = None,
) -> RoutingTable:
    """Rank every route from the summaries of ``run_id`` for ``models`` only.

    Summaries of other runs or other models are ignored, so the table holds exactly what its
    provenance says produced it.
    """
    keys = list(dict.fromkeys(_as_key(key) for key in models))
    wanted = set(keys)
    rows = [
        row
        for row in summaries
        if ModelKey(row.model_id, row.variant) in wanted
        and (run_id is None or row.run_id == run_id)
    ]
    ranked = rank_routes(rows, min_accuracy=min_accuracy, context_lengths=context_lengths)
    routes = {route: tuple(candidates) for route, candidates in ranked.items()}
    return RoutingTable(
        version=content_version(
            routes=routes,
            min_accuracy=min_accuracy,
            switch_cost_factor=switch_cost_factor,
            best_accuracy_gap=best_accuracy_gap,
        ),
        generated_at=generated_at,
        min_accuracy=min_accuracy,
        switch_cost_factor=switch_cost_factor,
        best_accuracy_gap=best_accuracy_gap,
        routes=routes,
        run_id=run_id,
        dataset_identity=dataset_identity,
        models=tuple(keys),
    )


def routes_equal(a: RoutingTable, b: RoutingTable) -> bool:
    """Same ranked candidates on every route, ignoring version, time and measured latency.

    Used to check that a run that survived faults ranks exactly like a clean run: latencies
    are wall-clock measurements and differ between any two runs, so they are not compared.
    """
    return all(_route_signature(a, route) == _route_signature(b, route) for route in ROUTES)


def _route_signature(table: RoutingTable, route: str) -> list[tuple[Any, ...]]:
    return [
        (
            c.key,
            c.accuracy,
            float(f"{c.avg_cost_usd:.{_COMPARE_DIGITS}g}"),
            c.cases,
            c.meets_threshold,
        )
        for c in table.routes.get(route, ())
    ]


def _as_key(key: Any) -> ModelKey:
    return ModelKey(*key)


# --- hashing ----------------------------------------------------------------------------


def _canonical_float(value: float) -> float:
    """12 significant digits, and -0.0 as 0.0, so equal numbers always serialise alike."""
    if not math.isfinite(value):
        raise ValueError(f"cannot version a table holding {value!r}; every number must be finite")
    return float(f"{float(value):.{_HASH_DIGITS}g}") + 0.0


def _hashed_candidate(c: Candidate) -> dict[str, Any]:
    return {
        "model_id": c.model_id,
        "variant": c.variant or None,
        "accuracy": _canonical_float(c.accuracy),
        "avg_cost_usd": _canonical_float(c.avg_cost_usd),
        "meets_threshold": bool(c.meets_threshold),
        "context_length": c.context_length,
    }


# --- reading the JSON form --------------------------------------------------------------

_MISSING: Any = object()
_STR = ("a string", (str,))
_NUM = ("a number", (int, float))
_INT = ("an integer", (int,))
_BOOL = ("true or false", (bool,))
_OBJ = ("an object", (Mapping,))
_LIST = ("an array", (list, tuple))


def _get(
    data: Mapping[str, Any],
    name: str,
    where: str,
    kind: tuple[str, tuple[type, ...]],
    default: Any = _MISSING,
    *,
    nullable: bool = False,
) -> Any:
    """``data[name]`` checked against ``kind``; a missing optional field gives ``default``."""
    path = f"{where}.{name}" if where else name
    if name not in data:
        if default is _MISSING:
            raise ValueError(
                f"routing table field {path}: required field is missing; add {name!r} "
                f"(the format is {SCHEMA_RESOURCE} in the autoray package)"
            )
        return default
    value = data[name]
    if value is None and nullable:
        return None
    description, types = kind
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        null = " or null" if nullable else ""
        raise ValueError(
            f"routing table field {path}: must be {description}{null}, got {value!r}; "
            "fix the table or publish it again"
        )
    return value


def _as_object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        what = f"routing table field {path}:" if path else "a routing table"
        raise ValueError(f"{what} must be a JSON object, got {type(value).__name__} {value!r:.60}")
    return value


def _read_routes(data: Mapping[str, Any]) -> dict[str, tuple[Candidate, ...]]:
    routes: dict[str, tuple[Candidate, ...]] = {}
    for route, items in data.items():
        where = f"routes[{route!r}]"
        if not isinstance(items, list | tuple):
            raise ValueError(
                f"routing table field {where}: must be an array of candidates, got {items!r:.60}"
            )
        routes[validate_route(route)] = tuple(
            _read_candidate(_as_object(item, f"{where}[{i}]"), f"{where}[{i}]")
            for i, item in enumerate(items)
        )
    return routes


def _read_candidate(data: Mapping[str, Any], where: str) -> Candidate:
    """A candidate of any schema; ``cost_per_accuracy`` is derived, so it is not read."""
    return Candidate(
        model_id=_get(data, "model_id", where, _STR),
        variant=_get(data, "variant", where, _STR, None, nullable=True) or None,
        accuracy=float(_get(data, "accuracy", where, _NUM)),
        avg_cost_usd=float(_get(data, "avg_cost_usd", where, _NUM)),
        cases=_get(data, "cases", where, _INT),
        meets_threshold=_get(data, "meets_threshold", where, _BOOL),
        p50_latency_ms=_optional_float(
            _get(data, "p50_latency_ms", where, _NUM, None, nullable=True)
        ),
        context_length=_get(data, "context_length", where, _INT, None, nullable=True),
    )


def _optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _read_provenance(top: Mapping[str, Any]) -> dict[str, Any]:
    """Schema 1 nests provenance under ``provenance``; schema 0 had it at the top level."""
    source = top
    if "provenance" in top:
        source = _get(top, "provenance", "", _OBJ)
    where = "provenance" if source is not top else ""
    models = _get(source, "models", where, _LIST, ())
    return {
        "run_id": _get(source, "run_id", where, _STR, None, nullable=True),
        "dataset_identity": _get(source, "dataset_identity", where, _STR, None, nullable=True),
        "models": tuple(_read_model(m, f"provenance.models[{i}]") for i, m in enumerate(models)),
    }


def _read_model(item: Any, where: str) -> ModelKey:
    data = _as_object(item, where)
    variant = _get(data, "variant", where, _STR, None, nullable=True)
    return ModelKey(_get(data, "model_id", where, _STR), variant or None)
