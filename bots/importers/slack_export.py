"""Slack workspace exports (the zip, or the folder it unzips to) as recorded conversations.

An export holds ``users.json``, ``channels.json`` (public), ``groups.json`` (private channels), ``dms.json``
and ``mpims.json`` (group DMs) where the export includes them, and one folder per conversation (named after
the channel, or the DM's id) of daily ``YYYY-MM-DD.json`` arrays of messages. Every conversation folder
becomes one record: ``dm`` for DMs and group DMs (with the members the export lists), ``channel`` otherwise.

Kept: messages by people with text (plain, ``thread_broadcast``, ``me_message``, ``file_share``); a thread
reply (``thread_ts`` other than its own ``ts``) replies to the thread's parent. Left out: bots
(``bot_id``, ``bot_message``, users marked ``is_bot``) and subtypes without user text (joins, topics, pins).
Files are never downloaded. Ids stay the platform's; display names from ``users.json`` are kept for the
scan report only.

Nothing is extracted to disk; each member is read into memory with a size limit. Bad members and entries
become ``BadRecord``s naming the member (``line_number``: the entry's 1-based position in its daily file, or
0 for a whole member).
"""

from __future__ import annotations

import html
import json
import logging
import posixpath
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from vigil.bots.core.replay import BadRecord
from vigil.bots.importers.records import ImportedConversation, ImportedMessage

logger = logging.getLogger(__name__)

