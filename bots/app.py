"""The composition root: settings → store → detector → monitor → case service → ingest → outbox → adapters.

Every command that runs the pipeline builds it here, and only here: ``vigil run`` (``App.serve``), the
offline replays of ``vigil demo``, ``scan`` and ``eval`` (``App.replay``), and the benchmarks. The CLI parses
arguments and prints; this module wires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from vigil.bots.core.case_service import CaseService
from vigil.bots.core.clock import Clock, utc_now
from vigil.bots.core.ingest import IngestObserver, IngestQueue
from vigil.bots.core.models import ADAPTER_PLATFORMS, ANY_PLATFORM, ChatMessage, DeliveryScope
from vigil.bots.core.moderation import ModeratorService
from vigil.bots.core.monitor import HandleResult, Monitor, MonitorConfig
from vigil.bots.core.outbox import OutboxConfig, OutboxWorker
from vigil.bots.core.policy import PolicyConfig
from vigil.bots.core.ports import AlertSink, Detector, MessageHandler, PartitionFences, Store
from vigil.bots.core.retention import RetentionTask
from vigil.bots.core.sinks import ConsoleSink, MirroredSink, RoutingSink
from vigil.bots.metrics import MetricsServer, VigilMetrics
from vigil.config.settings import Secret, Secrets, Settings, StorageBackend
from vigil.detector.onnx_detector import OnnxDetector, resolve_model_dir
from vigil.storage.crypto import TextCipher
from vigil.storage.sqlite import SqliteStore

if TYPE_CHECKING:
    from vigil.bots.broker.nats import NatsBroker
    from vigil.storage.postgres import PostgresStore

logger = logging.getLogger(__name__)

# Replays feed the monitor in chunks; records are replayed concurrently so the detector can batch them.
REPLAY_CHUNK = 64
REPLAY_CONCURRENCY = 8
# Risk points in a pair's history over HTTP: enough for a chart (the chat commands list fewer, as text).
HTTP_PAIR_HISTORY_POINTS = 50


class AppError(Exception):
    """A problem the person running Vigil can fix (a missing secret, a platform refusing the bot)."""


class App:
    """Store, detector, monitor and case service, opened together; the outbox is attached once sinks exist.

    The monitor and the case service are built before the adapters (which need them), and the outbox after
    (it needs the adapters' sinks), so both notify the outbox through the app.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        detector: Detector,
        policy: PolicyConfig,
        clock: Clock = utc_now,
        metrics: VigilMetrics | None = None,
        database: str = "(in memory)",
        cipher: TextCipher | None = None,
    ) -> None:
        self.settings = settings
        # The store's encryption at rest; the broker seals message text with it too.
        self.cipher = cipher
        self.store = store
        self.detector = detector
        self.clock = clock
        self.database = database
        self.signal_labels = detector.info.signal_words()
        self.monitor = Monitor(
            store=store,
            detector=metrics.instrument(detector) if metrics is not None else detector,
            config=MonitorConfig(
                policy=policy,
                window_messages=settings.policy.window_messages,
                evidence_messages=settings.policy.evidence_messages,
            ),
            clock=clock,
            on_delivery_enqueued=self.notify_outbox,
        )
        self.cases = CaseService(
            store=store,
            clock=clock,
            dismiss_snooze=timedelta(minutes=settings.policy.cooldown_minutes),
            hold_period=settings.retention.schedule().hold_period,
            on_delivery_enqueued=self.notify_outbox,
        )
        self._metrics = metrics
        self._outbox: OutboxWorker | None = None

    @property
    def outbox(self) -> OutboxWorker | None:
        """The outbox worker, once a sink is attached."""
        return self._outbox

    def attach_sink(
        self, sink: AlertSink, *, worker_name: str | None = None, scope: DeliveryScope = ANY_PLATFORM
    ) -> OutboxWorker:
        """The app's outbox worker, delivering to ``sink`` the alerts of the platforms ``scope`` covers.
        ``worker_name`` (by default this host's name and "vigil") must differ between live workers sharing
        the store, and stay the same across a worker's restarts: a worker starting takes back the claims its
        name holds."""
        if self._outbox is not None:
            raise RuntimeError("an alert sink is already attached")
        self._outbox = self.outbox_worker(sink, name=worker_name or outbox_worker_name("vigil"), scope=scope)
        return self._outbox

    def outbox_worker(
        self, sink: AlertSink, *, name: str, scope: DeliveryScope = ANY_PLATFORM
    ) -> OutboxWorker:
        """A delivery worker on this app's store, as configured, claiming the alerts ``scope`` covers;
        ``vigil deliver`` runs several."""
        return OutboxWorker(
            store=self.store,
            cases=self.cases,
            sink=sink,
            config=OutboxConfig(
                retry_initial_s=self.settings.outbox.retry_initial_s,
                retry_max_s=self.settings.outbox.retry_max_s,
                poll_interval_s=self.settings.outbox.poll_interval_s,
            ),
            clock=self.clock,
            name=name,
            scope=scope,
        )

    def notify_outbox(self) -> None:
        if self._outbox is not None:
            self._outbox.notify()

    def moderator_service(
        self, platform: str, *, history_points: int = HTTP_PAIR_HISTORY_POINTS
    ) -> ModeratorService:
        """The moderator service for ``platform``'s spaces, judged by the monitor's policy; the HTTP API asks
        for one per request (it names the platform), which is cheap: the service holds no state."""
        policy = self.monitor.config.policy
        return ModeratorService(
            platform=platform,
            store=self.store,
            default_threshold=policy.threshold,
            default_shadow_mode=policy.shadow_mode,
            policy_for=self.monitor.policy_for_space,
            history_points=history_points,
            clock=self.clock,
        )

    # ------------------------------------------------------------------------------------------ replay

    async def replay(
        self, messages: Iterable[ChatMessage], *, chunk: int = REPLAY_CHUNK
    ) -> AsyncIterator[list[HandleResult]]:
        """Feed ``messages`` (in order; they may span conversations) to the monitor ``chunk`` at a time, and
        yield each chunk's results. With a sink attached, what the chunk raised is delivered before the next
        one, so alerts are printed beside the conversation that caused them."""
        pending: list[ChatMessage] = []
        for message in messages:
            pending.append(message)
            if len(pending) >= chunk:
                yield await self._replay_chunk(pending)
                pending = []
        if pending:
            yield await self._replay_chunk(pending)

    async def _replay_chunk(self, messages: Sequence[ChatMessage]) -> list[HandleResult]:
        results = await self.monitor.handle_batch(messages)
        if self._outbox is not None:
            await self._outbox.drain_once()
        return list(results)

    # ------------------------------------------------------------------------------------------- serve

    async def ingest_queue(self, *, observer: IngestObserver | None = None) -> IngestQueue:
        """The one bounded queue every platform feeds: backpressure and documented shedding
        (docs/operations.md). Pairs with an open alert are watched from the start, so a flood right after a
        restart never sheds their messages."""
        return IngestQueue(
            monitor=self.monitor,
            capacity=self.settings.ingest.capacity,
            max_batch=self.settings.detector.max_batch,
            observer=observer,
            watched=await self.store.open_alert_keys(),
        )

    async def serve(
        self,
        *,
        secrets: Secrets,
        stop: asyncio.Event,
        publisher: MessageHandler | None = None,
        worker_name: str | None = None,
    ) -> None:
        """``vigil run``: the enabled adapters, one bounded ingest queue, the outbox, retention and metrics,
        until ``stop`` is set; then the work in flight is finished (accepted messages scored and stored, due
        alerts posted) before it returns.

        With a ``publisher`` (``vigil gateway``), the adapters hand every message to it (the broker) instead
        of the ingest queue, and scoring workers elsewhere score them; commands, delivery, retention and
        metrics run here as under ``vigil run``."""
        # Platform libraries load only here: they cost every other command ~0.5 s.
        from vigil.bots.discord import DiscordFatalError  # noqa: PLC0415
        from vigil.bots.slack import SlackAdapterError  # noqa: PLC0415

        settings = self.settings
        metrics = self._metrics or VigilMetrics()
        queue: IngestQueue | None = None
        handler: MessageHandler
        if publisher is None:
            queue = handler = await self.ingest_queue(observer=metrics)
        else:
            handler = publisher
        services = _build_services(self, secrets=secrets, handler=handler)
        outbox = self.attach_sink(
            services.alert_sink(), worker_name=worker_name, scope=services.delivery_scope()
        )
        retention = RetentionTask(store=self.store, schedule=settings.retention.schedule())
        background: list[Callable[[], Coroutine[Any, Any, None]]] = [
            outbox.run,
            retention.run,
            lambda: metrics.refresh_forever(self.store),
        ]
        if settings.metrics.enabled:
            background.append(
                MetricsServer(metrics, host=settings.metrics.host, port=settings.metrics.port).serve
            )
            services.names.append(f"metrics on {settings.metrics.host}:{settings.metrics.port}")
        logger.info(
            "vigil running: %s; delivering alerts of %s; database %s",
            ", ".join(services.names),
            outbox.scope,
            self.database,
        )
        try:
            async with asyncio.TaskGroup() as group:
                workers = [group.create_task(run()) for run in background]
                draining = group.create_task(queue.run()) if queue is not None else None
                adapters = [group.create_task(run()) for run in services.runs]
                await stop.wait()
                logger.info("stopping: finishing work in flight")
                for task in adapters:
                    task.cancel()
                if queue is not None and draining is not None:
                    queue.close()  # accepted messages are still scored and stored; then run() returns
                    await draining
                await outbox.drain_once()
                for task in workers:
                    task.cancel()
        except* (DiscordFatalError, SlackAdapterError) as fatal:
            raise AppError("; ".join(str(error) for error in fatal.exceptions)) from None
        finally:
            for close in services.closers:
                with contextlib.suppress(Exception):
                    await close()
        logger.info("vigil stopped")

    async def work(
        self, *, broker: NatsBroker, cipher: TextCipher | None, stop: asyncio.Event, name: str
    ) -> None:
        """``vigil worker``: score the messages of this worker's share of the broker's partitions, until
        ``stop`` is set; then the batch in flight is finished and the partitions are handed back at once.
        Alerts go to the shared outbox, which gateways and ``vigil deliver`` drain."""
        from vigil.bots.broker.nats import ScoringWorker  # noqa: PLC0415

        metrics = self._metrics
        worker = ScoringWorker(
            broker=broker,
            monitor=self.monitor,
            name=name,
            max_batch=self.settings.detector.max_batch,
            cipher=cipher,
            fences=self.store if isinstance(self.store, PartitionFences) else None,
            observer=metrics,
        )
        logger.info(
            "vigil worker %s scoring partitions of %s (%d in all); database %s",
            name,
            broker.layout.stream,
            broker.layout.partitions,
            self.database,
        )
        settings = self.settings
        async with contextlib.AsyncExitStack() as stack:
            if metrics is not None and settings.metrics.enabled:
                server = await stack.enter_async_context(
                    MetricsServer(metrics, host=settings.metrics.host, port=settings.metrics.port)
                )
                refresh = asyncio.create_task(metrics.refresh_forever(self.store))
                stack.callback(refresh.cancel)
                logger.info("metrics on %s:%d", settings.metrics.host, server.port)
            await worker.run(stop)
        stats = worker.stats()
        logger.info(
            "vigil worker %s stopped: %d message(s) in %d batch(es), %d partition takeover(s)",
            name,
            stats.messages,
            stats.batches,
            stats.takeovers,
        )

    async def deliver(self, *, secrets: Secrets, stop: asyncio.Event, workers: int, name: str) -> None:
        """``vigil deliver``: ``workers`` outbox workers and nothing else (no adapter, no ingest), until
        ``stop`` is set; then what is due is attempted once more. Beside ``vigil run`` or other ``vigil
        deliver`` processes on one store, each alert is still delivered by one worker (claims with leases).

        Only the webhook ([http] webhook_url) and the console deliver here: Discord's and Slack's sinks live
        inside their adapters (the bot's client, the workspace installations, the delivery health their
        status commands show), so their alerts are delivered by ``vigil run`` alone; such a config is refused.
        With [http] enabled the workers never claim Discord or Slack alerts (``delivery_scope``).
        """
        if workers < 1:
            raise AppError("vigil deliver needs at least one worker")
        services = _delivery_services(self, secrets=secrets)
        sink = services.alert_sink()
        scope = services.delivery_scope()
        outboxes = [
            self.outbox_worker(sink, name=f"{name}-{index + 1}", scope=scope) for index in range(workers)
        ]
        logger.info(
            "vigil delivering: %d worker(s) %s..%s to %s, alerts of %s; database %s",
            workers,
            outboxes[0].name,
            outboxes[-1].name,
            ", ".join(services.names),
            scope,
            self.database,
        )
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(outbox.run()) for outbox in outboxes]
                await stop.wait()
                logger.info("stopping: delivering what is due")
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for outbox in outboxes:
                    # A batch cut short is given back at once rather than at the lease's end, then what is
                    # due is attempted once more (the run is over: no two drains of one worker overlap).
                    await outbox.release_claims()
                    await outbox.drain_once()
        finally:
            for close in services.closers:
                with contextlib.suppress(Exception):
                    await close()
        logger.info("vigil delivery stopped")


