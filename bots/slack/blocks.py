"""Block Kit for Vigil on Slack: alerts, the dismiss modal, case details, transcripts and guidance.

Everything a member wrote is escaped before it reaches mrkdwn, so a quoted ``<!channel>`` never pings anyone
and a quoted link never unfurls. Notification text (``alert_text``) carries no names and no message text:
it is what lock screens and notification banners show.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vigil.bots.core.cases import RISK_LEGEND, CaseState, CaseSummary, CaseView, TranscriptResult, shown_risk
from vigil.bots.core.models import WindowMessage
from vigil.bots.core.sinks import excerpt

__all__ = [
    "ACTION_CLAIM",
    "ACTION_CONFIRM",
    "ACTION_DISMISS",
    "ACTION_ESCALATE",
    "ACTION_SNOOZE",
    "ACTION_TRANSCRIPT",
    "DISMISS_CALLBACK",
    "DISMISS_REASON_ACTION",
    "DISMISS_REASON_BLOCK",
    "REPORT_CALLBACK",
    "SNOOZE_CHOICES",
    "Block",
    "DismissMetadata",
    "alert_blocks",
    "alert_text",
    "case_detail_blocks",
    "case_list_text",
    "dismiss_modal",
    "escalation_guidance",
    "mrkdwn_escape",
    "parse_dismiss_metadata",
    "transcript_blocks",
    "transcript_place",
    "transcript_sent_text",
]

Block = dict[str, Any]

ACTION_CLAIM = "vigil_claim"
ACTION_DISMISS = "vigil_dismiss"
ACTION_CONFIRM = "vigil_confirm"
ACTION_ESCALATE = "vigil_escalate"
ACTION_SNOOZE = "vigil_snooze"
ACTION_TRANSCRIPT = "vigil_transcript"
DISMISS_CALLBACK = "vigil_dismiss_modal"
DISMISS_REASON_BLOCK = "reason"
DISMISS_REASON_ACTION = "reason_input"
REPORT_CALLBACK = "vigil_report"

# (label, hours) offered by the "Snooze pair" menu.
SNOOZE_CHOICES: tuple[tuple[str, int], ...] = (
    ("6 hours", 6),
    ("1 day", 24),
    ("7 days", 168),
    ("30 days", 720),
)

# Slack's limits: 50 blocks per message, 3000 characters per section text, 10 fields per section.
_MAX_BLOCKS = 50
_SECTION_CHARS = 2900
_MAX_EVIDENCE_SHOWN = 10
_MAX_EARLIER_SHOWN = 5
_MAX_PLACES_SHOWN = 10
_TRANSCRIPT_LINE_CHARS = 400

_STATE_LABELS: Mapping[CaseState, str] = {
    CaseState.OPEN: ":large_orange_circle: Open: nobody has claimed it yet",
    CaseState.CLAIMED: ":large_yellow_circle: Claimed",
    CaseState.DISMISSED: ":white_circle: Dismissed",
    CaseState.CONFIRMED: ":red_circle: Concern confirmed",
    CaseState.ESCALATED: ":rotating_light: Escalated",
}

_ESCALATION_GUIDANCE = (
    "*How to report*\n"
    "• *Slack:* tell your workspace owners and admins (they can remove the account), and report the account "
    "to Slack Trust & Safety: <https://slack.com/help/requests/new|slack.com/help/requests/new>.\n"
    "• *United States and anywhere:* NCMEC CyberTipline, "
    "<https://report.cybertip.org/|report.cybertip.org> (or 1-800-843-5678).\n"
    "• *United Kingdom:* CEOP Safety Centre, "
    "<https://www.ceop.police.uk/safety-centre/|ceop.police.uk/safety-centre>.\n"
    "• *A child in immediate danger:* call the local emergency number (999, 911, 112) now.\n"
    "Do not download, copy or forward sexual images of a child, even to report them: describe where they "
    "are. Vigil keeps this case's messages under a preservation hold for investigators."
)


def mrkdwn_escape(text: str) -> str:
    """Text shown verbatim in mrkdwn: no mentions, links or channel pings can be smuggled through."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _user(user_id: str) -> str:
    # Slack renders <@U...> as the member's current name for everyone who can see the workspace.
    return f"<@{mrkdwn_escape(user_id)}> (`{mrkdwn_escape(user_id)}`)"


def _where(channel_id: str) -> str:
    if channel_id.startswith("D"):
        return f"a direct message (`{mrkdwn_escape(channel_id)}`)"
    return f"<#{mrkdwn_escape(channel_id)}>"


