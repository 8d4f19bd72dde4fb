"""SQLAlchemy ORM models: the schema that migrations ``0001`` and ``0002`` create.

``variant`` columns store ``''`` for a model without a variant. SQL treats ``NULL`` as distinct
from every value, so a nullable column in a composite primary key (or a unique constraint) would
let the same ``(run, model, None, case, rep)`` row be written twice on PostgreSQL, and some
databases reject a nullable primary-key column outright. The repository converts ``''`` back to
``None`` at its boundary; nothing outside ``autoray.store`` ever sees the empty string.

``Base`` is a class (not a module-level ``declarative_base()`` call) so that Ray can pickle
anything that refers to it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

RUN_STATUSES: tuple[str, ...] = ("running", "finalizing", "completed", "failed", "cancelled")
TERMINAL_RUN_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})

ID_LENGTH = 200
ROUTE_LENGTH = 80

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database.

    SQLite keeps no zone and hands back naive datetimes; this type stores UTC and always
    returns an aware UTC datetime, so comparisons never mix naive and aware values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value.isoformat()!r} has no timezone; pass a UTC time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, datetime: UtcDateTime}


def _run_fk() -> ForeignKey:
    return ForeignKey("runs.run_id", ondelete="CASCADE")


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('running', 'finalizing', 'completed', 'failed', 'cancelled')",
            name="status",
        ),
        Index("ix_runs_status_created_at", "status", "created_at"),
    )

    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(ID_LENGTH))
    status: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]]
    engine_identity: Mapped[str] = mapped_column(String(ID_LENGTH))
    dataset_identity: Mapped[str] = mapped_column(String(ID_LENGTH))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status_reason: Mapped[str | None] = mapped_column(Text)
    table_version: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    last_heartbeat_at: Mapped[datetime | None]


class RunModelRow(Base):
    """A model entry of a run, with the prices it was benchmarked at."""

    __tablename__ = "run_models"

    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), _run_fk(), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    prices: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))


class CaseResultRow(Base):
    __tablename__ = "case_results"
    __table_args__ = (Index("ix_case_results_run_id_route", "run_id", "route"),)

    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), _run_fk(), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    rep: Mapped[int] = mapped_column(Integer, primary_key=True)
    route: Mapped[str] = mapped_column(String(ROUTE_LENGTH))
    score: Mapped[float] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    timed_out: Mapped[bool] = mapped_column(Boolean)
    retried: Mapped[bool] = mapped_column(Boolean)
    output_prefix: Mapped[str] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]


class LaneFailureRow(Base):
    __tablename__ = "lane_failures"

    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), _run_fk(), primary_key=True)
    lane_identity: Mapped[str] = mapped_column(String(4 * ID_LENGTH), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime]


class SummaryRow(Base):
    __tablename__ = "summaries"

    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), _run_fk(), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    route: Mapped[str] = mapped_column(String(ROUTE_LENGTH), primary_key=True)
    accuracy: Mapped[float] = mapped_column(Float)
    avg_cost_usd: Mapped[float | None] = mapped_column(Float)
    p50_latency_ms: Mapped[float | None] = mapped_column(Float)
    p95_latency_ms: Mapped[float | None] = mapped_column(Float)
    cases: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    timeouts: Mapped[int] = mapped_column(Integer)


class RoutingTableRow(Base):
    """A published routing table; ``body`` is its ``as_dict()`` for an exact round-trip.

    Bodies written before ``schema_version`` existed (schema 0) still load: the reader fills
    the defaults and ignores fields it does not know, so the format evolves without a migration.

    ``run_id`` is not a foreign key: a table may be imported from a file whose run lives in
    another database.
    """

    __tablename__ = "routing_tables"

    version: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    generated_at: Mapped[str] = mapped_column(String(64))
    min_accuracy: Mapped[float] = mapped_column(Float)
    switch_cost_factor: Mapped[float] = mapped_column(Float)
    run_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    dataset_identity: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    created_at: Mapped[datetime]
    body: Mapped[dict[str, Any]]


class RoutingCandidateRow(Base):
    """One ranked candidate of one route of a table (``rank`` is 1-based), for queries."""

    __tablename__ = "routing_candidates"

    version: Mapped[str] = mapped_column(
        String(ID_LENGTH),
        ForeignKey("routing_tables.version", ondelete="CASCADE"),
        primary_key=True,
    )
    route: Mapped[str] = mapped_column(String(ROUTE_LENGTH), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    variant: Mapped[str] = mapped_column(String(ID_LENGTH))
    accuracy: Mapped[float] = mapped_column(Float)
    avg_cost_usd: Mapped[float] = mapped_column(Float)
    cases: Mapped[int] = mapped_column(Integer)
    meets_threshold: Mapped[bool] = mapped_column(Boolean)
    p50_latency_ms: Mapped[float | None] = mapped_column(Float)
    context_length: Mapped[int | None] = mapped_column(Integer)


class ActiveTableRow(Base):
    """The single row (``id = 1``) naming the routing table that is served."""

    __tablename__ = "active_table"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("routing_tables.version", ondelete="RESTRICT")
    )
    activated_at: Mapped[datetime]
