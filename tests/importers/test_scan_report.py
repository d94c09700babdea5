"""An export scanned through the real monitor, and the report written from its alerts."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from tests.cases.helpers import INJECTION, read_page
from tests.importers.exports import discord_author, discord_export, discord_message, write_json
from vigil.bots.core.models import Alert
from vigil.bots.core.monitor import Monitor, MonitorConfig
from vigil.bots.core.policy import PolicyConfig
from vigil.bots.importers import conversation_to_messages, display_names_of, iter_conversations
from vigil.bots.importers.records import ImportedConversation
from vigil.bots.scan_report import PairTrajectory, latest_alerts, render_scan_report_html, write_scan_report
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

ADULT = discord_author("1", "adult", nickname="<script>alert(1)</script>")
KID = discord_author("2", "kid")


def grooming_dm(
    tmp_path: Path, *, adult: dict[str, object] = ADULT, text: str = "secret groom <b>secret</b> & more"
) -> Path:
    lines = []
    for second in range(12):
        if second % 2 == 0:
            lines.append(discord_message(f"m{second}", adult, text, second=second))
        else:
            lines.append(discord_message(f"m{second}", KID, "ok lol", second=second))
    export = discord_export(
        lines, channel_type="DirectTextChat", guild={"id": "0", "name": "DMs", "iconUrl": ""}
    )
    return write_json(tmp_path / "dm.json", export)


def policy() -> PolicyConfig:
    return PolicyConfig(
        threshold=0.7,
        sustain_messages=2,
        hysteresis=0.1,
        cooldown=timedelta(hours=6),
        update_min_delta=0.01,
        max_alerts_per_hour=100,
        shadow_mode=False,
    )


async def scan(path: Path, store: SqliteStore, detector: OnnxDetector) -> tuple[list[Alert], dict[str, str]]:
    monitor = Monitor(
        store=store, detector=detector, config=MonitorConfig(policy=policy(), evidence_messages=3)
    )
    alerts: list[Alert] = []
    names: dict[str, str] = {}
    for record in iter_conversations(path):
        assert isinstance(record, ImportedConversation)
        names.update(display_names_of(record))
        results = await monitor.handle_batch(conversation_to_messages(record, platform="scan"))
        alerts.extend(event.alert for result in results for event in result.alerts)
    return alerts, names


async def test_a_scanned_export_is_reported_with_names_and_escaped_excerpts(
    tmp_path: Path, sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    alerts, names = await scan(grooming_dm(tmp_path), sqlite_store, keyword_detector)
    assert alerts, "the grooming pattern should raise an alert"
    newest = latest_alerts(alerts)
    assert len(newest) == 1 and newest[0].revision == max(a.revision for a in alerts)

    out_html, out_json = tmp_path / "report.html", tmp_path / "report.json"
    key = newest[0].key
    points = tuple(await sqlite_store.risk_history(key, limit=50))
    assert len(points) >= 2
    report = await write_scan_report(
        alerts,
        out_html=out_html,
        out_json=out_json,
        signal_labels={"secrecy": "asks to keep the conversation secret"},
        display_names=names,
        summary={"files": 1, "conversations": 1, "bad_records": 2, "messages_per_second": 1234.5},
        trajectories={key: PairTrajectory(points=points, threshold=0.8)},
    )
    document = json.loads(out_json.read_text(encoding="utf-8"))
    assert document == json.loads(json.dumps(report))
    pair = document["flagged_pairs"][0]
    assert pair["suspect"] == {"id": "1", "display_name": "<script>alert(1)</script>"}
    assert pair["other"] == {"id": "2", "display_name": "kid"}
    assert pair["channel_ids"] == ["100"] and pair["platform"] == "scan" and pair["space_id"] == "0"
    assert "asks to keep the conversation secret" in pair["signals"]
    assert pair["evidence"] and all(e["author_id"] == "1" for e in pair["evidence"])
    # The risk trajectory, for programs and as a chart for people.
    assert pair["threshold"] == 0.8
    assert [p["risk"] for p in pair["risk_history"]] == [round(p.risk, 4) for p in points]

    page = out_html.read_text(encoding="utf-8")
    # For people: plain words, two-decimal risks, the export named as such (the JSON keeps the raw values).
    assert "Unreadable records skipped" in page and "bad_records" not in page and "1234.5" in page
    assert f"risk {pair['risk']:.2f}" in page and "chat export space" in page
    assert document["summary"]["bad_records"] == 2
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>secret</b>" not in page and "&lt;b&gt;secret&lt;/b&gt; &amp; more" in page
    assert page.count("<svg") == 1 and "Risk of this pair over time" in page
    assert f"{len(points)} risk point(s)" in page and "alert threshold 0.80" in page
    # Self-contained: nothing is loaded from anywhere.
    assert "default-src 'none'" in page
    for marker in ("http://", "https://", "src=", "@import", "url("):
        assert marker not in page, marker


def test_an_empty_report_says_so() -> None:
    page = render_scan_report_html({"flagged_pairs": [], "summary": {}})
    assert "0 flagged pairs" in page and "Nothing was flagged" in page


async def test_hostile_names_and_excerpts_are_shown_as_text_and_evaluate_no_template(
    tmp_path: Path, sqlite_store: SqliteStore, keyword_detector: OnnxDetector
) -> None:
    # Names and messages come from the export, signal words and the summary from the caller: all shown as
    # typed, none of it markup or template syntax.
    adult = discord_author("1", "adult", nickname=f"name {INJECTION}")
    alerts, names = await scan(
        grooming_dm(tmp_path, adult=adult, text=f"secret groom {INJECTION}"), sqlite_store, keyword_detector
    )
    assert alerts
    out_html = tmp_path / "report.html"
    await write_scan_report(
        alerts,
        out_html=out_html,
        out_json=tmp_path / "report.json",
        signal_labels={"secrecy": f"secrecy {INJECTION}"},
        display_names=names,
        summary={f"key {INJECTION}": f"value {INJECTION}"},
    )
    page = out_html.read_text(encoding="utf-8")
    tags, text = read_page(page)
    assert "script" not in tags and "<script" not in page
    # Shown as typed: "{{ 7*7 }}" is still there (not 49), and so is the {% if %} around "evaluated".
    for shown in (f"name {INJECTION}", f"secret groom {INJECTION}", f"secrecy {INJECTION}"):
        assert shown in text, shown
    assert f"key {INJECTION}" in text and f"value {INJECTION}" in text
