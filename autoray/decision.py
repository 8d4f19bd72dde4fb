"""The routing decision: which model of a route serves this request, and why.

Pure and cheap, because it runs on every request: it reads one route's candidates (a handful),
never the database or the network. The steps, in order:

1. Candidates of the route in table order, minus denied models. A denial ``"id"`` denies every
   variant of that id; ``"id:variant"`` denies one variant. Model ids may contain ``:``
   themselves (``ollama/llama3:8b``), so an entry equal to a candidate's whole id denies it
   entirely, and otherwise the entry is split at its LAST ``:``.
2. The context constraint: the tokens needed are the larger of the prompt estimate and
   ``Constraints.min_context_tokens``; a candidate whose KNOWN context length is smaller drops
   out. An unknown length is not proof that the prompt will not fit, so it stays. If nothing is
   left, those with the largest known context stay: a long prompt still gets the best chance.
3. The fresh pick: mode ``cost_per_accuracy`` takes the first left in table order (the table
   already lists those that meet the bar first, cheapest per unit of accuracy); mode
   ``best_accuracy`` takes the most accurate, ties to the cheaper, then table order.
4. Stickiness: a session keeps its model (the incumbent) while it is left after steps 1-2 and
   its accuracy is at least ``min_accuracy - 0.10``, unless the fresh pick is more than
   ``switch_cost_factor`` times cheaper (cost mode) or more than ``best_accuracy_gap`` more
   accurate (best-accuracy mode). Switching models mid-conversation loses the model's own
   phrasing and cache, so a small gain is not worth it.

``switch_reason`` is one of a bounded set (it labels metrics): ``cost`` when a much cheaper
model took over; ``capability`` when the incumbent is on the route but cannot hold the prompt;
``threshold`` when the incumbent fails a bar: its accuracy fell below the stickiness floor, the
request denied it, it is not ranked on this route, or (best-accuracy mode) the fresh pick beats it
by more than the accuracy gap, which is the bar that mode sets. Null when nothing switched.

No table, no candidate or every candidate denied gives a null decision with a reason and a
message that says what to do, never an exception: the caller answers "no route" rather than 500.
Derived thresholds (the floor, the accuracy gap, a cost times the factor) are compared rounded to
12 significant digits, as ranking does, so that ``0.8 - 0.1`` is the floor ``0.7`` and not
``0.7000000000000001``; inputs are used as given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from autoray.ranking import Candidate
from autoray.results import ModelKey
from autoray.table import RoutingTable
from autoray.taxonomy import RouteParts, validate_route

STICKY_FLOOR_MARGIN = 0.10
"""How far below ``min_accuracy`` a session's model may be and still be kept."""

CHARS_PER_TOKEN = 4
"""The usual rule of thumb for English text under BPE tokenizers (code runs nearer 3)."""

MESSAGE_OVERHEAD_TOKENS = 4
"""Role and separator tokens a chat format adds to every message."""

_SETTLE_DIGITS = 12


class Mode(StrEnum):
    COST_PER_ACCURACY = "cost_per_accuracy"
    BEST_ACCURACY = "best_accuracy"


class SwitchReason(StrEnum):
    COST = "cost"
    THRESHOLD = "threshold"
    CAPABILITY = "capability"


class NullReason(StrEnum):
    NO_TABLE = "no_table"
    NO_CANDIDATE = "no_candidate"
    ALL_DENIED = "all_denied"


@dataclass(frozen=True, slots=True)
class Constraints:
    """What the request needs of a model beyond the route.

    ``min_context_tokens``: the caller needs at least this much context (prompt plus the
    expected answer); None means no requirement beyond the prompt itself.
    """

    min_context_tokens: int | None = None

    def __post_init__(self) -> None:
        _check_tokens("min_context_tokens", self.min_context_tokens)


