"""Scale-out over NATS JetStream: gateways publish messages, scoring workers own partitions and score them.

* **The stream.** One JetStream stream (``[broker] stream``, work-queue retention, file storage) holds the
  messages on subjects ``<stream>.p.<partition>``; a space's messages all go to one partition
  (``bots/core/partitioning.py``), in the order the gateway received them. A message leaves the stream when
  a worker acknowledges it, which it does only after the store committed the batch holding it; one nobody
  takes within ``max_age_hours`` is dropped by the server.
* **Ownership.** Workers announce themselves (``w.<name>``) and hold their partitions (``p.<n>``) in a
  key-value bucket whose entries expire after ``lease_s``; each renews its entries every third of that. From
  the live names every worker computes the same assignment; a worker releases what it should no longer own
  and creates the entries of what it should (a create fails while another worker holds the entry). A worker
  that dies stops renewing: its entries expire and the others take its partitions.
* **Order across a takeover.** Each partition has one durable pull consumer. A worker taking a partition
  deletes and re-creates it, so delivery restarts at the first message nobody acknowledged, in stream order:
  what the dead worker committed but did not acknowledge comes again and the store's message ledger skips it
  as a duplicate; what it had not committed is scored now, in its place. The worker then reads the
  turn-taking memory from the store again (the dead worker wrote it in each batch's transaction).
* **Fencing.** A worker scores a batch only while its leases of the batch's partitions are still valid by
  its own clock, with a margin; one that lost a lease drops what it fetched for that partition unscored.

Message text on the broker: encrypted with the store's key when ``VIGIL_ENCRYPTION_KEY`` is set (bound to
the message's broker id), removed when acknowledged, and never kept beyond ``max_age_hours``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.js import api

from vigil.bots.core.models import ChatMessage
from vigil.bots.core.monitor import HandleResult, SkipReason
from vigil.bots.core.partitioning import partition_of, preferred_partitions
from vigil.bots.core.ports import FenceToken
from vigil.storage.crypto import TextCipher

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext
    from nats.js.kv import KeyValue

    from vigil.bots.core.monitor import Monitor
    from vigil.bots.core.ports import PartitionFences

__all__ = [
    "BrokerError",
    "BrokerLayout",
    "JetStreamPublisher",
    "NatsBroker",
    "ScoringWorker",
    "WorkerObserver",
    "WorkerStats",
]

logger = logging.getLogger(__name__)

# A publish the server did not confirm within this is tried again (the same broker id: never stored twice).
_PUBLISH_TIMEOUT_S = 5.0
# How long a gateway keeps trying one message while the broker is away before it reports the failure (the
# HTTP API answers 503 with Retry-After; Discord and Slack log it).
_PUBLISH_GIVE_UP_S = 120.0
# A fetched message not acknowledged within this is delivered again (a worker that died mid-batch).
_ACK_WAIT_S = 60.0
# Chunks fetched ahead per partition: two keep the next one ready while a batch is scored.
_CHUNKS_AHEAD = 2
_FETCH_WAIT_S = 1.0
# Publisher de-duplication window: a gateway's retry within it is recognised and not stored again.
_DUPLICATE_WINDOW_S = 300.0
_CIPHER_COLUMN = "broker.message"
# A worker logs what it holds and has done this often (its progress, for operators reading the log).
_REPORT_EVERY_S = 60.0


class BrokerError(Exception):
    """The broker cannot be used as configured (unreachable at start, a stream of another layout)."""


class _FencedOff(Exception):
    """Another worker holds a newer lease of the partition and has written since."""

    def __init__(self, partition: int) -> None:
        super().__init__(f"partition {partition} is fenced off")
        self.partition = partition


class BrokerUnavailable(Exception):
    """The broker did not take a message in time: retry later (the HTTP API answers 503)."""

    retry_after = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerLayout:
    """Names and sizes shared by every gateway and worker of one Vigil (``[broker]`` in the config)."""

    stream: str
    partitions: int
    lease_s: float
    max_age_s: float

    def subject(self, partition: int) -> str:
        return f"{self.stream}.p.{partition}"

    @property
    def subjects(self) -> str:
        return f"{self.stream}.p.*"

    @property
    def bucket(self) -> str:
        return f"{self.stream}_OWNERS"

    @staticmethod
    def consumer(partition: int) -> str:
        return f"partition-{partition}"

    def partition_of(self, message: ChatMessage) -> int:
        return partition_of(platform=message.platform, space_id=message.space_id, partitions=self.partitions)


def broker_id(message: ChatMessage) -> str:
    """The message's id on the broker (``Nats-Msg-Id``): a digest, since platform ids may hold any text."""
    identity = "\x1f".join((message.platform, message.space_id, message.message_id))
    return hashlib.blake2b(identity.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class NatsBroker:
    """One connection to NATS, with the stream and the ownership bucket created (or checked) on it."""

    def __init__(self, *, client: NatsClient, layout: BrokerLayout) -> None:
        self._client = client
        self.layout = layout
        self.js: JetStreamContext = client.jetstream()
        self._owners: KeyValue | None = None
        # Counted so workers can restart their partitions: a reconnection may have lost acknowledgements,
        # and a partition delivered again from its first unacknowledged message keeps its order.
        self.reconnections = 0
        self.closing = False
        self.fence_epoch = 0

    @classmethod
    async def connect(
        cls, *, servers: Sequence[str], layout: BrokerLayout, name: str, give_up_s: float = 30.0
    ) -> NatsBroker:
        """Connect (trying for up to ``give_up_s`` at start; once connected, reconnecting for ever), then
        create or check the stream and the bucket. The URLs may hold credentials: they never reach a log or
        an error."""

        async def on_error(error: Exception) -> None:
            logger.warning("NATS connection problem (%s)", type(error).__name__)

        async def on_disconnected() -> None:
            if not any(broker.closing for broker in connected):
                logger.warning("disconnected from NATS; reconnecting")

        connected: list[NatsBroker] = []

        async def on_reconnected() -> None:
            logger.info("reconnected to NATS")
            for broker in connected:
                broker.reconnections += 1

        try:
            connecting = nats.connect(
                list(servers),
                name=name,
                connect_timeout=5,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                allow_reconnect=True,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
            )
            client = await asyncio.wait_for(connecting, timeout=give_up_s)
        except Exception as error:
            raise BrokerError(f"cannot connect to the NATS server ({type(error).__name__})") from None
        broker = cls(client=client, layout=layout)
        connected.append(broker)
        try:
            await broker._prepare()
        except BaseException:
            await client.close()
            raise
        return broker

    async def _prepare(self) -> None:
        try:
            await self._prepare_stream()
            await self._prepare_bucket()
        except BrokerError:
            raise
        except (nats.errors.Error, nats.js.errors.Error, OSError) as error:
            # The server's own words (no credentials in them): e.g. JetStream not enabled, no disk space.
            detail = getattr(error, "description", None) or type(error).__name__
            raise BrokerError(f"the NATS server refused Vigil's stream or bucket ({detail})") from None

    async def _prepare_stream(self) -> None:
        layout = self.layout
        partitions = str(layout.partitions)
        config = api.StreamConfig(
            name=layout.stream,
            description="Vigil: chat messages waiting to be scored",
            subjects=[layout.subjects],
            retention=api.RetentionPolicy.WORK_QUEUE,
            storage=api.StorageType.FILE,
            max_age=layout.max_age_s,
            # The server refuses a window longer than the messages' life.
            duplicate_window=min(_DUPLICATE_WINDOW_S, layout.max_age_s),
            metadata={"vigil_partitions": partitions},
        )
        try:
            info = await self.js.stream_info(layout.stream)
        except nats.js.errors.NotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):  # created meanwhile by another process
                await self.js.add_stream(config)
            info = await self.js.stream_info(layout.stream)
        existing = (info.config.metadata or {}).get("vigil_partitions")
        if existing != partitions:
            raise BrokerError(
                f"the stream {layout.stream} was created with {existing or 'an unknown number of'} "
                f"partitions, the config says {partitions}: a stream's partitions are fixed (docs/scale.md)"
            )
        if info.config.max_age != layout.max_age_s:
            await self.js.update_stream(config)

    async def _prepare_bucket(self) -> None:
        layout = self.layout
        try:
            self._owners = await self.js.create_key_value(
                api.KeyValueConfig(
                    bucket=layout.bucket, history=1, ttl=layout.lease_s, storage=api.StorageType.FILE
                )
            )
        except nats.js.errors.BadRequestError:
            # The bucket exists with another lease ([broker] lease_s changed): keep it, change the lease.
            stream = f"KV_{layout.bucket}"
            current = (await self.js.stream_info(stream)).config
            current.max_age = layout.lease_s
            current.duplicate_window = min(120.0, layout.lease_s)
            await self.js.update_stream(current)
            self._owners = await self.js.key_value(layout.bucket)
        created = (await self.js.stream_info(f"KV_{layout.bucket}")).created
        # Fence tokens grow with the bucket's revisions; a bucket created again (the broker's data wiped)
        # starts its revisions at 1, so its creation time comes first, or its tokens would lose to the old.
        self.fence_epoch = int(created.timestamp()) if created is not None else 0

    @property
    def owners(self) -> KeyValue:
        if self._owners is None:
            raise RuntimeError("the broker is not prepared")
        return self._owners

    async def flush(self) -> None:
        await self._client.flush(timeout=int(_PUBLISH_TIMEOUT_S))

    async def aclose(self) -> None:
        self.closing = True
        with contextlib.suppress(Exception):
            await self._client.drain()
        with contextlib.suppress(Exception):
            await self._client.close()


