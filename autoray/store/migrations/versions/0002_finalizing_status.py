"""Runs may be ``finalizing``: the status is persisted until the run's table is saved.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

A coordinator that died or failed while saving a table used to leave the run ``failed`` (or
``running``) with nothing that could finalize it again; a persisted ``finalizing`` tells a
restarted coordinator, or ``autoray bench resume``, to finalize it without placing lanes.
SQLite cannot alter a CHECK constraint in place, so the table is rebuilt in batch mode.
"""

from __future__ import annotations

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_NEW = "status IN ('running', 'finalizing', 'completed', 'failed', 'cancelled')"
_OLD = "status IN ('running', 'completed', 'failed', 'cancelled')"


def _replace_check(condition: str) -> None:
    with op.batch_alter_table("runs", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_runs_status"), type_="check")
        batch.create_check_constraint("status", condition)


def upgrade() -> None:
    _replace_check(_NEW)


def downgrade() -> None:
    op.execute("UPDATE runs SET status = 'running' WHERE status = 'finalizing'")
    _replace_check(_OLD)
