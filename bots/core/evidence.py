"""Evidence packs: one folder per case, for the child-safety role to hand to NCMEC, the police or a platform.

``export_case`` writes ``case-<space>-<n>/`` with ``case.json`` (the case, its audit trail, the pair, the
messages with platform ids, UTC times and links, the model and its scores, and a ``report`` section laid
out for an NCMEC CyberTipline report), ``transcript.html`` (readable and printable offline: no scripts, no
external resources, every text escaped: it is rendered from ``templates/transcript.html.j2`` with Jinja2's
autoescape on) and ``manifest.sha256`` (``sha256sum -c`` checks it). The folder is written under a
temporary name next to the target, flushed to disk and renamed at the end, so a crash never leaves a
half-written pack. Media is never downloaded: a pack holds ids and links only. The pack quotes the
messages, so its files are created 0600 and the folders Vigil creates 0700, whatever the umask.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vigil.bots.core.cases import RISK_LEGEND, Actor, AuditEvent, CaseError, Role, shown_risk, whole_case
from vigil.bots.core.clock import utc_now
from vigil.bots.core.files import PRIVATE_DIR_MODE, make_private_dirs, write_private_file
from vigil.bots.core.html import render_html
from vigil.bots.core.models import PairState, WindowMessage
from vigil.bots.core.ports import CaseRecord, EvidenceStore

__all__ = [
    "CYBERTIPLINE_INCIDENT_TYPE",
    "EvidencePackError",
    "export_case",
    "pack_folder_name",
    "platform_report_path",
]

logger = logging.getLogger(__name__)

CYBERTIPLINE_INCIDENT_TYPE = "Online Enticement of Children for Sexual Acts"
CYBERTIPLINE_URL = "https://report.cybertip.org/"
PACK_FORMAT = "vigil-evidence-pack/1"
CASE_FILE = "case.json"
TRANSCRIPT_FILE = "transcript.html"
MANIFEST_FILE = "manifest.sha256"

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_PLATFORM_REPORT_PATHS = {
    "discord": (
        "Discord Trust & Safety: report each message in the app (message menu > Report) and file a report "
        "through Discord's Trust & Safety request form; include the message links from this pack."
    ),
    "slack": (
        "Slack: tell the workspace owners and admins (they control retention and exports of the messages) "
        "and report the account to Slack's Trust & Safety through Slack's help centre."
    ),
}
_GENERIC_REPORT_PATH = (
    "Report the account to the platform's Trust & Safety team, with the message ids and links from this pack."
)


class EvidencePackError(ValueError):
    """An evidence pack could not be written; ``error`` says why in case terms (NOT_FOUND, FORBIDDEN, ...)."""

    def __init__(self, message: str, *, error: CaseError) -> None:
        super().__init__(message)
        self.error = error


def pack_folder_name(space_id: str, case_number: int) -> str:
    return f"case-{_SAFE_NAME.sub('_', space_id)}-{case_number}"


def platform_report_path(platform: str) -> str:
    return _PLATFORM_REPORT_PATHS.get(platform, _GENERIC_REPORT_PATH)


async def export_case(
    store: EvidenceStore,
    *,
    platform: str,
    space_id: str,
    case_number: int,
    out_dir: Path,
    actor: Actor,
    message_link: Callable[[WindowMessage], str | None] | None = None,
    signal_labels: Mapping[str, str] | None = None,
) -> Path:
    """Write the evidence pack of a case into ``out_dir`` and return its folder. Child-safety role only.

    ``signal_labels`` (the model's plain words for its signals) are what people read in the transcript and
    beside the signal names in ``case.json``; without them, the names.

    Raises ``EvidencePackError`` (FORBIDDEN, NOT_FOUND, INVALID_INPUT) with a message for the person asking.
    The export is audited. Escalation is not required (it is what places the preservation hold).
    """
    if Role.CHILD_SAFETY not in actor.roles:
        raise EvidencePackError("Only the child-safety role can export evidence.", error=CaseError.FORBIDDEN)
    if (actor.platform, actor.space_id) != (platform, space_id):
        # As for every case call: another space's case numbers do not exist for this actor.
        raise EvidencePackError(f"No case #{case_number} here.", error=CaseError.NOT_FOUND)
    async with store.transaction():
        case = await store.get_case(platform=platform, space_id=space_id, case_number=case_number)
        if case is None:
            raise EvidencePackError(f"No case #{case_number} here.", error=CaseError.NOT_FOUND)
        preserved = await store.load_evidence(case.alert.alert_id)
        window = await store.load_window(case.alert.key)
        audit = await store.audit_events(platform=platform, space_id=space_id, case_number=case_number)
        risk_history = await store.risk_history(case.alert.key, limit=1000)
        pair = await store.load_pair(case.alert.key)
    messages, source = _pack_messages(case, preserved=preserved, window=window)
    gaps = _Gaps.of(messages, preserved=preserved, window=window, pair=pair)
    missing = _missing_note(messages, source=source, gaps=gaps)
    words = dict(signal_labels or {})
    generated_at = utc_now()
    links = {m.message_id: message_link(m) if message_link is not None else None for m in messages}
    document = _case_document(
        case,
        messages=messages,
        messages_source=source,
        links=links,
        audit=audit,
        risk_history=[(p.timestamp, p.risk, p.suspect_id) for p in risk_history],
        actor=actor,
        generated_at=generated_at,
        signal_labels=words,
        missing=missing,
        start_kept=missing is None or gaps.start_kept,
    )
    case_json = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=False) + "\n"
    transcript = _transcript_html(
        case,
        messages=messages,
        links=links,
        audit=audit,
        generated_at=generated_at,
        signal_labels=words,
        missing=missing,
    )
    target = out_dir / pack_folder_name(space_id, case_number)
    manifest = await asyncio.to_thread(
        _write_pack,
        target,
        {CASE_FILE: case_json.encode("utf-8"), TRANSCRIPT_FILE: transcript.encode("utf-8")},
    )
    await store.append_audit(
        platform=platform,
        space_id=space_id,
        case_number=case_number,
        at=generated_at,
        actor_id=actor.user_id,
        action="evidence_exported",
        detail=f"{len(messages)} messages; manifest sha256 {hashlib.sha256(manifest).hexdigest()}",
    )
    logger.info("case %d: evidence pack written to %s (%d messages)", case_number, target, len(messages))
    return target


def _pack_messages(
    case: CaseRecord, *, preserved: Sequence[WindowMessage], window: Sequence[WindowMessage]
) -> tuple[list[WindowMessage], str]:
    if preserved and window:
        return whole_case(preserved=preserved, window=window), "preserved+window"
    if preserved:
        return list(preserved), "preserved"
    if window:
        return list(window), "window"
    # The window may be gone (retention); the alert's own excerpts are what is left.
    return list(case.alert.evidence), "alert_evidence"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Gaps:
    """What a pack lacks of the conversation, as far as Vigil can tell from what it kept."""

    seen: int | None  # messages Vigil counted for the pair (None: the pair's state is gone)
    start_kept: bool  # the pack's first message is the conversation's first Vigil saw
    between: bool  # messages may be missing between the case's opening copy and the latest window

    @classmethod
    def of(
        cls,
        messages: Sequence[WindowMessage],
        *,
        preserved: Sequence[WindowMessage],
        window: Sequence[WindowMessage],
        pair: PairState | None,
    ) -> _Gaps:
        if pair is None or not messages:
            return cls(seen=None, start_kept=False, between=False)
        kept_ids = {m.message_id for m in preserved}
        return cls(
            seen=pair.message_count,
            start_kept=messages[0].timestamp <= pair.first_seen,
            # Only when the two copies do not overlap can messages have been said between them unkept.
            between=bool(preserved and window) and not kept_ids & {m.message_id for m in window},
        )


def _missing_note(messages: Sequence[WindowMessage], *, source: str, gaps: _Gaps) -> str | None:
    """What the pack lacks of the conversation, in words for the person filing a report; None when whole."""
    if source == "alert_evidence":
        return (
            "The pair's messages were already removed under the retention schedule: only the excerpts in the "
            "alert remain, so the conversation's start and most of its messages are missing."
        )
    seen = gaps.seen
    if seen is None or seen <= len(messages):
        return None
    lost = seen - len(messages)
    if source == "preserved+window":
        if gaps.start_kept:
            where = (
                "they were sent between the messages that led to the case (copied when it opened) and the "
                "latest ones, which the pair's rolling window keeps"
            )
        elif gaps.between:
            where = (
                "some are the conversation's first messages, sent before those the case copied when it "
                "opened, and the others were sent between that copy and the latest ones, which the pair's "
                "rolling window keeps"
            )
        else:
            where = (
                f"they are the conversation's first {lost}, sent before the messages the case copied when "
                "it opened"
            )
        return (
            f"Vigil saw {seen} messages between these two people and this pack holds {len(messages)}: "
            f"{lost} are missing, by design (see the retention schedule): {where}. The platform holds the "
            "rest."
        )
    return (
        f"Vigil saw {seen} messages between these two people and keeps only the latest {len(messages)} "
        "(a rolling window, by design: see the retention schedule), so the conversation's first "
        f"{lost} messages are missing: the times below are those of the first and last "
        "kept message, and the conversation began earlier. The platform holds the rest."
    )


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


def _model(model_name: str) -> dict[str, str | None]:
    name, _, version = model_name.rpartition(" ")
    return {"name": name, "version": version} if name else {"name": model_name, "version": None}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Participants:
    suspect_id: str
    other_id: str

    def role(self, author_id: str) -> str:
        if author_id == self.suspect_id:
            return "reported user"
        return "other participant" if author_id == self.other_id else "third party"


def _case_document(
    case: CaseRecord,
    *,
    messages: Sequence[WindowMessage],
    messages_source: str,
    links: dict[str, str | None],
    audit: Sequence[AuditEvent],
    risk_history: Sequence[tuple[datetime, float, str | None]],
    actor: Actor,
    generated_at: datetime,
    signal_labels: Mapping[str, str],
    missing: str | None,
    start_kept: bool,
) -> dict[str, object]:
    alert = case.alert
    people = _Participants(suspect_id=alert.suspect_id, other_id=alert.other_id)
    first = messages[0].timestamp if messages else None
    last = messages[-1].timestamp if messages else None
    return {
        "format": PACK_FORMAT,
        "generated_at": _time(generated_at),
        "generated_by": actor.user_id,
        "case": {
            "platform": alert.key.platform,
            "space_id": alert.key.space_id,
            "case_number": alert.case_number,
            "state": case.state.value,
            "source": case.source.value,
            "created_at": _time(alert.created_at),
            "updated_at": _time(alert.updated_at),
            "claimed_by": case.claimed_by,
            "dismiss_reason": case.dismiss_reason,
            "hold_until": _time(case.hold_until),
            "text_purged_at": _time(case.text_purged_at),
            "channel_ids": list(alert.channel_ids),
            "shadow": alert.shadow,
            "revision": alert.revision,
        },
        "pair": {
            "user_a": alert.key.user_a,
            "user_b": alert.key.user_b,
            "suspect_id": alert.suspect_id,
            "other_id": alert.other_id,
        },
        "model": _model(alert.model_name),
        "scores": {
            "risk": alert.risk,
            "peak_risk": alert.peak_risk,
            "signals": list(alert.signals),
            "signals_in_words": [signal_labels.get(name, name) for name in alert.signals],
            "risk_history": [
                {"at": _time(at), "risk": risk, "suspect_id": suspect} for at, risk, suspect in risk_history
            ],
        },
        "audit": [
            {
                "event_id": event.event_id,
                "at": _time(event.at),
                "actor_id": event.actor_id,
                "action": event.action,
                "before": event.before,
                "after": event.after,
                "detail": event.detail,
            }
            for event in audit
        ],
        "messages_source": messages_source,
        "messages_complete": missing is None,
        "messages_missing": missing,
        "messages": [
            {
                "message_id": m.message_id,
                "channel_id": m.channel_id,
                "thread_id": m.thread_id,
                "author_id": m.author_id,
                "author_role": people.role(m.author_id),
                "timestamp_utc": _time(m.timestamp),
                "link": links.get(m.message_id),
                "text": m.text,
                "risk": m.risk,
                "signals": list(m.signals),
                "signals_in_words": [signal_labels.get(name, name) for name in m.signals],
            }
            for m in messages
        ],
        "report": {
            "cybertipline": {
                "where": CYBERTIPLINE_URL,
                "incident_type": CYBERTIPLINE_INCIDENT_TYPE,
                "medium": "chat/IM",
                "platform": alert.key.platform,
                "reported_user": {
                    "platform": alert.key.platform,
                    "platform_user_id": alert.suspect_id,
                    # Vigil stores no names; look the screen name up on the platform.
                    "screen_name": None,
                },
                "incident_time_utc": {
                    "first_message": _time(first),
                    "last_message": _time(last),
                    # Without this, "first_message" reads as the conversation's start.
                    "first_message_is_conversation_start": start_kept,
                },
            },
            "platform_report_path": platform_report_path(alert.key.platform),
            "notes": [
                "Vigil never downloads media or attachments: only message ids and links are included. "
                "Do not download or forward images yourself; the platform and the authorities can "
                "obtain them.",
                "Scores are a model's estimate, not proof. The messages are the evidence.",
            ],
        },
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class _MessageRow:
    """One transcript row, every cell already text: the template only lays it out (and escapes it)."""

    reported: bool
    time: str
    author_id: str
    role: str
    text: str
    score: str
    channel_id: str
    message_id: str
    link: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _AuditRow:
    time: str
    actor_id: str
    action: str
    before: str
    after: str
    detail: str


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _transcript_html(
    case: CaseRecord,
    *,
    messages: Sequence[WindowMessage],
    links: dict[str, str | None],
    audit: Sequence[AuditEvent],
    generated_at: datetime,
    signal_labels: Mapping[str, str],
    missing: str | None,
) -> str:
    alert = case.alert
    people = _Participants(suspect_id=alert.suspect_id, other_id=alert.other_id)
    rows = [
        _MessageRow(
            reported=m.author_id == alert.suspect_id,
            time=_cell(_time(m.timestamp)),
            author_id=m.author_id,
            role=people.role(m.author_id),
            text=m.text,
            score=_cell(_score(shown_risk(m, suspect_id=alert.suspect_id))),
            channel_id=m.channel_id,
            message_id=m.message_id,
            link=_cell(links.get(m.message_id)),
        )
        for m in messages
    ]
    audit_rows = [
        _AuditRow(
            time=_cell(_time(event.at)),
            actor_id=_cell(event.actor_id),
            action=_cell(event.action),
            before=_cell(event.before),
            after=_cell(event.after),
            detail=_cell(event.detail),
        )
        for event in audit
    ]
    return render_html(
        template="transcript.html.j2",
        title=f"Vigil case #{alert.case_number} ({alert.key.platform} {alert.key.space_id})",
        state=case.state.value,
        source=case.source.value,
        suspect_id=alert.suspect_id,
        other_id=alert.other_id,
        risk=f"{alert.risk:.2f}",
        peak_risk=f"{alert.peak_risk:.2f}",
        model=alert.model_name,
        signals="; ".join(signal_labels.get(name, name) for name in alert.signals) or "none",
        generated_at=_cell(_time(generated_at)),
        risk_legend=RISK_LEGEND,
        missing=missing,
        messages=rows,
        audit=audit_rows,
    )


def _score(risk: float | None) -> str | None:
    return None if risk is None else f"{risk:.2f}"


def _write_pack(target: Path, files: dict[str, bytes]) -> bytes:
    """Write ``files`` and their manifest into ``target`` atomically; returns the manifest's bytes."""
    if target.exists():
        raise EvidencePackError(
            f"{target} already exists; move it away or choose another output folder.",
            error=CaseError.INVALID_INPUT,
        )
    make_private_dirs(target.parent)
    temporary = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial"))
    try:
        # It becomes the pack by the rename below: 0700 exactly, whatever the umask took from mkdtemp's mode.
        os.chmod(temporary, PRIVATE_DIR_MODE)
        for name, content in files.items():
            write_private_file(temporary / name, content, durable=True)
        manifest = "".join(
            f"{hashlib.sha256(content).hexdigest()}  {name}\n" for name, content in sorted(files.items())
        ).encode("utf-8")
        write_private_file(temporary / MANIFEST_FILE, manifest, durable=True)
        _sync_directory(temporary)
        temporary.rename(target)
        _sync_directory(target.parent)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return manifest


def _sync_directory(path: Path) -> None:
    # Makes the rename durable; some platforms cannot open directories, and then there is nothing to do.
    with contextlib.suppress(OSError):
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
