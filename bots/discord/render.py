"""What moderators see on Discord: the alert embed, its buttons, and the texts of ephemeral replies.

Rendering is pure (values in, Discord objects or strings out) except for the buttons' callbacks, which hand
the click to whatever client received it (``CaseButtonHost``). Buttons are ``DynamicItem``s whose
``custom_id`` carries the action and the case number (``vigil:claim:12``), so the buttons of any alert ever
posted keep working after a restart: nothing about them lives in memory.

Titles never name anyone: people appear only as mentions and ids inside the embed's fields.
"""

from __future__ import annotations

import enum
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import discord

from vigil.bots.core.cases import (
    RISK_LEGEND,
    AuditEvent,
    CaseSource,
    CaseState,
    CaseSummary,
    CaseView,
    TranscriptResult,
)
from vigil.bots.core.models import Alert, RiskPoint, WindowMessage
from vigil.bots.core.ports import TREND_POINTS, Trend, trend_of
from vigil.bots.core.sinks import excerpt
from vigil.bots.core.transcript_text import transcript_text
from vigil.bots.discord.translate import jump_url

__all__ = [
    "CUSTOM_ID_TEMPLATE",
    "ButtonAction",
    "CaseButton",
    "CaseButtonHost",
    "DismissModal",
    "StatusReport",
    "Transcript",
    "alert_embed",
    "case_buttons",
    "case_list_text",
    "custom_id",
    "escalation_guidance",
    "evidence_links",
    "pair_history_text",
    "spoiler_excerpt",
    "status_text",
    "transcript",
    "trend_text",
]

logger = logging.getLogger(__name__)

EXCERPT_CHARS = 120
MAX_EVIDENCE_FIELDS = 8
MAX_EARLIER_CASES = 5
MAX_AUDIT_LINES = 3
MAX_MESSAGE_CHARS = 1900

_STATE_COLOURS: Mapping[CaseState, int] = MappingProxyType(
    {
        CaseState.OPEN: 0xC0392B,
        CaseState.CLAIMED: 0xE67E22,
        CaseState.CONFIRMED: 0x8E44AD,
        CaseState.ESCALATED: 0x4A235A,
        CaseState.DISMISSED: 0x7F8C8D,
    }
)
_STATE_WORDS: Mapping[CaseState, str] = MappingProxyType(
    {
        CaseState.OPEN: "open: nobody has picked it up yet",
        CaseState.CLAIMED: "claimed",
        CaseState.CONFIRMED: "concern confirmed",
        CaseState.ESCALATED: "escalated (evidence preserved)",
        CaseState.DISMISSED: "dismissed",
    }
)


class ButtonAction(enum.StrEnum):
    CLAIM = "claim"
    DISMISS = "dismiss"
    CONFIRM = "confirm"
    ESCALATE = "escalate"
    SNOOZE = "snooze"
    TRANSCRIPT = "transcript"


CUSTOM_ID_TEMPLATE = (
    r"vigil:(?P<action>" + "|".join(action.value for action in ButtonAction) + r"):(?P<case>[0-9]{1,18})"
)

_BUTTON_LOOKS: Mapping[ButtonAction, tuple[str, discord.ButtonStyle, int]] = MappingProxyType(
    {
        ButtonAction.CLAIM: ("Claim", discord.ButtonStyle.primary, 0),
        ButtonAction.DISMISS: ("Dismiss", discord.ButtonStyle.secondary, 0),
        ButtonAction.CONFIRM: ("Confirm concern", discord.ButtonStyle.danger, 0),
        ButtonAction.ESCALATE: ("Escalate", discord.ButtonStyle.danger, 0),
        ButtonAction.SNOOZE: ("Snooze pair", discord.ButtonStyle.secondary, 1),
        ButtonAction.TRANSCRIPT: ("Transcript", discord.ButtonStyle.secondary, 1),
    }
)


def custom_id(action: ButtonAction, case_number: int) -> str:
    return f"vigil:{action.value}:{case_number}"


def _enabled(action: ButtonAction, state: CaseState) -> bool:
    """Mirrors the documented transitions, so moderators are not offered what the service would refuse."""
    if action is ButtonAction.CLAIM:
        return state is CaseState.OPEN
    if action in (ButtonAction.DISMISS, ButtonAction.CONFIRM):
        return state in (CaseState.OPEN, CaseState.CLAIMED)
    if action is ButtonAction.ESCALATE:
        return state in (CaseState.OPEN, CaseState.CLAIMED, CaseState.CONFIRMED)
    if action is ButtonAction.SNOOZE:
        return state is not CaseState.DISMISSED
    return True


