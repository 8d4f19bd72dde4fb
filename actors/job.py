"""Entry point for ``ray job submit``: the same benchmark as ``autoray bench run``.

    ray job submit --working-dir . -- python -m actors.job run examples/small.yaml

Inside a job Ray sets ``RAY_ADDRESS``, so the driver joins the cluster the job was submitted
to; progress goes to the job log, one line every few seconds. Pass ``--database-url`` with an
absolute path (or a PostgreSQL URL): a relative SQLite path would land in the job's temporary
working directory.

Model keys are not passed with the job: a ``runtime_env`` is stored by Ray and shown in its
dashboard. The lanes read them from the nodes' environment (the environment of ``ray start``),
and the preflight checks, before the run starts, that every lane node has them.
"""

from __future__ import annotations

import argparse
import json
import sys

from actors import driver, preflight
from autoray.errors import AutorayError
from autoray.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m actors.job", description="Run an autoray benchmark as a Ray job."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start a run and follow it")
    run.add_argument("config")
    resume = sub.add_parser(
        "resume",
        help="resume a running or finalizing run, or a completed one with dead lanes "
        "(revived, then finalized again)",
    )
    resume.add_argument("run_id")
    for command in (run, resume):
        command.add_argument("--database-url", default=None)
        command.add_argument("--address", default=None)
        command.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    options = driver.DriverOptions(
        address=args.address, database_url=args.database_url, log_to_driver=True
    )
    try:
        if args.command == "run":
            preflight.check_config(args.config, options, settings)
            client, run_id, _ = driver.start(args.config, options, settings)
        else:
            client, _ = driver.resume(args.run_id, options, settings)
            run_id = args.run_id
        print(f"autoray run {run_id} started", flush=True)
        progress = driver.follow(client, run_id, out=sys.stdout, live=False)
    except AutorayError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary = driver.final_summary(progress)
    print(json.dumps(summary) if args.json else "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return 0 if progress.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
