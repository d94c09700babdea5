"""Small factories for store test data (valid defaults, overridable by keyword) and a test deadline."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from vigil.bots.core.models import Alert, AlertStatus, PairKey, PairState, RiskPoint, WindowMessage

__all__ = [
    "BASE_TIME",
    "deadline",
    "make_alert",
    "make_pair_key",
    "make_pair_state",
    "make_risk_point",
    "make_window_message",
]

BASE_TIME = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def deadline() -> asyncio.Timeout:
    """Bounds a test that could deadlock, so a broken lock fails fast instead of hanging the run."""
    return asyncio.timeout(5)


def make_pair_key(
    first: str = "u1", second: str = "u2", *, platform: str = "discord", space_id: str = "guild-1"
) -> PairKey:
    return PairKey.of(platform=platform, space_id=space_id, first=first, second=second)


def make_pair_state(
    key: PairKey | None = None,
    *,
    message_count: int = 3,
    risk: float = 0.25,
    snoozed_until: datetime | None = None,
    model_state: str = '{"h": [0.1, 0.2]}',
) -> PairState:
    key = key or make_pair_key()
    return PairState(
        key=key,
        first_seen=BASE_TIME,
        last_seen=BASE_TIME + timedelta(minutes=5),
        message_count=message_count,
        channel_ids=("c-2", "c-1"),
        model_state=model_state,
        risk=risk,
        suspect_id=key.user_a,
        above_threshold_streak=2,
        snoozed_until=snoozed_until,
    )


def make_window_message(index: int, *, thread_id: str | None = None) -> WindowMessage:
    return WindowMessage(
        message_id=f"m-{index}",
        channel_id="c-1",
        thread_id=thread_id,
        author_id="u1" if index % 2 else "u2",
        text=f"message number {index} — with ünïcode",
        timestamp=BASE_TIME + timedelta(seconds=index),
        risk=index / 100,
        signals=("secrecy",) if index % 3 == 0 else (),
    )


def make_risk_point(key: PairKey, index: int) -> RiskPoint:
    return RiskPoint(
        key=key,
        timestamp=BASE_TIME + timedelta(seconds=index),
        message_id=f"m-{index}",
        risk=index / 10,
        suspect_id="u1" if index % 2 else None,
    )


def make_alert(
    key: PairKey | None = None,
    *,
    created_at: datetime = BASE_TIME,
    shadow: bool = False,
    status: AlertStatus = AlertStatus.OPEN,
) -> Alert:
    key = key or make_pair_key()
    return Alert(
        alert_id=0,
        key=key,
        case_number=0,
        status=status,
        risk=0.91,
        peak_risk=0.93,
        suspect_id=key.user_a,
        other_id=key.user_b,
        channel_ids=("c-1",),
        signals=("secrecy", "gifts"),
        evidence=(make_window_message(1, thread_id="t-1"), make_window_message(3)),
        created_at=created_at,
        updated_at=created_at,
        revision=1,
        shadow=shadow,
        model_name="keyword-test",
    )
