"""Storage: SQLAlchemy models, the async repository, engines and Alembic migrations.

Typical use::

    store = open_store(url)
    async with store.session() as session:  # one transaction, committed on success
        await repo.upsert_case_result(session, result=row)
    await store.close()

The repository functions are re-exported here; they never commit (the caller owns the
transaction). Only this package imports SQLAlchemy and Alembic.
"""

from autoray.store import repo
from autoray.store.engine import (
    Store,
    make_engine,
    open_store,
    parse_database_url,
    redact_url,
    session_factory,
)
from autoray.store.migrate import (
    check_schema,
    current_revision,
    current_revision_async,
    head_revision,
    in_migrated_store,
    schema_revision,
    upgrade,
    upgrade_async,
)
from autoray.store.models import RUN_STATUSES, TERMINAL_RUN_STATUSES, Base
from autoray.store.repo import (
    ActiveTableInfo,
    LaneFailureRecord,
    RunRecord,
    TableInfo,
    activate_table,
    active_table,
    active_table_info,
    active_version,
    case_keys,
    case_results,
    clear_lane_failures,
    count_case_errors,
    count_case_results,
    create_run,
    existing_case_ids,
    get_run,
    get_summaries,
    get_table,
    lane_failures,
    list_runs,
    list_tables,
    record_lane_failure,
    replace_summaries,
    running_runs,
    save_table,
    set_run_status,
    touch_run,
    upsert_case_result,
    upsert_case_results,
)

__all__ = [
    "RUN_STATUSES",
    "TERMINAL_RUN_STATUSES",
    "ActiveTableInfo",
    "Base",
    "LaneFailureRecord",
    "RunRecord",
    "Store",
    "TableInfo",
    "activate_table",
    "active_table",
    "active_table_info",
    "active_version",
    "case_keys",
    "case_results",
    "clear_lane_failures",
    "check_schema",
    "count_case_errors",
    "count_case_results",
    "create_run",
    "current_revision",
    "current_revision_async",
    "existing_case_ids",
    "get_run",
    "get_summaries",
    "get_table",
    "head_revision",
    "in_migrated_store",
    "lane_failures",
    "list_runs",
    "list_tables",
    "make_engine",
    "open_store",
    "parse_database_url",
    "record_lane_failure",
    "redact_url",
    "replace_summaries",
    "repo",
    "running_runs",
    "save_table",
    "schema_revision",
    "session_factory",
    "set_run_status",
    "touch_run",
    "upgrade",
    "upgrade_async",
    "upsert_case_result",
    "upsert_case_results",
]