PLATFORM = "slack"
# A single JSON member larger than this is refused: no daily file is that big; a zip bomb is.
MAX_MEMBER_BYTES = 256 * 1024 * 1024
TEXT_SUBTYPES = frozenset({"thread_broadcast", "me_message", "file_share"})
METADATA_FILES = ("channels.json", "groups.json", "dms.json", "mpims.json", "users.json")
_DAY_FILE = re.compile(r"\d{4}-\d{2}-\d{2}\.json")
_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_CHANNEL_LINK = re.compile(r"<#[CG][A-Z0-9]+\|([^>]*)>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
_LINK = re.compile(r"<([a-z][a-z0-9+.-]*:[^>|]*)(?:\|([^>]*))?>", re.IGNORECASE)


class _Unreadable(ValueError):
    pass


class _Archive(Protocol):
    """The export's files by their path inside it ("general/2024-01-02.json")."""

    def names(self) -> Sequence[str]: ...

    def read(self, name: str) -> bytes: ...


class _ZipArchive:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self._zip = archive
        self._infos = {info.filename: info for info in archive.infolist() if not info.is_dir()}

    def names(self) -> Sequence[str]:
        return list(self._infos)

    def read(self, name: str) -> bytes:
        info = self._infos[name]
        if info.file_size > MAX_MEMBER_BYTES:
            raise _Unreadable(f"larger than {MAX_MEMBER_BYTES // (1024 * 1024)} MiB uncompressed")
        try:
            with self._zip.open(info) as member:
                data = member.read(MAX_MEMBER_BYTES + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
            raise _Unreadable(f"cannot be read from the zip ({error})") from None
        if len(data) > MAX_MEMBER_BYTES:
            raise _Unreadable(f"larger than {MAX_MEMBER_BYTES // (1024 * 1024)} MiB uncompressed")
        return data


class _FolderArchive:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._names = sorted(
            path.relative_to(root).as_posix() for path in root.rglob("*.json") if path.is_file()
        )

    def names(self) -> Sequence[str]:
        return self._names

    def read(self, name: str) -> bytes:
        path = self._root / name
        try:
            if path.stat().st_size > MAX_MEMBER_BYTES:
                raise _Unreadable(f"larger than {MAX_MEMBER_BYTES // (1024 * 1024)} MiB")
            return path.read_bytes()
        except OSError as error:
            raise _Unreadable(f"cannot be read ({error.strerror or error})") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Conversation:
    channel_id: str
    folder: str
    is_dm: bool
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _User:
    is_bot: bool
    name: str | None
    team_id: str | None


def is_slack_export_folder(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in ("users.json", "channels.json"))


def iter_slack_export(path: Path) -> Iterator[ImportedConversation | BadRecord]:
    """Read a Slack export zip or unzipped folder; never raises for bad content."""
    if path.is_dir():
        yield from _iter_archive(_FolderArchive(path), path=path, fallback_space=path.name)
        return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        yield BadRecord(path=path, line_number=0, reason=f"not a readable zip file ({error})")
        return
    with archive:
        yield from _iter_archive(_ZipArchive(archive), path=path, fallback_space=path.stem)


def _iter_archive(
    archive: _Archive, *, path: Path, fallback_space: str
) -> Iterator[ImportedConversation | BadRecord]:
    names = archive.names()
    root = _root_of(names)
    if root is None:
        yield BadRecord(
            path=path, line_number=0, reason="not a Slack export: no users.json or channels.json found"
        )
        return

    bad: list[BadRecord] = []

    def metadata(name: str) -> list[dict[str, object]]:
        member = posixpath.join(root, name) if root else name
        if member not in names:
            return []
        try:
            data = json.loads(archive.read(member).decode("utf-8-sig"))
        except _Unreadable as error:
            bad.append(BadRecord(path=path, line_number=0, reason=f"{member}: {error}"))
            return []
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            bad.append(BadRecord(path=path, line_number=0, reason=f"{member}: invalid JSON ({error})"))
            return []
        if not isinstance(data, list):
            bad.append(BadRecord(path=path, line_number=0, reason=f"{member}: expected an array"))
            return []
        entries = [entry for entry in data if isinstance(entry, dict)]
        if len(entries) != len(data):
            bad.append(
                BadRecord(
                    path=path,
                    line_number=0,
                    reason=f"{member}: {len(data) - len(entries)} entries are not objects (ignored)",
                )
            )
        return entries

    users = _users(metadata("users.json"))
    conversations = _conversations(
        channels=metadata("channels.json") + metadata("groups.json"),
        dms=metadata("dms.json"),
        mpims=metadata("mpims.json"),
    )
    yield from bad
    team_ids = sorted({user.team_id for user in users.values() if user.team_id})
    space_id = team_ids[0] if team_ids else fallback_space

    days: dict[str, list[str]] = {}
    for name in names:
        relative = name[len(root) + 1 :] if root else name
        folder, _, file_name = relative.rpartition("/")
        if folder and "/" not in folder and _DAY_FILE.fullmatch(file_name):
            days.setdefault(folder, []).append(name)
    by_folder = {c.folder: c for c in conversations}
    for folder in sorted(days):
        if folder not in by_folder:
            # A folder without metadata: still read, as a channel named after it.
            by_folder[folder] = _Conversation(channel_id=folder, folder=folder, is_dm=False, members=())
    for number, folder in enumerate(sorted(days), start=1):
        yield from _conversation(
            archive,
            by_folder[folder],
            files=sorted(days[folder]),
            users=users,
            space_id=space_id,
            path=path,
            number=number,
        )


def _root_of(names: Sequence[str]) -> str | None:
    """The folder holding the export's metadata ("" at the top), or None when there is none."""
    candidates = sorted(
        (name.count("/"), posixpath.dirname(name))
        for name in names
        if posixpath.basename(name) in ("users.json", "channels.json")
    )
    return candidates[0][1] if candidates else None


def _users(entries: Sequence[Mapping[str, object]]) -> dict[str, _User]:
    users: dict[str, _User] = {}
    for entry in entries:
        user_id = entry.get("id")
        if not isinstance(user_id, str) or not user_id:
            continue
        profile = entry.get("profile")
        profile = profile if isinstance(profile, dict) else {}
        name = next(
            (
                value
                for value in (
                    profile.get("display_name"),
                    profile.get("real_name"),
                    entry.get("real_name"),
                    entry.get("name"),
                )
                if isinstance(value, str) and value.strip()
            ),
            None,
        )
        team = entry.get("team_id")
        users[user_id] = _User(
            is_bot=entry.get("is_bot") is True or user_id == "USLACKBOT",
            name=name,
            team_id=team if isinstance(team, str) and team else None,
        )
    return users


def _conversations(
    *,
    channels: Sequence[Mapping[str, object]],
    dms: Sequence[Mapping[str, object]],
    mpims: Sequence[Mapping[str, object]],
) -> list[_Conversation]:
    found: list[_Conversation] = []
    for entries, is_dm, folder_key in ((channels, False, "name"), (dms, True, "id"), (mpims, True, "name")):
        for entry in entries:
            channel_id = entry.get("id")
            folder = entry.get(folder_key)
            if not isinstance(channel_id, str) or not channel_id or not isinstance(folder, str) or not folder:
                continue
            raw_members = entry.get("members")
            members = (
                tuple(m for m in raw_members if isinstance(m, str) and m)
                if isinstance(raw_members, list)
                else ()
            )
            found.append(_Conversation(channel_id=channel_id, folder=folder, is_dm=is_dm, members=members))
    return found


def clean_text(text: str) -> tuple[str, tuple[str, ...]]:
    """Slack markup as plain text, and the user ids it mentions: ``<@U1>`` → ``@U1``, links → their label."""
    mentions = tuple(dict.fromkeys(_USER_MENTION.findall(text)))
    text = _USER_MENTION.sub(lambda m: "@" + m.group(1), text)
    text = _CHANNEL_LINK.sub(lambda m: "#" + m.group(1), text)
    text = _SPECIAL.sub(lambda m: "@" + m.group(1), text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    return html.unescape(text), mentions


def _timestamp(ts: object) -> tuple[str, datetime]:
    if not isinstance(ts, str) or not re.fullmatch(r"\d{1,12}(\.\d{1,9})?", ts):
        raise _Unreadable(f"'ts' must be a Slack timestamp string like \"1700000000.000100\", got {ts!r:.40}")
    try:
        return ts, datetime.fromtimestamp(float(ts), tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise _Unreadable(f"'ts' is out of range: {ts!r:.40}") from None


def _conversation(
    archive: _Archive,
    conversation: _Conversation,
    *,
    files: Sequence[str],
    users: Mapping[str, _User],
    space_id: str,
    path: Path,
    number: int,
) -> Iterator[ImportedConversation | BadRecord]:
    collected: list[tuple[float, str, dict[str, object], str, int]] = []
    for member in files:
        try:
            data = json.loads(archive.read(member).decode("utf-8-sig"))
        except _Unreadable as error:
            yield BadRecord(path=path, line_number=0, reason=f"{member}: {error}")
            continue
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            yield BadRecord(path=path, line_number=0, reason=f"{member}: invalid JSON ({error})")
            continue
        if not isinstance(data, list):
            yield BadRecord(path=path, line_number=0, reason=f"{member}: expected an array of messages")
            continue
        for position, entry in enumerate(data):
            if not isinstance(entry, dict):
                yield BadRecord(
                    path=path, line_number=position + 1, reason=f"{member}[{position}]: not an object"
                )
                continue
            try:
                ts, _ = _timestamp(entry.get("ts"))
            except _Unreadable as error:
                yield BadRecord(path=path, line_number=position + 1, reason=f"{member}[{position}]: {error}")
                continue
            collected.append((float(ts), ts, entry, member, position))
    collected.sort(key=lambda item: item[0])

    messages: list[ImportedMessage] = []
    index_of: dict[str, int] = {}
    names: dict[str, str] = {}
    for _, ts, entry, member, position in collected:
        if entry.get("type", "message") != "message":
            continue
        subtype = entry.get("subtype")
        if subtype is not None and (not isinstance(subtype, str) or subtype not in TEXT_SUBTYPES):
            continue
        if entry.get("bot_id") is not None:
            continue
        user_id = entry.get("user")
        text = entry.get("text")
        if not isinstance(user_id, str) or not user_id:
            yield BadRecord(
                path=path, line_number=position + 1, reason=f"{member}[{position}]: no 'user' on a message"
            )
            continue
        if not isinstance(text, str):
            yield BadRecord(
                path=path, line_number=position + 1, reason=f"{member}[{position}]: 'text' is not a string"
            )
            continue
        user = users.get(user_id)
        if user is not None and user.is_bot:
            continue
        plain, mentions = clean_text(text)
        if not plain.strip() or ts in index_of:
            continue
        thread_ts = entry.get("thread_ts")
        thread_id = thread_ts if isinstance(thread_ts, str) and thread_ts else None
        reply_to = index_of.get(thread_id) if thread_id is not None and thread_id != ts else None
        index_of[ts] = len(messages)
        messages.append(
            ImportedMessage(
                author=user_id,
                text=plain,
                reply_to=reply_to,
                # A ts is unique within a channel only.
                message_id=f"{conversation.channel_id}:{ts}",
                timestamp=datetime.fromtimestamp(float(ts), tz=UTC),
                thread_id=thread_id,
                mentioned_ids=mentions,
            )
        )
        if user is not None and user.name is not None:
            names.setdefault(user_id, user.name)
    if not messages:
        logger.info("%s: conversation %s has no messages with text by people", path, conversation.folder)
        return
    yield ImportedConversation(
        id=conversation.channel_id,
        source=f"{PLATFORM}:{space_id}",
        label=0,
        setting="dm" if conversation.is_dm else "channel",
        interleaved=not conversation.is_dm,
        suspects=(),
        messages=tuple(messages),
        line_number=number,
        path=path,
        platform=PLATFORM,
        space_id=space_id,
        channel_id=conversation.channel_id,
        members=conversation.members,
        display_names=tuple(sorted(names.items())),
        # A channel's export folder is its name; a DM's is its id. An export does not name the workspace.
        channel_name=None if conversation.is_dm else conversation.folder[:100],
    )