def _places(channel_ids: Sequence[str]) -> str:
    shown = [_where(c) for c in channel_ids[:_MAX_PLACES_SHOWN]]
    more = len(channel_ids) - len(shown)
    return (", ".join(shown) + (f" and {more} more" if more > 0 else "")) or "—"


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:_SECTION_CHARS]}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:_SECTION_CHARS]}]}


def _chunks(lines: Iterable[str], *, heading: str) -> list[Block]:
    """Lines packed into as few sections as fit Slack's per-section limit."""
    blocks: list[Block] = []
    current = heading
    for line in lines:
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > _SECTION_CHARS and current:
            blocks.append(_section(current))
            current = line
        else:
            current = candidate
    if current:
        blocks.append(_section(current))
    return blocks


def alert_text(view: CaseView) -> str:
    """The notification text of an alert: case number and risk only."""
    alert = view.alert
    return (
        f"Vigil case #{alert.case_number}: risk {alert.risk:.2f}, {view.state.value}. Open Slack to review."
    )


def _state_line(view: CaseView) -> str:
    line = _STATE_LABELS[view.state]
    if view.claimed_by and view.state is not CaseState.OPEN:
        line += f" · claimed by <@{mrkdwn_escape(view.claimed_by)}>"
    if view.state is CaseState.DISMISSED and view.dismiss_reason:
        line += f" · reason: {mrkdwn_escape(excerpt(view.dismiss_reason, limit=300))}"
    if view.hold_until is not None:
        line += f" · evidence held until {view.hold_until:%Y-%m-%d}"
    return line


def _evidence_line(message: WindowMessage, *, permalinks: Mapping[str, str]) -> str:
    link = permalinks.get(message.message_id)
    shown = f"“{mrkdwn_escape(excerpt(message.text))}”"
    tail = f" <{link}|open>" if link else ""
    return (
        f"• `{message.risk:.2f}` {_when(message.timestamp)} · <@{mrkdwn_escape(message.author_id)}> "
        f"in {_where(message.channel_id)}: {shown}{tail}"
    )


def _earlier_line(summary: CaseSummary) -> str:
    return (
        f"• #{summary.case_number} · {summary.state.value} · risk {summary.risk:.2f} · "
        f"{summary.created_at:%Y-%m-%d} · with <@{mrkdwn_escape(summary.other_id)}>"
    )


def _button(text: str, action_id: str, value: str, *, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style is not None:
        button["style"] = style
    return button


def _actions(view: CaseView) -> Block | None:
    value = str(view.alert.case_number)
    state = view.state
    elements: list[Block] = []
    if state is CaseState.OPEN:
        elements.append(_button("Claim", ACTION_CLAIM, value, style="primary"))
    if state in (CaseState.OPEN, CaseState.CLAIMED):
        elements.append(_button("Dismiss…", ACTION_DISMISS, value))
        elements.append(_button("Confirm concern", ACTION_CONFIRM, value))
    if state in (CaseState.OPEN, CaseState.CLAIMED, CaseState.CONFIRMED):
        escalate = _button("Escalate", ACTION_ESCALATE, value, style="danger")
        escalate["confirm"] = {
            "title": {"type": "plain_text", "text": "Escalate this case?"},
            "text": {
                "type": "mrkdwn",
                "text": "Escalating preserves the evidence under a hold and shows you how to report it.",
            },
            "confirm": {"type": "plain_text", "text": "Escalate"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
        elements.append(escalate)
    if state is not CaseState.DISMISSED:
        elements.append(
            {
                "type": "static_select",
                "action_id": ACTION_SNOOZE,
                "placeholder": {"type": "plain_text", "text": "Snooze pair…"},
                "options": [
                    {"text": {"type": "plain_text", "text": label}, "value": f"{value}:{hours}"}
                    for label, hours in SNOOZE_CHOICES
                ],
            }
        )
    elements.append(_button("Transcript", ACTION_TRANSCRIPT, value))
    return {"type": "actions", "block_id": f"vigil_case_{value}", "elements": elements}


def alert_blocks(
    view: CaseView,
    *,
    signal_labels: Mapping[str, str],
    permalinks: Mapping[str, str],
    trend: str,
) -> list[Block]:
    """The alert as moderators see it in the alert channel, with its case buttons."""
    alert = view.alert
    source = "member report" if view.source.value == "member_report" else "Vigil alert"
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"{source} · case #{alert.case_number}"},
        },
        {
            "type": "section",
            "fields": [
                {
                    "type": "mrkdwn",
                    "text": f"*Risk*\n{alert.risk:.2f} ({trend}; peak {alert.peak_risk:.2f})",
                },
                {"type": "mrkdwn", "text": f"*State*\n{_state_line(view)}"},
                {"type": "mrkdwn", "text": f"*Likely groomer*\n{_user(alert.suspect_id)}"},
                {"type": "mrkdwn", "text": f"*Other person*\n{_user(alert.other_id)}"},
                {
                    "type": "mrkdwn",
                    "text": "*Where they talk*\n" + _places(alert.channel_ids),
                },
                {
                    "type": "mrkdwn",
                    "text": f"*Updated*\n{_when(alert.updated_at)} (revision {alert.revision})",
                },
            ],
        },
    ]
    if alert.signals:
        labels = "; ".join(mrkdwn_escape(signal_labels.get(s, s)) for s in alert.signals)
        blocks.append(_section(f"*Signals*\n{labels}"))
    evidence = list(alert.evidence)[-_MAX_EVIDENCE_SHOWN:]
    if evidence:
        blocks.extend(
            _chunks(
                (_evidence_line(m, permalinks=permalinks) for m in evidence),
                heading="*Messages that contributed most*",
            )
        )
    if view.earlier_cases:
        earlier = view.earlier_cases[:_MAX_EARLIER_SHOWN]
        more = len(view.earlier_cases) - len(earlier)
        lines = [_earlier_line(s) for s in earlier] + ([f"… and {more} more"] if more > 0 else [])
        blocks.extend(_chunks(lines, heading="*Earlier cases about this person*"))
    blocks.append(
        _context(
            "Vigil flags and explains; a person decides. Read the conversation before acting. "
            f"Model: {mrkdwn_escape(alert.model_name)}."
        )
    )
    actions = _actions(view)
    # Keep the buttons even if a very long alert had to be cut.
    body_limit = _MAX_BLOCKS - (1 if actions is not None else 0)
    blocks = blocks[:body_limit]
    if actions is not None:
        blocks.append(actions)
    return blocks


