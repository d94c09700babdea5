"""What only ``PostgresStore`` promises, beyond the store contract it shares with SQLite: its migrations,
several processes (here: several stores, each with its own connection pool) on one database, and a DSN
that never shows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.cases.helpers import MODERATOR, PLATFORM, SPACE, make_harness, vigil
from tests.storage import postgres_server
from tests.storage.builders import (
    BASE_TIME,
    deadline,
    make_alert,
    make_pair_key,
    make_pair_state,
    make_risk_point,
    make_window_message,
)
from tests.support.app_data import POLICY, SETTINGS, grooming
from tests.support.fakes import RecordingSink
from vigil.bots.app import App, AppError, configured_store
from vigil.bots.case_commands import CaseCommandError
from vigil.bots.core.cases import CaseAction
from vigil.bots.core.models import OutboxKind
from vigil.bots.core.ports import PairChanges, SchemaTooNewError, StoreError, TransientStoreError
from vigil.config.settings import Settings, StorageSettings, check_settings
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage import postgres_migrations
from vigil.storage.postgres import PostgresStore
from vigil.storage.postgres_migrations import LATEST_SCHEMA_VERSION

PASSWORD = "hunter2-not-a-real-password"


@pytest.fixture
async def store(postgres_dsn: str) -> AsyncIterator[PostgresStore]:
    async with PostgresStore(postgres_dsn, max_connections=2) as opened:
        yield opened


async def _fetchval(dsn: str, sql: str) -> object:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


# ---------------------------------------------------------------------- migrations


async def test_a_fresh_database_is_migrated_once_and_reopened_as_is(postgres_dsn: str) -> None:
    async with PostgresStore(postgres_dsn) as first:
        await first.save_pair(make_pair_state())
    assert await _fetchval(postgres_dsn, "SELECT version FROM vigil_schema_version") == LATEST_SCHEMA_VERSION

    async with PostgresStore(postgres_dsn) as again:
        assert await again.count_pairs() == 1
    assert await _fetchval(postgres_dsn, "SELECT count(*) FROM vigil_schema_version") == 1


async def test_a_database_from_a_newer_vigil_is_refused_and_left_untouched(postgres_dsn: str) -> None:
    async with PostgresStore(postgres_dsn):
        pass
    connection = await asyncpg.connect(postgres_dsn)
    try:
        await connection.execute("UPDATE vigil_schema_version SET version = 99")
    finally:
        await connection.close()

    with pytest.raises(SchemaTooNewError, match="schema version 99") as raised:
        await PostgresStore(postgres_dsn).open()

    assert "upgrade Vigil" in str(raised.value)
    assert postgres_dsn not in str(raised.value)
    assert await _fetchval(postgres_dsn, "SELECT version FROM vigil_schema_version") == 99


async def test_a_failed_migration_leaves_the_database_at_the_version_before(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with PostgresStore(postgres_dsn):
        pass
    broken = "CREATE TABLE half_done (x INTEGER); SELECT 1 / 0;"
    monkeypatch.setattr(postgres_migrations, "MIGRATIONS", (*postgres_migrations.MIGRATIONS, broken))
    monkeypatch.setattr(postgres_migrations, "LATEST_SCHEMA_VERSION", LATEST_SCHEMA_VERSION + 1)

    with pytest.raises(StoreError, match="division by zero"):
        await PostgresStore(postgres_dsn).open()

    assert await _fetchval(postgres_dsn, "SELECT version FROM vigil_schema_version") == LATEST_SCHEMA_VERSION
    assert await _fetchval(postgres_dsn, "SELECT to_regclass('half_done') IS NULL") is True
    # And the migration lock was given back: the next start is not kept waiting.
    monkeypatch.undo()
    async with deadline(), PostgresStore(postgres_dsn) as reopened:
        assert await reopened.count_pairs() == 0


async def test_processes_starting_together_migrate_once(postgres_dsn: str) -> None:
    stores = [PostgresStore(postgres_dsn) for _ in range(4)]
    try:
        async with deadline():
            await asyncio.gather(*(store.open() for store in stores))
        await stores[0].save_pair(make_pair_state())
        assert [await store.count_pairs() for store in stores] == [1, 1, 1, 1]
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    assert await _fetchval(postgres_dsn, "SELECT count(*) FROM meta WHERE key = 'encryption'") == 1


async def test_the_audit_trail_is_append_only_in_the_server_too(
    store: PostgresStore, postgres_dsn: str
) -> None:
    await store.append_audit(
        platform="p", space_id="s", case_number=1, at=BASE_TIME, actor_id="mod", action="claim"
    )
    connection = await asyncpg.connect(postgres_dsn)
    try:
        for statement in ("UPDATE case_audit SET action = 'dismiss'", "DELETE FROM case_audit"):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await connection.execute(statement)
    finally:
        await connection.close()


# ---------------------------------------------------------------------- several processes


async def test_delivery_workers_never_claim_one_item_twice(postgres_dsn: str) -> None:
    workers = [PostgresStore(postgres_dsn, max_connections=2) for _ in range(3)]
    for worker in workers:
        await worker.open()
    try:
        setup = workers[0]
        for index in range(40):
            key = make_pair_key("u0", f"u{index + 1}")
            await setup.save_pair(make_pair_state(key))
            alert = await setup.create_alert(make_alert(key))
            await setup.enqueue_delivery(
                alert_id=alert.alert_id, kind=OutboxKind.POST, revision=1, now=BASE_TIME
            )

        async def drain(worker: PostgresStore) -> list[int]:
            claimed: list[int] = []
            while batch := await worker.claim_deliveries(
                now=BASE_TIME, limit=3, lease=timedelta(minutes=5), worker="w"
            ):
                claimed += [item.item_id for item in batch]
                await asyncio.sleep(0)
            return claimed

        async with deadline():
            claims = await asyncio.gather(*(drain(worker) for worker in workers))
    finally:
        await asyncio.gather(*(worker.close() for worker in workers))

    every = [item for claim in claims for item in claim]
    assert len(every) == 40
    assert len(set(every)) == 40


@pytest.mark.parametrize("keep", [5, 1000])
async def test_two_writers_of_one_pair_lose_no_update(postgres_dsn: str, keep: int) -> None:
    writers = [PostgresStore(postgres_dsn, max_connections=2) for _ in range(2)]
    for writer in writers:
        await writer.open()
    key = make_pair_key()
    per_writer = 25
    try:
        await writers[0].save_pair(make_pair_state(key))

        async def write(number: int, writer: PostgresStore) -> None:
            for index in range(per_writer):
                message_number = number * 1000 + index
                message = make_window_message(message_number)
                # No pair state in the batch: only the explicit row lock orders the two writers.
                await writer.apply_pair_changes(
                    PairChanges(
                        window=((key, message),), keep=keep, risks=(make_risk_point(key, message_number),)
                    )
                )

        async with asyncio.timeout(30):
            await asyncio.gather(*(write(number, writer) for number, writer in enumerate(writers)))
        reader = writers[0]
        window = await reader.load_window(key)
        history = await reader.risk_history(key, limit=1000)
    finally:
        await asyncio.gather(*(writer.close() for writer in writers))

    assert len(history) == 2 * per_writer
    assert len({point.message_id for point in history}) == 2 * per_writer
    assert len(window) == min(keep, 2 * per_writer)
    # The window is the newest messages in the order they were appended: the tail of the risk history.
    assert [message.message_id for message in window] == [point.message_id for point in history][
        -len(window) :
    ]


# ---------------------------------------------------------------------- the DSN is a secret


async def test_the_dsn_never_shows_in_errors_logs_or_repr(
    postgres_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Trust authentication ignores the password; the store must still never show it.
    with_password = postgres_dsn.replace("postgres@", f"postgres:{PASSWORD}@")
    async with PostgresStore(with_password) as opened:
        await opened.save_pair(make_pair_state())
        assert PASSWORD not in repr(opened)
        assert PASSWORD not in opened.database
    missing = with_password.replace("/vigil_", "/no_such_database_vigil_")
    unreachable = f"postgresql://vigil:{PASSWORD}@/vigil?host=/nonexistent-socket-dir"
    for dsn in (missing, unreachable, f"postgresql://vigil:{PASSWORD}@[bad"):
        with pytest.raises(StoreError) as raised:
            await PostgresStore(dsn, connect_timeout_s=2).open()
        assert PASSWORD not in str(raised.value)
        assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert PASSWORD not in caplog.text


def test_the_app_takes_the_dsn_from_the_environment_variable_the_config_names() -> None:
    settings = Settings(storage=StorageSettings(backend="postgres", postgres_dsn_env="MY_DSN"))
    dsn = f"postgresql://vigil:{PASSWORD}@db.example/vigil"

    store = configured_store(settings, database="unused.sqlite3", backend="postgres", environ={"MY_DSN": dsn})

    assert isinstance(store, PostgresStore)
    assert store.database == "PostgreSQL database vigil"
    assert PASSWORD not in repr(store)
    with pytest.raises(AppError, match="MY_DSN"):
        configured_store(settings, database="unused.sqlite3", backend="postgres", environ={})
    problems = check_settings(settings, {})
    assert any("MY_DSN" in problem for problem in problems)
    assert not any("MY_DSN" in problem for problem in check_settings(settings, {"MY_DSN": dsn}))
    assert not any(PASSWORD in problem for problem in check_settings(settings, {"MY_DSN": dsn}))


# ---------------------------------------------------------------------- the app on Postgres


async def test_the_app_raises_and_delivers_an_alert_on_postgres(
    postgres_dsn: str, keyword_detector: OnnxDetector
) -> None:
    async with PostgresStore(postgres_dsn) as store:
        app = App(settings=SETTINGS, store=store, detector=keyword_detector, policy=POLICY)
        sink = RecordingSink()
        app.attach_sink(sink)
        async for _ in app.replay(grooming(10), chunk=4):
            pass
        assert len(sink.posted) == 1
        assert len(await store.open_alert_keys()) == 1
        assert await store.pending_delivery_count() == 0


async def test_a_dropped_connection_loses_no_batch(
    postgres_server: postgres_server.PostgresServer,
    postgres_dsn: str,
    keyword_detector: OnnxDetector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As a database restart looks to Vigil: every connection it holds is cut between two batches."""
    messages = grooming(10)
    async with PostgresStore(postgres_dsn) as store:
        app = App(settings=SETTINGS, store=store, detector=keyword_detector, policy=POLICY)
        sink = RecordingSink()
        app.attach_sink(sink)
        await app.monitor.handle_batch(messages[:4])
        postgres_server.psql_command(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'vigil'"
        )
        with caplog.at_level(logging.WARNING, logger="vigil.bots.core.monitor"):
            results = await app.monitor.handle_batch(messages[4:])
        assert [r.skipped for r in results] == [None] * 6
        assert "the store failed transiently" in caplog.text
        [key] = {pair.key for r in results for pair in r.pairs}
        state = await store.load_pair(key)
        assert state is not None and state.message_count == 10  # none lost, none counted twice
        assert len(await store.open_alert_keys()) == 1


