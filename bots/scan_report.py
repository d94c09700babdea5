"""The report of a ``vigil scan``: every flagged pair with who, where, why and the excerpts, as HTML and JSON.

The HTML is one self-contained file: every value is escaped, there is no script, and a Content-Security-Policy
forbids loading anything (no fonts, images or styles from elsewhere), so opening it contacts no one. The JSON
holds the same facts for programs. Display names appear only when the importer resolved them from the export.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from markupsafe import Markup

from vigil.bots.core.charts import risk_chart_svg
from vigil.bots.core.clock import utc_now
from vigil.bots.core.files import replace_private_file
from vigil.bots.core.html import render_html
from vigil.bots.core.models import Alert, PairKey, RiskPoint
from vigil.bots.core.sinks import alert_to_dict, excerpt

REPORT_FORMAT = 1
CAUTION = (
    "Vigil flags and explains; a person decides. Each entry is a reason to look at the conversation, never "
    "proof: the model misses things and flags innocent conversations."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PairTrajectory:
    """A flagged pair's risk over its recorded steps (oldest first) and the threshold it is judged against."""

    points: tuple[RiskPoint, ...]
    threshold: float


def latest_alerts(alerts: Iterable[Alert]) -> list[Alert]:
    """One alert per alert id (its newest revision), strongest first."""
    newest: dict[int, Alert] = {}
    for alert in alerts:
        known = newest.get(alert.alert_id)
        if known is None or alert.revision >= known.revision:
            newest[alert.alert_id] = alert
    return sorted(
        newest.values(), key=lambda a: (-a.peak_risk, a.key.platform, a.key.space_id, a.case_number)
    )


def _person(user_id: str, names: Mapping[str, str]) -> dict[str, object]:
    return {"id": user_id, "display_name": names.get(user_id)}


def scan_report_dict(
    alerts: Iterable[Alert],
    *,
    signal_labels: Mapping[str, str] | None = None,
    display_names: Mapping[str, str] | None = None,
    summary: Mapping[str, object] | None = None,
    generated_at: datetime | None = None,
    trajectories: Mapping[PairKey, PairTrajectory] | None = None,
    place_names: Mapping[tuple[str, str], str] | None = None,
) -> dict[str, object]:
    """The report's content (what the JSON file holds and the HTML shows). ``place_names``: the export's
    names of servers or workspaces (``("space", id)``) and channels (``("channel", id)``)."""
    labels = dict(signal_labels or {})
    names = dict(display_names or {})
    places = dict(place_names or {})
    pairs: list[dict[str, object]] = []
    for alert in latest_alerts(alerts):
        base = alert_to_dict(alert, signal_labels=labels)
        trajectory = (trajectories or {}).get(alert.key)
        pairs.append(
            {
                "case_number": alert.case_number,
                "platform": alert.key.platform,
                "space_id": alert.key.space_id,
                "space_name": places.get(("space", alert.key.space_id)),
                "channel_ids": list(alert.channel_ids),
                "channel_names": [places.get(("channel", channel)) for channel in alert.channel_ids],
                "suspect": _person(alert.suspect_id, names),
                "other": _person(alert.other_id, names),
                "risk": base["risk"],
                "peak_risk": base["peak_risk"],
                "signals": base["signals"],
                "evidence": [
                    {
                        "message_id": m.message_id,
                        "channel_id": m.channel_id,
                        "author_id": m.author_id,
                        "author_display_name": names.get(m.author_id),
                        "timestamp": m.timestamp.isoformat(),
                        "risk": round(m.risk, 4),
                        "excerpt": excerpt(m.text),
                    }
                    for m in alert.evidence
                ],
                "created_at": base["created_at"],
                "model": alert.model_name,
                "shadow": alert.shadow,
                "threshold": round(trajectory.threshold, 4) if trajectory is not None else None,
                "risk_history": [
                    {"at": point.timestamp.isoformat(), "risk": round(point.risk, 4)}
                    for point in (trajectory.points if trajectory is not None else ())
                ],
            }
        )
    return {
        "format": REPORT_FORMAT,
        "generated_at": (generated_at or utc_now()).isoformat(),
        "caution": CAUTION,
        "summary": dict(summary or {}),
        "flagged_pairs": pairs,
    }


# The summary's keys (kept in the JSON for programs) as people read them.
SUMMARY_WORDS: Mapping[str, str] = {
    "files": "Files scanned",
    "conversations": "Conversations",
    "messages": "Messages",
    "pairs": "Pairs of people",
    "alerts": "New alerts",
    "bad_records": "Unreadable records skipped",
    "segments_skipped": "Segments skipped (not conversations)",
    "seconds": "Seconds taken",
    "messages_per_second": "Messages per second",
}


# What the template shows, every value already text. The report may come back from JSON, so the shapes are
# checked here, once, and the template only lays the page out (and escapes every value).
@dataclass(frozen=True, slots=True, kw_only=True)
class _PersonView:
    id: str
    display_name: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _EvidenceView:
    risk: str
    when: str
    who: str
    excerpt: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _PairView:
    case_number: str
    risk: str
    peak_risk: str
    shadow: bool
    suspect: _PersonView | None
    other: _PersonView | None
    where: str
    space_id: str
    space_name: str | None
    # (id, name or None) per channel.
    channels: list[tuple[str, str | None]]
    signals: list[str]
    evidence: list[_EvidenceView]
    model: str
    # The risk chart, inline SVG: markup made by risk_chart_svg, which escapes every text it draws.
    chart: Markup | None