@dataclass(frozen=True, slots=True, kw_only=True)
class DismissMetadata:
    """What the dismiss modal carries through ``private_metadata``."""

    team_id: str
    case_number: int
    channel_id: str | None


def dismiss_modal(meta: DismissMetadata) -> Block:
    return {
        "type": "modal",
        "callback_id": DISMISS_CALLBACK,
        "private_metadata": json.dumps(
            {"team": meta.team_id, "case": meta.case_number, "channel": meta.channel_id}
        ),
        "title": {"type": "plain_text", "text": f"Dismiss case #{meta.case_number}"[:24]},
        "submit": {"type": "plain_text", "text": "Dismiss"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _section(
                "Dismissing closes the alert as a false positive and snoozes this pair for a while. "
                "The reason is kept in the case's audit trail."
            ),
            {
                "type": "input",
                "block_id": DISMISS_REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Why is this not a concern?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": DISMISS_REASON_ACTION,
                    "multiline": True,
                    "min_length": 3,
                    "max_length": 1000,
                },
            },
        ],
    }


def refusal_modal(*, case_number: int, message: str) -> Block:
    """What replaces the dismiss form when the person who clicked may not dismiss: they learn it at once,
    before writing a reason."""
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": f"Dismiss case #{case_number}"[:24]},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": [_section(mrkdwn_escape(message))],
    }


def parse_dismiss_metadata(raw: str) -> DismissMetadata | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    team, case, channel = data.get("team"), data.get("case"), data.get("channel")
    if not isinstance(team, str) or not isinstance(case, int) or isinstance(case, bool):
        return None
    return DismissMetadata(
        team_id=team, case_number=case, channel_id=channel if isinstance(channel, str) else None
    )


def escalation_guidance(*, case_number: int, hold_until: datetime | None) -> str:
    held = f" Evidence is held until {hold_until:%Y-%m-%d}." if hold_until is not None else ""
    return f"Case #{case_number} is escalated.{held}\n\n{_ESCALATION_GUIDANCE}"