# ------------------------------------------------------------------------------------------------- codec


def encode_message(message: ChatMessage, *, cipher: TextCipher | None, message_key: str) -> bytes | None:
    """The message as the broker carries it; None when its ids cannot be encoded (it would be skipped as
    malformed by the monitor anyway)."""
    # Lone surrogates (text decoded from JSON) cannot cross as UTF-8; the store replaces them the same way.
    clean = dataclasses.replace(message, text=message.text.encode("utf-8", "replace").decode("utf-8"))
    try:
        payload = msgspec.json.encode(clean)
    except (UnicodeEncodeError, msgspec.EncodeError):
        return None
    if cipher is None:
        return payload
    return cipher.encrypt(payload.decode("utf-8"), column=_CIPHER_COLUMN, row=message_key).encode("ascii")


def decode_message(data: bytes, *, cipher: TextCipher | None, message_key: str) -> ChatMessage:
    """The inverse of ``encode_message``; raises ``ValueError`` on anything else."""
    text = data.decode("utf-8")
    if TextCipher.is_encrypted(text):
        if cipher is None:
            raise ValueError("an encrypted message, and no encryption key is set")
        text = cipher.decrypt(text, column=_CIPHER_COLUMN, row=message_key)
    try:
        return msgspec.json.decode(text, type=ChatMessage)
    except msgspec.DecodeError as error:
        raise ValueError(str(error)) from None


