"""Small but realistic export files, written by the tests themselves."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable
from pathlib import Path

from vigil.bots.core.replay import BadRecord, ConversationRecord
from vigil.bots.importers import conversation_to_messages

GUILD = {"id": "900", "name": "Test Guild", "iconUrl": "https://cdn.example/icon.png"}


def discord_author(
    user_id: str, name: str, *, bot: bool = False, nickname: str | None = None
) -> dict[str, object]:
    return {
        "id": user_id,
        "name": name,
        "discriminator": "0000",
        "nickname": nickname,
        "color": None,
        "isBot": bot,
        "roles": [],
        "avatarUrl": "https://cdn.example/avatar.png",
    }


def discord_message(
    message_id: str,
    author: dict[str, object],
    content: str,
    *,
    second: int,
    kind: str = "Default",
    reply_to: str | None = None,
    mentions: list[dict[str, object]] | None = None,
) -> dict[str, object]:
    message: dict[str, object] = {
        "id": message_id,
        "type": kind,
        "timestamp": f"2026-03-01T18:00:{second:02d}.123+00:00",
        "timestampEdited": None,
        "callEndedTimestamp": None,
        "isPinned": False,
        "content": content,
        "author": author,
        "attachments": [{"id": "a1", "url": "https://cdn.example/file.png", "fileName": "file.png"}],
        "embeds": [],
        "stickers": [],
        "reactions": [],
        "mentions": mentions or [],
    }
    if reply_to is not None:
        message["reference"] = {"messageId": reply_to, "channelId": "100", "guildId": "900"}
    return message


def discord_export(
    messages: list[object], *, channel_type: str = "GuildTextChat", guild: dict[str, object] | None = None
) -> dict[str, object]:
    return {
        "guild": guild or GUILD,
        "channel": {
            "id": "100",
            "type": channel_type,
            "categoryId": None,
            "category": None,
            "name": "general",
            "topic": None,
        },
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2026-03-02T00:00:00+00:00",
        "messages": messages,
        "messageCount": len(messages),
    }


def write_json(path: Path, data: object, *, indent: int | None = 2) -> Path:
    path.write_text(json.dumps(data, indent=indent), encoding="utf-8")
    return path


SLACK_USERS = [
    {
        "id": "U1",
        "team_id": "T9",
        "name": "adult",
        "real_name": "Adult Person",
        "profile": {"display_name": "Ad"},
    },
    {"id": "U2", "team_id": "T9", "name": "kid", "profile": {"display_name": "", "real_name": "Kid Person"}},
    {"id": "U3", "team_id": "T9", "name": "friend", "profile": {}},
    {"id": "B1", "team_id": "T9", "name": "helper-bot", "is_bot": True, "profile": {}},
]


def slack_message(user: str, text: str, ts: str, **extra: object) -> dict[str, object]:
    return {"type": "message", "user": user, "text": text, "ts": ts, **extra}


def write_slack_zip(path: Path, members: dict[str, object], *, root: str = "") -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            data = content if isinstance(content, bytes) else json.dumps(content).encode("utf-8")
            archive.writestr(f"{root}{name}", data)
    return path


def slack_workspace() -> dict[str, object]:
    """A workspace with a channel (with a thread and system noise), a DM and a group DM."""
    return {
        "users.json": SLACK_USERS,
        "channels.json": [{"id": "C1", "name": "general", "members": ["U1", "U2", "U3"]}],
        "dms.json": [{"id": "D1", "members": ["U1", "U2"]}],
        "mpims.json": [{"id": "G1", "name": "mpdm-adult--kid--friend-1", "members": ["U1", "U2", "U3"]}],
        "general/2026-03-01.json": [
            slack_message("U1", "anyone up for a game tonight", "1772388000.000100"),
            {
                "type": "message",
                "subtype": "channel_join",
                "user": "U3",
                "text": "<@U3> has joined",
                "ts": "1772388001.0",
            },
            slack_message("U2", "me! <@U1> &lt;3", "1772388002.000100"),
            slack_message("U1", "nice see you later", "1772388003.000100", thread_ts="1772388002.000100"),
            {
                "type": "message",
                "subtype": "bot_message",
                "bot_id": "BX",
                "text": "beep",
                "ts": "1772388004.0",
            },
            slack_message("B1", "I am a bot user", "1772388005.0"),
        ],
        "general/2026-03-02.json": [
            slack_message("U3", "see <https://example.org|this> in <#C1|general>", "1772474400.000100"),
            slack_message(
                "U2", "", "1772474401.000100", files=[{"id": "F1", "url_private": "https://files/x"}]
            ),
        ],
        "D1/2026-03-01.json": [
            slack_message("U1", "hello there", "1772388100.000100"),
            slack_message("U2", "hello", "1772388101.000100"),
            slack_message("U1", "keep it secret ok", "1772388102.000100"),
        ],
        "mpdm-adult--kid--friend-1/2026-03-01.json": [
            slack_message("U3", "group hello", "1772388200.000100"),
            slack_message("U1", "hi all", "1772388201.000100"),
        ],
    }


def drain_fuzzed(records: Iterable[object], *, number: int) -> tuple[int, int]:
    """(conversations, bad records) of one fuzz case, each conversation turned into messages as scan does;
    any exception fails the test naming the case."""
    good = bad = 0
    try:
        for record in records:
            if isinstance(record, BadRecord):
                bad += 1
            else:
                assert isinstance(record, ConversationRecord)
                conversation_to_messages(record)
                good += 1
    except Exception as error:
        raise AssertionError(f"fuzz case {number} raised {type(error).__name__}: {error}") from error
    return good, bad
