"""Cases: what moderators do after an alert. Platform-neutral types and the ``Cases`` interface.

Every alert is a case, numbered per space (numbers only go up). Adapters (Discord, Slack, HTTP, CLI) only
render cases and call ``Cases``; every rule (states, permissions, audit, evidence, holds) lives behind it.

States and transitions::

    open ──claim──► claimed
    open | claimed ──dismiss(reason)──► dismissed   (false positive: the alert closes, the pair is snoozed)
    open | claimed ──confirm──► confirmed
    open | claimed | confirmed ──escalate──► escalated   (evidence preserved under a hold)
    any non-dismissed: note, snooze (the pair); escalated: release_hold (child-safety role only)

Confirmed and escalated cases stay open for new risk: the monitor keeps editing their alert.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from vigil.bots.core.models import Alert, ChatMessage, WindowMessage


class CaseState(enum.StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    DISMISSED = "dismissed"
    CONFIRMED = "confirmed"
    ESCALATED = "escalated"


class Role(enum.StrEnum):
    MODERATOR = "moderator"  # sees alerts with excerpts, acts on cases
    CHILD_SAFETY = "child_safety"  # also sees transcripts, exports evidence, releases holds
    ADMIN = "admin"  # changes the space's settings (setup, threshold, ignored channels)


class CaseAction(enum.StrEnum):
    CLAIM = "claim"
    DISMISS = "dismiss"
    CONFIRM = "confirm"
    ESCALATE = "escalate"
    SNOOZE = "snooze"
    NOTE = "note"
    RELEASE_HOLD = "release_hold"


class CaseSource(enum.StrEnum):
    ALERT = "alert"  # raised by the monitor
    MEMBER_REPORT = "member_report"  # a member reported a conversation


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who acts, with the roles the adapter resolved from the platform (role ids in ``SpaceSettings``)."""

    platform: str
    space_id: str
    user_id: str
    roles: frozenset[Role]
    display_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """One append-only entry of a case's audit trail."""

    event_id: int
    case_number: int
    at: datetime
    actor_id: str
    action: str
    before: str | None = None
    after: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseSummary:
    case_number: int
    state: CaseState
    risk: float
    suspect_id: str
    other_id: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseView:
    """A case as moderators see it: the alert plus its state, audit trail and the suspect's earlier cases."""

    alert: Alert
    state: CaseState
    source: CaseSource
    claimed_by: str | None
    dismiss_reason: str | None
    hold_until: datetime | None
    audit: tuple[AuditEvent, ...]
    earlier_cases: tuple[CaseSummary, ...]


class CaseError(enum.StrEnum):
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    INVALID_TRANSITION = "invalid_transition"
    INVALID_INPUT = "invalid_input"


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseResult:
    """The outcome of a case call: platform adapters turn ``message`` into an ephemeral reply."""

    case: CaseView | None = None
    error: CaseError | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptResult:
    """Messages of a case for the child-safety role: preserved evidence if any, else the pair's window."""

    messages: tuple[WindowMessage, ...] = ()
    # The case's likely groomer: transcripts show message scores for their messages only (``shown_risk``).
    suspect_id: str | None = None
    error: CaseError | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


# Said wherever a transcript shows message scores, so a number beside a line is never unexplained.
RISK_LEGEND = (
    "Scores are shown for the likely groomer's messages only: how strongly each reads like grooming on its "
    "own (0-1). The other person's messages are read as context and never count against them."
)


def whole_case(*, preserved: Sequence[WindowMessage], window: Sequence[WindowMessage]) -> list[WindowMessage]:
    """All Vigil holds of a case's conversation, oldest first: its preserved messages (the window when it
    opened, reports, escalation) and the pair's current window (what was said since), each message once."""
    by_id = {message.message_id: message for message in window}
    # A preserved copy wins: it is what the case was opened, reported or escalated on.
    by_id.update((message.message_id, message) for message in preserved)
    return sorted(by_id.values(), key=lambda m: (m.timestamp, m.message_id))


def shown_risk(message: WindowMessage, *, suspect_id: str | None) -> float | None:
    """A message's score as transcripts show it: the likely groomer's own messages only. A child's "ok"
    or "why not" beside a number reads as if the child were suspected; their lines only inform the model."""
    if suspect_id is not None and message.author_id != suspect_id:
        return None
    return message.risk


class Cases(Protocol):
    """The case service as adapters use it. Permission checks happen here, never in adapters.

    ``actor.platform`` and ``actor.space_id`` scope every call: a case number from another space is NOT_FOUND.
    Every successful change appends an audit event, bumps the alert's revision and enqueues an outbox UPDATE,
    so the posted alert is re-rendered by the platform's sink.
    """

    async def view(self, alert: Alert) -> CaseView:
        """The case behind an alert, for sinks rendering it (no permission check: sinks post to mods)."""
        ...

    async def get(self, *, actor: Actor, case_number: int) -> CaseResult: ...

    async def list_cases(
        self, *, actor: Actor, user_id: str | None = None, limit: int = 20
    ) -> tuple[CaseResult, tuple[CaseSummary, ...]]: ...

    async def act(
        self,
        *,
        actor: Actor,
        case_number: int,
        action: CaseAction,
        reason: str | None = None,
        snooze_for: timedelta | None = None,
    ) -> CaseResult: ...

    async def transcript(self, *, actor: Actor, case_number: int) -> TranscriptResult: ...

    async def report(
        self,
        *,
        reporter: Actor,
        reported_user_id: str,
        messages: Sequence[ChatMessage],
        note: str | None = None,
    ) -> CaseResult:
        """A member reports the conversation around a message; opens (or adds to) the pair's case."""
        ...