def _raise_if_cancelled() -> None:
    """nats-py turns a cancelled wait into its own errors: a task being cancelled must still stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


# --------------------------------------------------------------------------------------------- publisher


class BotUserCheck(Protocol):
    """``Monitor.is_bot_user``: whether a user is an adapter's own bot user."""

    def __call__(self, *, platform: str, user_id: str) -> bool: ...


class JetStreamPublisher:
    """The ``MessageHandler`` of a gateway: each message goes to its partition's subject, in arrival order
    per partition, and counts as handled once the server has stored it (its answer: ``queued``)."""

    def __init__(
        self,
        *,
        broker: NatsBroker,
        cipher: TextCipher | None,
        is_bot_user: BotUserCheck | None = None,
        give_up_s: float = _PUBLISH_GIVE_UP_S,
    ) -> None:
        self._broker = broker
        # The gateway's adapters know their own bot user; the workers, elsewhere, learn it from the flag.
        self._is_bot_user = is_bot_user
        self._cipher = cipher
        self._give_up_s = give_up_s
        # One at a time per partition: a retry never lets a later message of the partition overtake.
        self._locks = [asyncio.Lock() for _ in range(broker.layout.partitions)]

    async def handle(self, message: ChatMessage) -> HandleResult:
        layout = self._broker.layout
        if (
            not message.author_is_bot
            and self._is_bot_user is not None
            and self._is_bot_user(platform=message.platform, user_id=message.author_id)
        ):
            message = dataclasses.replace(message, author_is_bot=True)
        key = broker_id(message)
        payload = encode_message(message, cipher=self._cipher, message_key=key)
        if payload is None:
            logger.warning("skipped a message whose ids cannot be encoded as UTF-8")
            return HandleResult(message_id=message.message_id, skipped=SkipReason.MALFORMED)
        partition = layout.partition_of(message)
        async with self._locks[partition]:
            await self._publish(layout.subject(partition), payload, key)
        return HandleResult(message_id=message.message_id, queued=True)

    async def _publish(self, subject: str, payload: bytes, key: str) -> None:
        deadline = time.monotonic() + self._give_up_s
        pause_s = 0.2
        while True:
            try:
                await self._broker.js.publish(
                    subject, payload, timeout=_PUBLISH_TIMEOUT_S, headers={"Nats-Msg-Id": key}
                )
                return
            except (nats.errors.Error, nats.js.errors.Error, OSError) as error:
                _raise_if_cancelled()
                if time.monotonic() + pause_s > deadline:
                    logger.error(
                        "the broker did not take a message for %.0f s (%s)",
                        self._give_up_s,
                        type(error).__name__,
                    )
                    raise BrokerUnavailable("the message broker is unavailable") from None
                logger.warning("publishing to the broker failed (%s); trying again", type(error).__name__)
                await asyncio.sleep(pause_s)
                pause_s = min(pause_s * 2, 5.0)


