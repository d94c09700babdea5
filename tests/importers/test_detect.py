"""iter_conversations: one entry point, dispatching on content rather than file names."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest

from tests.importers.exports import (
    discord_author,
    discord_export,
    discord_message,
    slack_workspace,
    write_slack_zip,
)
from vigil.bots.core.replay import BadRecord, ConversationRecord, SegmentRecord
from vigil.bots.importers import ImportedConversation, conversation_to_messages, iter_conversations

JSONL_RECORD = {
    "id": "conv-1",
    "source": "test",
    "label": 0,
    "setting": "dm",
    "interleaved": False,
    "suspects": [],
    "messages": [{"author": "a", "text": "hello"}, {"author": "b", "text": "hi", "reply_to": 0}],
}


def test_json_lines_fall_back_to_the_shared_reader(tmp_path: Path) -> None:
    lines = [
        json.dumps(JSONL_RECORD),
        json.dumps({"id": "s", "source": "t", "label": 0, "text": "x"}),
        "{broken",
    ]
    plain = tmp_path / "data.json"  # the name does not matter
    plain.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records = list(iter_conversations(plain))
    assert [type(r) for r in records] == [ConversationRecord, SegmentRecord, BadRecord]
    assert not isinstance(records[0], ImportedConversation)
    messages = conversation_to_messages(records[0])  # type: ignore[arg-type]
    assert [m.platform for m in messages] == ["scan", "scan"] and messages[1].reply_to_author_id == "a"

    packed = tmp_path / "data.bin"
    packed.write_bytes(lzma.compress(plain.read_bytes()))
    assert [type(r) for r in iter_conversations(packed)] == [ConversationRecord, SegmentRecord, BadRecord]


def test_a_one_line_discord_export_is_not_mistaken_for_json_lines(tmp_path: Path) -> None:
    export = discord_export([discord_message("1", discord_author("7", "x"), "hello there", second=1)])
    path = tmp_path / "export.jsonl"
    path.write_text(json.dumps(export), encoding="utf-8")
    records = list(iter_conversations(path))
    assert len(records) == 1 and isinstance(records[0], ImportedConversation)
    assert records[0].platform == "discord"


def test_a_slack_zip_is_recognised_by_content(tmp_path: Path) -> None:
    path = write_slack_zip(tmp_path / "export.data", slack_workspace())
    assert {r.platform for r in iter_conversations(path) if isinstance(r, ImportedConversation)} == {"slack"}


def test_edge_cases(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        iter_conversations(tmp_path / "missing.json")
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert list(iter_conversations(empty)) == []
    folder = tmp_path / "folder"
    folder.mkdir()
    records = list(iter_conversations(folder))
    assert len(records) == 1 and isinstance(records[0], BadRecord) and "folder" in records[0].reason
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(discord_export([]), indent=2).encode())
    records = list(iter_conversations(bom))
    assert len(records) == 1 and isinstance(records[0], BadRecord) and "no messages" in records[0].reason