@contextlib.asynccontextmanager
async def open_broker(settings: Settings, *, secrets: Secrets, name: str) -> AsyncIterator[NatsBroker]:
    """The NATS connection ``[broker]`` describes, with its stream and ownership bucket ready."""
    try:
        # Imported here: nats-py is an optional extra (pip install vigil[broker]).
        from vigil.bots.broker.nats import BrokerError, BrokerLayout, NatsBroker  # noqa: PLC0415
    except ImportError:
        raise AppError(
            '[broker] is enabled but nats-py is not installed: pip install "vigil[broker]"'
        ) from None
    configured = settings.broker
    url = _required(secrets.nats_url, what=configured.url_env)
    servers = [part.strip() for part in url.reveal().split(",") if part.strip()]
    layout = BrokerLayout(
        stream=configured.stream,
        partitions=configured.partitions,
        lease_s=configured.lease_s,
        max_age_s=configured.max_age_hours * 3600.0,
    )
    try:
        broker = await NatsBroker.connect(servers=servers, layout=layout, name=name)
    except BrokerError as error:
        raise AppError(str(error)) from None
    try:
        yield broker
    finally:
        await broker.aclose()


def delivery_scope(*, chat_sinks: Collection[str], fallback: bool) -> DeliveryScope:
    """The alerts a process's delivery workers claim: those its sinks can deliver. Processes with different
    sinks share one store (Discord gateways, ``vigil deliver`` for the webhook), and a worker that claimed an
    alert it has no sink for would fail it instead of leaving it to the process that can deliver it.

    ``chat_sinks``: the platforms (of ``ADAPTER_PLATFORMS``) whose adapter's sink is here. ``fallback``: the
    HTTP API's route is here (a webhook, or polling), delivering any other platform. With it: every platform
    but the chat platforms without their sink here. Without it: those chat platforms alone; with neither,
    only the console is there, and it prints any alert.
    """
    if fallback:
        return DeliveryScope(except_platforms=ADAPTER_PLATFORMS - frozenset(chat_sinks))
    if chat_sinks:
        return DeliveryScope(platforms=frozenset(chat_sinks))
    return ANY_PLATFORM


