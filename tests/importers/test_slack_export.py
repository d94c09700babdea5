"""Slack workspace exports: channels, DMs, group DMs, threads, users, and broken members and entries."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.importers.exports import drain_fuzzed, slack_message, slack_workspace, write_slack_zip
from tests.support.fuzz import FUZZ_CASES, cases
from vigil.bots.core.replay import BadRecord
from vigil.bots.importers import (
    ImportedConversation,
    conversation_to_messages,
    iter_conversations,
    place_names_of,
    slack_export,
)
from vigil.bots.importers.slack_export import clean_text, iter_slack_export


def conversations(records: list[object]) -> dict[str, ImportedConversation]:
    return {r.channel_id: r for r in records if isinstance(r, ImportedConversation)}


def test_each_channel_dm_and_group_dm_is_a_record(tmp_path: Path) -> None:
    records = list(iter_conversations(write_slack_zip(tmp_path / "export.zip", slack_workspace())))
    assert not [r for r in records if isinstance(r, BadRecord)]
    found = conversations(records)
    assert sorted(found) == ["C1", "D1", "G1"]
    assert found["C1"].setting == "channel" and found["D1"].setting == "dm" and found["G1"].setting == "dm"
    assert all(r.space_id == "T9" and r.platform == "slack" and r.label == 0 for r in found.values())
    assert found["G1"].members == ("U1", "U2", "U3")


def test_a_channel_keeps_people_text_threads_and_mentions(tmp_path: Path) -> None:
    found = conversations(list(iter_conversations(write_slack_zip(tmp_path / "e.zip", slack_workspace()))))
    general = found["C1"]
    # Joins, bot messages, bot users and file-only messages are left out; days are joined in time order.
    assert [m.author for m in general.messages] == ["U1", "U2", "U1", "U3"]
    assert [m.text for m in general.messages] == [
        "anyone up for a game tonight",
        "me! @U1 <3",
        "nice see you later",
        "see this in #general",
    ]
    assert [m.reply_to for m in general.messages] == [None, None, 1, None]
    messages = conversation_to_messages(general)
    assert messages[1].mentioned_user_ids == ("U1",)
    assert messages[2].thread_id == "1772388002.000100"
    assert (
        messages[2].reply_to_message_id == "C1:1772388002.000100" and messages[2].reply_to_author_id == "U2"
    )
    assert messages[0].message_id == "C1:1772388000.000100"
    assert messages[0].timestamp == datetime.fromtimestamp(1772388000.0001, tz=UTC)
    # Display names from users.json, for the report only.
    assert dict(general.display_names) == {"U1": "Ad", "U2": "Kid Person", "U3": "friend"}
    assert all(m.author_display_name is None for m in messages)
    # A channel's name is its export folder's; an export does not name the workspace, nor a DM.
    assert place_names_of(general) == {("channel", "C1"): "general"}


def test_dm_messages_are_addressed_to_the_listed_members(tmp_path: Path) -> None:
    found = conversations(list(iter_conversations(write_slack_zip(tmp_path / "e.zip", slack_workspace()))))
    dm = conversation_to_messages(found["D1"])
    assert all(m.is_dm for m in dm)
    assert [m.recipient_ids for m in dm] == [("U2",), ("U1",), ("U2",)]
    group = conversation_to_messages(found["G1"])
    assert group[0].recipient_ids == ("U1", "U2")


def test_an_export_inside_a_folder_of_the_zip_and_an_unzipped_folder(tmp_path: Path) -> None:
    nested = write_slack_zip(tmp_path / "nested.zip", slack_workspace(), root="My Workspace Slack export/")
    assert sorted(conversations(list(iter_conversations(nested)))) == ["C1", "D1", "G1"]
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(write_slack_zip(tmp_path / "plain.zip", slack_workspace())) as archive:
        archive.extractall(folder)
    assert sorted(conversations(list(iter_conversations(folder)))) == ["C1", "D1", "G1"]


def test_broken_members_and_entries_are_bad_records(tmp_path: Path) -> None:
    workspace = slack_workspace()
    workspace["dms.json"] = b"{ not json"
    workspace["general/2026-03-03.json"] = b"\xff\xfe not utf-8"
    workspace["general/2026-03-04.json"] = {"not": "a list"}
    workspace["general/2026-03-05.json"] = [
        "not an object",
        slack_message("U1", "no ts", "yesterday"),
        {"type": "message", "text": "no user", "ts": "1772600000.1"},
        slack_message("U1", ["not", "text"], "1772600001.1"),  # type: ignore[arg-type]
        slack_message("U1", "still read", "1772600002.1"),
    ]
    records = list(iter_conversations(write_slack_zip(tmp_path / "broken.zip", workspace)))
    reasons = [r.reason for r in records if isinstance(r, BadRecord)]
    assert any(r.startswith("dms.json: invalid JSON") for r in reasons)
    assert any(r.startswith("general/2026-03-03.json") for r in reasons)
    assert any(r.startswith("general/2026-03-04.json") and "array" in r for r in reasons)
    assert any("2026-03-05.json[0]" in r and "object" in r for r in reasons)
    assert any("2026-03-05.json[1]" in r and "ts" in r for r in reasons)
    assert any("2026-03-05.json[2]" in r and "user" in r for r in reasons)
    assert any("2026-03-05.json[3]" in r and "text" in r for r in reasons)
    found = conversations(records)
    assert found["C1"].messages[-1].text == "still read"
    # Without dms.json the DM folder is still read, as a conversation named after its folder.
    assert "D1" in found and found["D1"].setting == "channel"


def test_not_an_export(tmp_path: Path) -> None:
    empty = write_slack_zip(tmp_path / "other.zip", {"readme.txt": b"hello"})
    records = list(iter_conversations(empty))
    assert len(records) == 1 and isinstance(records[0], BadRecord) and "Slack" in records[0].reason
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(write_slack_zip(tmp_path / "ok.zip", slack_workspace()).read_bytes()[:200])
    records = list(iter_conversations(truncated))
    assert records and all(isinstance(r, BadRecord) for r in records)


def test_a_member_too_large_to_be_real_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = slack_workspace()
    workspace["general/2026-03-01.json"] = [
        slack_message("U1", "x" * 2000, f"17723880{i:02d}.0") for i in range(10)
    ]
    path = write_slack_zip(tmp_path / "big.zip", workspace)
    monkeypatch.setattr(slack_export, "MAX_MEMBER_BYTES", 10_000)
    records = list(iter_conversations(path))
    assert any(isinstance(r, BadRecord) and "larger than" in r.reason for r in records)


def test_clean_text() -> None:
    assert clean_text("hi <@U1|adult> and <@W2>, <!here> &amp; <https://x.org>") == (
        "hi @U1 and @W2, @here & https://x.org",
        ("U1", "W2"),
    )
    assert json.dumps(clean_text("plain")) == '["plain", []]'


def test_fuzzed_exports_give_records_or_bad_records_never_an_exception(tmp_path: Path) -> None:
    """FUZZ_CASES broken Slack exports (users, channel lists, day files): conversations or BadRecords."""
    workspace = slack_workspace()
    outcomes = {"records": 0, "bad": 0}
    archive = tmp_path / "export.zip"
    for number, case in cases([workspace], seed=14):
        members = case if isinstance(case, dict) else {"users.json": case}
        # Member names are file names: keep the mutated ones that a zip can hold.
        names = {str(name).replace("\x00", "") or "x": content for name, content in members.items()}
        write_slack_zip(archive, names)
        good, bad = drain_fuzzed(iter_slack_export(archive), number=number)
        outcomes["records"] += good
        outcomes["bad"] += bad
    assert outcomes["records"] > FUZZ_CASES // 5 and outcomes["bad"] > FUZZ_CASES // 20, outcomes
