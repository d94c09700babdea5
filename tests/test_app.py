"""The composition root: ``App.replay`` (demo, scan, eval) and the ingest queue ``vigil run`` starts with."""

from __future__ import annotations

from pathlib import Path

from tests.support.app_data import POLICY, SETTINGS, channel_message, grooming
from tests.support.fakes import RecordingSink
from vigil.bots.app import App
from vigil.bots.core.ingest import Priority
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore


async def test_replay_feeds_chunks_in_order_and_delivers_what_each_raised(
    tmp_path: Path, keyword_detector: OnnxDetector
) -> None:
    async with SqliteStore(tmp_path / "vigil.sqlite3") as store:
        app = App(settings=SETTINGS, store=store, detector=keyword_detector, policy=POLICY)
        sink = RecordingSink()
        app.attach_sink(sink)
        messages = grooming(10)
        posted_after_chunk: list[int] = []
        handled: list[str] = []
        async for results in app.replay(messages, chunk=4):
            handled.extend(result.message_id for result in results)
            posted_after_chunk.append(len(sink.posted))
        assert handled == [m.message_id for m in messages]
        assert len(posted_after_chunk) == 3, "10 messages in chunks of 4"
        assert posted_after_chunk[-1] == 1, "the alert is delivered during the replay, not after it"


async def test_the_ingest_queue_watches_pairs_with_an_open_alert_from_the_start(
    tmp_path: Path, keyword_detector: OnnxDetector
) -> None:
    """After a restart, a flood must not shed the messages of a pair moderators are looking at."""
    database = tmp_path / "vigil.sqlite3"
    async with SqliteStore(database) as store:
        app = App(settings=SETTINGS, store=store, detector=keyword_detector, policy=POLICY)
        async for _ in app.replay(grooming(10)):
            pass
    async with SqliteStore(database) as store:
        restarted = App(settings=SETTINGS, store=store, detector=keyword_detector, policy=POLICY)
        queue = await restarted.ingest_queue()
        from_the_pair = channel_message(100, author="adult", to="kid", text="you there?")
        from_others = channel_message(101, author="gamer1", to="gamer2", text="gg")
        assert queue.priority_of(from_the_pair) is Priority.PRIORITY
        assert queue.priority_of(from_others) is Priority.CHATTER
        assert queue.stats().watched_pairs == 1
