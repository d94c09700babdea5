"""Capability interfaces the core needs from the outside world, and offers to adapters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from vigil.bots.core.models import Alert, ChatMessage, DeliveryResult

if TYPE_CHECKING:
    from vigil.bots.core.monitor import HandleResult


class AlertSink(Protocol):
    """Where alerts go: a private moderator channel, the console, a webhook.

    Must not raise for platform failures: report them in the ``DeliveryResult`` so the outbox retries.
    ``update`` receives the ``delivery_ref`` that ``post`` returned.
    """

    async def post(self, alert: Alert) -> DeliveryResult: ...

    async def update(self, alert: Alert, *, ref: str) -> DeliveryResult: ...


class MessageHandler(Protocol):
    """What adapters feed translated messages into: the ``Monitor``, or a load-shedding queue before it."""

    async def handle(self, message: ChatMessage) -> HandleResult: ...
