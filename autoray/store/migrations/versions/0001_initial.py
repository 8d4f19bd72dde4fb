"""Initial schema: runs, case rows, lane failures, summaries, routing tables.

Revision ID: 0001
Revises:
Create Date: 2025-11-28

``variant`` columns hold ``''`` for a model without a variant (see ``autoray.store.models``).
Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_ID = 200
_ROUTE = 80


def _id(name: str) -> sa.Column:
    return sa.Column(name, sa.String(_ID), nullable=False)


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_id"], ["runs.run_id"], name=f"fk_{table}_run_id_runs", ondelete="CASCADE"
    )


def _create_runs() -> None:
    op.create_table(
        "runs",
        _id("run_id"),
        _id("name"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        _id("engine_identity"),
        _id("dataset_identity"),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("finished_at", nullable=True),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("table_version", sa.String(_ID), nullable=True),
        _ts("last_heartbeat_at", nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed', 'cancelled')", name=op.f("ck_runs_status")
        ),
    )
    op.create_index("ix_runs_status_created_at", "runs", ["status", "created_at"])
    op.create_table(
        "run_models",
        _id("run_id"),
        _id("model_id"),
        _id("variant"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("prices", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "model_id", "variant", name="pk_run_models"),
        _run_fk("run_models"),
    )


def _create_case_results() -> None:
    op.create_table(
        "case_results",
        _id("run_id"),
        _id("model_id"),
        _id("variant"),
        _id("case_id"),
        sa.Column("rep", sa.Integer(), nullable=False),
        sa.Column("route", sa.String(_ROUTE), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("timed_out", sa.Boolean(), nullable=False),
        sa.Column("retried", sa.Boolean(), nullable=False),
        sa.Column("output_prefix", sa.Text(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint(
            "run_id", "model_id", "variant", "case_id", "rep", name="pk_case_results"
        ),
        _run_fk("case_results"),
    )
    op.create_index("ix_case_results_run_id_route", "case_results", ["run_id", "route"])


def _create_lane_failures_and_summaries() -> None:
    op.create_table(
        "lane_failures",
        _id("run_id"),
        sa.Column("lane_identity", sa.String(4 * _ID), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("recorded_at"),
        sa.PrimaryKeyConstraint("run_id", "lane_identity", name="pk_lane_failures"),
        _run_fk("lane_failures"),
    )
    op.create_table(
        "summaries",
        _id("run_id"),
        _id("model_id"),
        _id("variant"),
        sa.Column("route", sa.String(_ROUTE), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=False),
        sa.Column("avg_cost_usd", sa.Float(), nullable=True),
        sa.Column("p50_latency_ms", sa.Float(), nullable=True),
        sa.Column("p95_latency_ms", sa.Float(), nullable=True),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("timeouts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "model_id", "variant", "route", name="pk_summaries"),
        _run_fk("summaries"),
    )


def _create_routing_tables() -> None:
    op.create_table(
        "routing_tables",
        _id("version"),
        sa.Column("generated_at", sa.String(64), nullable=False),
        sa.Column("min_accuracy", sa.Float(), nullable=False),
        sa.Column("switch_cost_factor", sa.Float(), nullable=False),
        sa.Column("run_id", sa.String(_ID), nullable=True),
        sa.Column("dataset_identity", sa.String(_ID), nullable=True),
        _ts("created_at"),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_routing_tables"),
    )
    op.create_table(
        "routing_candidates",
        _id("version"),
        sa.Column("route", sa.String(_ROUTE), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        _id("model_id"),
        _id("variant"),
        sa.Column("accuracy", sa.Float(), nullable=False),
        sa.Column("avg_cost_usd", sa.Float(), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("meets_threshold", sa.Boolean(), nullable=False),
        sa.Column("p50_latency_ms", sa.Float(), nullable=True),
        sa.Column("context_length", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("version", "route", "rank", name="pk_routing_candidates"),
        sa.ForeignKeyConstraint(
            ["version"],
            ["routing_tables.version"],
            name="fk_routing_candidates_version_routing_tables",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "active_table",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        _id("version"),
        _ts("activated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_active_table"),
        sa.CheckConstraint("id = 1", name=op.f("ck_active_table_single_row")),
        sa.ForeignKeyConstraint(
            ["version"],
            ["routing_tables.version"],
            name="fk_active_table_version_routing_tables",
            ondelete="RESTRICT",
        ),
    )


def upgrade() -> None:
    _create_runs()
    _create_case_results()
    _create_lane_failures_and_summaries()
    _create_routing_tables()


def downgrade() -> None:
    for table in (
        "active_table",
        "routing_candidates",
        "routing_tables",
        "summaries",
        "lane_failures",
        "case_results",
        "run_models",
        "runs",
    ):
        op.drop_table(table)