def transcript_blocks(*, case_number: int, transcript: TranscriptResult, note: str = "") -> list[Block]:
    """A case's messages for the child-safety group (shown only to the person who asked): the fallback when
    the transcript file could not be sent (``note`` says why)."""
    messages = transcript.messages
    heading = (
        (f"{note}\n" if note else "")
        + f"*Transcript of case #{case_number}* ({len(messages)} messages; only you can see this). "
        f"Handle it as evidence: do not copy it into other channels.\n_{RISK_LEGEND}_"
    )
    lines = [
        f"{_score(shown_risk(m, suspect_id=transcript.suspect_id))}{_when(m.timestamp)} "
        f"<@{mrkdwn_escape(m.author_id)}>: {mrkdwn_escape(excerpt(m.text, limit=_TRANSCRIPT_LINE_CHARS))}"
        for m in messages
    ]
    if not lines:
        lines = ["(no messages are kept for this case)"]
    blocks = _chunks(lines, heading=heading)
    if len(blocks) > _MAX_BLOCKS:
        blocks = [*blocks[: _MAX_BLOCKS - 1], _context("Transcript cut to fit Slack's limits.")]
    return blocks


def transcript_place(message: WindowMessage) -> str:
    """Where a message was, for the transcript file: ids (a text file shows no mentions or channel links)."""
    where = (
        f"direct message {message.channel_id}"
        if message.channel_id.startswith("D")
        else f"channel {message.channel_id}"
    )
    return where + (" (in a thread)" if message.thread_id else "")


def transcript_sent_text(*, case_number: int, transcript: TranscriptResult, expiry_note: str) -> str:
    """The ephemeral answer once the transcript file is in the member's DM: where it went and when Vigil
    deletes it (``expiry_note``), who the ids in it are (mentions render as names for the reader only), and
    what the scores mean."""
    authors = list(dict.fromkeys(m.author_id for m in transcript.messages))
    if transcript.suspect_id in authors:
        authors.remove(transcript.suspect_id)
        authors.insert(0, transcript.suspect_id)
    shown = authors[:_MAX_PLACES_SHOWN]
    named = [_user(a) + (", the likely groomer" if a == transcript.suspect_id else "") for a in shown]
    more = len(authors) - len(shown)
    people = " · ".join(named) + (f" and {more} more" if more > 0 else "")
    return "\n".join(
        [
            f"*Transcript of case #{case_number}*: {len(transcript.messages)} messages, sent as a text file "
            "to your direct messages with Vigil (only you and Vigil are in that conversation). Handle it as "
            f"evidence: do not copy it elsewhere. {expiry_note}; delete it sooner if you no longer need it.",
            f"People in it: {people}",
            f"_{RISK_LEGEND}_",
        ]
    )[:_SECTION_CHARS]


def _score(risk: float | None) -> str:
    return f"`{risk:.2f}` " if risk is not None else ""


def case_detail_blocks(view: CaseView, *, signal_labels: Mapping[str, str]) -> list[Block]:
    """``/vigil case N``: the case, its state and its audit trail (ephemeral)."""
    alert = view.alert
    lines = [
        f"*Case #{alert.case_number}* · {_state_line(view)}",
        f"Risk {alert.risk:.2f} (peak {alert.peak_risk:.2f}) · likely groomer {_user(alert.suspect_id)} · "
        f"other person {_user(alert.other_id)}",
        "Where: " + _places(alert.channel_ids),
    ]
    if alert.signals:
        lines.append("Signals: " + "; ".join(mrkdwn_escape(signal_labels.get(s, s)) for s in alert.signals))
    blocks = [_section("\n".join(lines))]
    audit = [
        f"• {event.at:%Y-%m-%d %H:%M} <@{mrkdwn_escape(event.actor_id)}> {mrkdwn_escape(event.action)}"
        + (f": {mrkdwn_escape(excerpt(event.detail, limit=200))}" if event.detail else "")
        for event in view.audit[-20:]
    ]
    if audit:
        blocks.extend(_chunks(audit, heading="*Audit trail*"))
    if view.earlier_cases:
        blocks.extend(_chunks((_earlier_line(s) for s in view.earlier_cases[:10]), heading="*Earlier cases*"))
    return blocks[:_MAX_BLOCKS]


def case_list_text(summaries: Sequence[CaseSummary], *, about: str | None) -> str:
    if not summaries:
        return "No cases" + (f" about <@{mrkdwn_escape(about)}>." if about else " yet.")
    heading = f"*Cases about <@{mrkdwn_escape(about)}>*" if about else "*Recent cases*"
    lines = [
        f"• #{s.case_number} · {s.state.value} · risk {s.risk:.2f} · <@{mrkdwn_escape(s.suspect_id)}> and "
        f"<@{mrkdwn_escape(s.other_id)}> · updated {s.updated_at:%Y-%m-%d %H:%M}"
        for s in summaries
    ]
    return "\n".join([heading, *lines])[:_SECTION_CHARS]
