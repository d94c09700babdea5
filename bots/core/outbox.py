"""Delivers alerts from the store's outbox to an ``AlertSink``, retrying until the sink accepts them.

An alert is written to the outbox in the same transaction that creates it, so a crash or a dead platform
connection never loses one; the worker posts it, stores the sink's reference and only then removes the item.
Delivery is at-least-once: a crash between a successful post and its acknowledgement re-posts on restart.

Several workers (in one process or several) may share one store: each takes its items with
``claim_deliveries``, a lease that hides them from every other worker, and an alert is claimed as a whole, so
one alert's post and updates are delivered by one worker at a time and in order. A worker killed mid-post
leaves its items to the others once the lease runs out, or takes them back itself when it starts again under
the same name. A worker whose deliveries are slow renews its claim before an item once half the lease has
passed, so a live worker keeps its batch however long the batch takes. Completing or rescheduling needs the
claim still held: a worker whose lease ran out and was taken over writes nothing. A worker claims only alerts
of the platforms its ``DeliveryScope`` covers (those its sink can deliver), so workers with different sinks
share one store without taking each other's alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from vigil.bots.core.clock import Clock, utc_now
from vigil.bots.core.models import ANY_PLATFORM, Alert, DeliveryResult, DeliveryScope, OutboxItem, OutboxKind
from vigil.bots.core.ports import (
    TRANSIENT_RETRY_PAUSES_S,
    TREND_POINTS,
    AlertSink,
    Delivery,
    TransientStoreError,
)

if TYPE_CHECKING:
    from vigil.bots.core.cases import Cases
    from vigil.bots.core.ports import DeliveryStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxConfig:
    retry_initial_s: float = 5.0
    retry_max_s: float = 900.0
    poll_interval_s: float = 1.0
    # Items claimed at a time; they are delivered one after another under one claim, renewed to lease_s
    # ahead once half of it has passed, so it is one delivery (not a batch) that must fit in half the lease.
    batch: int = 10
    lease_s: float = 300.0


class OutboxWorker:
    def __init__(
        self,
        *,
        store: DeliveryStore,
        cases: Cases,
        sink: AlertSink,
        config: OutboxConfig,
        clock: Clock = utc_now,
        name: str = "vigil",
        scope: DeliveryScope = ANY_PLATFORM,
    ) -> None:
        """``name`` identifies this worker among those sharing the store, and across its restarts: a worker
        starting takes back the claims made under its name, so two live workers must not share one.
        ``scope``: the platforms whose alerts it claims, those ``sink`` can deliver."""
        if config.lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self._name = name
        self._scope = scope
        self._recovered = False
        self._store = store
        self._cases = cases
        self._sink = sink
        self._config = config
        self._clock = clock
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """Something was enqueued: deliver now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver forever (until cancelled): after every wake-up and at least every poll interval. A store
        failure that may pass (a dropped connection, a conflict with a concurrent writer) ends only this
        round: the worker takes its claims back and tries again at the next one."""
        while True:
            try:
                await self.drain_once()
            except TransientStoreError as error:
                logger.warning(
                    "outbox worker %s: the store failed transiently (%s); trying again in %.1f s",
                    self._name,
                    error,
                    self._config.poll_interval_s,
                )
                # Its claims are due again at once (rather than after the lease) when the next round starts.
                self._recovered = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._config.poll_interval_s)
            self._wake.clear()

    @property
    def name(self) -> str:
        return self._name

    @property
    def scope(self) -> DeliveryScope:
        return self._scope

    async def release_claims(self) -> int:
        """Give back every item this worker holds (call once its ``run`` is cancelled: a batch cut short is
        due again at once for every worker, rather than at the end of its lease)."""
        return await self._store.release_claims(worker=self._name)

    async def drain_once(self) -> int:
        """Attempt every item of its scope that is due now and no other worker holds; returns how many were
        delivered."""
        if not self._recovered:
            # What this worker claimed before a crash or a stop is its own again, rather than waiting out
            # the lease. Marked first: a second drain started meanwhile must not release this one's claims.
            self._recovered = True
            released = await self.release_claims()
            if released:
                logger.info("outbox worker %s took back %d claimed deliveries", self._name, released)
        lease = timedelta(seconds=self._config.lease_s)
        delivered = 0
        while True:
            claimed_at = self._clock()
            due = await self._store.claim_deliveries(
                now=claimed_at, limit=self._config.batch, lease=lease, worker=self._name, scope=self._scope
            )
            if not due:
                return delivered
            claim = due[0].claim
            renewed_at = claimed_at
            progressed = False
            # Delivering an alert renders its latest revision, so a post and an update of one alert due
            # together are one delivery: the store completes both, and the second is skipped here.
            delivered_revisions: dict[int, int] = {}
            for item in due:
                if item.revision <= delivered_revisions.get(item.alert_id, -1):
                    continue
                now = self._clock()
                if claim is not None and now - renewed_at > lease / 2:
                    # Slow deliveries (rate limits, timeouts) must not let the lease lapse mid-batch: another
                    # worker would take the rest over and post it again.
                    renewed_at = now
                    if not await self._store.extend_claim(claim=claim, until=now + lease):
                        logger.warning(
                            "outbox worker %s lost its claim mid-batch (its lease ran out and another worker "
                            "took the rest over): leaving the rest to that worker",
                            self._name,
                        )
                        break
                revision = await self._deliver(item)
                if revision is not None:
                    delivered_revisions[item.alert_id] = revision
                    delivered += 1
                    progressed = True
            if not progressed:
                return delivered

    async def _complete_posted(
        self, item: OutboxItem, *, alert: Alert, revision: int, ref: str | None
    ) -> bool:
        """``complete_delivery`` of an item the sink has just posted, tried again while the store fails
        transiently: giving up here would post the alert a second time."""
        for attempt, pause_s in enumerate((*TRANSIENT_RETRY_PAUSES_S, None), start=1):
            try:
                return await self._store.complete_delivery(
                    item.item_id, alert_id=alert.alert_id, revision=revision, ref=ref, claim=item.claim
                )
            except TransientStoreError as error:
                if pause_s is None:
                    raise
                logger.warning(
                    "case %d posted, but recording it failed transiently (%s); trying again in %.1f s "
                    "(attempt %d)",
                    alert.case_number,
                    error,
                    pause_s,
                    attempt + 1,
                )
                await asyncio.sleep(pause_s)
        raise AssertionError("unreachable")  # the last attempt returned or raised

    async def _deliver(self, item: OutboxItem) -> int | None:
        """The revision delivered, or None when nothing was (a failure, or nothing to deliver)."""
        alert = await self._store.get_alert(item.alert_id)
        if alert is None or alert.shadow:
            await self._store.complete_delivery(
                item.item_id, alert_id=item.alert_id, revision=item.revision, ref=None, claim=item.claim
            )
            return None
        result = await self._call_sink(item, alert)
        if result.ok:
            # The sink rendered the alert as read just now, so everything up to its revision is delivered.
            revision = max(item.revision, alert.revision)
            if not await self._complete_posted(item, alert=alert, revision=revision, ref=result.ref):
                logger.warning(
                    "case %d delivered after this worker's lease ran out and another worker took it over: "
                    "it may be shown twice (a delivery must take under half the outbox lease)",
                    alert.case_number,
                )
                return None
            logger.info("case %d delivered (%s, revision %d)", alert.case_number, item.kind, alert.revision)
            return revision
        delay = self._backoff(item.attempts, result)
        log = logger.error if result.permanent else logger.warning
        log(
            "case %d not delivered (%s, attempt %d): %s; retrying in %.0fs",
            alert.case_number,
            item.kind,
            item.attempts + 1,
            result.error,
            delay,
        )
        await self._store.fail_delivery(
            item.item_id,
            error=result.error or "unknown error",
            next_attempt_at=self._clock() + timedelta(seconds=delay),
            claim=item.claim,
        )
        return None

    async def _call_sink(self, item: OutboxItem, alert: Alert) -> DeliveryResult:
        try:
            delivery = await self.delivery(alert)
        except Exception as exc:  # a store that fails now may not later: retry like a platform failure
            logger.exception("could not read what case %d's alert shows", alert.case_number)
            return DeliveryResult(ok=False, error=f"could not read the case: {type(exc).__name__}")
        try:
            if item.kind is OutboxKind.UPDATE and alert.delivery_ref is not None:
                return await self._sink.update(delivery, ref=alert.delivery_ref)
            # An update of an alert that was never posted (e.g. it was in shadow mode before) is a post.
            return await self._sink.post(delivery)
        except Exception as exc:  # a sink must not raise; one that does must not stop delivery
            logger.exception("alert sink raised while delivering case %d", alert.case_number)
            return DeliveryResult(ok=False, error=f"{type(exc).__name__}: {exc}")

    async def delivery(self, alert: Alert) -> Delivery:
        """Everything a sink shows for ``alert``, read once: the case, the space's alert channel and
        moderator role, and the pair's latest risks."""
        view = await self._cases.view(alert)
        settings = await self._store.get_space_settings(
            platform=alert.key.platform, space_id=alert.key.space_id
        )
        history = await self._store.risk_history(alert.key, limit=TREND_POINTS)
        points = [point.risk for point in history]
        if not points or abs(points[-1] - alert.risk) > 1e-9:
            points.append(alert.risk)
        return Delivery(
            case=view,
            channel_id=settings.alert_channel_id if settings is not None else None,
            moderator_role_id=settings.moderator_role_id if settings is not None else None,
            risk_points=tuple(points[-TREND_POINTS:]),
        )

    def _backoff(self, attempts: int, result: DeliveryResult) -> float:
        if result.permanent:
            # A missing permission will not fix itself within seconds; retry slowly until an admin fixes it.
            return max(self._config.retry_max_s, result.retry_after or 0.0)
        if result.retry_after is not None:
            return min(self._config.retry_max_s, max(0.0, result.retry_after))
        return min(self._config.retry_max_s, self._config.retry_initial_s * (2.0 ** min(attempts, 20)))
