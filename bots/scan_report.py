"""The report of a ``vigil scan``: every flagged pair with who, where, why and the excerpts, as HTML and JSON.

The HTML is one self-contained file: every value is escaped, there is no script, and a Content-Security-Policy
forbids loading anything (no fonts, images or styles from elsewhere), so opening it contacts no one. The JSON
holds the same facts for programs. Display names appear only when the importer resolved them from the export.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

from vigil.bots.core.clock import utc_now
from vigil.bots.core.files import replace_private_file
from vigil.bots.core.models import Alert
from vigil.bots.core.sinks import alert_to_dict, excerpt

REPORT_FORMAT = 1
CAUTION = (
    "Vigil flags and explains; a person decides. Each entry is a reason to look at the conversation, never "
    "proof: the model misses things and flags innocent conversations."
)


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
) -> dict[str, object]:
    """The report's content (what the JSON file holds and the HTML shows)."""
    labels = dict(signal_labels or {})
    names = dict(display_names or {})
    pairs: list[dict[str, object]] = []
    for alert in latest_alerts(alerts):
        base = alert_to_dict(alert, signal_labels=labels)
        pairs.append(
            {
                "case_number": alert.case_number,
                "platform": alert.key.platform,
                "space_id": alert.key.space_id,
                "channel_ids": list(alert.channel_ids),
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
            }
        )
    return {
        "format": REPORT_FORMAT,
        "generated_at": (generated_at or utc_now()).isoformat(),
        "caution": CAUTION,
        "summary": dict(summary or {}),
        "flagged_pairs": pairs,
    }


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _who(person: object) -> str:
    if not isinstance(person, dict):
        return ""
    name = person.get("display_name")
    user_id = _e(person.get("id", ""))
    return f"<b>{_e(name)}</b> <code>{user_id}</code>" if name else f"<code>{user_id}</code>"


_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.5rem}h2{font-size:1.1rem;margin:0 0 .4rem}
.caution{background:#fff4e5;border-left:4px solid #e08a00;padding:.6rem .9rem}
.pair{border:1px solid #ccc;border-radius:6px;padding:.8rem 1rem;margin:1rem 0}
.risk{font-weight:bold}.meta{color:#555;font-size:.9rem}
table{border-collapse:collapse;width:100%;margin-top:.5rem}
td,th{border-top:1px solid #eee;padding:.3rem .4rem;text-align:left;vertical-align:top;font-size:.9rem}
code{font-size:.85em;background:#f3f3f3;padding:0 .2em;border-radius:3px}
dl.summary{display:grid;grid-template-columns:max-content auto;gap:.1rem 1rem}
"""


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


def _risk(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float | int) else _e(value)


def _where(platform: object) -> str:
    # Exports are replayed under the platform name "scan": say what that is.
    return "chat export" if platform == "scan" else _e(platform)


def render_scan_report_html(report: Mapping[str, object]) -> str:
    """The report as one self-contained HTML page (everything escaped, nothing loaded from anywhere)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="referrer" content="no-referrer">',
        "<title>Vigil scan report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Vigil scan report</h1>",
        f'<p class="meta">Generated {_e(report.get("generated_at", ""))}</p>',
        f'<p class="caution">{_e(report.get("caution", CAUTION))}</p>',
    ]
    summary = report.get("summary")
    if isinstance(summary, dict) and summary:
        parts.append('<dl class="summary">')
        parts.extend(
            f"<dt>{_e(SUMMARY_WORDS.get(str(key), key))}</dt>"
            f"<dd>{_e(f'{value:,}' if isinstance(value, int) else value)}</dd>"
            for key, value in summary.items()
        )
        parts.append("</dl>")
    pairs = report.get("flagged_pairs")
    pairs = pairs if isinstance(pairs, list) else []
    parts.append(f"<h2>{len(pairs)} flagged pair{'s' if len(pairs) != 1 else ''}</h2>")
    if not pairs:
        parts.append("<p>Nothing was flagged.</p>")
    for pair in pairs:
        if not isinstance(pair, dict):
            continue
        channels = pair.get("channel_ids")
        channel_list = (
            ", ".join(f"<code>{_e(c)}</code>" for c in channels) if isinstance(channels, list) else ""
        )
        signals = pair.get("signals")
        parts.extend(
            [
                '<section class="pair">',
                f"<h2>Case #{_e(pair.get('case_number'))} · "
                f'<span class="risk">risk {_risk(pair.get("risk"))}</span> '
                f"(peak {_risk(pair.get('peak_risk'))})"
                f"{' · shadow' if pair.get('shadow') else ''}</h2>",
                f"<div>Likely groomer: {_who(pair.get('suspect'))}</div>",
                f"<div>Other person: {_who(pair.get('other'))}</div>",
                f'<div class="meta">{_where(pair.get("platform"))} space '
                f"<code>{_e(pair.get('space_id'))}</code> · where: {channel_list}</div>",
            ]
        )
        if isinstance(signals, list) and signals:
            parts.append("<div>Signals: " + "; ".join(_e(s) for s in signals) + "</div>")
        evidence = pair.get("evidence")
        if isinstance(evidence, list) and evidence:
            parts.append("<table><tr><th>risk</th><th>when</th><th>who</th><th>excerpt</th></tr>")
            for item in evidence:
                if not isinstance(item, dict):
                    continue
                author = item.get("author_display_name") or item.get("author_id")
                parts.append(
                    f"<tr><td>{_risk(item.get('risk'))}</td><td>{_e(item.get('timestamp'))}</td>"
                    f"<td>{_e(author)}</td><td>“{_e(item.get('excerpt'))}”</td></tr>"
                )
            parts.append("</table>")
        parts.append(f'<p class="meta">model {_e(pair.get("model"))}</p></section>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


async def write_scan_report(
    alerts: Iterable[Alert],
    *,
    out_html: Path,
    out_json: Path,
    signal_labels: Mapping[str, str] | None = None,
    display_names: Mapping[str, str] | None = None,
    summary: Mapping[str, object] | None = None,
    generated_at: datetime | None = None,
) -> dict[str, object]:
    """Write both files (UTF-8, mode 0600) and return the report's content."""
    report = scan_report_dict(
        alerts,
        signal_labels=signal_labels,
        display_names=display_names,
        summary=summary,
        generated_at=generated_at,
    )
    page = render_scan_report_html(report)
    document = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    # Both quote the flagged messages: owner-only (0600), replaced atomically.
    await asyncio.to_thread(replace_private_file, out_html, page.encode("utf-8"))
    await asyncio.to_thread(replace_private_file, out_json, document.encode("utf-8"))
    return report
