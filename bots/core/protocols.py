"""Capability interfaces the core needs from the outside world (adapters implement them)."""

from __future__ import annotations

from typing import Protocol

from bots.core.models import Alert, DeliveryResult


class AlertSink(Protocol):
    """Where alerts go: a private moderator channel, the console, a webhook.

    Must not raise for platform failures: report them in the ``DeliveryResult`` so the outbox retries.
    ``update`` receives the ``delivery_ref`` that ``post`` returned.
    """

    async def post(self, alert: Alert) -> DeliveryResult: ...

    async def update(self, alert: Alert, *, ref: str) -> DeliveryResult: ...