def _risk(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float | int) else str(value)


def _where(platform: object) -> str:
    # Exports are replayed under the platform name "scan": say what that is.
    return "chat export" if platform == "scan" else str(platform)


def _listed(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _person_view(person: object) -> _PersonView | None:
    if not isinstance(person, dict):
        return None
    name = person.get("display_name")
    return _PersonView(id=str(person.get("id", "")), display_name=str(name) if name else None)


def _evidence_view(item: dict[str, object]) -> _EvidenceView:
    return _EvidenceView(
        risk=_risk(item.get("risk")),
        when=str(item.get("timestamp")),
        who=str(item.get("author_display_name") or item.get("author_id")),
        excerpt=str(item.get("excerpt")),
    )


def _chart(pair: dict[str, object]) -> Markup | None:
    """The pair's risk trajectory as inline SVG (nothing is loaded), from the report's ``risk_history``."""
    threshold = pair.get("threshold")
    if not isinstance(threshold, float | int):
        return None
    key = PairKey.of(platform="report", space_id="report", first="a", second="b")
    points: list[RiskPoint] = []
    for item in _listed(pair.get("risk_history")):
        if not isinstance(item, dict) or not isinstance(item.get("risk"), float | int):
            continue
        try:
            at = datetime.fromisoformat(str(item.get("at")))
        except ValueError:
            continue
        points.append(
            RiskPoint(key=key, timestamp=at, message_id="", risk=float(item["risk"]), suspect_id=None)
        )
    if len(points) < 2:
        # One point is the risk already printed; a trajectory needs two.
        return None
    svg = risk_chart_svg(points, threshold=float(threshold), title="Risk of this pair over time")
    # Inline in HTML the parser puts <svg> in its namespace: without the attribute the page names no URL.
    svg = svg.replace(' xmlns="http://www.w3.org/2000/svg"', "", 1)
    # Trusted markup, the one value the template does not escape: risk_chart_svg escapes every text it draws.
    return Markup(svg)


def _optional_text(value: object) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def _channels(pair: dict[str, object]) -> list[tuple[str, str | None]]:
    ids = [str(channel) for channel in _listed(pair.get("channel_ids"))]
    names = _listed(pair.get("channel_names"))
    return [(channel, _optional_text(names[i]) if i < len(names) else None) for i, channel in enumerate(ids)]


def _pair_view(pair: dict[str, object]) -> _PairView:
    return _PairView(
        case_number=str(pair.get("case_number")),
        risk=_risk(pair.get("risk")),
        peak_risk=_risk(pair.get("peak_risk")),
        shadow=bool(pair.get("shadow")),
        suspect=_person_view(pair.get("suspect")),
        other=_person_view(pair.get("other")),
        where=_where(pair.get("platform")),
        space_id=str(pair.get("space_id")),
        space_name=_optional_text(pair.get("space_name")),
        channels=_channels(pair),
        signals=[str(signal) for signal in _listed(pair.get("signals"))],
        evidence=[_evidence_view(item) for item in _listed(pair.get("evidence")) if isinstance(item, dict)],
        model=str(pair.get("model")),
        chart=_chart(pair),
    )


def _summary_rows(summary: object) -> list[tuple[str, str]]:
    if not isinstance(summary, dict):
        return []
    return [
        (str(SUMMARY_WORDS.get(str(key), key)), f"{value:,}" if isinstance(value, int) else str(value))
        for key, value in summary.items()
    ]


def render_scan_report_html(report: Mapping[str, object]) -> str:
    """The report as one self-contained HTML page (everything escaped, nothing loaded from anywhere)."""
    pairs = _listed(report.get("flagged_pairs"))
    return render_html(
        template="scan_report.html.j2",
        generated_at=str(report.get("generated_at", "")),
        caution=str(report.get("caution", CAUTION)),
        summary=_summary_rows(report.get("summary")),
        # Counted as the JSON lists them; an entry that is not a pair is counted but not shown.
        pair_count=len(pairs),
        pairs=[_pair_view(pair) for pair in pairs if isinstance(pair, dict)],
    )


async def write_scan_report(
    alerts: Iterable[Alert],
    *,
    out_html: Path,
    out_json: Path,
    signal_labels: Mapping[str, str] | None = None,
    display_names: Mapping[str, str] | None = None,
    summary: Mapping[str, object] | None = None,
    generated_at: datetime | None = None,
    trajectories: Mapping[PairKey, PairTrajectory] | None = None,
    place_names: Mapping[tuple[str, str], str] | None = None,
) -> dict[str, object]:
    """Write both files (UTF-8, mode 0600) and return the report's content."""
    report = scan_report_dict(
        alerts,
        signal_labels=signal_labels,
        display_names=display_names,
        summary=summary,
        generated_at=generated_at,
        trajectories=trajectories,
        place_names=place_names,
    )
    page = render_scan_report_html(report)
    document = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    # Both quote the flagged messages: owner-only (0600), replaced atomically.
    await asyncio.to_thread(replace_private_file, out_html, page.encode("utf-8"))
    await asyncio.to_thread(replace_private_file, out_json, document.encode("utf-8"))
    return report
