"""Platform-neutral core: models, the monitor, the alert policy and the interfaces adapters implement."""

from __future__ import annotations

from vigil.bots.core.models import (
    Alert,
    AlertStatus,
    ChatMessage,
    DeliveryResult,
    OutboxItem,
    OutboxKind,
    PairKey,
    PairState,
    RiskPoint,
    SpaceSettings,
    WindowMessage,
)
from vigil.bots.core.ports import AlertSink

__all__ = [
    "Alert",
    "AlertSink",
    "AlertStatus",
    "ChatMessage",
    "DeliveryResult",
    "OutboxItem",
    "OutboxKind",
    "PairKey",
    "PairState",
    "RiskPoint",
    "SpaceSettings",
    "WindowMessage",
]
