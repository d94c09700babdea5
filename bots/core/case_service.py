"""``CaseService``: the ``Cases`` interface on a ``Store``. Every rule about cases lives here.

Each call runs in one store transaction: the case change, its audit event, the alert's new revision and the
outbox UPDATE that re-renders the posted alert commit together or not at all. Permission checks come before
any lookup, so a moderator without the role learns nothing about which case numbers exist, and a case number
from another space is NOT_FOUND.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from vigil.bots.core.cases import (
    Actor,
    AuditEvent,
    CaseAction,
    CaseError,
    CaseResult,
    CaseSource,
    CaseState,
    CaseSummary,
    CaseView,
    Role,
    TranscriptResult,
    whole_case,
)
from vigil.bots.core.clock import Clock, utc_now
from vigil.bots.core.models import (
    Alert,
    AlertStatus,
    ChatMessage,
    OutboxKind,
    PairKey,
    PairState,
    WindowMessage,
)
from vigil.bots.core.ports import CaseRecord, CaseServiceStore

__all__ = [
    "DEFAULT_SNOOZE",
    "MAX_SNOOZE",
    "MEMBER_REPORT_MODEL",
    "MIN_SNOOZE",
    "CaseService",
    "can_moderate",
    "summary_of",
]

logger = logging.getLogger(__name__)

DEFAULT_SNOOZE = timedelta(days=7)
MIN_SNOOZE = timedelta(hours=1)
MAX_SNOOZE = timedelta(days=90)
# The model name of a case a member opened: no model scored it.
MEMBER_REPORT_MODEL = "member-report"

_MODERATING_ROLES = frozenset({Role.MODERATOR, Role.CHILD_SAFETY})
_EARLIER_CASES = 10
_MAX_LIST = 100
_MAX_REASON_CHARS = 1000
# A report keeps at most this many of its newest messages: enough context, bounded storage.
_MAX_REPORT_MESSAGES = 500
# As the monitor: the least text needed is kept.
_STORED_TEXT_CHARS = 1000
_REPORT_EVIDENCE_MESSAGES = 5
# A pair the case service creates starts with an empty pair-model state ("{}" reads as fresh in every model).
_EMPTY_MODEL_STATE = "{}"

_NOT_FOUND = "No such case here."
_FORBIDDEN_MODERATOR = "Only moderators can do this."
_FORBIDDEN_CHILD_SAFETY = "Only the child-safety role can do this."


@dataclass(frozen=True, slots=True, kw_only=True)
class _Transition:
    """What one action needs (allowed states, role) and what it moves the case to (None: unchanged)."""

    allowed_from: frozenset[CaseState]
    to: CaseState | None
    role: frozenset[Role]


_NOT_DISMISSED = frozenset({CaseState.OPEN, CaseState.CLAIMED, CaseState.CONFIRMED, CaseState.ESCALATED})
_UNDECIDED = frozenset({CaseState.OPEN, CaseState.CLAIMED})

_TRANSITIONS: dict[CaseAction, _Transition] = {
    CaseAction.CLAIM: _Transition(
        allowed_from=frozenset({CaseState.OPEN}), to=CaseState.CLAIMED, role=_MODERATING_ROLES
    ),
    CaseAction.DISMISS: _Transition(allowed_from=_UNDECIDED, to=CaseState.DISMISSED, role=_MODERATING_ROLES),
    CaseAction.CONFIRM: _Transition(allowed_from=_UNDECIDED, to=CaseState.CONFIRMED, role=_MODERATING_ROLES),
    CaseAction.ESCALATE: _Transition(
        allowed_from=_UNDECIDED | {CaseState.CONFIRMED}, to=CaseState.ESCALATED, role=_MODERATING_ROLES
    ),
    CaseAction.SNOOZE: _Transition(allowed_from=_NOT_DISMISSED, to=None, role=_MODERATING_ROLES),
    CaseAction.NOTE: _Transition(allowed_from=_NOT_DISMISSED, to=None, role=_MODERATING_ROLES),
    CaseAction.RELEASE_HOLD: _Transition(
        allowed_from=frozenset({CaseState.ESCALATED}), to=None, role=frozenset({Role.CHILD_SAFETY})
    ),
}

_DONE = {
    CaseAction.CLAIM: "Case #{n} claimed.",
    CaseAction.DISMISS: "Case #{n} dismissed; the pair is snoozed.",
    CaseAction.CONFIRM: "Case #{n} confirmed.",
    CaseAction.ESCALATE: "Case #{n} escalated; its evidence is preserved under a hold until {hold}.",
    CaseAction.SNOOZE: "Case #{n}: the pair is snoozed until {snooze}.",
    CaseAction.NOTE: "Note added to case #{n}.",
    CaseAction.RELEASE_HOLD: "Case #{n}: the preservation hold is released.",
}


def can_moderate(actor: Actor) -> bool:
    return bool(actor.roles & _MODERATING_ROLES)


def role_refusal(actor: Actor, action: CaseAction) -> str | None:
    """Why ``actor`` may not take ``action`` on a case, or None when their roles allow it: adapters ask before
    showing a form, so nobody fills one in only to be refused."""
    transition = _TRANSITIONS[CaseAction(action)]
    if actor.roles & transition.role:
        return None
    return _FORBIDDEN_MODERATOR if Role.MODERATOR in transition.role else _FORBIDDEN_CHILD_SAFETY


def _clean_text(text: str | None) -> str | None:
    if text is None:
        return None
    cleaned = text.strip()
    return cleaned[:_MAX_REASON_CHARS] if cleaned else None


def _storable(text: str) -> str:
    # Lone surrogates cannot be stored as UTF-8.
    return text[:_STORED_TEXT_CHARS].encode("utf-8", "replace").decode("utf-8")


def summary_of(record: CaseRecord) -> CaseSummary:
    alert = record.alert
    return CaseSummary(
        case_number=alert.case_number,
        state=record.state,
        risk=alert.risk,
        suspect_id=alert.suspect_id,
        other_id=alert.other_id,
        created_at=alert.created_at,
        updated_at=alert.updated_at,
    )


class CaseService:
    """Implements ``bots.core.cases.Cases`` on a ``Store``.

    ``dismiss_snooze``: how long a dismissed pair stays quiet; ``hold_period``: how long escalation preserves
    evidence; ``on_delivery_enqueued`` is called after a commit that queued an alert delivery (the outbox
    worker's ``notify``).
    """

    def __init__(
        self,
        *,
        store: CaseServiceStore,
        clock: Clock = utc_now,
        dismiss_snooze: timedelta = timedelta(hours=6),
        hold_period: timedelta = timedelta(days=365),
        on_delivery_enqueued: Callable[[], None] | None = None,
    ) -> None:
        if dismiss_snooze < timedelta(0) or hold_period <= timedelta(0):
            raise ValueError("dismiss_snooze must not be negative and hold_period must be positive")
        self._store = store
        self._clock = clock
        self._dismiss_snooze = dismiss_snooze
        self._hold_period = hold_period
        self._on_delivery_enqueued = on_delivery_enqueued

    # ------------------------------------------------------------------ reading

    async def view(self, alert: Alert) -> CaseView:
        """The case behind ``alert`` as sinks render it (no permission check: sinks post to moderators)."""
        async with self._store.transaction():
            record = await self._store.case_for_alert(alert.alert_id)
            return await self._view(record or CaseRecord(alert=alert), alert=alert)

    async def get(self, *, actor: Actor, case_number: int) -> CaseResult:
        if not can_moderate(actor):
            return CaseResult(error=CaseError.FORBIDDEN, message=_FORBIDDEN_MODERATOR)
        async with self._store.transaction():
            record = await self._find(actor, case_number)
            if record is None:
                return CaseResult(error=CaseError.NOT_FOUND, message=_NOT_FOUND)
            return CaseResult(case=await self._view(record), message=f"Case #{case_number}.")

    async def list_cases(
        self, *, actor: Actor, user_id: str | None = None, limit: int = 20
    ) -> tuple[CaseResult, tuple[CaseSummary, ...]]:
        if not can_moderate(actor):
            return CaseResult(error=CaseError.FORBIDDEN, message=_FORBIDDEN_MODERATOR), ()
        if not 1 <= limit <= _MAX_LIST:
            return CaseResult(error=CaseError.INVALID_INPUT, message=f"Limit must be 1 to {_MAX_LIST}."), ()
        records = await self._store.list_cases(
            platform=actor.platform, space_id=actor.space_id, user_id=user_id, limit=limit
        )
        summaries = tuple(summary_of(record) for record in records)
        noun = "case" if len(summaries) == 1 else "cases"
        return CaseResult(message=f"{len(summaries)} {noun}."), summaries

    async def transcript(self, *, actor: Actor, case_number: int) -> TranscriptResult:
        """Preserved evidence if the case has any, else the pair's window. Every reading is audited."""
        if Role.CHILD_SAFETY not in actor.roles:
            return TranscriptResult(error=CaseError.FORBIDDEN, message=_FORBIDDEN_CHILD_SAFETY)
        async with self._store.transaction():
            record = await self._find(actor, case_number)
            if record is None:
                return TranscriptResult(error=CaseError.NOT_FOUND, message=_NOT_FOUND)
            messages = await self.case_messages(record)
            await self._store.append_audit(
                platform=actor.platform,
                space_id=actor.space_id,
                case_number=case_number,
                at=self._clock(),
                actor_id=actor.user_id,
                action="transcript_viewed",
                detail=f"{len(messages)} messages",
            )
        logger.info("case %d: transcript read (%d messages)", case_number, len(messages))
        return TranscriptResult(
            messages=tuple(messages),
            suspect_id=record.alert.suspect_id,
            message=f"Case #{case_number}: transcript.",
        )

    async def case_messages(self, record: CaseRecord) -> list[WindowMessage]:
        """A case's messages: what it preserved (from its opening on) and the pair's window since."""
        return whole_case(
            preserved=await self._store.load_evidence(record.alert.alert_id),
            window=await self._store.load_window(record.alert.key),
        )

    # ------------------------------------------------------------------ acting

    async def act(
        self,
        *,
        actor: Actor,
        case_number: int,
        action: CaseAction,
        reason: str | None = None,
        snooze_for: timedelta | None = None,
    ) -> CaseResult:
        transition = _TRANSITIONS[CaseAction(action)]
        refused = role_refusal(actor, action)
        if refused is not None:
            return CaseResult(error=CaseError.FORBIDDEN, message=refused)
        note = _clean_text(reason)
        if action is CaseAction.NOTE and note is None:
            return CaseResult(error=CaseError.INVALID_INPUT, message="A note needs some text.")
        snooze = DEFAULT_SNOOZE if snooze_for is None else snooze_for
        if action is CaseAction.SNOOZE and not MIN_SNOOZE <= snooze <= MAX_SNOOZE:
            return CaseResult(error=CaseError.INVALID_INPUT, message="Snooze for between 1 hour and 90 days.")
        enqueued = False
        async with self._store.transaction():
            record = await self._find(actor, case_number)
            if record is None:
                return CaseResult(error=CaseError.NOT_FOUND, message=_NOT_FOUND)
            refusal = self._refusal(record, action, transition)
            if refusal is not None:
                return CaseResult(error=CaseError.INVALID_TRANSITION, message=refusal)
            now = self._clock()
            updated, detail, done = await self._apply(
                record, actor, action, note=note, snooze=snooze, now=now
            )
            if isinstance(updated, CaseResult):
                return updated
            stored, enqueued = await self._commit_change(
                record, updated, actor=actor, action=action.value, detail=detail, now=now
            )
            view = await self._view(stored)
        self._notify(enqueued)
        logger.info("case %d: %s by %s", case_number, action.value, actor.user_id)
        return CaseResult(case=view, message=done)

    def _refusal(self, record: CaseRecord, action: CaseAction, transition: _Transition) -> str | None:
        number = record.alert.case_number
        if record.state not in transition.allowed_from:
            if action is CaseAction.CLAIM and record.state is CaseState.CLAIMED:
                return f"Case #{number} is already claimed by {record.claimed_by}."
            return f"Case #{number} is {record.state.value}: it cannot be {_past(action)}."
        if action is CaseAction.RELEASE_HOLD and record.hold_until is None:
            return f"Case #{number} has no preservation hold to release."
        return None

    async def _apply(
        self,
        record: CaseRecord,
        actor: Actor,
        action: CaseAction,
        *,
        note: str | None,
        snooze: timedelta,
        now: datetime,
    ) -> tuple[CaseRecord | CaseResult, str | None, str]:
        """The changed case, the audit detail and the reply; or a refusal found while applying."""
        number = record.alert.case_number
        alert = record.alert
        if action is CaseAction.CLAIM:
            return (
                dataclasses.replace(record, state=CaseState.CLAIMED, claimed_by=actor.user_id),
                note,
                (_DONE[action].format(n=number)),
            )
        if action is CaseAction.CONFIRM:
            return (
                dataclasses.replace(record, state=CaseState.CONFIRMED),
                note,
                _DONE[action].format(n=number),
            )
        if action is CaseAction.DISMISS:
            await self._snooze_pair(alert.key, until=now + self._dismiss_snooze)
            closed = dataclasses.replace(alert, status=AlertStatus.CLOSED)
            updated = dataclasses.replace(
                record, alert=closed, state=CaseState.DISMISSED, dismiss_reason=note, closed_at=now
            )
            return updated, note, _DONE[action].format(n=number)
        if action is CaseAction.ESCALATE:
            window = await self._store.load_window(alert.key)
            preserved = await self._store.preserve_evidence(
                alert_id=alert.alert_id, messages=_by_time([*window, *alert.evidence])
            )
            hold_until = now + self._hold_period
            updated = dataclasses.replace(record, state=CaseState.ESCALATED, hold_until=hold_until)
            detail = f"{preserved} messages preserved; hold until {hold_until.isoformat()}"
            if note is not None:
                detail = f"{detail}; {note}"
            return updated, detail, _DONE[action].format(n=number, hold=hold_until.date().isoformat())
        if action is CaseAction.SNOOZE:
            until = now + snooze
            if not await self._snooze_pair(alert.key, until=until):
                return (
                    CaseResult(
                        error=CaseError.INVALID_TRANSITION,
                        message=f"Case #{number}: Vigil no longer tracks this pair, so there is nothing to "
                        "snooze.",
                    ),
                    None,
                    "",
                )
            detail = f"snoozed until {until.isoformat()}"
            if note is not None:
                detail = f"{detail}; {note}"
            return record, detail, _DONE[action].format(n=number, snooze=until.isoformat(timespec="minutes"))
        if action is CaseAction.NOTE:
            return record, note, _DONE[action].format(n=number)
        # RELEASE_HOLD
        detail = f"hold until {record.hold_until.isoformat() if record.hold_until else '-'} released"
        if note is not None:
            detail = f"{detail}; {note}"
        return dataclasses.replace(record, hold_until=None), detail, _DONE[action].format(n=number)

    async def _snooze_pair(self, key: PairKey, *, until: datetime) -> bool:
        pair = await self._store.load_pair(key)
        if pair is None:
            return False
        if pair.snoozed_until is None or pair.snoozed_until < until:
            await self._store.save_pair(dataclasses.replace(pair, snoozed_until=until))
        return True

    async def _commit_change(
        self,
        before: CaseRecord,
        after: CaseRecord,
        *,
        actor: Actor,
        action: str,
        detail: str | None,
        now: datetime,
    ) -> tuple[CaseRecord, bool]:
        """Audit, bump the revision, store and queue the re-render: the stored case, and whether it queued."""
        alert = dataclasses.replace(after.alert, revision=before.alert.revision + 1, updated_at=now)
        await self._store.append_audit(
            platform=alert.key.platform,
            space_id=alert.key.space_id,
            case_number=alert.case_number,
            at=now,
            actor_id=actor.user_id,
            action=action,
            before=before.state.value,
            after=after.state.value,
            detail=detail,
        )
        stored = dataclasses.replace(after, alert=alert)
        await self._store.update_case(stored)
        if alert.shadow:
            # As the monitor: shadow alerts are never posted, so there is nothing to re-render.
            return stored, False
        await self._store.enqueue_delivery(
            alert_id=alert.alert_id, kind=OutboxKind.UPDATE, revision=alert.revision, now=now
        )
        return stored, True

    def _notify(self, enqueued: bool) -> None:
        if enqueued and self._on_delivery_enqueued is not None:
            self._on_delivery_enqueued()

    # ------------------------------------------------------------------ member reports

    async def report(
        self,
        *,
        reporter: Actor,
        reported_user_id: str,
        messages: Sequence[ChatMessage],
        note: str | None = None,
    ) -> CaseResult:
        """A member reports a conversation: its messages join the pair's window and a case opens (or grows).

        The pair is the reported user and the reporter when the reporter took part, else the reported user's
        most frequent other correspondent. Only the pair's own messages are kept, and they are also preserved
        with the case, so window trimming never loses what was reported. No moderator role is needed.
        """
        problem = _report_problem(reporter, reported_user_id, messages)
        if problem is not None:
            return CaseResult(error=CaseError.INVALID_INPUT, message=problem)
        other_id = _other_participant(reporter, reported_user_id, messages)
        if other_id is None:
            return CaseResult(
                error=CaseError.INVALID_INPUT,
                message="These messages show nobody talking with the reported member.",
            )
        key = PairKey.of(
            platform=reporter.platform, space_id=reporter.space_id, first=reported_user_id, second=other_id
        )
        reported = _by_time(
            [_window_message(m) for m in messages if m.author_id in key and not m.author_is_bot]
        )[-_MAX_REPORT_MESSAGES:]
        cleaned_note = _clean_text(note)
        async with self._store.transaction():
            now = self._clock()
            added = await self._add_to_window(key, reported, now=now)
            detail = f"reported by {reporter.user_id}: {len(reported)} messages ({len(added)} new)"
            if cleaned_note is not None:
                detail = f"{detail}; note: {cleaned_note}"
            record = await self._open_case_for_pair(key)
            if record is not None:
                await self._store.preserve_evidence(alert_id=record.alert.alert_id, messages=reported)
                stored, enqueued = await self._commit_change(
                    record, record, actor=reporter, action="member_report", detail=detail, now=now
                )
                view = await self._view(stored)
            else:
                view, enqueued = await self._new_reported_case(
                    key, reported_user_id, reported, reporter=reporter, detail=detail, now=now
                )
        self._notify(enqueued)
        logger.info("member report: case %d (%d messages)", view.alert.case_number, len(reported))
        # The view is for the adapter (e.g. to log the case number); the reporter only sees the message.
        return CaseResult(
            case=view, message="Thank you. The moderators have been told about this conversation."
        )

    async def _add_to_window(
        self, key: PairKey, messages: Sequence[WindowMessage], *, now: datetime
    ) -> list[WindowMessage]:
        pair = await self._store.load_pair(key)
        if pair is None:
            pair = PairState(
                key=key,
                first_seen=messages[0].timestamp,
                last_seen=messages[-1].timestamp,
                message_count=0,
                channel_ids=(),
                model_state=_EMPTY_MODEL_STATE,
                risk=0.0,
                suspect_id=None,
            )
        window = await self._store.load_window(key)
        known = {m.message_id for m in window}
        added = [m for m in messages if m.message_id not in known]
        channels = list(pair.channel_ids)
        for message in added:
            if message.channel_id not in channels:
                channels.append(message.channel_id)
        await self._store.save_pair(
            dataclasses.replace(
                pair,
                first_seen=min([pair.first_seen, *(m.timestamp for m in added)]),
                last_seen=max([pair.last_seen, *(m.timestamp for m in added)]),
                channel_ids=tuple(channels),
            )
        )
        # The window is trimmed by the monitor's own size on its next message; nothing reported is cut here.
        for message in added:
            await self._store.append_window(key, message, keep=len(window) + len(added))
        return added

    async def _open_case_for_pair(self, key: PairKey) -> CaseRecord | None:
        alert = await self._store.open_alert_for_pair(key)
        return None if alert is None else await self._store.case_for_alert(alert.alert_id)

    async def _new_reported_case(
        self,
        key: PairKey,
        reported_user_id: str,
        reported: Sequence[WindowMessage],
        *,
        reporter: Actor,
        detail: str,
        now: datetime,
    ) -> tuple[CaseView, bool]:
        pair = await self._store.load_pair(key)
        risk = pair.risk if pair is not None else 0.0
        theirs = [m for m in reported if m.author_id == reported_user_id]
        alert = await self._store.create_alert(
            Alert(
                alert_id=0,
                key=key,
                case_number=0,
                status=AlertStatus.OPEN,
                risk=risk,
                peak_risk=risk,
                suspect_id=reported_user_id,
                other_id=key.other(reported_user_id),
                channel_ids=tuple(dict.fromkeys(m.channel_id for m in reported)),
                signals=(),
                evidence=tuple(theirs[-_REPORT_EVIDENCE_MESSAGES:]),
                created_at=now,
                updated_at=now,
                revision=1,
                shadow=False,
                model_name=MEMBER_REPORT_MODEL,
            )
        )
        record = CaseRecord(alert=alert, source=CaseSource.MEMBER_REPORT)
        await self._store.update_case(record)
        await self._store.preserve_evidence(alert_id=alert.alert_id, messages=reported)
        await self._store.append_audit(
            platform=key.platform,
            space_id=key.space_id,
            case_number=alert.case_number,
            at=now,
            actor_id=reporter.user_id,
            action="member_report",
            after=CaseState.OPEN.value,
            detail=detail,
        )
        await self._store.enqueue_delivery(alert_id=alert.alert_id, kind=OutboxKind.POST, revision=1, now=now)
        return await self._view(record), True

    # ------------------------------------------------------------------ helpers

    async def _find(self, actor: Actor, case_number: int) -> CaseRecord | None:
        return await self._store.get_case(
            platform=actor.platform, space_id=actor.space_id, case_number=case_number
        )

    async def _view(self, record: CaseRecord, *, alert: Alert | None = None) -> CaseView:
        shown = alert or record.alert
        key = shown.key
        audit: list[AuditEvent] = await self._store.audit_events(
            platform=key.platform, space_id=key.space_id, case_number=shown.case_number
        )
        earlier = await self._store.list_cases(
            platform=key.platform,
            space_id=key.space_id,
            user_id=shown.suspect_id,
            before_case_number=shown.case_number,
            limit=_EARLIER_CASES,
        )
        return CaseView(
            alert=shown,
            state=record.state,
            source=record.source,
            claimed_by=record.claimed_by,
            dismiss_reason=record.dismiss_reason,
            hold_until=record.hold_until,
            audit=tuple(audit),
            earlier_cases=tuple(summary_of(case) for case in earlier),
        )


def _past(action: CaseAction) -> str:
    return {
        CaseAction.CLAIM: "claimed",
        CaseAction.DISMISS: "dismissed",
        CaseAction.CONFIRM: "confirmed",
        CaseAction.ESCALATE: "escalated",
        CaseAction.SNOOZE: "snoozed",
        CaseAction.NOTE: "annotated",
        CaseAction.RELEASE_HOLD: "released from a hold",
    }[action]


def _by_time(messages: Sequence[WindowMessage]) -> list[WindowMessage]:
    unique = {m.message_id: m for m in messages}
    return sorted(unique.values(), key=lambda m: (m.timestamp, m.message_id))


def _window_message(message: ChatMessage) -> WindowMessage:
    return WindowMessage(
        message_id=message.message_id,
        channel_id=message.channel_id,
        thread_id=message.thread_id,
        author_id=message.author_id,
        text=_storable(message.text),
        timestamp=message.timestamp,
        # Reported messages are not scored: a report is a person's judgement, not the model's.
        risk=0.0,
        signals=(),
    )


def _report_problem(reporter: Actor, reported_user_id: str, messages: Sequence[ChatMessage]) -> str | None:
    if not reported_user_id:
        return "Say which member you are reporting."
    if reported_user_id == reporter.user_id:
        return "You cannot report yourself."
    if not messages:
        return "A report needs the messages it is about."
    for message in messages:
        if (message.platform, message.space_id) != (reporter.platform, reporter.space_id):
            return "The messages are not from this community."
        if message.timestamp.tzinfo is None or not message.message_id or not message.author_id:
            return "A reported message is incomplete."
    theirs = [m for m in messages if m.author_id == reported_user_id]
    if not theirs:
        return "None of these messages was written by the reported member."
    if all(m.author_is_bot for m in theirs):
        return "Reports are about members, not bots."
    return None


def _other_participant(reporter: Actor, reported_user_id: str, messages: Sequence[ChatMessage]) -> str | None:
    """Who the reported member was talking with, by the strongest evidence the messages give."""
    humans = [m for m in messages if not m.author_is_bot]
    theirs = [m for m in humans if m.author_id == reported_user_id]
    # The reporter took part: wrote a message, or a DM of the reported member is addressed to them.
    if any(m.author_id == reporter.user_id for m in humans) or any(
        reporter.user_id in m.recipient_ids for m in theirs
    ):
        return reporter.user_id
    counts = Counter(m.author_id for m in humans if m.author_id != reported_user_id)
    if not counts:
        # Only the reported member's own messages: whom their DMs were addressed to, if the platform said.
        counts = Counter(r for m in theirs for r in m.recipient_ids if r != reported_user_id)
    if not counts:
        return None
    # Most messages; on a tie max() keeps the first in insertion order: the earliest seen.
    return max(counts, key=counts.__getitem__)
