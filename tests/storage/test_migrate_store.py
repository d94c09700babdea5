"""``vigil migrate-store``: a SQLite database built through the production path (the app replaying grooming
conversations, moderators acting on the cases) is copied into an empty Postgres database, and everything
reads back identically through ``PostgresStore``; the refusals leave both databases as they were."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.cases.helpers import CHILD_SAFETY, MODERATOR, PLATFORM, SPACE, START, make_harness
from tests.support.fakes import FakeClock
from vigil.bots import progress
from vigil.bots.cli import main
from vigil.bots.core.cases import CaseAction
from vigil.bots.core.models import PairKey, SpaceSettings
from vigil.bots.core.monitor import SkipReason
from vigil.bots.core.pairing import TurnMemory
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.crypto import TextCipher
from vigil.storage.migrate import NOT_COPIED, MigrationError, copied_columns, migrate_sqlite_to_postgres
from vigil.storage.migrations import LATEST_SCHEMA_VERSION
from vigil.storage.postgres import PostgresStore
from vigil.storage.sqlite import SqliteStore

KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()
FAR_FUTURE = START + timedelta(days=3650)
PAIRS = (("adult", "kid"), ("adult", "kid-2"), ("adult-2", "kid-3"))
TABLES_WITH_DATA = (
    "seen_messages",
    "pairs",
    "window_messages",
    "risk_history",
    "alerts",
    "case_counters",
    "outbox",
    "space_settings",
    "case_audit",
    "case_evidence",
    "records",
    "turn_memory",
)


def _cipher(encrypted: bool) -> TextCipher | None:
    return TextCipher(key=base64.urlsafe_b64decode(KEY)) if encrypted else None


async def _build_sqlite(path: Path, detector: OnnxDetector, *, cipher: TextCipher | None) -> None:
    """Three cases through the app and the case service: claimed, noted and escalated (preserved evidence,
    a hold); dismissed with a reason; left open with its delivery pending. Plus settings, records, turns."""
    async with SqliteStore(path, cipher=cipher) as store:
        harness = make_harness(store, detector)
        first = await harness.raise_alert(*PAIRS[0])
        second = await harness.raise_alert(*PAIRS[1])
        await harness.deliver()
        for action, reason in ((CaseAction.CLAIM, None), (CaseAction.NOTE, "called the parents \x00 today")):
            result = await harness.service.act(
                actor=MODERATOR, case_number=first.case_number, action=action, reason=reason
            )
            assert result.error is None, result.message
        escalated = await harness.service.act(
            actor=CHILD_SAFETY, case_number=first.case_number, action=CaseAction.ESCALATE
        )
        assert escalated.error is None, escalated.message
        dismissed = await harness.service.act(
            actor=MODERATOR, case_number=second.case_number, action=CaseAction.DISMISS, reason="a game: né"
        )
        assert dismissed.error is None, dismissed.message
        third = await harness.raise_alert(*PAIRS[2])
        assert third.case_number == 3
        assert await store.pending_delivery_count() > 0  # the third case's post is still to deliver
        await store.put_space_settings(
            SpaceSettings(
                platform=PLATFORM,
                space_id=SPACE,
                threshold=0.8,
                alert_channel_id="mods",
                ignored_channel_ids=frozenset({"memes", "art"}),
                shadow_mode=False,
            )
        )
        await store.put_record("slack.installations", "T123", '{"bot_token": "xoxb-not-real"}')
        # An entry about no case (as `vigil forget` writes), with a time that is not a whole second.
        await store.append_audit(
            platform=PLATFORM,
            space_id=SPACE,
            case_number=None,
            at=START + timedelta(microseconds=123_457),
            actor_id="cli:admin",
            action="forget",
            detail="erased 3 messages of member-9",
        )
        await store.save_turn_memory(
            TurnMemory(location=(PLATFORM, SPACE, "general", None), turns='[["m1", "adult"]]', last_at_s=1e9),
            saved_at=START,
        )


async def _snapshot(store: SqliteStore | PostgresStore) -> dict[str, Any]:
    """What the store API reads back about everything the build wrote."""
    keys = [PairKey.of(platform=PLATFORM, space_id=SPACE, first=a, second=b) for a, b in PAIRS]
    cases = [await store.get_case(platform=PLATFORM, space_id=SPACE, case_number=n) for n in (1, 2, 3)]
    return {
        "cases": cases,
        "audit": [
            await store.audit_events(platform=PLATFORM, space_id=SPACE, case_number=n)
            for n in (1, 2, 3, None)
        ],
        "evidence": [await store.load_evidence(case.alert.alert_id) for case in cases if case is not None],
        "pairs": [await store.load_pair(key) for key in keys],
        "windows": [await store.load_window(key) for key in keys],
        "risk": [await store.risk_history(key, limit=1000) for key in keys],
        "settings": await store.get_space_settings(platform=PLATFORM, space_id=SPACE),
        "records": await store.list_records("slack.installations"),
        "deliveries": await store.due_deliveries(now=FAR_FUTURE, limit=100),
        "pending": await store.pending_delivery_count(),
        "turns": await store.load_turn_memory(limit=100),
        "seen": await store.seen_message_ids(
            platform=PLATFORM, space_id=SPACE, message_ids=[f"m-{n}" for n in range(1, 40)]
        ),
        "open": sorted(await store.open_alert_keys(), key=str),
        "pair_count": await store.count_pairs(),
    }


async def _table_counts(dsn: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn)
    try:
        return {
            name: int(await connection.fetchval(f"SELECT count(*) FROM {name}")) for name in TABLES_WITH_DATA
        }
    finally:
        await connection.close()


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
async def test_everything_reads_back_identically_and_case_numbers_continue(
    *, encrypted: bool, postgres_dsn: str, keyword_detector: OnnxDetector, tmp_path: Path
) -> None:
    source = tmp_path / "vigil.sqlite3"
    await _build_sqlite(source, keyword_detector, cipher=_cipher(encrypted))
    async with SqliteStore(source, cipher=_cipher(encrypted)) as sqlite_store:
        before = await _snapshot(sqlite_store)
    # Nothing compared below is vacuous: every kind of row the build made is there to compare.
    cases = before["cases"]
    assert [case.alert.case_number for case in cases] == [1, 2, 3]
    assert cases[0].hold_until is not None and cases[1].dismiss_reason == "a game: né"
    assert before["evidence"][0] and before["deliveries"] and before["turns"] and before["records"]
    assert all(before["windows"]) and all(before["risk"]) and before["settings"] is not None
    assert [event.action for event in before["audit"][3]] == ["forget"]
    source_bytes = source.read_bytes()

    totals: list[int] = []
    copied: list[int] = []
    report = await migrate_sqlite_to_postgres(
        source=source, dsn=postgres_dsn, batch=3, on_total=totals.append, on_rows=copied.append
    )

    counts = dict(report.counts)
    assert all(counts[name] > 0 for name in TABLES_WITH_DATA), counts
    assert await _table_counts(postgres_dsn) == {name: counts[name] for name in TABLES_WITH_DATA}
    assert totals == [report.total] and sum(copied) == report.total
    assert report.encrypted is encrypted
    assert source.read_bytes() == source_bytes  # the source is only read
    async with PostgresStore(postgres_dsn, cipher=_cipher(encrypted)) as postgres_store:
        after = await _snapshot(postgres_store)
        assert after == before
        if encrypted:
            assert after["audit"][0][-1].detail is not None  # sealed in SQLite, opened by the same key
        harness = make_harness(postgres_store, keyword_detector, clock=FakeClock(START + timedelta(days=1)))
        # The copied seen-message ledger knows the ids the build used (m-1, ...): a redelivery is skipped.
        replayed = await harness.monitor.handle(harness.message("adult", "secret groom", to="kid"))
        assert replayed.skipped is SkipReason.DUPLICATE
        harness.sent = 1000
        fourth = await harness.raise_alert("adult-3", "kid-4")
        assert fourth.case_number == 4
        other_space = await harness.raise_alert("adult-3", "kid-5", space_id="guild-2")
        assert other_space.case_number == 1
        # New rows get ids past the copied ones (no identity collision on any table written here).
        assert fourth.alert_id > max(case.alert.alert_id for case in before["cases"] if case is not None)


async def test_the_same_key_is_needed_after_the_copy(
    postgres_dsn: str, keyword_detector: OnnxDetector, tmp_path: Path
) -> None:
    source = tmp_path / "vigil.sqlite3"
    await _build_sqlite(source, keyword_detector, cipher=_cipher(True))
    await migrate_sqlite_to_postgres(source=source, dsn=postgres_dsn)
    with pytest.raises(Exception, match="encrypted, but no encryption key is set"):
        await PostgresStore(postgres_dsn).open()


async def test_a_copy_that_fails_half_way_leaves_nothing_and_can_be_run_again(
    postgres_dsn: str, keyword_detector: OnnxDetector, tmp_path: Path
) -> None:
    source = tmp_path / "vigil.sqlite3"
    await _build_sqlite(source, keyword_detector, cipher=None)
    batches: list[int] = []

    def fail_on_the_fourth_batch(rows: int) -> None:
        batches.append(rows)
        if len(batches) == 4:
            raise RuntimeError("the connection dropped")

    with pytest.raises(RuntimeError, match="the connection dropped"):
        await migrate_sqlite_to_postgres(
            source=source, dsn=postgres_dsn, batch=2, on_rows=fail_on_the_fourth_batch
        )
    assert set((await _table_counts(postgres_dsn)).values()) == {0}

    report = await migrate_sqlite_to_postgres(source=source, dsn=postgres_dsn)
    assert await _table_counts(postgres_dsn) == {name: dict(report.counts)[name] for name in TABLES_WITH_DATA}


async def test_a_damaged_value_stops_the_copy_without_quoting_it(
    postgres_dsn: str, keyword_detector: OnnxDetector, tmp_path: Path
) -> None:
    source = tmp_path / "vigil.sqlite3"
    await _build_sqlite(source, keyword_detector, cipher=None)
    with sqlite3.connect(source) as connection:
        connection.execute("UPDATE risk_history SET timestamp = 'private words' WHERE point_id = 2")
    connection.close()

    with pytest.raises(MigrationError, match=r"risk_history: a row .* cannot be read") as raised:
        await migrate_sqlite_to_postgres(source=source, dsn=postgres_dsn)
    assert "private words" not in str(raised.value)
    assert set((await _table_counts(postgres_dsn)).values()) == {0}


async def test_a_non_empty_target_is_refused_and_left_as_it_was(
    postgres_dsn: str, keyword_detector: OnnxDetector, tmp_path: Path
) -> None:
    source = tmp_path / "vigil.sqlite3"
    await _build_sqlite(source, keyword_detector, cipher=None)
    async with PostgresStore(postgres_dsn) as store:
        await store.put_record("other", "k", "v")
    before = await _table_counts(postgres_dsn)

    for dry_run in (True, False):
        with pytest.raises(MigrationError, match=r"already holds data \(records\).*never merges"):
            await migrate_sqlite_to_postgres(source=source, dsn=postgres_dsn, dry_run=dry_run)
    assert await _table_counts(postgres_dsn) == before


async def test_a_target_that_vigil_only_opened_is_empty_enough(
    postgres_dsn: str, keyword_detector: OnnxDetector, tmp_path: Path
) -> None:
    """A Vigil started once against the new database recorded its encryption marker, nothing else."""
    source = tmp_path / "vigil.sqlite3"
    await _build_sqlite(source, keyword_detector, cipher=_cipher(True))
    async with PostgresStore(postgres_dsn):
        pass
    await migrate_sqlite_to_postgres(source=source, dsn=postgres_dsn)
    async with PostgresStore(postgres_dsn, cipher=_cipher(True)) as store:
        assert (await store.get_case(platform=PLATFORM, space_id=SPACE, case_number=1)) is not None


async def test_a_dry_run_counts_and_changes_nothing(
    postgres_dsn: str, keyword_detector: OnnxDetector, tmp_path: Path
) -> None:
    source = tmp_path / "vigil.sqlite3"
    await _build_sqlite(source, keyword_detector, cipher=None)

    report = await migrate_sqlite_to_postgres(source=source, dsn=postgres_dsn, dry_run=True)

    assert report.dry_run and dict(report.counts)["alerts"] == 3
    connection = await asyncpg.connect(postgres_dsn)
    try:
        # Not even the schema was created.
        assert await connection.fetchval("SELECT to_regclass('vigil_schema_version')") is None
    finally:
        await connection.close()


@pytest.mark.parametrize("version", [LATEST_SCHEMA_VERSION - 1, LATEST_SCHEMA_VERSION + 1])
async def test_a_source_of_another_schema_version_is_refused(
    version: int, postgres_dsn: str, keyword_detector: OnnxDetector, tmp_path: Path
) -> None:
    source = tmp_path / "vigil.sqlite3"
    await _build_sqlite(source, keyword_detector, cipher=None)
    with sqlite3.connect(source) as connection:
        connection.execute(f"PRAGMA user_version = {version:d}")
    connection.close()

    expected = "Run this Vigil once on it first" if version < LATEST_SCHEMA_VERSION else "newer Vigil"
    with pytest.raises(MigrationError, match=expected):
        await migrate_sqlite_to_postgres(source=source, dsn=postgres_dsn)
    assert await _fetch_regclass(postgres_dsn) is None


async def test_a_file_that_is_not_a_vigil_database_is_refused(postgres_dsn: str, tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    connection.close()
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all, just some bytes" * 100)

    with pytest.raises(MigrationError, match="is not a Vigil database"):
        await migrate_sqlite_to_postgres(source=other, dsn=postgres_dsn)
    with pytest.raises(MigrationError, match="is not a SQLite database"):
        await migrate_sqlite_to_postgres(source=junk, dsn=postgres_dsn)
    with pytest.raises(MigrationError, match="no SQLite database at"):
        await migrate_sqlite_to_postgres(source=tmp_path / "missing.sqlite3", dsn=postgres_dsn)


async def _fetch_regclass(dsn: str) -> object:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval("SELECT to_regclass('vigil_schema_version')")
    finally:
        await connection.close()


# ---------------------------------------------------------------------- the command


def _config(tmp_path: Path, *, backend: str) -> Path:
    config = tmp_path / "vigil.toml"
    config.write_text(f'[storage]\nbackend = "{backend}"\npostgres_dsn_env = "TEST_DSN"\n', encoding="utf-8")
    return config


async def test_the_command_copies_reports_counts_and_refuses_a_sqlite_config(
    *,
    postgres_dsn: str,
    keyword_detector: OnnxDetector,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "vigil.sqlite3"
    await _build_sqlite(source, keyword_detector, cipher=None)
    monkeypatch.setenv("TEST_DSN", postgres_dsn)
    postgres_config = _config(tmp_path, backend="postgres")

    def vigil(*args: str) -> int:
        return main(["migrate-store", "--from", str(source), *args])

    sqlite_config = tmp_path / "sqlite.toml"
    sqlite_config.write_text('[storage]\nbackend = "sqlite"\n', encoding="utf-8")
    assert await asyncio.to_thread(vigil, "--config", str(sqlite_config)) == 2
    assert 'backend = "postgres"' in capsys.readouterr().err

    assert await asyncio.to_thread(vigil, "--config", str(postgres_config), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would copy" in out and "alerts" in out
    assert await _fetch_regclass(postgres_dsn) is None

    monkeypatch.setattr(progress, "EVERY_S", 0.0)  # a progress line on every batch, even this small run
    assert await asyncio.to_thread(vigil, "--config", str(postgres_config)) == 0
    captured = capsys.readouterr()
    assert "Copied" in captured.out and "3 alerts" in captured.out
    assert "migrate-store: 100%" in captured.err and "rows copied" in captured.err
    assert postgres_dsn not in captured.out + captured.err

    assert await asyncio.to_thread(vigil, "--config", str(postgres_config)) == 2
    assert "already holds data" in capsys.readouterr().err

    monkeypatch.delenv("TEST_DSN")
    assert await asyncio.to_thread(vigil, "--config", str(postgres_config)) == 2
    assert "TEST_DSN" in capsys.readouterr().err


async def test_every_sqlite_column_is_copied_or_left_on_purpose(tmp_path: Path) -> None:
    """A column added to SQLite's schema and forgotten here would be lost by every move to Postgres."""
    store = SqliteStore(tmp_path / "schema.sqlite3")
    await store.open()
    await store.close()
    connection = sqlite3.connect(tmp_path / "schema.sqlite3")
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        schema = {
            table: frozenset(row[1] for row in connection.execute(f'PRAGMA table_info("{table}")'))
            for table in tables
            if not table.startswith("sqlite_")
        }
    finally:
        connection.close()
    copied = copied_columns()
    assert set(schema) == set(copied), "a table is neither copied nor known"
    for table, columns in schema.items():
        left = columns - copied[table]
        assert left == NOT_COPIED.get(table, frozenset()), f"{table}: {sorted(left)} not copied"
