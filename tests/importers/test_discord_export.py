"""DiscordChatExporter JSON: channels, DMs and broken entries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.importers.exports import discord_author, discord_export, discord_message, drain_fuzzed, write_json
from tests.support.fuzz import FUZZ_CASES, cases
from vigil.bots.core.replay import BadRecord
from vigil.bots.importers import (
    ImportedConversation,
    conversation_to_messages,
    iter_conversations,
    place_names_of,
)
from vigil.bots.importers.discord_export import discord_export_records, iter_discord_export

ADULT = discord_author("1", "adult_user", nickname="Ad")
KID = discord_author("2", "kid_user")
BOT = discord_author("3", "helper", bot=True)


def channel_export() -> dict[str, object]:
    return discord_export(
        [
            discord_message("10", ADULT, "hello there", second=1),
            discord_message("11", KID, "hello", second=2, reply_to="10"),
            discord_message("12", BOT, "I am a bot", second=3),
            discord_message("13", KID, "joined", second=4, kind="GuildMemberJoin"),
            discord_message("14", ADULT, "", second=5),
            discord_message(
                "15", ADULT, "hey <@2> what is your age", second=6, mentions=[{"id": "2", "name": "kid"}]
            ),
            discord_message("16", KID, "reply to the past", second=7, reply_to="999"),
        ]
    )


def only(records: list[object]) -> ImportedConversation:
    conversations = [r for r in records if isinstance(r, ImportedConversation)]
    assert len(conversations) == 1
    return conversations[0]


def test_a_channel_export_becomes_one_channel_record(tmp_path: Path) -> None:
    path = write_json(tmp_path / "general.json", channel_export())
    records = list(iter_conversations(path))
    record = only(records)
    assert not [r for r in records if isinstance(r, BadRecord)]
    assert record.setting == "channel" and record.interleaved
    assert record.label == 0 and record.suspects == ()
    assert record.platform == "discord" and record.space_id == "900" and record.channel_id == "100"
    # Bots, system messages and attachment-only messages are left out.
    assert [m.author for m in record.messages] == ["1", "2", "1", "2"]
    assert [m.reply_to for m in record.messages] == [None, 0, None, None]
    assert dict(record.display_names) == {"1": "Ad", "2": "kid_user"}
    # The server's and channel's names, for the scan report only.
    assert place_names_of(record) == {("space", "900"): "Test Guild", ("channel", "100"): "general"}


def test_replayed_messages_keep_platform_ids_times_replies_and_mentions(tmp_path: Path) -> None:
    record = only(list(iter_conversations(write_json(tmp_path / "general.json", channel_export()))))
    messages = conversation_to_messages(record)
    assert [m.message_id for m in messages] == ["10", "11", "15", "16"]
    assert all(m.platform == "discord" and m.space_id == "900" and m.channel_id == "100" for m in messages)
    assert messages[0].timestamp == datetime(2026, 3, 1, 18, 0, 1, 123000, tzinfo=UTC)
    assert messages[1].reply_to_message_id == "10" and messages[1].reply_to_author_id == "1"
    assert messages[2].mentioned_user_ids == ("2",)
    assert not any(m.is_dm for m in messages) and all(m.recipient_ids == () for m in messages)
    # Names never enter the messages.
    assert all(m.author_display_name is None for m in messages)
    assert [m.platform for m in conversation_to_messages(record, platform="scan")] == ["scan"] * 4


def test_a_dm_export_is_a_dm_record_between_its_authors(tmp_path: Path) -> None:
    export = discord_export(
        [
            discord_message("20", ADULT, "hello there", second=1),
            discord_message("21", KID, "hello", second=2),
        ],
        channel_type="DirectTextChat",
        guild={"id": "0", "name": "Direct Messages", "iconUrl": ""},
    )
    record = only(list(iter_conversations(write_json(tmp_path / "dm.json", export, indent=None))))
    assert record.setting == "dm" and not record.interleaved
    messages = conversation_to_messages(record)
    assert [m.recipient_ids for m in messages] == [("2",), ("1",)]
    assert all(m.is_dm for m in messages)


def test_broken_entries_are_bad_records_and_the_rest_is_kept(tmp_path: Path) -> None:
    export = discord_export(
        [
            discord_message("30", ADULT, "hello there", second=1),
            "not a message",
            {"id": "31", "content": "no author", "timestamp": "2026-03-01T18:00:00+00:00"},
            discord_message("32", KID, "bad time", second=3) | {"timestamp": "yesterday"},
            discord_message("33", KID, "content is a number", second=4) | {"content": 5},
            discord_message("30", KID, "the same id again", second=5),
            discord_message("34", KID, "fine", second=6),
        ]
    )
    records = list(iter_discord_export(write_json(tmp_path / "broken.json", export)))
    bad = [r for r in records if isinstance(r, BadRecord)]
    assert [b.line_number for b in bad] == [2, 3, 4, 5, 6]
    assert "messages[1]" in bad[0].reason and "object" in bad[0].reason
    assert "author" in bad[1].reason
    assert "timestamp" in bad[2].reason
    assert "content" in bad[3].reason
    assert "twice" in bad[4].reason
    assert [m.text for m in only(records).messages] == ["hello there", "fine"]


def test_unusable_files_are_one_bad_record(tmp_path: Path) -> None:
    no_text = discord_export([discord_message("40", BOT, "beep", second=1)])
    cases = {
        "not-json.json": b"{ this is not json",
        "not-utf8.json": b'{"guild": "\xff"}',
        "list.json": b"[1, 2, 3]",
        "other.json": b'{\n  "something": "else"\n}',
        "no-channel-id.json": b'{"guild": {"id": "1"}, "channel": {}, "messages": []}',
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    write_json(tmp_path / "bots-only.json", no_text)
    for name in [*cases, "bots-only.json"]:
        records = list(iter_conversations(tmp_path / name))
        assert len(records) == 1 and isinstance(records[0], BadRecord), name
        assert records[0].reason, name


def test_fuzzed_exports_give_records_or_bad_records_never_an_exception(tmp_path: Path) -> None:
    """FUZZ_CASES broken DiscordChatExporter documents: each yields conversations or BadRecords."""
    adult, kid = discord_author("1", "adult"), discord_author("2", "kid")
    export = discord_export(
        [
            discord_message("10", adult, "how old are you", second=1),
            discord_message("11", kid, "13", second=2, reply_to="10"),
            discord_message("12", adult, "add me on snap", second=3, mentions=[kid]),
        ]
    )
    outcomes = {"records": 0, "bad": 0}
    for number, case in cases([export], seed=14):
        good, bad = drain_fuzzed(discord_export_records(case, path=tmp_path / "export.json"), number=number)
        outcomes["records"] += good
        outcomes["bad"] += bad
    assert outcomes["records"] > FUZZ_CASES // 5 and outcomes["bad"] > FUZZ_CASES // 20, outcomes