# ------------------------------------------------------------------------------------------------ worker


class WorkerObserver(Protocol):
    """What a scoring worker reports as it works (``bots.metrics.VigilMetrics`` implements it)."""

    def on_results(self, results: Sequence[HandleResult], *, seconds: float) -> None: ...

    def on_batch_failed(self, size: int) -> None: ...

    def on_partitions(self, count: int) -> None: ...

    def on_backlog(self, count: int) -> None: ...


@dataclass(slots=True, kw_only=True)
class _Chunk:
    partition: int
    generation: int
    messages: list[Msg]
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True, kw_only=True)
class _Owned:
    """A partition this worker holds: its lease entry's revision and how long the lease is good for."""

    generation: int
    revision: int
    valid_until: float
    fetcher: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStats:
    owned: tuple[int, ...]
    batches: int
    messages: int
    takeovers: int
    dropped_chunks: int


class ScoringWorker:
    """``vigil worker``: holds its share of the partitions, scores their messages in batches through the
    monitor (one store transaction each) and acknowledges them only after the commit."""

    def __init__(
        self,
        *,
        broker: NatsBroker,
        monitor: Monitor,
        name: str,
        max_batch: int,
        cipher: TextCipher | None,
        fences: PartitionFences | None = None,
        observer: WorkerObserver | None = None,
    ) -> None:
        if "." in name or "*" in name or ">" in name or not name.strip():
            raise ValueError("a worker name may not contain '.', '*' or '>'")
        self._broker = broker
        self._layout = broker.layout
        self._monitor = monitor
        self.name = name
        self._max_batch = max_batch
        self._cipher = cipher
        self._fences = fences
        self._observer = observer
        self._owned: dict[int, _Owned] = {}
        self._generation = 0
        self._ready: asyncio.Queue[_Chunk] = asyncio.Queue()
        self._batch_lock = asyncio.Lock()
        self._batches = 0
        self._messages = 0
        self._takeovers = 0
        self._dropped = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    def stats(self) -> WorkerStats:
        return WorkerStats(
            owned=tuple(sorted(self._owned)),
            batches=self._batches,
            messages=self._messages,
            takeovers=self._takeovers,
            dropped_chunks=self._dropped,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set; then the batch in flight is finished and the partitions are released, so
        the other workers take them at once instead of after the lease."""
        scoring = asyncio.create_task(self._score_forever(), name=f"vigil-worker-{self.name}")
        reconnections = self._broker.reconnections
        next_report = time.monotonic() + _REPORT_EVERY_S
        try:
            try:
                await self._take_back_own_leases()
            except (nats.errors.Error, nats.js.errors.Error, OSError) as error:
                _raise_if_cancelled()
                logger.warning("could not look for this worker's old leases (%s)", type(error).__name__)
            while not stop.is_set():
                try:
                    # Leases first: re-reading partitions waits for the batch in flight.
                    await self._rebalance()
                    await self._observe_broker()
                    if self._broker.reconnections != reconnections:
                        reconnections = self._broker.reconnections
                        stalled = sorted(self._owned)
                    else:
                        stalled = [p for p, o in self._owned.items() if o.fetcher is None or o.fetcher.done()]
                    if stalled:
                        async with self._batch_lock:
                            for partition in stalled:
                                await self._restart(partition)
                except (nats.errors.Error, nats.js.errors.Error, OSError) as error:
                    _raise_if_cancelled()
                    logger.warning(
                        "renewing partition leases failed (%s); trying again", type(error).__name__
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._layout.lease_s / 3)
                if scoring.done():
                    scoring.result()  # a bug in the scoring loop: surface it
                if time.monotonic() >= next_report:
                    next_report = time.monotonic() + _REPORT_EVERY_S
                    self._report()
        finally:
            async with self._batch_lock:
                scoring.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scoring
            for partition in list(self._owned):
                await self._release(partition)
            with contextlib.suppress(Exception):
                await self._broker.owners.delete(f"w.{self.name}")

    async def _observe_broker(self) -> None:
        if self._observer is None:
            return
        self._observer.on_partitions(len(self._owned))
        info = await self._broker.js.stream_info(self._layout.stream)
        self._observer.on_backlog(int(info.state.messages))

    def _report(self) -> None:
        stats = self.stats()
        logger.info(
            "worker %s: %d partition(s) (%s); %d message(s) in %d batch(es) so far, %d takeover(s)",
            self.name,
            len(stats.owned),
            ",".join(map(str, stats.owned)) or "none",
            stats.messages,
            stats.batches,
            stats.takeovers,
        )

    # -- ownership

    async def _take_back_own_leases(self) -> None:
        """Partitions held under this worker's name belong to a previous life of it (killed, restarted):
        free them now rather than after their lease. Names are unique among live workers."""
        owners = self._broker.owners
        try:
            keys = await owners.keys()
        except nats.js.errors.NoKeysError:
            return
        for key in keys:
            if not key.startswith("p."):
                continue
            with contextlib.suppress(nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                entry = await owners.get(key)
                if entry.value == self.name.encode() and entry.revision is not None:
                    with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                        await owners.delete(key, last=entry.revision)
                        logger.info("took back partition %s from this worker's previous run", key[2:])

    async def _rebalance(self) -> None:
        owners = self._broker.owners
        renewed_at = time.monotonic()
        await owners.put(f"w.{self.name}", b"1")
        live = await self._live_workers()
        wanted = preferred_partitions(self.name, workers=live, partitions=self._layout.partitions)
        for partition, owned in list(self._owned.items()):
            try:
                owned.revision = await owners.update(
                    f"p.{partition}", self.name.encode(), last=owned.revision
                )
                owned.valid_until = renewed_at + self._layout.lease_s * 2 / 3
            except nats.js.errors.KeyWrongLastSequenceError:
                logger.warning("lost partition %d (its lease ran out and another worker took it)", partition)
                self._stop_partition(partition)
        for partition in sorted(set(self._owned) - wanted):
            await self._release(partition)
        for partition in sorted(wanted - set(self._owned)):
            try:
                revision = await owners.create(f"p.{partition}", self.name.encode())
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # still held by another worker: it releases it, or its lease runs out
            await self._take(partition, revision=revision, renewed_at=renewed_at)

    async def _live_workers(self) -> set[str]:
        try:
            keys = await self._broker.owners.keys()
        except nats.js.errors.NoKeysError:
            keys = []
        return {key[2:] for key in keys if key.startswith("w.")} | {self.name}

    async def _take(self, partition: int, *, revision: int, renewed_at: float) -> None:
        self._generation += 1
        owned = _Owned(
            generation=self._generation,
            revision=revision,
            valid_until=renewed_at + self._layout.lease_s * 2 / 3,
        )
        self._owned[partition] = owned
        self._takeovers += 1
        async with self._batch_lock:
            # What the previous owner wrote, read before any message of the partition is scored here.
            await self._monitor.reload_turn_memory()
        await self._restart(partition)
        logger.info("took partition %d", partition)

    async def _restart(self, partition: int) -> None:
        """Deliver the partition again from its first unacknowledged message, in order."""
        owned = self._owned.get(partition)
        if owned is None:
            return
        if owned.fetcher is not None:
            owned.fetcher.cancel()
            owned.fetcher = None
        self._generation += 1
        owned.generation = self._generation
        try:
            subscription = await self._subscribe_from_first_unacknowledged(partition)
        except (nats.errors.Error, nats.js.errors.Error, OSError) as error:
            _raise_if_cancelled()
            # No fetcher: the lease loop tries again on its next round (the broker may be restarting).
            logger.warning(
                "re-reading partition %d failed (%s); trying again", partition, type(error).__name__
            )
            return
        owned.fetcher = asyncio.create_task(
            self._fetch_forever(partition, owned.generation, subscription),
            name=f"vigil-fetch-{partition}",
        )

    async def _subscribe_from_first_unacknowledged(self, partition: int) -> Any:
        consumer = self._layout.consumer(partition)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self._broker.js.delete_consumer(self._layout.stream, consumer)
        return await self._broker.js.pull_subscribe(
            self._layout.subject(partition),
            durable=consumer,
            stream=self._layout.stream,
            config=api.ConsumerConfig(
                durable_name=consumer,
                ack_policy=api.AckPolicy.EXPLICIT,
                deliver_policy=api.DeliverPolicy.ALL,
                ack_wait=_ACK_WAIT_S,
                max_ack_pending=_CHUNKS_AHEAD * self._max_batch * 4,
                filter_subject=self._layout.subject(partition),
            ),
        )

    def _stop_partition(self, partition: int) -> _Owned | None:
        """Forget the partition: no batch scores its chunks from now on and its fetcher stops (it checks
        its generation, since nats-py can swallow a cancellation)."""
        owned = self._owned.pop(partition, None)
        if owned is not None and owned.fetcher is not None:
            owned.fetcher.cancel()
        return owned

    async def _release(self, partition: int) -> None:
        async with self._batch_lock:  # never while one of its messages is being scored
            owned = self._stop_partition(partition)
        if owned is None:
            return
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, OSError):
            await self._broker.owners.delete(f"p.{partition}", last=owned.revision)
        logger.info("released partition %d", partition)

    # -- fetching and scoring

    async def _fetch_forever(self, partition: int, generation: int, subscription: Any) -> None:
        ahead = asyncio.Semaphore(_CHUNKS_AHEAD)
        try:
            while self._fetching(partition, generation):
                await ahead.acquire()
                try:
                    messages = await subscription.fetch(self._max_batch, timeout=_FETCH_WAIT_S)
                    _raise_if_cancelled()
                except (nats.errors.Error, nats.js.errors.Error, OSError, TimeoutError) as error:
                    ahead.release()
                    _raise_if_cancelled()
                    if isinstance(error, nats.errors.ConnectionClosedError):
                        return  # closed for good: only ``aclose`` does that
                    if not isinstance(error, nats.errors.TimeoutError | TimeoutError):
                        logger.warning("fetching partition %d failed (%s)", partition, type(error).__name__)
                        await asyncio.sleep(0.5)
                    continue
                if not self._fetching(partition, generation):
                    return  # unacknowledged: delivered again from them to whoever holds it now
                chunk = _Chunk(partition=partition, generation=generation, messages=messages)
                self._ready.put_nowait(chunk)
                task = asyncio.create_task(self._release_when_done(chunk, ahead))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    def _fetching(self, partition: int, generation: int) -> bool:
        owned = self._owned.get(partition)
        return owned is not None and owned.generation == generation

    @staticmethod
    async def _release_when_done(chunk: _Chunk, ahead: asyncio.Semaphore) -> None:
        await chunk.done.wait()
        ahead.release()

    def _fence_check(self, tokens: dict[int, FenceToken]) -> Callable[[], Awaitable[None]]:
        fences = self._fences
        stream = self._layout.stream

        async def check() -> None:
            if fences is None:
                return
            for partition, token in sorted(tokens.items()):  # in order: two workers never deadlock
                if not await fences.advance_fence(stream=stream, partition=partition, token=token):
                    raise _FencedOff(partition)

        return check

    def _current(self, chunk: _Chunk, *, now: float) -> bool:
        owned = self._owned.get(chunk.partition)
        return owned is not None and owned.generation == chunk.generation and now < owned.valid_until

    async def _score_forever(self) -> None:
        while True:
            chunks = [await self._ready.get()]
            size = len(chunks[0].messages)
            while size < self._max_batch and not self._ready.empty():
                chunks.append(self._ready.get_nowait())
                size += len(chunks[-1].messages)
            try:
                async with self._batch_lock:
                    await self._score(chunks)
            finally:
                for chunk in chunks:
                    chunk.done.set()

    async def _score(self, chunks: list[_Chunk]) -> None:
        now = time.monotonic()
        live: list[_Chunk] = []
        for chunk in chunks:
            if self._current(chunk, now=now):
                live.append(chunk)
                continue
            self._dropped += 1
            owned = self._owned.get(chunk.partition)
            if owned is not None and owned.generation == chunk.generation:
                # Still ours, but the lease is about to lapse: these are not scored now, so the partition is
                # delivered again from them (nothing later may overtake them).
                await self._restart(chunk.partition)
        envelopes: list[Msg] = []
        messages: list[ChatMessage] = []
        for chunk in live:
            for envelope in chunk.messages:
                key = envelope.headers.get("Nats-Msg-Id", "") if envelope.headers else ""
                try:
                    messages.append(decode_message(envelope.data, cipher=self._cipher, message_key=key))
                except Exception as error:
                    logger.warning(
                        "dropped a broker message that is not a Vigil message (%s)", type(error).__name__
                    )
                    with contextlib.suppress(Exception):
                        await envelope.term()
                    continue
                envelopes.append(envelope)
        if not live:
            return
        tokens = {
            chunk.partition: FenceToken(
                epoch=self._broker.fence_epoch, revision=self._owned[chunk.partition].revision
            )
            for chunk in live
        }
        try:
            started = time.perf_counter()
            if messages:
                results = await self._monitor.handle_batch(
                    messages, fence=self._fence_check(tokens) if self._fences is not None else None
                )
                if self._observer is not None:
                    self._observer.on_results(results, seconds=time.perf_counter() - started)
        except _FencedOff as fenced:
            logger.warning(
                "partition %d was taken over by another worker: this batch was rolled back, not saved here",
                fenced.partition,
            )
            self._dropped += 1
            self._stop_partition(fenced.partition)
            for partition in sorted(set(tokens) - {fenced.partition}):
                await self._restart(partition)
            return
        except Exception as error:
            if self._observer is not None:
                self._observer.on_batch_failed(len(messages))
            logger.error(
                "scoring a batch of %d message(s) failed (%s); their partitions are read again from them",
                len(messages),
                type(error).__name__,
                exc_info=error,
            )
            await asyncio.sleep(1.0)
            for partition in sorted({chunk.partition for chunk in live}):
                await self._restart(partition)
            return
        for envelope in envelopes:
            with contextlib.suppress(Exception):
                await envelope.ack()
        with contextlib.suppress(Exception):
            await self._broker.flush()
        self._batches += 1
        self._messages += len(messages)