async def test_a_lasting_store_failure_is_not_retried_forever(
    postgres_dsn: str, keyword_detector: OnnxDetector
) -> None:
    async with PostgresStore(postgres_dsn) as store:
        app = App(settings=SETTINGS, store=store, detector=keyword_detector, policy=POLICY)
        await app.monitor.handle_batch(grooming(2))
    # The store is closed: not transient, so the caller hears of it at once.
    with pytest.raises(StoreError) as raised:
        await app.monitor.handle_batch(grooming(4)[2:])
    assert not isinstance(raised.value, TransientStoreError)


# ---------------------------------------------------------------------- no server binaries


def test_without_server_binaries_the_tests_skip_but_fail_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres_server, "find_postgres_bin", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install postgresql"):
        postgres_server.postgres_server_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"\.ci/run installs"):
        postgres_server.postgres_server_or_skip()


# ---------------------------------------------------------------------- the case commands on Postgres


async def test_the_case_commands_read_the_configured_postgres_database(
    *,
    postgres_dsn: str,
    keyword_detector: OnnxDetector,
    keyword_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with PostgresStore(postgres_dsn) as store:
        harness = make_harness(store, keyword_detector)
        first = await harness.raise_alert("adult", "kid")
        await harness.service.act(actor=MODERATOR, case_number=first.case_number, action=CaseAction.CLAIM)
    config = tmp_path / "vigil.toml"
    config.write_text(
        f'[storage]\nbackend = "postgres"\npostgres_dsn_env = "TEST_DSN"\n'
        f'[detector]\nmodel_dir = "{keyword_model_dir}"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("TEST_DSN", postgres_dsn)

    assert await vigil(config, "cases") == 0
    assert f"{PLATFORM}/{SPACE}/1 " in capsys.readouterr().out
    assert await vigil(config, "case", "1", "--platform", PLATFORM, "--space", SPACE) == 0
    assert "claimed by mod-1" in capsys.readouterr().out
    with pytest.raises(CaseCommandError, match="not built for the Postgres backend"):
        await vigil(config, "rekey")
    monkeypatch.delenv("TEST_DSN")
    with pytest.raises(CaseCommandError, match="TEST_DSN"):
        await vigil(config, "cases")
