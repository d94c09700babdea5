"""Gateways publish to a real NATS JetStream server; scoring workers share its partitions and write one
Postgres database. Their alerts must equal one monitor's, fed the same messages in the same order.

These run the workers in the test's own process (each with its own store connection pool and monitor, as
separate processes would have), so ownership changes are driven precisely: a worker joining mid-stream, one
leaving gracefully, a lease lapsing. ``test_scale_out_processes.py`` kills real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from tests.broker.replay import START, alert_snapshot, crash_test_messages
from tests.broker.scale_out import wait_until
from tests.support.fakes import FakeClock
from tests.support.nats_server import NatsServer
from vigil.bots.broker.nats import (
    BrokerError,
    BrokerLayout,
    JetStreamPublisher,
    NatsBroker,
    ScoringWorker,
    broker_id,
    decode_message,
    encode_message,
)
from vigil.bots.core.models import ChatMessage
from vigil.bots.core.monitor import Monitor, MonitorConfig
from vigil.bots.core.partitioning import assignment, partition_of, preferred_partitions
from vigil.bots.core.policy import PolicyConfig
from vigil.bots.core.ports import FenceToken
from vigil.bots.metrics import MetricsSnapshot, VigilMetrics, format_status
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.crypto import CipherError, TextCipher
from vigil.storage.postgres import PostgresStore
from vigil.storage.sqlite import SqliteStore

SPACES = 6
PARTITIONS = 8


def policy() -> PolicyConfig:
    return PolicyConfig(
        threshold=0.7,
        sustain_messages=2,
        hysteresis=0.1,
        cooldown=timedelta(0),
        update_min_delta=0.01,
        max_alerts_per_hour=1_000_000,
        shadow_mode=False,
    )


def monitor_on(store: SqliteStore | PostgresStore, detector: OnnxDetector) -> Monitor:
    return Monitor(
        store=store,
        detector=detector,
        config=MonitorConfig(policy=policy(), window_messages=10, evidence_messages=4),
        clock=FakeClock(START),
    )


def layout(*, lease_s: float = 2.0) -> BrokerLayout:
    return BrokerLayout(stream="VIGIL_TEST", partitions=PARTITIONS, lease_s=lease_s, max_age_s=3600.0)


@pytest.fixture(scope="module")
def messages(tmp_path_factory: pytest.TempPathFactory) -> list[ChatMessage]:
    return crash_test_messages(tmp_path_factory.mktemp("scale-out-data"), spaces=SPACES)


async def single_process_snapshot(
    messages: Sequence[ChatMessage], folder: Path, detector: OnnxDetector
) -> dict[tuple[str, str, str], object]:
    store = SqliteStore(str(folder / "single.sqlite3"))
    await store.open()
    try:
        monitor = monitor_on(store, detector)
        for start in range(0, len(messages), 32):
            await monitor.handle_batch(messages[start : start + 32])
        return dict(await alert_snapshot(store, spaces=SPACES))
    finally:
        await store.close()


@dataclass
class RunningWorker:
    worker: ScoringWorker
    stop: asyncio.Event
    task: asyncio.Task[None]
    store: PostgresStore
    broker: NatsBroker


@contextlib.asynccontextmanager
async def running_worker(
    name: str,
    *,
    url: str,
    dsn: str,
    detector: OnnxDetector,
    lease_s: float = 2.0,
    observer: VigilMetrics | None = None,
) -> AsyncIterator[RunningWorker]:
    store = PostgresStore(dsn)
    await store.open()
    broker = await NatsBroker.connect(servers=[url], layout=layout(lease_s=lease_s), name=name)
    worker = ScoringWorker(
        broker=broker,
        monitor=monitor_on(store, detector),
        name=name,
        max_batch=32,
        cipher=None,
        fences=store,
        observer=observer,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield RunningWorker(worker=worker, stop=stop, task=task, store=store, broker=broker)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await broker.aclose()
        await store.close()


async def stream_drained(broker: NatsBroker, *, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = await broker.js.stream_info(broker.layout.stream)
        if info.state.messages == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the workers never emptied the stream")


async def publish_all(publisher: JetStreamPublisher, messages: Sequence[ChatMessage]) -> None:
    for message in messages:
        result = await publisher.handle(message)
        assert result.queued, result


# ------------------------------------------------------------------------------------------ pure parts


def test_a_space_always_maps_to_the_same_partition() -> None:
    first = [partition_of(platform="discord", space_id=str(n), partitions=32) for n in range(1000)]
    again = [partition_of(platform="discord", space_id=str(n), partitions=32) for n in range(1000)]
    assert first == again
    assert set(first) == set(range(32))  # every partition gets spaces
    # Fixed values: a change of the hash would move every space to another partition (and break ordering
    # across an upgrade while messages wait on the broker).
    assert partition_of(platform="discord", space_id="1", partitions=32) == first[1]
    assert partition_of(platform="slack", space_id="T0123", partitions=1) == 0


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 5, 7])
def test_every_partition_has_exactly_one_owner_and_shares_are_even(workers: int) -> None:
    names = [f"worker-{n}" for n in range(workers)]
    owners = assignment(workers=names, partitions=32)
    assert sorted(owners) == list(range(32))
    shares = [list(owners.values()).count(name) for name in names]
    assert max(shares) <= -(-32 // workers)
    # Every worker computes the same answer from the names, whatever their order.
    for name in names:
        mine = preferred_partitions(name, workers=reversed(names), partitions=32)
        assert mine == {p for p, owner in owners.items() if owner == name}


def test_a_worker_leaving_moves_mostly_its_own_partitions() -> None:
    before = assignment(workers=["a", "b", "c", "d"], partitions=64)
    after = assignment(workers=["a", "b", "c"], partitions=64)
    moved = {p for p in range(64) if before[p] != after[p]}
    of_d = {p for p in range(64) if before[p] == "d"}
    assert of_d <= moved
    assert len(moved - of_d) <= 8


def test_the_wire_format_round_trips_plain_and_encrypted() -> None:
    message = ChatMessage(
        platform="discord",
        space_id="g1",
        channel_id="c1",
        message_id="m1",
        author_id="a1",
        text="half an emoji \ud83d and a NUL \x00",
        timestamp=START,
        is_dm=True,
        recipient_ids=("b1",),
        mentioned_user_ids=("b1",),
        author_display_name="Alice",
    )
    key = broker_id(message)
    plain = encode_message(message, cipher=None, message_key=key)
    assert plain is not None
    decoded = decode_message(plain, cipher=None, message_key=key)
    # Half an emoji cannot cross as UTF-8: replaced as the store replaces it; everything else unchanged.
    assert decoded == dataclasses.replace(message, text="half an emoji ? and a NUL \x00")
    cipher = TextCipher(key=b"k" * 32)
    sealed = encode_message(message, cipher=cipher, message_key=key)
    assert sealed is not None and b"half an emoji" not in sealed and b"Alice" not in sealed
    assert decode_message(sealed, cipher=cipher, message_key=key) == decoded
    with pytest.raises(ValueError, match="no encryption key"):
        decode_message(sealed, cipher=None, message_key=key)
    # Sealed to its broker id: it does not open as another message.
    other = broker_id(dataclasses.replace(message, message_id="m2"))
    with pytest.raises(CipherError):
        decode_message(sealed, cipher=cipher, message_key=other)
    with pytest.raises(ValueError):
        decode_message(b'{"not": "a message"}', cipher=None, message_key=key)


# ---------------------------------------------------------------------------------------- real broker


async def test_two_workers_and_a_late_joiner_raise_the_single_process_alerts(
    messages: list[ChatMessage],
    nats_server: NatsServer,
    postgres_dsn: str,
    keyword_detector: OnnxDetector,
    tmp_path: Path,
) -> None:
    expected = await single_process_snapshot(messages, tmp_path, keyword_detector)
    assert len(expected) >= 8, "the data must raise alerts for the comparison to mean anything"
    gateway = await NatsBroker.connect(servers=[nats_server.url], layout=layout(), name="gateway")
    publisher = JetStreamPublisher(broker=gateway, cipher=None)
    third = len(messages) // 3
    try:
        async with running_worker(
            "w1", url=nats_server.url, dsn=postgres_dsn, detector=keyword_detector
        ) as w1:
            await publish_all(publisher, messages[:third])
            async with running_worker(
                "w2", url=nats_server.url, dsn=postgres_dsn, detector=keyword_detector
            ) as w2:
                # w2 joins mid-stream: w1 hands over part of its partitions, in order.
                await publish_all(publisher, messages[third : 2 * third])
                await asyncio.sleep(1.5)
                assert w2.worker.stats().owned, "the second worker never got a partition"
            # w2 left gracefully: its partitions go back to w1 at once.
            await publish_all(publisher, messages[2 * third :])
            await stream_drained(gateway)
            await asyncio.sleep(0.3)
            assert len(w1.worker.stats().owned) == PARTITIONS
            assert await alert_snapshot(w1.store, spaces=SPACES) == expected
    finally:
        await gateway.aclose()


async def test_a_worker_that_vanishes_is_taken_over_after_its_lease(
    messages: list[ChatMessage],
    nats_server: NatsServer,
    postgres_dsn: str,
    keyword_detector: OnnxDetector,
    tmp_path: Path,
) -> None:
    """A worker stops answering without releasing anything (its process frozen or cut off): its leases
    lapse and the survivor takes its partitions, from the first message nobody acknowledged."""
    expected = await single_process_snapshot(messages, tmp_path, keyword_detector)
    gateway = await NatsBroker.connect(servers=[nats_server.url], layout=layout(), name="gateway")
    publisher = JetStreamPublisher(broker=gateway, cipher=None)
    half = len(messages) // 2
    try:
        async with running_worker(
            "survivor", url=nats_server.url, dsn=postgres_dsn, detector=keyword_detector
        ) as survivor:
            doomed_store = PostgresStore(postgres_dsn)
            await doomed_store.open()
            doomed_broker = await NatsBroker.connect(
                servers=[nats_server.url], layout=layout(), name="doomed"
            )
            doomed = ScoringWorker(
                broker=doomed_broker,
                monitor=monitor_on(doomed_store, keyword_detector),
                name="doomed",
                max_batch=32,
                cipher=None,
                fences=doomed_store,
            )
            task = asyncio.create_task(doomed.run(asyncio.Event()))
            await publish_all(publisher, messages[:half])

            async def doomed_owns_partitions() -> bool:
                return bool(doomed.stats().owned)

            # Claiming takes longer on a busy machine; what matters is that the doomed worker owns some.
            await wait_until(doomed_owns_partitions, timeout_s=30, what="the doomed worker to own partitions")
            # Gone without a word: its connection drops first, so it cannot release anything.
            owned_by_doomed = doomed.stats().owned
            await doomed_broker.aclose()
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            await doomed_store.close()
            lapsed = await gateway.owners.get(f"p.{owned_by_doomed[0]}")
            assert lapsed.value == b"doomed", "the lease must lapse, not be released"
            await publish_all(publisher, messages[half:])
            await stream_drained(gateway, timeout_s=90)
            await asyncio.sleep(0.3)
            assert len(survivor.worker.stats().owned) == PARTITIONS
            assert await alert_snapshot(survivor.store, spaces=SPACES) == expected
    finally:
        await gateway.aclose()


async def test_a_stream_of_another_partition_count_is_refused(nats_server: NatsServer) -> None:
    first = await NatsBroker.connect(servers=[nats_server.url], layout=layout(), name="a")
    await first.aclose()
    other = BrokerLayout(stream="VIGIL_TEST", partitions=PARTITIONS * 2, lease_s=2.0, max_age_s=3600.0)
    with pytest.raises(BrokerError, match="created with 8 partitions, the config says 16"):
        await NatsBroker.connect(servers=[nats_server.url], layout=other, name="b")


async def test_an_unreachable_broker_is_a_clear_error_without_the_url() -> None:
    with pytest.raises(BrokerError) as error:
        await NatsBroker.connect(
            servers=["nats://user:hunter2@127.0.0.1:9"], layout=layout(), name="x", give_up_s=1.0
        )
    assert "hunter2" not in str(error.value)
    assert "cannot connect" in str(error.value)


async def test_the_gateway_marks_its_own_bot_users_messages_for_the_workers(nats_server: NatsServer) -> None:
    """Workers never see the gateway's adapters register their bot user, so the gateway flags its messages:
    they must not form pairs on a worker either."""
    gateway = await NatsBroker.connect(servers=[nats_server.url], layout=layout(), name="gateway")
    try:
        publisher = JetStreamPublisher(
            broker=gateway,
            cipher=None,
            is_bot_user=lambda *, platform, user_id: (platform, user_id) == ("slack", "U-VIGIL"),
        )
        said = [
            ChatMessage(
                platform="slack",
                space_id="T1",
                channel_id="C1",
                message_id=str(n),
                author_id=author,
                text="hello",
                timestamp=START,
            )
            for n, author in enumerate(["U-VIGIL", "U-PERSON"])
        ]
        for message in said:
            await publisher.handle(message)
        stored = [
            decode_message(
                (await gateway.js.get_msg(gateway.layout.stream, seq)).data or b"",
                cipher=None,
                message_key="",
            )
            for seq in (1, 2)
        ]
        assert [m.author_is_bot for m in stored] == [True, False]
    finally:
        await gateway.aclose()


async def test_a_worker_whose_lease_was_taken_over_cannot_commit(
    nats_server: NatsServer, postgres_dsn: str, keyword_detector: OnnxDetector
) -> None:
    """Fencing: a worker that still believes it owns its partitions (paused past its lease, say) while a
    newer lease has written them gets its batch rolled back, and gives the partition up."""
    gateway = await NatsBroker.connect(servers=[nats_server.url], layout=layout(), name="gateway")
    try:
        async with running_worker(
            "paused", url=nats_server.url, dsn=postgres_dsn, detector=keyword_detector
        ) as paused:
            await asyncio.sleep(1.0)
            assert len(paused.worker.stats().owned) == PARTITIONS
            # Another owner's newer lease has written every partition meanwhile.
            for partition in range(PARTITIONS):
                assert await paused.store.advance_fence(
                    stream=layout().stream,
                    partition=partition,
                    token=FenceToken(epoch=paused.broker.fence_epoch + 1, revision=1),
                )
            message = ChatMessage(
                platform="http",
                space_id="space-1",
                channel_id="c1",
                message_id="after-takeover",
                author_id="a1",
                text="hello there",
                timestamp=START,
                is_dm=True,
                recipient_ids=("b1",),
            )
            await JetStreamPublisher(broker=gateway, cipher=None).handle(message)
            partition = gateway.layout.partition_of(message)
            for _ in range(50):
                if partition not in paused.worker.stats().owned:
                    break
                await asyncio.sleep(0.1)
            assert partition not in paused.worker.stats().owned
            seen = await paused.store.seen_message_ids(
                platform="http", space_id="space-1", message_ids=["after-takeover"]
            )
            assert seen == frozenset(), "the fenced-off batch must not be saved"
    finally:
        await gateway.aclose()


async def test_a_workers_metrics_show_its_partitions_its_work_and_the_backlog(
    messages: list[ChatMessage],
    nats_server: NatsServer,
    postgres_dsn: str,
    keyword_detector: OnnxDetector,
) -> None:
    metrics = VigilMetrics()
    gateway = await NatsBroker.connect(servers=[nats_server.url], layout=layout(), name="gateway")
    try:
        async with running_worker(
            "measured",
            url=nats_server.url,
            dsn=postgres_dsn,
            detector=keyword_detector,
            observer=metrics,
        ):
            await publish_all(JetStreamPublisher(broker=gateway, cipher=None), messages[:300])
            await stream_drained(gateway)
            await asyncio.sleep(1.5)  # one lease round: the gauges are read then
            snapshot = MetricsSnapshot.parse(metrics.render().decode())
    finally:
        await gateway.aclose()
    assert snapshot.value("vigil_partitions_owned", role="worker") == PARTITIONS
    assert snapshot.value("vigil_broker_backlog", role="worker") == 0
    assert format_status(snapshot).startswith(f"broker: {PARTITIONS} partition(s) held; 0 message(s)")
    # One process (vigil run) exports neither, and its status has no broker line.
    single = MetricsSnapshot.parse(VigilMetrics().render().decode())
    assert not format_status(single).startswith("broker")
    assert snapshot.total("vigil_messages_total") == 300
    assert (snapshot.value("vigil_messages_total", outcome="scored") or 0) > 0


async def test_a_changed_lease_or_a_short_message_life_is_taken_as_configured(
    nats_server: NatsServer,
) -> None:
    first = await NatsBroker.connect(servers=[nats_server.url], layout=layout(lease_s=2.0), name="a")
    epoch = first.fence_epoch
    await first.aclose()
    # [broker] lease_s changed between restarts: the bucket is kept (same epoch), its lease changed.
    changed = BrokerLayout(stream="VIGIL_TEST", partitions=PARTITIONS, lease_s=5.0, max_age_s=60.0)
    second = await NatsBroker.connect(servers=[nats_server.url], layout=changed, name="b")
    try:
        bucket = await second.js.stream_info(f"KV_{changed.bucket}")
        assert bucket.config.max_age == 5.0
        assert second.fence_epoch == epoch > 0
        # A message life shorter than the de-duplication window: the window shrinks to fit.
        stream = await second.js.stream_info(changed.stream)
        assert stream.config.max_age == 60.0
        assert stream.config.duplicate_window is not None and stream.config.duplicate_window <= 60.0
    finally:
        await second.aclose()
