"""Evidence packs: complete, verifiable, escaped, self-contained, and never half-written."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cases.helpers import (
    CHILD_SAFETY,
    HOSTILE,
    INJECTION,
    MODERATOR,
    PLATFORM,
    SPACE,
    Harness,
    actor,
    hostile_case,
    link,
    read_page,
)
from vigil.bots.core.cases import Actor, CaseAction, CaseError, Role, whole_case
from vigil.bots.core.evidence import CYBERTIPLINE_INCIDENT_TYPE, EvidencePackError, export_case


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


async def test_the_pack_is_complete_and_verifiable(harness: Harness, tmp_path: Path) -> None:
    alert = await hostile_case(harness)
    number = alert.case_number
    await harness.service.act(actor=MODERATOR, case_number=number, action=CaseAction.CLAIM)

    folder = await export_case(
        harness.store,
        platform=PLATFORM,
        space_id=SPACE,
        case_number=number,
        out_dir=tmp_path / "packs",
        actor=CHILD_SAFETY,
        message_link=link,
    )

    assert folder == tmp_path / "packs" / f"case-{SPACE}-{number}"
    assert sorted(p.name for p in folder.iterdir()) == ["case.json", "manifest.sha256", "transcript.html"]
    manifest = (folder / "manifest.sha256").read_text(encoding="utf-8").splitlines()
    assert len(manifest) == 2
    for line in manifest:
        digest, name = line.split("  ")
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    document = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    assert document["case"]["case_number"] == number and document["case"]["state"] == "claimed"
    assert document["pair"]["suspect_id"] == "adult" and document["pair"]["other_id"] == "kid"
    assert document["model"] == {"name": "keyword-test-model", "version": "test"}
    assert document["scores"]["risk"] > 0.7 and "secrecy" in document["scores"]["signals"]
    assert [event["action"] for event in document["audit"]] == ["claim"]
    window = await harness.store.load_window(alert.key)
    assert [m["message_id"] for m in document["messages"]] == [m.message_id for m in window]
    first = document["messages"][0]
    assert first["timestamp_utc"].endswith("+00:00") and first["link"] == link(window[0])
    assert HOSTILE in [m["text"] for m in document["messages"]]
    report = document["report"]["cybertipline"]
    assert (
        report["incident_type"]
        == CYBERTIPLINE_INCIDENT_TYPE
        == "Online Enticement of Children for Sexual Acts"
    )
    assert report["medium"] == "chat/IM"
    assert report["reported_user"]["platform_user_id"] == "adult"
    assert report["incident_time_utc"]["first_message"] == first["timestamp_utc"]
    assert document["report"]["platform_report_path"]
    # The export itself is on the record.
    audit = await harness.store.audit_events(platform=PLATFORM, space_id=SPACE, case_number=number)
    assert [(e.action, e.actor_id) for e in audit][-1] == ("evidence_exported", "cs-1")


async def _pack(harness: Harness, tmp_path: Path, case_number: int) -> tuple[dict[str, Any], str]:
    # A pack is never overwritten: each export into a folder of its own.
    out_dir = tmp_path / f"packs-{case_number}-{uuid.uuid4().hex[:8]}"
    folder = await export_case(
        harness.store,
        platform=PLATFORM,
        space_id=SPACE,
        case_number=case_number,
        out_dir=out_dir,
        actor=CHILD_SAFETY,
    )
    return (
        json.loads((folder / "case.json").read_text(encoding="utf-8")),
        (folder / "transcript.html").read_text(encoding="utf-8"),
    )


async def test_a_case_keeps_its_opening_though_the_window_rolls_on(harness: Harness, tmp_path: Path) -> None:
    alert = await harness.raise_alert()  # within the first 6 messages
    opening = await harness.store.load_evidence(alert.alert_id)
    # The window as it was when the case opened: the conversation from its first message.
    assert opening and opening == (await harness.store.load_window(alert.key))[: len(opening)]
    await harness.talk("adult", "kid", risky=False, turns=7)  # 20 messages in all: the window still holds all

    document, page = await _pack(harness, tmp_path, alert.case_number)
    assert document["messages_complete"] and document["messages_missing"] is None
    assert document["messages_source"] == "preserved+window" and len(document["messages"]) == 20
    assert document["report"]["cybertipline"]["incident_time_utc"]["first_message_is_conversation_start"]
    assert "Not the whole conversation" not in page

    await harness.talk("adult", "kid", risky=False, turns=10)  # 40 in all: the window keeps the latest 20
    window = await harness.store.load_window(alert.key)
    assert opening[0] not in window
    document, page = await _pack(harness, tmp_path, alert.case_number)
    held = [m["message_id"] for m in document["messages"]]
    # The opening (what led to the case) and the latest 20, in order; only the messages between are missing.
    assert held == [m.message_id for m in [*opening, *window]]
    missing = document["messages_missing"]
    assert "saw 40 messages" in missing and f"holds {len(held)}" in missing
    assert (
        f"{40 - len(held)} are missing" in missing
        and "sent between the messages that led to the case" in missing
    )
    assert document["report"]["cybertipline"]["incident_time_utc"]["first_message_is_conversation_start"]
    assert "Not the whole conversation" in page


async def test_a_pack_says_when_the_conversation_s_start_is_missing(harness: Harness, tmp_path: Path) -> None:
    short = await harness.raise_alert("adult-1", "kid-1")
    await harness.talk("adult-2", "kid-2", risky=False, turns=12)  # 24 quiet messages; the window keeps 20
    long = await harness.raise_alert("adult-2", "kid-2")

    whole, whole_page = await _pack(harness, tmp_path, short.case_number)
    assert whole["messages_complete"] and whole["messages_missing"] is None
    assert whole["report"]["cybertipline"]["incident_time_utc"]["first_message_is_conversation_start"]
    assert "Not the whole conversation" not in whole_page
    cut, cut_page = await _pack(harness, tmp_path, long.case_number)
    pair = await harness.store.load_pair(long.key)
    assert pair is not None
    seen = pair.message_count
    assert not cut["messages_complete"] and 20 <= len(cut["messages"]) < seen and seen > 24
    assert f"saw {seen} messages" in cut["messages_missing"]
    lost = seen - len(cut["messages"])
    assert f"the conversation's first {lost}, sent before" in cut["messages_missing"]
    assert not cut["report"]["cybertipline"]["incident_time_utc"]["first_message_is_conversation_start"]
    assert "Not the whole conversation" in cut_page


async def test_the_transcript_is_escaped_and_loads_nothing(harness: Harness, tmp_path: Path) -> None:
    number = (await hostile_case(harness)).case_number

    folder = await export_case(
        harness.store,
        platform=PLATFORM,
        space_id=SPACE,
        case_number=number,
        out_dir=tmp_path / "packs",
        actor=CHILD_SAFETY,
    )

    page = (folder / "transcript.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "<img" not in page.lower()
    tags, text = read_page(page)
    assert HOSTILE in text and not {"script", "img"} & tags
    # No element pulls anything in: no src/href attributes, no @import or url() in the style.
    assert not re.search(r"<[^>]*\s(src|href)\s*=", page, re.IGNORECASE)
    assert "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page


async def test_the_transcript_shows_hostile_values_as_text_and_evaluates_no_template(
    harness: Harness, tmp_path: Path
) -> None:
    # Every value the page shows comes from outside: the messages, the author ids, the links the platform
    # builds and the signal words. None of it may become markup or be read as template syntax.
    alert = await harness.raise_alert(adult=f"adult {INJECTION}")
    await harness.monitor.handle(harness.message(alert.suspect_id, f"secret groom {INJECTION}", to="kid"))

    folder = await export_case(
        harness.store,
        platform=PLATFORM,
        space_id=SPACE,
        case_number=alert.case_number,
        out_dir=tmp_path / "packs",
        actor=CHILD_SAFETY,
        message_link=lambda m: f"{link(m)}?{INJECTION}",
        signal_labels={"secrecy": f"secrecy {INJECTION}"},
    )

    page = (folder / "transcript.html").read_text(encoding="utf-8")
    tags, text = read_page(page)
    assert "script" not in tags and "<script" not in page
    # Shown as typed: "{{ 7*7 }}" is still there (not 49), and so is the {% if %} around "evaluated".
    for shown in (f"adult {INJECTION}", f"secret groom {INJECTION}", f"?{INJECTION}", f"secrecy {INJECTION}"):
        assert shown in text, shown


async def test_the_transcript_scores_only_the_likely_groomers_messages(
    harness: Harness, tmp_path: Path
) -> None:
    alert = await harness.raise_alert()
    folder = await export_case(
        harness.store,
        platform=PLATFORM,
        space_id=SPACE,
        case_number=alert.case_number,
        out_dir=tmp_path / "packs",
        actor=CHILD_SAFETY,
    )
    page = (folder / "transcript.html").read_text(encoding="utf-8")
    assert "likely groomer's messages only" in read_page(page)[1]
    cells = [
        re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr class=.*?</tr>", page, re.S)
    ]
    scores = {(row[1], row[4]) for row in cells if len(row) == 8}
    assert {author for author, score in scores if score} == {alert.suspect_id}
    assert {author for author, score in scores if not score} == {alert.other_id}
    # The record keeps every score.
    record = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    assert all(isinstance(m["risk"], float) for m in record["messages"])


async def test_escalated_case_exports_its_preserved_evidence(harness: Harness, tmp_path: Path) -> None:
    alert = await harness.raise_alert()
    await harness.service.act(actor=MODERATOR, case_number=alert.case_number, action=CaseAction.ESCALATE)
    await harness.talk("adult", "kid", risky=False, turns=15)

    folder = await export_case(
        harness.store,
        platform=PLATFORM,
        space_id=SPACE,
        case_number=alert.case_number,
        out_dir=tmp_path / "packs",
        actor=CHILD_SAFETY,
    )

    document = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    preserved = await harness.store.load_evidence(alert.alert_id)
    later = await harness.store.load_window(alert.key)
    # The preserved copy (the window when the case opened and when it was escalated) and what was said since.
    assert document["messages_source"] == "preserved+window"
    assert [m["message_id"] for m in document["messages"]] == [
        m.message_id for m in whole_case(preserved=preserved, window=later)
    ]
    assert {m.message_id for m in preserved} <= {m["message_id"] for m in document["messages"]}
    assert document["case"]["hold_until"] is not None


@pytest.mark.parametrize(
    ("who", "case_number", "error"),
    [
        (CHILD_SAFETY, 99, CaseError.NOT_FOUND),
        (actor(Role.MODERATOR, Role.CHILD_SAFETY, space_id="guild-2"), 1, CaseError.NOT_FOUND),
        (MODERATOR, 1, CaseError.FORBIDDEN),
    ],
)
async def test_refused_exports_write_nothing(
    harness: Harness, tmp_path: Path, who: Actor, case_number: int, error: CaseError
) -> None:
    await harness.raise_alert()

    with pytest.raises(EvidencePackError) as raised:
        await export_case(
            harness.store,
            platform=PLATFORM,
            space_id=who.space_id,
            case_number=case_number,
            out_dir=tmp_path / "packs",
            actor=who,
        )

    assert raised.value.error is error
    assert names(tmp_path / "packs") == []


async def test_a_crash_while_writing_leaves_no_partial_pack(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alert = await harness.raise_alert()

    def fail_rename(self: Path, target: Path) -> Path:
        raise OSError("disk went away")

    monkeypatch.setattr(Path, "rename", fail_rename)
    with pytest.raises(OSError, match="disk went away"):
        await export_case(
            harness.store,
            platform=PLATFORM,
            space_id=SPACE,
            case_number=alert.case_number,
            out_dir=tmp_path / "packs",
            actor=CHILD_SAFETY,
        )

    assert names(tmp_path / "packs") == []
    audit = await harness.store.audit_events(platform=PLATFORM, space_id=SPACE, case_number=alert.case_number)
    assert audit == []
    monkeypatch.undo()
    folder = await export_case(
        harness.store,
        platform=PLATFORM,
        space_id=SPACE,
        case_number=alert.case_number,
        out_dir=tmp_path / "packs",
        actor=CHILD_SAFETY,
    )
    assert names(tmp_path / "packs") == [folder.name]


async def test_an_existing_pack_is_never_overwritten(harness: Harness, tmp_path: Path) -> None:
    alert = await harness.raise_alert()
    arguments = {
        "platform": PLATFORM,
        "space_id": SPACE,
        "case_number": alert.case_number,
        "out_dir": tmp_path / "packs",
        "actor": CHILD_SAFETY,
    }
    folder = await export_case(harness.store, **arguments)  # type: ignore[arg-type]
    before = (folder / "manifest.sha256").read_bytes()

    with pytest.raises(EvidencePackError, match="already exists"):
        await export_case(harness.store, **arguments)  # type: ignore[arg-type]

    assert (folder / "manifest.sha256").read_bytes() == before
    assert names(tmp_path / "packs") == [folder.name]
