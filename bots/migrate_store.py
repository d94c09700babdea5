"""``vigil migrate-store``: copy a Vigil SQLite database into the configured (empty) Postgres database.

The copying is ``vigil.storage.migrate``; this is the terminal's side: which config, which DSN (from the
environment variable the config names; never printed), progress on stderr, the counts at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vigil.bots.cli_help import add_command
from vigil.bots.progress import MIGRATE, Progress
from vigil.config.settings import Settings, load_settings

if TYPE_CHECKING:
    from vigil.storage.migrate import MigrationReport

__all__ = ["MigrateStoreError", "register_migrate_store"]

logger = logging.getLogger(__name__)


class MigrateStoreError(ValueError):
    """A problem with the command's config or environment, printed for the person at the terminal."""


def register_migrate_store(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = add_command(
        subparsers,
        "migrate-store",
        summary="copy a SQLite database into the empty Postgres database the config names ([storage])",
        examples=(
            "vigil migrate-store --from vigil.sqlite3 --config my-vigil.toml --dry-run",
            "vigil migrate-store --from vigil.sqlite3 --config my-vigil.toml",
        ),
    )
    migrate.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="SQLITE_FILE",
        help="the Vigil SQLite database to copy (read only; stop Vigil first)",
    )
    migrate.add_argument(
        "--dry-run", action="store_true", help="check everything and count the rows, but copy nothing"
    )
    migrate.set_defaults(handler=_migrate_store)


def _settings(args: argparse.Namespace) -> Settings:
    config = getattr(args, "config", None)
    return load_settings(Path(config) if config else None)


async def _migrate_store(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.storage.backend != "postgres":
        raise MigrateStoreError(
            f'the config\'s [storage] backend is "{settings.storage.backend}": migrate-store copies into '
            'Postgres, so pass the config you will run Vigil with, with backend = "postgres" and '
            "postgres_dsn_env naming the DSN's environment variable (docs/scale.md)"
        )
    variable = settings.storage.postgres_dsn_env
    dsn = os.environ.get(variable, "").strip()
    if not dsn:
        # The variable's name only: its value is a secret.
        raise MigrateStoreError(f"the environment variable {variable} (the Postgres DSN) is not set")
    try:
        # Imported here: asyncpg is an optional extra (pip install vigil[postgres]).
        from vigil.storage.migrate import migrate_sqlite_to_postgres  # noqa: PLC0415
    except ImportError:
        raise MigrateStoreError(
            'migrate-store needs asyncpg, which is not installed: pip install "vigil[postgres]"'
        ) from None
    with contextlib.ExitStack() as stack:
        progress: list[Progress] = []

        def start(total: int) -> None:
            progress.append(stack.enter_context(Progress("migrate-store", tally=MIGRATE, total=total)))

        def copied(rows: int) -> None:
            progress[0].tick(done=rows, rows=rows)

        report = await migrate_sqlite_to_postgres(
            source=Path(args.source), dsn=dsn, dry_run=args.dry_run, on_total=start, on_rows=copied
        )
    sys.stdout.write(_summary(report))
    return 0


def _summary(report: MigrationReport) -> str:
    width = max(len(f"{count:,}") for _, count in report.counts)
    lines = [f"  {count:>{width},} {name}" for name, count in report.counts]
    if report.dry_run:
        head = f"Dry run: would copy {report.total:,} rows from {report.source} into the {report.target}:"
        tail = "Nothing was written. Run again without --dry-run to copy."
    else:
        head = f"Copied {report.total:,} rows from {report.source} into the {report.target}:"
        tail = (
            'Next: set [storage] backend = "postgres" in the config you run Vigil with (if not yet) and '
            "start Vigil. Keep the SQLite file as a backup."
        )
    if report.encrypted:
        tail += (
            " The text stays encrypted as it was: Vigil needs the same encryption key (and old keys, if any) "
            "in the environment."
        )
    return "\n".join([head, *lines, tail]) + "\n"