def outbox_worker_name(role: str) -> str:
    """A delivery worker's default name: this host and its role, stable across restarts."""
    return f"{socket.gethostname()}:{role}"


@contextlib.asynccontextmanager
async def open_app(
    settings: Settings,
    *,
    database: str,
    replay: bool,
    threshold: float | None = None,
    metrics: VigilMetrics | None = None,
    backend: StorageBackend = "sqlite",
) -> AsyncIterator[App]:
    """Open the detector and the store (with the configured cipher) and build the app on them.

    ``backend`` "sqlite" opens ``database``; "postgres" opens the server whose DSN is in the environment
    variable ``[storage] postgres_dsn_env`` (``vigil run`` passes the configured backend; replays over files
    always use their own SQLite file).

    ``replay`` is for offline runs over files (scan, eval): no hourly cap and no cooldown, since replayed
    timestamps and wall time mean nothing for moderators' workload.
    """
    model_dir = resolve_model_dir(settings.detector.model_dir)
    detector = await OnnxDetector.load(
        model_dir,
        intra_op_threads=settings.detector.intra_op_threads,
        inter_op_threads=settings.detector.inter_op_threads,
        max_batch=settings.detector.max_batch,
        queue_size=settings.detector.queue_size,
        accept_runtime_drift=settings.detector.accept_runtime_drift,
    )
    try:
        cipher = TextCipher.from_environment(settings.encryption, os.environ)
        store = configured_store(settings, database=database, backend=backend, environ=os.environ)
        await store.open()
        try:
            policy = _policy(settings, detector, replay=replay, threshold=threshold)
            yield App(
                settings=settings,
                store=store,
                detector=detector,
                policy=policy,
                metrics=metrics,
                database=store.database,
                cipher=cipher,
            )
        finally:
            await store.close()
    finally:
        await detector.aclose()