@dataclass(frozen=True, slots=True)
class DeniedModels:
    """Models a request refuses, as validated entries; build it with :func:`parse_denied`."""

    entries: frozenset[str] = frozenset()
    _pairs: frozenset[tuple[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pairs = {_split_entry(entry) for entry in self.entries if ":" in entry}
        object.__setattr__(self, "_pairs", frozenset(pairs))

    def denies(self, key: ModelKey) -> bool:
        """An entry equal to the whole id denies every variant; else ``id:variant`` pairs."""
        if key.model_id in self.entries:
            return True
        return key.variant is not None and (key.model_id, key.variant) in self._pairs

    def __bool__(self) -> bool:
        return bool(self.entries)


@dataclass(frozen=True, slots=True)
class Decision(RouteParts):
    model_id: str
    variant: str | None
    route: str
    table_version: str
    sticky: bool
    switch_reason: SwitchReason | None
    explanation: str
    accuracy: float
    avg_cost_usd: float

    @property
    def key(self) -> ModelKey:
        return ModelKey(self.model_id, self.variant)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "variant": self.variant,
            "route": self.route,
            "task_type": self.task_type,
            "subtask_type": self.subtask_type,
            "table_version": self.table_version,
            "sticky": self.sticky,
            "switch_reason": self.switch_reason.value if self.switch_reason else None,
            "explanation": self.explanation,
            "accuracy": self.accuracy,
            "avg_cost_usd": self.avg_cost_usd,
        }


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    """A decision, or why there is none; ``alternatives`` are what a failover tries next.

    ``alternatives`` are the other candidates left after denial and the context constraint,
    in the order the mode prefers, the chosen model excluded.
    """

    decision: Decision | None
    reason: NullReason | None = None
    message: str | None = None
    alternatives: tuple[Candidate, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.as_dict() if self.decision else None,
            "reason": self.reason.value if self.reason else None,
            "message": self.message,
            "alternatives": [candidate.as_dict() for candidate in self.alternatives],
        }


def parse_denied(entries: Iterable[str]) -> DeniedModels:
    """Validate ``denied_models`` entries: ``"id"`` or ``"id:variant"``, both parts non-empty."""
    if isinstance(entries, str | bytes):
        raise ValueError(
            f"denied_models must be a list of entries, got the single string {entries!r}; "
            f'write ["{entries!s}"]'
        )
    return DeniedModels(frozenset(_check_entry(entry) for entry in entries))


def estimate_prompt_tokens(messages_or_text: str | Sequence[Any] | None) -> int:
    """``ceil(chars / 4)`` over every message content, plus 4 tokens per message.

    A tokenizer per model would mean loading vocabularies on every request. The estimate only
    has to tell an 8k-context model from a 128k one, and context lengths differ by multiples,
    so an error of a quarter either way changes a decision only for prompts already near a
    model's limit. Accepts a text, or chat messages (mappings or objects with ``content``)
    whose content is a string or OpenAI's list of parts; only text counts.
    """
    if messages_or_text is None:
        return 0
    if isinstance(messages_or_text, str):
        return math.ceil(len(messages_or_text) / CHARS_PER_TOKEN)
    messages = list(messages_or_text)
    chars = sum(len(_content_text(_message_content(message))) for message in messages)
    return math.ceil(chars / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS * len(messages)


def decide(
    table: RoutingTable | None,
    route: str,
    *,
    mode: Mode = Mode.COST_PER_ACCURACY,
    incumbent: ModelKey | None = None,
    denied: DeniedModels | Iterable[str] = (),
    prompt_tokens: int | None = None,
    constraints: Constraints | None = None,
) -> DecisionOutcome:
    """Choose the model for one request on ``route``; see the module docstring for the rules.

    Raises only on malformed input (an unknown route, mode or denial, negative tokens): the
    message names it and the valid choices. Missing data gives a null decision instead.
    """
    route = validate_route(route)
    mode = _as_mode(mode)
    deny = denied if isinstance(denied, DeniedModels) else parse_denied(denied)
    _check_tokens("prompt_tokens", prompt_tokens)
    needed = max(prompt_tokens or 0, (constraints or Constraints()).min_context_tokens or 0)
    if table is None:
        return _null(NullReason.NO_TABLE, _NO_TABLE_MESSAGE)
    pool = _Pool.build(table.routes.get(route, ()), deny, needed, mode)
    if not pool.on_route:
        return _null(NullReason.NO_CANDIDATE, _no_candidate_message(table, route))
    if not pool.ordered:
        return _null(NullReason.ALL_DENIED, _all_denied_message(route, pool))
    choice = _choose(table, pool, mode, incumbent, deny)
    return _outcome(table, route, pool, choice)


# --- the candidate pool -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pool:
    """One route's candidates at each step: on the route, not denied, fitting the context."""

    on_route: tuple[Candidate, ...]
    allowed: tuple[Candidate, ...]
    ordered: tuple[Candidate, ...]
    needed: int

    @classmethod
    def build(
        cls, on_route: Sequence[Candidate], deny: DeniedModels, needed: int, mode: Mode
    ) -> _Pool:
        allowed = tuple(c for c in on_route if not deny.denies(c.key))
        fitting = _fit_context(allowed, needed)
        return cls(tuple(on_route), allowed, _mode_order(fitting, mode), needed)


def _find(key: ModelKey, among: Sequence[Candidate]) -> Candidate | None:
    return next((c for c in among if c.key == key), None)


def _fit_context(candidates: tuple[Candidate, ...], needed: int) -> tuple[Candidate, ...]:
    """Drop candidates whose known context is too small; if that drops all, keep the largest."""
    if needed <= 0 or not candidates:
        return candidates
    fitting = tuple(c for c in candidates if c.context_length is None or c.context_length >= needed)
    if fitting:
        return fitting
    largest = max(c.context_length or 0 for c in candidates)
    return tuple(c for c in candidates if c.context_length == largest)


def _mode_order(candidates: tuple[Candidate, ...], mode: Mode) -> tuple[Candidate, ...]:
    """Table order for cost mode; most accurate first (ties: cheaper, then table order)."""
    if mode is Mode.COST_PER_ACCURACY:
        return candidates
    return tuple(sorted(candidates, key=lambda c: (-c.accuracy, c.avg_cost_usd)))


# --- stickiness ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Choice:
    candidate: Candidate
    sticky: bool
    switch_reason: SwitchReason | None
    why: str


def _choose(
    table: RoutingTable,
    pool: _Pool,
    mode: Mode,
    incumbent: ModelKey | None,
    deny: DeniedModels,
) -> _Choice:
    fresh = pool.ordered[0]
    if incumbent is None:
        return _Choice(fresh, False, None, _fresh_why(fresh, mode))
    if fresh.key == incumbent:
        why = f"Kept the session's model {_label(fresh)}: it is also the fresh pick."
        return _Choice(fresh, True, None, why)
    lost = _incumbent_lost(table, pool, incumbent, deny)
    if lost is not None:
        reason, lost_why = lost
        why = f"Switched from {incumbent.label()}: {lost_why}; {_fresh_why(fresh, mode)}"
        return _Choice(fresh, False, reason, why)
    current = _find(incumbent, pool.ordered)
    assert current is not None  # _incumbent_lost returns None only when it is left
    return _weigh(table, mode, current, fresh)


def _incumbent_lost(
    table: RoutingTable, pool: _Pool, incumbent: ModelKey, deny: DeniedModels
) -> tuple[SwitchReason, str] | None:
    """Why the incumbent cannot be kept whatever the fresh pick, or None if it may be."""
    if deny.denies(incumbent):
        return SwitchReason.THRESHOLD, "the request denies it"
    current = _find(incumbent, pool.allowed)
    if current is None:
        return SwitchReason.THRESHOLD, "it is not ranked on this route"
    if _find(incumbent, pool.ordered) is None:
        return SwitchReason.CAPABILITY, (
            f"its context of {current.context_length} tokens is below the {pool.needed} needed"
        )
    floor = _settle(table.min_accuracy - STICKY_FLOOR_MARGIN)
    if current.accuracy < floor:
        return SwitchReason.THRESHOLD, (
            f"its accuracy {current.accuracy:g} is below the floor {floor:g}"
        )
    return None


def _weigh(table: RoutingTable, mode: Mode, current: Candidate, fresh: Candidate) -> _Choice:
    """An eligible incumbent against a different fresh pick: switch only for a large gain."""
    if mode is Mode.COST_PER_ACCURACY:
        factor = table.switch_cost_factor
        if _settle(fresh.avg_cost_usd * factor) < current.avg_cost_usd:
            why = f"Switched from {_label(current)}: {_label(fresh)} is over {factor:g}x cheaper."
            return _Choice(fresh, False, SwitchReason.COST, why)
        gain = f"{_label(fresh)} is not over {factor:g}x cheaper"
    else:
        gap = table.best_accuracy_gap
        if _settle(fresh.accuracy - current.accuracy) > gap:
            why = f"Switched from {_label(current)}: {_label(fresh)} is over {gap:g} more accurate."
            return _Choice(fresh, False, SwitchReason.THRESHOLD, why)
        gain = f"{_label(fresh)} is not over {gap:g} more accurate"
    return _Choice(current, True, None, f"Kept the session's model {_label(current)}: {gain}.")


def _fresh_why(fresh: Candidate, mode: Mode) -> str:
    if mode is Mode.BEST_ACCURACY:
        return f"chose {_label(fresh)}, the most accurate ({fresh.accuracy:g})."
    if fresh.meets_threshold:
        return f"chose {_label(fresh)}, the cheapest per unit of accuracy above the bar."
    return f"chose {_label(fresh)}: none left meets the bar, so the most accurate."


# --- the outcome --------------------------------------------------------------------------


def _outcome(table: RoutingTable, route: str, pool: _Pool, choice: _Choice) -> DecisionOutcome:
    chosen = choice.candidate
    why = choice.why[0].upper() + choice.why[1:]
    decision = Decision(
        model_id=chosen.model_id,
        variant=chosen.variant,
        route=route,
        table_version=table.version,
        sticky=choice.sticky,
        switch_reason=choice.switch_reason,
        explanation=f"{_summary(table, pool)} {why}",
        accuracy=chosen.accuracy,
        avg_cost_usd=chosen.avg_cost_usd,
    )
    alternatives = tuple(c for c in pool.ordered if c.key != chosen.key)
    return DecisionOutcome(decision=decision, alternatives=alternatives)


def _summary(table: RoutingTable, pool: _Pool) -> str:
    """``4 candidates (1 denied, 1 short of context); 2 of 2 left at or above the bar 0.7.``"""
    dropped = []
    if len(pool.allowed) < len(pool.on_route):
        dropped.append(f"{len(pool.on_route) - len(pool.allowed)} denied")
    if len(pool.ordered) < len(pool.allowed):
        dropped.append(f"{len(pool.allowed) - len(pool.ordered)} short of context")
    aside = f" ({', '.join(dropped)})" if dropped else ""
    meeting = sum(1 for c in pool.ordered if c.meets_threshold)
    return (
        f"{_count(len(pool.on_route), 'candidate')}{aside}; {meeting} of {len(pool.ordered)} "
        f"left at or above the bar {table.min_accuracy:g}."
    )


_NO_TABLE_MESSAGE = (
    "no routing table is published yet; run `autoray bench run` to benchmark the models "
    "and publish one"
)


def _no_candidate_message(table: RoutingTable, route: str) -> str:
    return (
        f"routing table {table.version} has no candidate for route {route!r}; benchmark models "
        "on this route with `autoray bench run` and publish the new table"
    )


def _all_denied_message(route: str, pool: _Pool) -> str:
    labels = ", ".join(_label(c) for c in pool.on_route)
    return (
        f"every candidate of route {route!r} is denied ({labels}); remove one of them from "
        "denied_models"
    )


def _null(reason: NullReason, message: str) -> DecisionOutcome:
    return DecisionOutcome(decision=None, reason=reason, message=message)


# --- small helpers ------------------------------------------------------------------------


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _label(candidate: Candidate) -> str:
    return candidate.key.label()


def _settle(value: float) -> float:
    """Round a derived value to 12 significant digits so float noise cannot cross a bar."""
    return float(f"{value:.{_SETTLE_DIGITS}g}")


def _as_mode(mode: Mode | str) -> Mode:
    try:
        return Mode(mode)
    except ValueError:
        choices = ", ".join(m.value for m in Mode)
        raise ValueError(f"mode {mode!r} is not a decision mode; valid modes: {choices}") from None


def _check_tokens(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be a whole number of tokens >= 0 or None, got {value!r}")


def _check_entry(entry: object) -> str:
    """One ``denied_models`` entry, stripped; an empty id or variant is refused."""
    text = entry.strip() if isinstance(entry, str) else ""
    if not text or text.startswith(":") or text.endswith(":"):
        raise ValueError(
            f"denied_models entry {entry!r} is not a model; write 'id' to deny every variant "
            "of a model or 'id:variant' to deny one variant"
        )
    return text


def _split_entry(entry: str) -> tuple[str, str]:
    model_id, _, variant = entry.rpartition(":")
    return model_id, variant


def _message_content(message: Any) -> Any:
    if isinstance(message, Mapping):
        return message.get("content")
    return getattr(message, "content", message)


def _content_text(content: Any) -> str:
    """A string, or the ``text`` of OpenAI content parts; anything else counts as nothing."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = (_part_text(part) for part in content)
        return "".join(text for text in texts if isinstance(text, str))
    return ""


def _part_text(part: Any) -> Any:
    if isinstance(part, Mapping):
        return part.get("text", "")
    return getattr(part, "text", part if isinstance(part, str) else "")
