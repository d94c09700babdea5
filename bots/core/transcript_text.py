"""A case's whole transcript as one plain-text file, the same on every platform.

A child-safety member reads a whole case more comfortably as one file (searchable, every message whole, no
page limits) than as pages of chat messages: Discord attaches it to an ephemeral reply, Slack uploads it to
the member's direct message with Vigil. Each platform says where a message was (``where``): Discord a jump
link, Slack the conversation's id. Scores appear beside the likely groomer's lines only (``shown_risk``),
with ``RISK_LEGEND`` at the top, so a number is never unexplained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vigil.bots.core.cases import RISK_LEGEND, TranscriptResult, shown_risk
from vigil.bots.core.models import WindowMessage

__all__ = ["HANDLING_NOTE", "NO_MESSAGES", "TranscriptText", "transcript_filename", "transcript_text"]

HANDLING_NOTE = "For the child-safety team only; do not copy it elsewhere."
NO_MESSAGES = "(no messages are kept for this case)"


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptText:
    filename: str
    text: str
    message_count: int


def transcript_filename(case_number: int) -> str:
    return f"vigil-case-{case_number}-transcript.txt"


def transcript_text(
    result: TranscriptResult,
    *,
    case_number: int,
    where: Callable[[WindowMessage], str | None],
) -> TranscriptText:
    """Every message of ``result``, oldest first, whole: a header line per message (time, author id, score,
    ``where``), then its text indented. Ids, never display names: the file may outlive a rename."""
    count = len(result.messages)
    lines = [
        f"Vigil · transcript of case #{case_number} · {count} message(s) · times in UTC",
        HANDLING_NOTE,
        RISK_LEGEND,
        "",
    ]
    for message in result.messages:
        risk = shown_risk(message, suspect_id=result.suspect_id)
        score = f" [score {risk:.2f}]" if risk is not None else ""
        place = where(message)
        tail = f" · {place}" if place else ""
        lines.append(f"{message.timestamp:%Y-%m-%d %H:%M} · user {message.author_id}{score}{tail}")
        lines.extend(f"    {line}" for line in message.text.splitlines() or [""])
    if not result.messages:
        lines.append(NO_MESSAGES)
    return TranscriptText(
        filename=transcript_filename(case_number), text="\n".join(lines) + "\n", message_count=count
    )
