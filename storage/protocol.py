"""The async store contract. Every backend passes ``tests/storage/test_store_contract.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from bots.core.models import (
    Alert,
    OutboxItem,
    OutboxKind,
    PairKey,
    PairState,
    RiskPoint,
    SpaceSettings,
    WindowMessage,
)


class StoreError(Exception):
    """A store failure with a message meant for the person running Vigil."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer Vigil; refusing to touch it."""


class Store(Protocol):
    """Durable per-pair state, alerts, the delivery outbox and per-space settings.

    Writes made inside ``transaction()`` commit together or not at all; writes outside one commit at once.
    Implementations serialise access themselves; callers may share one instance between tasks.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[None]: ...

    # Idempotency: True the first time a platform message id is seen, False for a redelivery.
    async def claim_message(
        self, *, platform: str, space_id: str, message_id: str, seen_at: datetime
    ) -> bool: ...

    async def load_pair(self, key: PairKey) -> PairState | None: ...

    async def save_pair(self, state: PairState) -> None: ...

    async def pairs_for_user(self, *, platform: str, space_id: str, user_id: str) -> list[PairState]: ...

    async def count_pairs(self) -> int: ...

    # The rolling window: append then keep only the newest ``keep`` messages of the pair.
    async def append_window(self, key: PairKey, message: WindowMessage, *, keep: int) -> None: ...

    async def load_window(self, key: PairKey) -> list[WindowMessage]: ...

    async def append_risk(self, point: RiskPoint) -> None: ...

    async def risk_history(self, key: PairKey, *, limit: int) -> list[RiskPoint]: ...

    # Alerts. ``create_alert`` assigns ``alert_id`` and the space's next case number (numbers only go up);
    # the alert_id and case_number passed in are ignored.
    async def create_alert(self, alert: Alert) -> Alert: ...

    async def update_alert(self, alert: Alert) -> None: ...

    async def get_alert(self, alert_id: int) -> Alert | None: ...

    async def open_alert_for_pair(self, key: PairKey) -> Alert | None: ...

    async def alerts_for_space(self, *, platform: str, space_id: str, limit: int) -> list[Alert]: ...

    async def count_alerts_since(self, *, platform: str, space_id: str, since: datetime) -> int: ...

    # Outbox: at most one pending item per (alert, kind); enqueueing again bumps its revision.
    async def enqueue_delivery(
        self, *, alert_id: int, kind: OutboxKind, revision: int, now: datetime
    ) -> None: ...

    async def due_deliveries(self, *, now: datetime, limit: int) -> list[OutboxItem]: ...

    # Completes the item only if nothing newer was enqueued meanwhile (its revision is still <= ``revision``);
    # otherwise the newer revision stays pending. A non-None ``ref`` is stored on the alert either way.
    async def complete_delivery(
        self, item_id: int, *, alert_id: int, revision: int, ref: str | None
    ) -> None: ...

    async def fail_delivery(self, item_id: int, *, error: str, next_attempt_at: datetime) -> None: ...

    async def pending_delivery_count(self) -> int: ...

    async def get_space_settings(self, *, platform: str, space_id: str) -> SpaceSettings | None: ...

    async def put_space_settings(self, settings: SpaceSettings) -> None: ...

    def iter_pairs(self, *, batch: int) -> AsyncIterator[Sequence[PairState]]: ...