def configured_store(
    settings: Settings, *, database: str, backend: StorageBackend, environ: Mapping[str, str]
) -> SqliteStore | PostgresStore:
    """The store ``backend`` names, not yet opened: the SQLite file ``database``, or the Postgres server whose
    DSN is in the environment variable the config names. Raises ``AppError`` when that is not possible."""
    cipher = TextCipher.from_environment(settings.encryption, environ)
    if backend == "sqlite":
        return SqliteStore(database, cipher=cipher)
    variable = settings.storage.postgres_dsn_env
    dsn = environ.get(variable, "").strip()
    if not dsn:
        # The variable's name only: its value is a secret.
        raise AppError(f'[storage] backend is "postgres" but the environment variable {variable} is not set')
    try:
        # Imported here: asyncpg is an optional extra (pip install vigil[postgres]).
        from vigil.storage.postgres import PostgresStore  # noqa: PLC0415
    except ImportError:
        raise AppError(
            '[storage] backend is "postgres" but asyncpg is not installed: pip install "vigil[postgres]"'
        ) from None
    return PostgresStore(dsn, cipher=cipher, max_connections=settings.storage.postgres_max_connections)


def _policy(
    settings: Settings, detector: OnnxDetector, *, replay: bool, threshold: float | None
) -> PolicyConfig:
    configured = settings.policy
    defaults = detector.metadata.get("policy_defaults", {})
    chosen_threshold = threshold or configured.threshold or detector.info.default_threshold
    return PolicyConfig(
        threshold=chosen_threshold,
        sustain_messages=configured.sustain_messages or int(defaults.get("sustain_messages", 3)),
        hysteresis=min(configured.hysteresis, chosen_threshold / 2),
        cooldown=timedelta(0) if replay else timedelta(minutes=configured.cooldown_minutes),
        update_min_delta=configured.update_min_delta,
        max_alerts_per_hour=1_000_000 if replay else configured.max_alerts_per_hour,
        shadow_mode=configured.shadow_mode,
    )


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` while inside (a graceful stop instead of a KeyboardInterrupt)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


@dataclass(slots=True)
class _Services:
    """What ``vigil run`` starts besides the outbox: long-running coroutines and how to close them."""

    runs: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    closers: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    sinks: dict[str, AlertSink] = field(default_factory=dict)
    fallback: AlertSink | None = None
    # [console] enabled: every alert delivered elsewhere is printed too (alone, the console is the sink).
    console: AlertSink | None = None
    names: list[str] = field(default_factory=list)

    def delivery_scope(self) -> DeliveryScope:
        return delivery_scope(chat_sinks=self.sinks.keys(), fallback=self.fallback is not None)

    def alert_sink(self) -> AlertSink:
        if self.console is not None and not self.sinks and self.fallback is None:
            return self.console
        routing = RoutingSink(self.sinks, fallback=self.fallback)
        return routing if self.console is None else MirroredSink(routing, mirror=self.console)


def _delivery_services(app: App, *, secrets: Secrets) -> _Services:
    """The sinks ``vigil deliver`` can run without the adapters: the webhook and the console."""
    from vigil.bots.http import PollingSink, WebhookSink  # noqa: PLC0415

    settings = app.settings
    platforms = [
        name for name, on in (("discord", settings.discord.enabled), ("slack", settings.slack.enabled)) if on
    ]
    if platforms:
        raise AppError(
            f"vigil deliver cannot deliver {' or '.join(platforms)} alerts (their sinks need the platform "
            "connection that `vigil run` holds); run it with a config that enables only [http] (a webhook) "
            "and/or [console]"
        )
    services = _Services()
    if settings.http.enabled:
        if settings.http.webhook_url:
            webhook = WebhookSink(
                settings.http.webhook_url,
                _required(secrets.webhook_secret, what=settings.http.webhook_secret_env),
                signal_labels=app.signal_labels,
            )
            services.closers.append(webhook.aclose)
            services.fallback = webhook
            services.names.append("webhook")
        else:
            # As under `vigil run`: platforms read alerts through GET /v1/cases, so a delivery is a no-op.
            services.fallback = PollingSink()
            services.names.append("http api (polled, nothing to post)")
    if settings.console.enabled:
        services.names.append("console")
        services.console = ConsoleSink(sys.stdout, signal_labels=app.signal_labels, style="json")
    if not services.names:
        raise AppError("nothing to deliver to: enable [http] (with webhook_url) or [console] in the config")
    return services


def _required(secret: Secret | None, *, what: str) -> Secret:
    if secret is None:  # check_settings reported it already; this guards a changed environment
        raise AppError(f"{what} is not set in the environment")
    return secret


def _build_services(app: App, *, secrets: Secrets, handler: MessageHandler) -> _Services:
    from vigil.bots.discord import DiscordAdapter  # noqa: PLC0415
    from vigil.bots.http import HttpApi, PollingSink, WebhookSink  # noqa: PLC0415
    from vigil.bots.slack import SlackAdapter, read_oauth_credentials  # noqa: PLC0415

    settings = app.settings
    labels = app.signal_labels
    services = _Services()
    if settings.discord.enabled:
        discord_adapter = DiscordAdapter(
            settings=settings.discord,
            token=_required(secrets.discord_token, what=settings.discord.token_env),
            handler=handler,
            monitor=app.monitor,
            cases=app.cases,
            store=app.store,
            signal_labels=labels,
        )
        services.sinks["discord"] = discord_adapter.sink
        services.runs.append(discord_adapter.run)
        services.closers.append(discord_adapter.aclose)
        shards = settings.discord.shards_summary()
        services.names.append(f"discord ({shards})" if shards is not None else "discord")
    if settings.slack.enabled:
        slack_adapter = SlackAdapter(
            settings=settings.slack,
            secrets=secrets,
            handler=handler,
            monitor=app.monitor,
            cases=app.cases,
            store=app.store,
            oauth=read_oauth_credentials(settings.slack, os.environ) if settings.slack.oauth else None,
            signal_labels=labels,
        )
        services.sinks["slack"] = slack_adapter.sink
        services.runs.append(slack_adapter.run)
        services.closers.append(slack_adapter.aclose)
        services.names.append(f"slack ({settings.slack.mode} mode)")
    if settings.http.enabled:
        api = HttpApi(
            settings=settings.http,
            secret=_required(secrets.http_secret, what=settings.http.secret_env),
            handler=handler,
            cases=app.cases,
            store=app.store,
            moderation=app.moderator_service,
            signal_labels=labels,
        )
        services.runs.append(api.run)
        services.closers.append(api.aclose)
        services.names.append(f"http api on {settings.http.host}:{settings.http.port}")
        # Self-hosted platforms name themselves, so their alerts take the fallback route.
        if settings.http.webhook_url:
            webhook = WebhookSink(
                settings.http.webhook_url,
                _required(secrets.webhook_secret, what=settings.http.webhook_secret_env),
                signal_labels=labels,
            )
            services.closers.append(webhook.aclose)
            services.fallback = webhook
    if settings.console.enabled:
        services.names.append("console")
        services.console = ConsoleSink(sys.stdout, signal_labels=labels, style="json")
    if settings.http.enabled and services.fallback is None:
        # No webhook: platforms read alerts through GET /v1/cases, so posting is a no-op that always succeeds.
        services.fallback = PollingSink()
    return services
