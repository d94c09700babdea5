"""What only the SQLite backend promises: the file, its schema, its pragmas, its locks."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, closing, contextmanager
from pathlib import Path

import pytest

from tests.storage.builders import (
    BASE_TIME,
    deadline,
    make_alert,
    make_pair_key,
    make_pair_state,
    make_risk_point,
    make_window_message,
)
from vigil.bots.core.models import AlertStatus, OutboxKind
from vigil.bots.core.ports import SchemaTooNewError, StoreError
from vigil.storage import SqliteStore, migrations
from vigil.storage.migrations import LATEST_SCHEMA_VERSION, split_sql_script

EXPECTED_TABLES = {
    "alerts",
    "case_audit",
    "case_counters",
    "case_evidence",
    "meta",
    "records",
    "outbox",
    "pairs",
    "risk_history",
    "seen_messages",
    "space_settings",
    "turn_memory",
    "window_messages",
}


@contextmanager
def raw_connection(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path, isolation_level=None, timeout=0)) as connection:
        yield connection


def user_version(path: Path) -> int:
    with raw_connection(path) as connection:
        return int(connection.execute("PRAGMA user_version").fetchone()[0])


@pytest.fixture
def database_path(tmp_path: Path) -> Path:
    return tmp_path / "vigil.sqlite3"


async def test_data_persists_across_close_and_reopen(database_path: Path) -> None:
    state = make_pair_state()
    async with SqliteStore(database_path) as store:
        await store.save_pair(state)
        await store.append_window(state.key, make_window_message(1), keep=5)
        alert = await store.create_alert(make_alert(state.key))
        await store.enqueue_delivery(alert_id=alert.alert_id, kind=OutboxKind.POST, revision=1, now=BASE_TIME)

    async with SqliteStore(str(database_path)) as reopened:
        assert await reopened.load_pair(state.key) == state
        assert await reopened.load_window(state.key) == [make_window_message(1)]
        assert await reopened.get_alert(alert.alert_id) == alert
        assert await reopened.pending_delivery_count() == 1


async def test_file_uses_wal_and_enforces_foreign_keys(database_path: Path) -> None:
    async with SqliteStore(database_path) as store:
        with raw_connection(database_path) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # An outbox row for an alert that does not exist breaks its foreign key.
        with pytest.raises(StoreError, match="FOREIGN KEY"):
            await store.enqueue_delivery(alert_id=999, kind=OutboxKind.POST, revision=1, now=BASE_TIME)
        assert await store.pending_delivery_count() == 0


async def test_every_table_is_strict(database_path: Path) -> None:
    async with SqliteStore(database_path):
        pass

    with raw_connection(database_path) as connection:
        tables = dict(
            connection.execute(
                "SELECT name, strict FROM pragma_table_list "
                "WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
        )
        assert set(tables) == EXPECTED_TABLES
        assert set(tables.values()) == {1}
        with pytest.raises(sqlite3.IntegrityError, match="cannot store TEXT value in INT"):
            connection.execute(
                "INSERT INTO pairs (platform, space_id, user_a, user_b, first_seen, last_seen, "
                "message_count, channel_ids, model_state, risk, above_threshold_streak) "
                "VALUES ('d', 's', 'a', 'b', 't', 't', 'three', '[]', '', 0.5, 0)"
            )


async def test_newer_schema_is_refused_and_left_untouched(database_path: Path) -> None:
    with raw_connection(database_path) as connection:
        connection.execute("CREATE TABLE from_the_future (x INTEGER)")
        connection.execute(f"PRAGMA user_version = {LATEST_SCHEMA_VERSION + 1}")
    before = await asyncio.to_thread(database_path.read_bytes)

    with pytest.raises(SchemaTooNewError) as raised:
        await SqliteStore(database_path).open()

    message = str(raised.value)
    assert f"schema version {LATEST_SCHEMA_VERSION + 1}" in message
    assert f"up to {LATEST_SCHEMA_VERSION}" in message
    assert "upgrade Vigil" in message
    assert str(database_path) in message
    assert await asyncio.to_thread(database_path.read_bytes) == before
    assert not database_path.with_name(database_path.name + "-wal").exists()


async def test_a_file_that_is_not_a_database_is_refused(database_path: Path) -> None:
    contents = b"these are not the bytes you are looking for\n" * 50
    await asyncio.to_thread(database_path.write_bytes, contents)

    with pytest.raises(StoreError, match="not a SQLite database") as raised:
        await SqliteStore(database_path).open()

    assert str(database_path) in str(raised.value)
    assert await asyncio.to_thread(database_path.read_bytes) == contents


async def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "vigil.sqlite3"
    with pytest.raises(StoreError, match="folder exists") as raised:
        await SqliteStore(missing).open()
    assert str(missing) in str(raised.value)


async def test_open_gives_up_on_a_lock_held_past_the_busy_timeout(database_path: Path) -> None:
    with raw_connection(database_path) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()

        with pytest.raises(StoreError, match="locked") as raised:
            await SqliteStore(database_path, busy_timeout_s=0.2).open()

        assert time.monotonic() - started >= 0.15
        assert str(database_path) in str(raised.value)
        holder.execute("ROLLBACK")

    # Nothing was half-done: the next open migrates normally.
    async with SqliteStore(database_path) as store:
        assert await store.count_pairs() == 0
    assert user_version(database_path) == LATEST_SCHEMA_VERSION


async def test_open_waits_out_a_short_lock(database_path: Path) -> None:
    with raw_connection(database_path) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        asyncio.get_running_loop().call_later(0.2, holder.execute, "COMMIT")

        async with SqliteStore(database_path, busy_timeout_s=5) as store:
            assert await store.count_pairs() == 0


async def test_writes_give_up_on_a_long_lock_and_wait_out_a_short_one(database_path: Path) -> None:
    state = make_pair_state()
    async with SqliteStore(database_path, busy_timeout_s=0.2) as store:
        await store.save_pair(state)
        changed = make_pair_state(message_count=10)
        with raw_connection(database_path) as holder:
            holder.execute("BEGIN IMMEDIATE")

            with pytest.raises(StoreError, match="locked"):
                await store.save_pair(changed)
            # WAL: reading is not blocked by another connection's write lock.
            assert await store.load_pair(state.key) == state

            asyncio.get_running_loop().call_later(0.1, holder.execute, "COMMIT")
            await store.save_pair(changed)

        assert await store.load_pair(state.key) == changed


async def test_a_transaction_that_cannot_start_is_a_locked_error(database_path: Path) -> None:
    async with SqliteStore(database_path, busy_timeout_s=0.1) as store:
        with raw_connection(database_path) as holder:
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError, match="locked"):
                async with store.transaction():
                    pytest.fail("the body must not run without the write lock")
            holder.execute("ROLLBACK")
        # The store's lock was released: it is still usable.
        await store.save_pair(make_pair_state())
        assert await store.count_pairs() == 1


async def test_migrations_are_idempotent_on_reopen(database_path: Path) -> None:
    async with SqliteStore(database_path) as store:
        await store.save_pair(make_pair_state())
    with raw_connection(database_path) as connection:
        schema_before = connection.execute(
            "SELECT type, name, sql FROM sqlite_schema ORDER BY name"
        ).fetchall()

    for _ in range(2):
        async with SqliteStore(database_path) as store:
            assert await store.count_pairs() == 1

    assert user_version(database_path) == LATEST_SCHEMA_VERSION
    with raw_connection(database_path) as connection:
        assert connection.execute("SELECT type, name, sql FROM sqlite_schema ORDER BY name").fetchall() == (
            schema_before
        )


async def test_a_failing_migration_changes_nothing(
    database_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SqliteStore(database_path):
        pass
    broken = "CREATE TABLE added_by_v2 (x INTEGER) STRICT; INSERT INTO no_such_table VALUES (1);"
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, broken))
    monkeypatch.setattr(migrations, "LATEST_SCHEMA_VERSION", LATEST_SCHEMA_VERSION + 1)

    with pytest.raises(StoreError, match="no_such_table"):
        await SqliteStore(database_path).open()

    assert user_version(database_path) == LATEST_SCHEMA_VERSION
    with raw_connection(database_path) as connection:
        assert connection.execute(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'added_by_v2'"
        ).fetchone() == (0,)


def test_split_sql_script_respects_literals_comments_and_triggers() -> None:
    script = """
        -- a comment; with a semicolon
        CREATE TABLE t (x TEXT DEFAULT 'a;b');
        CREATE TRIGGER t_insert AFTER INSERT ON t BEGIN
            UPDATE t SET x = 'c;d';
            DELETE FROM t WHERE x = 'e';
        END;
        -- trailing comment
    """

    statements = split_sql_script(script)

    assert len(statements) == 2
    assert statements[0].endswith("CREATE TABLE t (x TEXT DEFAULT 'a;b');")
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    with pytest.raises(ValueError, match="incomplete"):
        split_sql_script("CREATE TABLE t (x TEXT")


async def test_case_numbers_survive_removed_alert_rows(database_path: Path) -> None:
    key = make_pair_key()
    async with SqliteStore(database_path) as store:
        await store.save_pair(make_pair_state(key))
        first = await store.create_alert(make_alert(key))
        await store.update_alert(dataclasses.replace(first, status=AlertStatus.CLOSED))
        second = await store.create_alert(make_alert(key))
    with raw_connection(database_path) as connection:
        connection.execute("DELETE FROM alerts")

    async with SqliteStore(database_path) as store:
        third = await store.create_alert(make_alert(key))

    assert [first.case_number, second.case_number, third.case_number] == [1, 2, 3]


async def test_window_rows_cascade_with_their_pair(database_path: Path) -> None:
    state = make_pair_state()
    async with SqliteStore(database_path) as store:
        await store.save_pair(state)
        await store.append_window(state.key, make_window_message(1), keep=5)
        await store.append_risk(make_risk_point(state.key, 1))
    with raw_connection(database_path) as connection:
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("DELETE FROM pairs")
        assert connection.execute("SELECT count(*) FROM window_messages").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM risk_history").fetchone() == (0,)


async def test_store_must_be_open(database_path: Path) -> None:
    store = SqliteStore(database_path)
    with pytest.raises(StoreError, match="not open"):
        await store.count_pairs()
    await store.open()
    with pytest.raises(StoreError, match="already open"):
        await store.open()
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.load_pair(make_pair_key())


async def test_message_text_never_reaches_the_logs(
    database_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "please keep this between us"
    caplog.set_level(logging.DEBUG)
    state = make_pair_state()
    message = dataclasses.replace(make_window_message(1), text=secret)

    async with SqliteStore(database_path) as store:
        await store.save_pair(state)
        await store.append_window(state.key, message, keep=5)
        assert (await store.load_window(state.key))[0].text == secret

    assert caplog.records, "the store is expected to log something (open/close)"
    assert all(secret not in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("inside_transaction", [False, True])
async def test_a_second_open_alert_for_a_pair_is_refused_and_burns_no_case_number(
    inside_transaction: bool,
) -> None:
    key, other_key = make_pair_key("u1", "u2"), make_pair_key("u1", "u3")
    async with SqliteStore(":memory:") as store:
        await store.save_pair(make_pair_state(key))
        await store.save_pair(make_pair_state(other_key))
        async with deadline(), AsyncExitStack() as stack:
            if inside_transaction:
                await stack.enter_async_context(store.transaction())
            first = await store.create_alert(make_alert(key))
            with pytest.raises(StoreError, match="UNIQUE"):
                await store.create_alert(make_alert(key))
            second = await store.create_alert(make_alert(other_key))

        assert (first.case_number, second.case_number) == (1, 2)
        listed = await store.alerts_for_space(platform="discord", space_id="guild-1", limit=10)
        assert [alert.alert_id for alert in listed] == [second.alert_id, first.alert_id]


async def test_a_write_cancelled_while_waiting_for_the_lock_leaves_the_store_usable(
    database_path: Path,
) -> None:
    state = make_pair_state()
    async with SqliteStore(database_path, busy_timeout_s=5) as store:
        with raw_connection(database_path) as holder:
            holder.execute("BEGIN IMMEDIATE")
            waiting = asyncio.create_task(store.save_pair(state))
            await asyncio.sleep(0.1)
            waiting.cancel()
            # Cancelling cannot stop the BEGIN already waiting on aiosqlite's thread; the task finishes once
            # that returns, here when the other connection lets go.
            asyncio.get_running_loop().call_later(0.1, holder.execute, "COMMIT")
            with pytest.raises(asyncio.CancelledError):
                await waiting

        async with deadline():
            await store.save_pair(make_pair_state(make_pair_key("u1", "u3")))
            assert await store.load_pair(state.key) is None
            assert await store.count_pairs() == 1
