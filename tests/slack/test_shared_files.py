"""Files Vigil sent to a moderator's DM expire: remembered in the store when sent, deleted with files.delete
``shared_file_hours`` later by the adapter's sweep (at start, then every 15 minutes), forgotten once deleted
or gone. End to end: real bolt and slack_sdk against the fake Web API, the real SQLite store."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.slack.fake_slack import Failure, FakeSlack, SharedFile
from tests.slack.harness import (
    ADULT,
    KID,
    MOD,
    SAFETY,
    TEAM_2,
    TOKEN_2,
    SlackHarness,
    install,
    running_slack,
    second_workspace,
)
from tests.support.fakes import FakeClock
from vigil.bots.slack.blocks import ACTION_TRANSCRIPT
from vigil.bots.slack.installation_store import BOT_NAMESPACE
from vigil.bots.slack.shared_files import GIVE_UP_AFTER, NAMESPACE, SharedFiles, period_words
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

DAY = timedelta(hours=24)
EXPIRY = "Vigil deletes this file after 24 hours"


def started_clock() -> FakeClock:
    # Near the real time: catch-up at start reads history relative to the adapter's clock.
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


def options(clock: FakeClock, **more: Any) -> Mapping[str, Any]:
    return {"clock": clock, **more}


async def shared_transcript(slack: SlackHarness) -> SharedFile:
    await slack.configure()
    await slack.grooming_conversation()
    await slack.alert_posted()
    answer = await slack.command("case 1 transcript", user=SAFETY)
    assert "sent as a text file" in answer["text"]
    return slack.fake.shared_files[-1]


async def records(slack: SlackHarness) -> dict[str, dict[str, Any]]:
    return {key: json.loads(raw) for key, raw in (await slack.store.list_records(NAMESPACE)).items()}


async def test_a_transcript_file_is_deleted_by_the_periodic_sweep_once_it_expires(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    clock = started_clock()
    sweep = {"shared_file_sweep": timedelta(seconds=0.05)}
    async with running_slack(
        store=sqlite_store, detector=keyword_detector, adapter_options=options(clock, **sweep)
    ) as slack:
        shared = await shared_transcript(slack)

        # The answer and the file's comment say when it goes.
        assert shared.initial_comment is not None and EXPIRY in shared.initial_comment
        answer = slack.fake.responses_to(slack.fake.responses[-1][0])[-1]
        assert f"{EXPIRY}; delete it sooner" in answer["text"]
        # Remembered: the workspace, the kind, the time; no text, no names, no user ids.
        assert await records(slack) == {
            shared.file_id: {
                "team_id": "T1",
                "enterprise_id": None,
                "kind": "transcript",
                "shared_at": clock.now.isoformat(),
            }
        }
        raw = json.dumps(await slack.store.list_records(NAMESPACE))
        assert "groom" not in raw and SAFETY not in raw and ADULT not in raw

        # A minute early: the sweeps leave it.
        clock.advance(DAY - timedelta(minutes=1))
        report = await slack.adapter.shared_files.sweep()
        assert report.waiting == 1 and report.deleted == 0
        assert slack.fake.calls_to("files.delete") == []

        clock.advance(timedelta(minutes=1))
        await slack.fake.wait_for(lambda: slack.fake.deleted_files, what="the expired file deleted")
        assert slack.fake.deleted_files == [shared.file_id]
        (call,) = slack.fake.calls_to("files.delete")
        assert call.args["file"] == shared.file_id and call.token == slack.fake.bot_token
        await slack.eventually(lambda: _no_records(slack), what="the record forgotten")


async def _no_records(slack: SlackHarness) -> bool:
    return await slack.store.list_records(NAMESPACE) == {}


async def test_the_chart_and_the_transcript_button_are_remembered_too(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    clock = started_clock()
    async with running_slack(
        store=sqlite_store, detector=keyword_detector, adapter_options=options(clock)
    ) as slack:
        await shared_transcript(slack)
        answer = await slack.command(f"pair <@{ADULT}> <@{KID}>", user=MOD)
        assert "• Chart sent to your direct messages with Vigil: the pair's risk over its last" in answer[
            "text"
        ] and answer["text"].rstrip().endswith(f"{EXPIRY}.")
        chart = slack.fake.shared_files[-1]
        assert chart.initial_comment is not None and chart.initial_comment.endswith(f"{EXPIRY}.")
        clicked = await slack.click(ACTION_TRANSCRIPT, case=1, user=SAFETY)
        assert clicked is not None and EXPIRY in clicked["text"]

        kinds = sorted(entry["kind"] for entry in (await records(slack)).values())
        assert kinds == ["chart", "transcript", "transcript"]
        assert set(await slack.store.list_records(NAMESPACE)) == {f.file_id for f in slack.fake.shared_files}

        clock.advance(DAY)
        report = await slack.adapter.shared_files.sweep()
        assert report.deleted == 3 and await records(slack) == {}
        assert sorted(slack.fake.deleted_files) == sorted(f.file_id for f in slack.fake.shared_files)


async def test_a_file_the_moderator_deleted_is_forgotten_without_a_fuss(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector, caplog: pytest.LogCaptureFixture
) -> None:
    clock = started_clock()
    async with running_slack(
        store=sqlite_store, detector=keyword_detector, adapter_options=options(clock)
    ) as slack:
        shared = await shared_transcript(slack)
        slack.fake.delete_as_member(shared.file_id)
        clock.advance(DAY)

        with caplog.at_level(logging.INFO, logger="vigil.bots.slack.shared_files"):
            report = await slack.adapter.shared_files.sweep()

        assert report.already_gone == 1 and report.deleted == 0 and report.kept == 0
        assert [c.args["file"] for c in slack.fake.calls_to("files.delete")] == [shared.file_id]
        assert await records(slack) == {}
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_network_failure_keeps_the_record_and_a_later_sweep_deletes_the_file(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector, caplog: pytest.LogCaptureFixture
) -> None:
    clock = started_clock()
    async with running_slack(
        store=sqlite_store, detector=keyword_detector, adapter_options=options(clock)
    ) as slack:
        shared = await shared_transcript(slack)
        clock.advance(DAY)
        # The connection dropped, and again on the SDK's one retry of a dropped connection.
        slack.fake.fail("files.delete", Failure(disconnect=True), times=2)

        with caplog.at_level(logging.INFO, logger="vigil.bots.slack"):
            report = await slack.adapter.shared_files.sweep()

        assert report.kept == 1 and report.deleted == 0
        assert set(await records(slack)) == {shared.file_id}
        assert slack.fake.deleted_files == []
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert "(network)" in logged and "groom" not in logged

        # Slack rate-limiting the next try: still kept.
        slack.fake.fail("files.delete", Failure(status=429, error="ratelimited", retry_after=1))
        assert (await slack.adapter.shared_files.sweep()).kept == 1

        report = await slack.adapter.shared_files.sweep()
        assert report.deleted == 1 and report.kept == 0
        assert slack.fake.deleted_files == [shared.file_id]
        assert await records(slack) == {}


async def test_a_refused_token_is_retried_until_the_file_is_long_overdue(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector, caplog: pytest.LogCaptureFixture
) -> None:
    clock = started_clock()
    async with running_slack(
        store=sqlite_store, detector=keyword_detector, adapter_options=options(clock)
    ) as slack:
        shared = await shared_transcript(slack)
        clock.advance(DAY)
        slack.fake.fail("files.delete", Failure(error="invalid_auth"))
        assert (await slack.adapter.shared_files.sweep()).kept == 1
        assert set(await records(slack)) == {shared.file_id}

        # Refused for a month past its time: no longer tried, with one WARNING naming the code.
        clock.advance(GIVE_UP_AFTER)
        slack.fake.fail("files.delete", Failure(error="invalid_auth"))
        with caplog.at_level(logging.INFO, logger="vigil.bots.slack.shared_files"):
            report = await slack.adapter.shared_files.sweep()
        assert report.dropped == 1 and await records(slack) == {}
        (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "(invalid_auth)" in warning.getMessage()


async def test_a_revoked_token_gives_up_at_once_with_one_warning(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector, caplog: pytest.LogCaptureFixture
) -> None:
    clock = started_clock()
    async with running_slack(
        store=sqlite_store, detector=keyword_detector, adapter_options=options(clock)
    ) as slack:
        shared = await shared_transcript(slack)
        clock.advance(DAY)
        slack.fake.revoked_tokens.add(slack.fake.bot_token)
        with caplog.at_level(logging.INFO, logger="vigil.bots.slack.shared_files"):
            report = await slack.adapter.shared_files.sweep()

        assert report.dropped == 1 and await records(slack) == {}
        (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "(token_revoked)" in warning.getMessage() and shared.file_id not in warning.getMessage()


async def test_records_survive_a_restart_and_the_next_start_deletes_the_file(
    tmp_path: Path, keyword_detector: OnnxDetector
) -> None:
    path = tmp_path / "restart.sqlite3"
    clock = started_clock()
    store = SqliteStore(path)
    await store.open()
    try:
        async with running_slack(
            store=store, detector=keyword_detector, adapter_options=options(clock)
        ) as slack:
            shared = await shared_transcript(slack)
            before = list(slack.fake.shared_files)
    finally:
        await store.close()

    def same_slack(fake: FakeSlack) -> None:
        # Slack keeps the file while Vigil is stopped.
        fake.shared_files.extend(before)

    clock.advance(DAY + timedelta(hours=1))
    reopened = SqliteStore(path)
    await reopened.open()
    try:
        async with running_slack(
            store=reopened, detector=keyword_detector, customise=same_slack, adapter_options=options(clock)
        ) as slack:
            # The sweep at start, with no command in between.
            await slack.fake.wait_for(lambda: slack.fake.deleted_files, what="the file deleted at start")
            assert slack.fake.deleted_files == [shared.file_id]
            await slack.eventually(lambda: _no_records(slack), what="the record forgotten")
    finally:
        await reopened.close()


async def test_a_workspace_with_no_installation_left_is_given_up(
    sqlite_store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    clock = started_clock()

    async def uninstalled(team_id: str, enterprise_id: str | None) -> None:
        return None

    files = SharedFiles(records=sqlite_store, client_for=uninstalled, keep_for=DAY, clock=clock)
    put = {"team_id": "T9", "enterprise_id": "E1", "kind": "chart", "shared_at": clock.now.isoformat()}
    await sqlite_store.put_record(NAMESPACE, "F1", json.dumps(put))
    await sqlite_store.put_record(NAMESPACE, "F2", "not json")
    first = await files.sweep()
    # An unreadable record is dropped at once: there is nothing to act on.
    assert first.waiting == 1 and first.unreadable == 1
    clock.advance(DAY)

    with caplog.at_level(logging.INFO, logger="vigil.bots.slack.shared_files"):
        report = await files.sweep()

    assert report.dropped == 1
    assert await sqlite_store.list_records(NAMESPACE) == {}
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "(no_installation)" in warning.getMessage()


async def test_a_sweep_that_fails_does_not_stop_the_periodic_task(
    sqlite_store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenRecords:
        def __init__(self) -> None:
            self.calls = 0
            self.third = asyncio.Event()

        async def list_records(self, namespace: str) -> dict[str, str]:
            self.calls += 1
            if self.calls == 3:
                self.third.set()
            raise OSError("disk gone")

    broken = BrokenRecords()

    async def never(team_id: str, enterprise_id: str | None) -> None:
        raise AssertionError("no file is due")

    files = SharedFiles(records=broken, client_for=never, keep_for=DAY)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="vigil.bots.slack.shared_files"):
        task = asyncio.create_task(files.run(every=timedelta(seconds=0.01)))
        await asyncio.wait_for(broken.third.wait(), timeout=5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert "OSError" in caplog.records[0].getMessage() and "disk gone" not in caplog.text


def test_periods_in_words() -> None:
    assert period_words(1) == "1 hour"
    assert period_words(24) == "24 hours"
    assert period_words(36) == "36 hours"
    assert period_words(72) == "3 days"


async def test_with_oauth_each_workspace_s_files_are_deleted_with_its_own_token(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector, caplog: pytest.LogCaptureFixture
) -> None:
    clock = started_clock()
    async with running_slack(
        store=sqlite_store,
        detector=keyword_detector,
        oauth=True,
        customise=second_workspace,
        adapter_options=options(clock),
    ) as slack:
        status, _ = await install(slack)
        assert status == 200
        await slack.configure(team=TEAM_2)
        await slack.grooming_conversation(team=TEAM_2)
        await slack.alert_posted()
        for _ in range(2):
            answer = await slack.command("case 1 transcript", user=SAFETY, team=TEAM_2)
            assert EXPIRY in answer["text"]
        first, second = (f.file_id for f in slack.fake.shared_files)
        assert {entry["team_id"] for entry in (await records(slack)).values()} == {TEAM_2}

        clock.advance(DAY)
        slack.fake.fail("files.delete", Failure(status=503, error="service_unavailable"))
        report = await slack.adapter.shared_files.sweep()
        assert report.deleted == 1 and report.kept == 1
        (deleted,) = slack.fake.deleted_files
        assert all(c.token == TOKEN_2 for c in slack.fake.calls_to("files.delete"))

        # Uninstalled before the next sweep: no token can delete the other file any more.
        await slack.send_event({"type": "app_uninstalled"}, team=TEAM_2)
        await slack.eventually(lambda: _uninstalled(slack), what="the installation removed")
        with caplog.at_level(logging.INFO, logger="vigil.bots.slack.shared_files"):
            report = await slack.adapter.shared_files.sweep()
        assert report.dropped == 1 and await records(slack) == {}
        assert {deleted} < {first, second}
        (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "(no_installation)" in warning.getMessage() and TEAM_2 not in warning.getMessage()


async def _uninstalled(slack: SlackHarness) -> bool:
    return await slack.store.get_record(BOT_NAMESPACE, f"-:{TEAM_2}") is None


async def test_a_file_that_cannot_be_remembered_is_deleted_at_once(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_slack(store=sqlite_store, detector=keyword_detector) as slack:
        await slack.configure()
        await slack.grooming_conversation()
        await slack.alert_posted()
        put_record = sqlite_store.put_record

        async def failing(namespace: str, key: str, value: str) -> None:
            if namespace == NAMESPACE:
                raise OSError("disk full")
            await put_record(namespace, key, value)

        monkeypatch.setattr(sqlite_store, "put_record", failing)
        answer = await slack.command("case 1 transcript", user=SAFETY)

        # Not left in the DM with nobody to delete it; the messages come in the answer instead.
        (shared,) = slack.fake.shared_files
        assert slack.fake.deleted_files == [shared.file_id]
        assert "the file could not be sent: Vigil could not schedule the file's deletion" in answer["text"]
        assert "secret groom" in json.dumps(answer["blocks"])
        assert await sqlite_store.list_records(NAMESPACE) == {}
