"""A database written before cases existed (schema version 1) upgrades in place, its alerts becoming cases."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from vigil.bots.core.cases import CaseSource, CaseState
from vigil.storage.migrations import LATEST_SCHEMA_VERSION, MIGRATIONS, split_sql_script
from vigil.storage.sqlite import SqliteStore


def write_version_1_database(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        for statement in split_sql_script(MIGRATIONS[0]):
            connection.execute(statement)
        connection.execute(
            "INSERT INTO alerts (platform, space_id, user_a, user_b, case_number, status, risk, peak_risk, "
            "suspect_id, other_id, channel_ids, signals, evidence, created_at, updated_at, revision, shadow, "
            "model_name) VALUES ('discord', 'g', 'a', 'b', 1, 'open', 0.9, 0.9, 'a', 'b', '[]', '[]', '[]', "
            "'2026-01-01T00:00:00.000000+00:00', '2026-01-01T00:00:00.000000+00:00', 3, 0, 'm 1')"
        )
        connection.execute("PRAGMA user_version = 1")


async def test_version_1_alerts_become_open_cases(tmp_path: Path) -> None:
    database = tmp_path / "old.sqlite3"
    write_version_1_database(database)

    async with SqliteStore(database) as store:
        case = await store.get_case(platform="discord", space_id="g", case_number=1)
        audit = await store.audit_events(platform="discord", space_id="g", case_number=1)

    assert case is not None and case.alert.revision == 3
    assert (case.state, case.source, case.hold_until, case.claimed_by) == (
        CaseState.OPEN,
        CaseSource.ALERT,
        None,
        None,
    )
    assert audit == []
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == LATEST_SCHEMA_VERSION == 5
