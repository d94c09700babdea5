"""The alert policy: when a pair's risk becomes an alert, and when an open alert is updated.

Pure functions over plain values, so every rule is testable without a store or a model:

- **Sustained evidence.** A pair alerts only after ``sustain_messages`` consecutive scored messages at or
  above the threshold; one spiky message never alerts.
- **Hysteresis.** Once a run above the threshold has started, it continues while risk stays above
  ``threshold - hysteresis``, so risk hovering at the threshold neither resets nor restarts the count.
- **One alert per pair.** While a pair has an open alert, rising risk *updates* that alert (when it rose by at
  least ``update_min_delta`` since the last revision) instead of raising a new one; so does new evidence (the
  suspect shows a signal the alert does not list yet, e.g. asks to meet), because an early alert should grow
  its explanation as the conversation goes on.
- **Cooldown / snooze.** A pair whose alert was closed is snoozed for ``cooldown`` (and moderators can snooze
  a pair explicitly); no new alert while snoozed.
- **Hourly cap.** Beyond ``max_alerts_per_hour`` in a space, a new alert is still recorded but its posting is
  deferred until the hour has room: nothing is dropped, moderators are not flooded.
- **Shadow mode.** Alerts are recorded but never posted, so a community can calibrate on its own chat first.
- **Sticky attribution.** An open alert keeps naming its suspect until the other member's risk passes the
  suspect's by ``SUSPECT_SWITCH_MARGIN``: in a grooming pair both members' risks run high (the child answers
  the same questions), and a name that followed every small crossing would put the child in front of
  moderators for no new reason.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

# How far the other member's risk must pass the named suspect's before an open alert names them instead.
SUSPECT_SWITCH_MARGIN = 0.1


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyConfig:
    threshold: float
    sustain_messages: int
    hysteresis: float
    cooldown: timedelta
    update_min_delta: float
    max_alerts_per_hour: int
    shadow_mode: bool

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.sustain_messages < 1:
            raise ValueError("sustain_messages must be >= 1")
        if not 0.0 <= self.hysteresis < self.threshold:
            raise ValueError("hysteresis must be >= 0 and below the threshold")
        if self.max_alerts_per_hour < 1:
            raise ValueError("max_alerts_per_hour must be >= 1")


class PolicyLookup(Protocol):
    """The policy a space's pairs are judged by (``Monitor.policy_for_space``), for explaining them."""

    async def __call__(self, *, platform: str, space_id: str) -> PolicyConfig: ...


class Decision(enum.Enum):
    NONE = "none"
    RAISE = "raise"
    UPDATE = "update"


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyInput:
    risk: float
    previous_streak: int
    has_open_alert: bool
    open_alert_risk: float
    snoozed_until: datetime | None
    now: datetime
    # The message shows a signal of the open alert's suspect that the alert does not list yet.
    new_evidence: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyOutcome:
    decision: Decision
    streak: int


def next_streak(*, risk: float, previous_streak: int, threshold: float, hysteresis: float) -> int:
    if risk >= threshold:
        return previous_streak + 1
    if previous_streak > 0 and risk >= threshold - hysteresis:
        # Inside the hysteresis band: the run continues but this message adds no new evidence.
        return previous_streak
    return 0


def decide(policy: PolicyConfig, state: PolicyInput) -> PolicyOutcome:
    streak = next_streak(
        risk=state.risk,
        previous_streak=state.previous_streak,
        threshold=policy.threshold,
        hysteresis=policy.hysteresis,
    )
    if state.has_open_alert:
        if state.risk >= state.open_alert_risk + policy.update_min_delta or state.new_evidence:
            return PolicyOutcome(decision=Decision.UPDATE, streak=streak)
        return PolicyOutcome(decision=Decision.NONE, streak=streak)
    snoozed = state.snoozed_until is not None and state.now < state.snoozed_until
    if streak >= policy.sustain_messages and not snoozed:
        return PolicyOutcome(decision=Decision.RAISE, streak=streak)
    return PolicyOutcome(decision=Decision.NONE, streak=streak)


def named_suspect(*, named: str, risks: Mapping[str, float], margin: float = SUSPECT_SWITCH_MARGIN) -> str:
    """Who an open alert names after an update: ``named``, unless another member's risk is at least
    ``margin`` above theirs (then the highest)."""
    top = max(risks, key=lambda author: risks[author], default=named)
    if top != named and risks[top] >= risks.get(named, 0.0) + margin:
        return top
    return named


def alert_outlook(
    policy: PolicyConfig, *, risk: float, streak: int, snoozed_until: datetime | None, now: datetime
) -> str:
    """Why a pair with no open alert has none yet, in words for a moderator (the same rule as ``decide``)."""
    if snoozed_until is not None and now < snoozed_until:
        return f"snoozed until {snoozed_until:%Y-%m-%d %H:%M} UTC: no new alert before then"
    if streak <= 0:
        return (
            f"no alert: the risk ({risk:.2f}) is below the alert threshold ({policy.threshold:.2f}); an "
            f"alert needs it at or above the threshold for {policy.sustain_messages} messages in a row"
        )
    if streak >= policy.sustain_messages:
        # The policy would raise: the model's alert reviewer held it back (bots.core.monitor), or a snooze
        # ended since the pair's last message.
        return (
            f"held back: the risk has been at or above the threshold ({policy.threshold:.2f}) for {streak} "
            "messages in a row, but the model's second reading of the recent messages did not find grooming "
            "(it reads them again at this person's next message)"
        )
    return (
        f"no alert yet: the risk has been at or above the threshold ({policy.threshold:.2f}) for {streak} of "
        f"the {policy.sustain_messages} messages in a row an alert needs"
    )


def deferred_post_time(*, now: datetime, alerts_last_hour: int, policy: PolicyConfig) -> datetime:
    """When a new alert may be posted under the hourly cap (``now`` when there is room)."""
    if alerts_last_hour < policy.max_alerts_per_hour:
        return now
    # Coarse but safe: wait until a full hour after now has passed; the outbox re-checks nothing else.
    return now + timedelta(hours=1)
