"""Test doubles for the edges of the core: a controllable clock and a sink that records."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta

from vigil.bots.core.models import Alert, DeliveryResult
from vigil.bots.core.ports import Delivery


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class RecordingSink:
    """Records deliveries; can fail (returning results) or raise a given number of times first."""

    def __init__(self, *, failures: Iterable[DeliveryResult] = (), raise_times: int = 0) -> None:
        self._failures = deque(failures)
        self._raise_times = raise_times
        self.attempts = 0
        self.posted: list[Alert] = []
        self.updated: list[tuple[Alert, str]] = []
        self.deliveries: list[Delivery] = []

    def _next_failure(self) -> DeliveryResult | None:
        self.attempts += 1
        if self._raise_times > 0:
            self._raise_times -= 1
            raise ConnectionError("sink exploded")
        return self._failures.popleft() if self._failures else None

    async def post(self, delivery: Delivery) -> DeliveryResult:
        failure = self._next_failure()
        if failure is not None:
            return failure
        alert = delivery.alert
        self.deliveries.append(delivery)
        self.posted.append(alert)
        return DeliveryResult(ok=True, ref=f"ref-{alert.alert_id}")

    async def update(self, delivery: Delivery, *, ref: str) -> DeliveryResult:
        failure = self._next_failure()
        if failure is not None:
            return failure
        self.deliveries.append(delivery)
        self.updated.append((delivery.alert, ref))
        return DeliveryResult(ok=True, ref=ref)