@runtime_checkable
class CaseButtonHost(Protocol):
    """The client that received a button click; the adapter's bot implements it."""

    async def handle_case_button(
        self, interaction: discord.Interaction[Any], *, action: ButtonAction, case_number: int
    ) -> None: ...


class CaseButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=CUSTOM_ID_TEMPLATE,
):
    """One case button. Rebuilt from its ``custom_id`` on every click, so it survives restarts."""

    def __init__(self, *, action: ButtonAction, case_number: int, disabled: bool = False) -> None:
        label, style, row = _BUTTON_LOOKS[action]
        super().__init__(
            discord.ui.Button(
                label=label, style=style, custom_id=custom_id(action, case_number), disabled=disabled
            ),
            row=row,
        )
        self.action = action
        self.case_number = case_number

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> CaseButton:
        return cls(action=ButtonAction(match["action"]), case_number=int(match["case"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        host = interaction.client
        if isinstance(host, CaseButtonHost):
            await host.handle_case_button(interaction, action=self.action, case_number=self.case_number)
        else:  # pragma: no cover - only a misconfigured client gets here
            logger.warning("a Vigil button was clicked on a client that cannot handle it")


def case_buttons(*, case_number: int, state: CaseState) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in ButtonAction:
        view.add_item(
            CaseButton(action=action, case_number=case_number, disabled=not _enabled(action, state))
        )
    return view


ReasonCallback = Callable[[discord.Interaction[Any], str | None], Awaitable[None]]


class DismissModal(discord.ui.Modal):
    """Asks for an optional reason before dismissing. Its custom_id is unique per opening, so two moderators
    dismissing the same case at once each get their own."""

    reason: discord.ui.TextInput[DismissModal] = discord.ui.TextInput(
        label="Why is this not a concern? (optional)",
        style=discord.TextStyle.paragraph,
        required=False,
        max_length=500,
        custom_id="reason",
    )

    def __init__(self, *, case_number: int, on_reason: ReasonCallback) -> None:
        super().__init__(
            title=f"Dismiss case #{case_number}",
            timeout=900,
            custom_id=f"vigil:dismiss-reason:{case_number}:{secrets.token_hex(6)}",
        )
        self.case_number = case_number
        self._on_reason = on_reason

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        # The callback isolates its own errors and always answers the interaction.
        await self._on_reason(interaction, self.reason.value.strip() or None)


# ---------------------------------------------------------------------------------------------- text pieces


def spoiler_excerpt(text: str, *, limit: int = EXCERPT_CHARS) -> str:
    """A short excerpt behind a spoiler: moderators choose to read it. Markdown (links included) is escaped,
    so a message cannot break out of the spoiler or render as a clickable link."""
    return "||" + discord.utils.escape_markdown(excerpt(text, limit=limit), ignore_links=False) + "||"


def _user(user_id: str) -> str:
    return f"<@{user_id}> (`{user_id}`)" if user_id.isdigit() else f"`{user_id}`"


def _channel(channel_id: str) -> str:
    return f"<#{channel_id}>" if channel_id.isdigit() else f"`{channel_id}`"


def _when(moment: datetime) -> str:
    return f"<t:{int(moment.timestamp())}:f>"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_TREND_WORDS = MappingProxyType(
    {
        Trend.NEW: "new",
        Trend.RISING: "↑ rising",
        Trend.FALLING: "↓ falling",
        Trend.STEADY: "→ steady",
    }
)


def trend_text(risk: float, points: Sequence[float]) -> str:
    """``0.62 → 0.74 → 0.87 (↑ rising)``: the pair's latest risks, ending at the alert's risk."""
    values = [*points[-TREND_POINTS:]]
    if not values or abs(values[-1] - risk) > 1e-9:
        values.append(risk)
    values = values[-TREND_POINTS:]
    if len(values) < 2:
        return f"{risk:.2f}"
    return " → ".join(f"{v:.2f}" for v in values) + f" ({_TREND_WORDS[trend_of(values)]})"


def evidence_links(alert: Alert) -> list[str]:
    return [_jump(alert, message) for message in alert.evidence]


def _jump(alert: Alert, message: WindowMessage) -> str:
    return jump_url(
        space_id=alert.key.space_id,
        channel_id=message.channel_id,
        thread_id=message.thread_id,
        message_id=message.message_id,
    )


def _audit_line(event: AuditEvent) -> str:
    change = f" ({event.before} → {event.after})" if event.before and event.after else ""
    detail = f": {_clip(event.detail, 80)}" if event.detail else ""
    actor = _user(event.actor_id) if event.actor_id.isdigit() else event.actor_id
    return f"{_when(event.at)} {event.action} by {actor}{change}{detail}"


def _summary_line(summary: CaseSummary) -> str:
    return (
        f"#{summary.case_number} · {summary.state.value} · risk {summary.risk:.2f} · "
        f"{_when(summary.created_at)}"
    )


def _state_text(view: CaseView) -> str:
    words = _STATE_WORDS.get(view.state, view.state.value)
    if view.claimed_by:
        words += f" · claimed by {_user(view.claimed_by)}"
    if view.state is CaseState.DISMISSED and view.dismiss_reason:
        words += f"\nReason: {_clip(discord.utils.escape_markdown(view.dismiss_reason), 300)}"
    if view.hold_until is not None:
        words += f"\nEvidence held until {_when(view.hold_until)}"
    return words


def alert_embed(
    view: CaseView,
    *,
    signal_labels: Mapping[str, str],
    risk_points: Sequence[float] = (),
) -> discord.Embed:
    alert = view.alert
    reported = " · reported by a member" if view.source is CaseSource.MEMBER_REPORT else ""
    embed = discord.Embed(
        title=f"Vigil · case #{alert.case_number}{reported}",
        colour=_STATE_COLOURS.get(view.state, 0xC0392B),
        description=(
            f"**Risk {alert.risk:.2f}** (peak {alert.peak_risk:.2f}) · trend "
            f"{trend_text(alert.risk, risk_points)}\n"
            "Vigil flags and explains; a person decides. Read the conversation before acting."
        ),
        timestamp=alert.updated_at,
    )
    embed.add_field(name="Likely groomer", value=_user(alert.suspect_id), inline=True)
    embed.add_field(name="Other party", value=_user(alert.other_id), inline=True)
    where = ", ".join(_channel(c) for c in alert.channel_ids[:10]) or "unknown"
    embed.add_field(name="Where", value=_clip(where, 1024), inline=True)
    if alert.signals:
        labels = "; ".join(signal_labels.get(s, s.replace("_", " ")) for s in alert.signals)
        embed.add_field(name="Signals", value=_clip(labels, 1024), inline=False)
    shown = alert.evidence[:MAX_EVIDENCE_FIELDS]
    for message in shown:
        embed.add_field(
            name=f"risk {message.risk:.2f} · {message.timestamp:%Y-%m-%d %H:%M} UTC",
            value=_clip(
                f"{spoiler_excerpt(message.text)}\n<@{message.author_id}> in "
                f"{_channel(message.channel_id)} · [jump]({_jump(alert, message)})",
                1024,
            ),
            inline=False,
        )
    if len(alert.evidence) > len(shown):
        embed.add_field(
            name="More evidence",
            value=f"{len(alert.evidence) - len(shown)} more message(s): see the transcript.",
            inline=False,
        )
    if view.earlier_cases:
        lines = [_summary_line(s) for s in view.earlier_cases[:MAX_EARLIER_CASES]]
        if len(view.earlier_cases) > MAX_EARLIER_CASES:
            lines.append(f"… and {len(view.earlier_cases) - MAX_EARLIER_CASES} more (`/vigil cases`)")
        embed.add_field(name="This member's earlier cases", value=_clip("\n".join(lines), 1024), inline=False)
    embed.add_field(name="State", value=_clip(_state_text(view), 1024), inline=False)
    if view.audit:
        lines = [_audit_line(e) for e in view.audit[-MAX_AUDIT_LINES:]]
        embed.add_field(name="Latest actions", value=_clip("\n".join(lines), 1024), inline=False)
    embed.set_footer(text=_clip(f"{alert.model_name} · revision {alert.revision}", 200))
    return embed


def escalation_guidance(view: CaseView) -> str:
    """What a moderator can do next after escalating: where to report, with the evidence links."""
    links = evidence_links(view.alert)
    held = f" (held until {_when(view.hold_until)})" if view.hold_until is not None else ""
    lines = [
        f"Case #{view.alert.case_number} is escalated and its evidence is preserved{held}.",
        "**How to report** (a person decides what to send; Vigil reports nothing by itself):",
        "• **Discord Trust & Safety**: <https://dis.gd/request>, choose a report about child safety and "
        "include these message links:",
        *(f"  {link}" for link in links[:10]),
        "• **NCMEC CyberTipline** (US; takes reports about any US platform, Discord included): "
        "<https://report.cybertip.org/>",
        "• **UK: CEOP** (National Crime Agency): <https://www.ceop.police.uk/ceop-reporting/>",
        "• If a child may be in immediate danger, call your local emergency number now.",
        "Do not download, copy or forward sexual images of children, not even to report them: "
        "send the links.",
    ]
    return _clip("\n".join(lines), MAX_MESSAGE_CHARS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Transcript:
    """A case's whole transcript for the child-safety role: a short ephemeral message, and the conversation
    as one attached text file (Discord shows it in its viewer), instead of pages of ephemeral messages."""

    summary: str
    filename: str
    text: str


def transcript(result: TranscriptResult, *, case_number: int, space_id: str) -> Transcript:
    count = len(result.messages)
    summary = (
        f"Transcript of case #{case_number}: {count} message(s), attached. For the child-safety team only; "
        f"do not copy it elsewhere. Only you can see this message.\n-# {RISK_LEGEND}"
    )
    whole = transcript_text(
        result,
        case_number=case_number,
        where=lambda message: jump_url(
            space_id=space_id,
            channel_id=message.channel_id,
            thread_id=message.thread_id,
            message_id=message.message_id,
        ),
    )
    return Transcript(summary=_clip(summary, MAX_MESSAGE_CHARS), filename=whole.filename, text=whole.text)


def case_list_text(summaries: Sequence[CaseSummary], *, user_id: str | None) -> str:
    who = f" involving {_user(user_id)}" if user_id else ""
    if not summaries:
        return f"No cases{who}."
    lines = [f"**Cases{who}** (newest first):"]
    for s in summaries:
        lines.append(f"{_summary_line(s)} · {_user(s.suspect_id)} → {_user(s.other_id)}")
    return _clip("\n".join(lines), MAX_MESSAGE_CHARS)


def pair_history_text(
    *,
    first: str,
    second: str,
    risk: float | None,
    suspect_id: str | None,
    message_count: int,
    open_case: int | None,
    points: Sequence[RiskPoint],
    outlook: str | None = None,
    signals: Sequence[str] = (),
) -> str:
    """``signals``: in words, most frequent first. The chart of the risk is the HTTP API's (an SVG)."""
    head = f"**Pair** {_user(first)} and {_user(second)}"
    if risk is None:
        return f"{head}: Vigil has no conversation between them on record."
    lines = [
        head,
        f"Current risk {risk:.2f} over {message_count} message(s)"
        + (f"; likely groomer {_user(suspect_id)}" if suspect_id and risk > 0 else ""),
        f"Open case: #{open_case}" if open_case is not None else "No open case.",
        "Signals so far: " + ("; ".join(signals) if signals else "none"),
    ]
    if outlook is not None:
        lines.append(outlook[0].upper() + outlook[1:] + ".")
    if points:
        lines.append("Risk history (oldest first):")
        lines.extend(f"{_when(p.timestamp)} {p.risk:.2f}" for p in points)
    return _clip("\n".join(lines), MAX_MESSAGE_CHARS)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusReport:
    connected: bool
    latency_ms: float | None
    # "shards 0-3 of 16" when this process runs only some of the bot's shards.
    shards: str | None
    model: str
    threshold: float
    threshold_is_default: bool
    shadow_mode: bool
    alert_channel_id: str | None
    alert_channel_missing: tuple[str, ...]
    alerts_today: int
    pending_deliveries: int
    delivery_problem: str | None
    ignored_channel_ids: tuple[str, ...]


def status_text(report: StatusReport) -> str:
    connected = "connected" if report.connected else "not connected"
    if report.connected and report.latency_ms is not None:
        connected += f" ({report.latency_ms:.0f} ms)"
    if report.shards is not None:
        connected += f"; this process runs {report.shards}"
    lines = [
        f"**Vigil status**: {connected}",
        f"Model: {report.model}",
        f"Threshold: {report.threshold:.2f}" + (" (default)" if report.threshold_is_default else ""),
    ]
    if report.shadow_mode:
        lines.append("Shadow mode: alerts are recorded, not posted.")
    if report.alert_channel_id is None:
        lines.append("Alert channel: **not set**; run `/vigil setup`.")
    elif report.alert_channel_missing:
        lines.append(
            f"Alert channel: {_channel(report.alert_channel_id)}; **missing permissions**: "
            + ", ".join(report.alert_channel_missing)
        )
    else:
        lines.append(f"Alert channel: {_channel(report.alert_channel_id)}")
    lines.append(f"Alerts today (UTC): {report.alerts_today}")
    lines.append(f"Pending deliveries (all servers): {report.pending_deliveries}")
    if report.delivery_problem:
        lines.append(f"Last delivery problem: {report.delivery_problem}")
    if report.ignored_channel_ids:
        lines.append("Ignored channels: " + ", ".join(_channel(c) for c in report.ignored_channel_ids))
    return _clip("\n".join(lines), MAX_MESSAGE_CHARS)
