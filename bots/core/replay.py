"""Reading recorded conversations (the shared JSON Lines format) for ``vigil scan``, ``eval`` and ``demo``.

Files are ``.jsonl`` or xz-compressed ``.jsonl.xz`` (detected by content, not by name) and are read one line
at a time, so a file of any size costs memory for one line only. Every line becomes exactly one record: a
conversation, a flattened segment, or a ``BadRecord`` saying why the line could not be used. Reading never
raises for bad content; only a missing file raises.
"""

from __future__ import annotations

import errno
import json
import logging
import lzma
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Literal

from vigil.bots.core.models import ChatMessage

logger = logging.getLogger(__name__)

Setting = Literal["dm", "channel"]

# The timestamps in the data are null, so replayed messages get synthetic ones from here, one second apart.
DEFAULT_BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)

_XZ_MAGIC = b"\xfd7zXZ\x00"
_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordMessage:
    """One message of a recorded conversation. ``reply_to`` is the index of an earlier message it answers."""

    author: str
    text: str
    reply_to: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationRecord:
    """A whole recorded conversation (a DM or a channel log) with its ground truth."""

    id: str
    source: str
    label: int
    setting: Setting
    interleaved: bool
    suspects: tuple[str, ...]
    messages: tuple[RecordMessage, ...]
    line_number: int
    path: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentRecord:
    """Flattened chat text without speaker boundaries, with its label."""

    id: str
    source: str
    label: int
    text: str
    line_number: int
    path: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class BadRecord:
    """A line that could not be read as a conversation or a segment, and why."""

    path: Path
    line_number: int
    reason: str


Record = ConversationRecord | SegmentRecord | BadRecord


class _InvalidRecord(ValueError):
    """Internal: a line's JSON is well formed but does not match the format."""


def iter_records(path: Path, *, on_read: Callable[[int], None] | None = None) -> Iterator[Record]:
    """Yield one record per non-blank line of ``path``, streaming.

    Raises ``FileNotFoundError`` (naming the path) at once when the file does not exist; everything wrong
    inside the file is reported as a ``BadRecord`` with its 1-based line number. A corrupt or truncated xz
    stream ends the iteration with one ``BadRecord`` for the line where reading stopped. ``on_read`` is told,
    after each record, how many bytes of the file (compressed, for xz) have been read: progress within a file.
    """
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "No such conversation file", str(path))
    return _iter_records(path, on_read=on_read)


def _iter_records(path: Path, *, on_read: Callable[[int], None] | None) -> Iterator[Record]:
    with path.open("rb") as raw:
        compressed = raw.read(len(_XZ_MAGIC)) == _XZ_MAGIC
        raw.seek(0)
        if compressed:
            with lzma.open(raw, "rb") as decompressed:
                records = _iter_lines(decompressed, path=path)
                yield from records if on_read is None else _reporting(records, raw, on_read)
        else:
            records = _iter_lines(raw, path=path)
            yield from records if on_read is None else _reporting(records, raw, on_read)


def _reporting(records: Iterator[Record], raw: IO[bytes], on_read: Callable[[int], None]) -> Iterator[Record]:
    for record in records:
        on_read(raw.tell())
        yield record


def _iter_lines(stream: IO[bytes], *, path: Path) -> Iterator[Record]:
    line_number = 0
    try:
        # Bytes, not text: one undecodable line must not stop the file, and only b"\n" may split a line.
        for line_number, raw_line in enumerate(stream, start=1):
            line = raw_line.removeprefix(_UTF8_BOM) if line_number == 1 else raw_line
            if not line.strip():
                continue
            yield _parse_line(line, path=path, line_number=line_number)
    except (lzma.LZMAError, EOFError) as error:
        logger.warning("%s: compressed stream unreadable after line %d: %s", path, line_number, error)
        yield BadRecord(
            path=path,
            line_number=line_number + 1,
            reason=f"xz stream is corrupt or truncated; reading stopped here ({error})",
        )


def _parse_line(line: bytes, *, path: Path, line_number: int) -> Record:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        return BadRecord(
            path=path, line_number=line_number, reason=f"not valid UTF-8 (byte {error.start} of the line)"
        )
    try:
        data: object = json.loads(text)
    except (ValueError, RecursionError) as error:
        return BadRecord(path=path, line_number=line_number, reason=f"invalid JSON: {error}")
    if not isinstance(data, dict):
        return BadRecord(
            path=path, line_number=line_number, reason=f"expected a JSON object, got {json_type(data)}"
        )
    try:
        if "messages" in data:
            return _conversation_from(data, path=path, line_number=line_number)
        if "text" in data:
            return _segment_from(data, path=path, line_number=line_number)
    except _InvalidRecord as error:
        return BadRecord(path=path, line_number=line_number, reason=str(error))
    return BadRecord(
        path=path,
        line_number=line_number,
        reason="neither a conversation (no 'messages' key) nor a segment (no 'text' key)",
    )


def _conversation_from(data: Mapping[str, object], *, path: Path, line_number: int) -> ConversationRecord:
    record_id = _required_str(data, "id")
    source = _required_str(data, "source")
    label = _required_label(data)
    setting = data.get("setting")
    if setting not in ("dm", "channel"):
        raise _InvalidRecord(f'\'setting\' must be "dm" or "channel", got {setting!r}')
    interleaved = data.get("interleaved")
    if not isinstance(interleaved, bool):
        raise _InvalidRecord(f"'interleaved' must be true or false, got {json_type(interleaved)}")
    suspects = _required_str_list(data, "suspects")
    if label == 1 and not suspects:
        raise _InvalidRecord("a label-1 conversation needs at least one id in 'suspects'")
    if label == 0 and suspects:
        raise _InvalidRecord("a label-0 conversation must have an empty 'suspects' list")
    messages = _required_messages(data)
    authors = {message.author for message in messages}
    unknown = [suspect for suspect in suspects if suspect not in authors]
    if unknown:
        raise _InvalidRecord(f"'suspects' names ids that wrote no message: {', '.join(unknown)}")
    return ConversationRecord(
        id=record_id,
        source=source,
        label=label,
        setting="dm" if setting == "dm" else "channel",
        interleaved=interleaved,
        suspects=tuple(suspects),
        messages=messages,
        line_number=line_number,
        path=path,
    )


def _segment_from(data: Mapping[str, object], *, path: Path, line_number: int) -> SegmentRecord:
    return SegmentRecord(
        id=_required_str(data, "id"),
        source=_required_str(data, "source"),
        label=_required_label(data),
        text=_required_str(data, "text"),
        line_number=line_number,
        path=path,
    )


def _required_messages(data: Mapping[str, object]) -> tuple[RecordMessage, ...]:
    raw_messages = data["messages"]
    if not isinstance(raw_messages, list):
        raise _InvalidRecord(f"'messages' must be a list, got {json_type(raw_messages)}")
    if not raw_messages:
        raise _InvalidRecord("'messages' is empty")
    messages: list[RecordMessage] = []
    for index, raw_message in enumerate(raw_messages):
        where = f"messages[{index}]"
        if not isinstance(raw_message, dict):
            raise _InvalidRecord(f"{where} must be an object, got {json_type(raw_message)}")
        author = _required_str(raw_message, "author", where=where)
        text = _required_str(raw_message, "text", where=where)
        reply_to = raw_message.get("reply_to")
        if reply_to is not None:
            # bool is an int in Python but never a message index.
            if not isinstance(reply_to, int) or isinstance(reply_to, bool):
                raise _InvalidRecord(
                    f"{where}.reply_to must be an integer or null, got {json_type(reply_to)}"
                )
            if not 0 <= reply_to < index:
                raise _InvalidRecord(f"{where}.reply_to is {reply_to}, not the index of an earlier message")
        messages.append(RecordMessage(author=author, text=text, reply_to=reply_to))
    return tuple(messages)


def _required_str(data: Mapping[str, object], key: str, *, where: str = "") -> str:
    name = f"{where}.{key}" if where else f"'{key}'"
    if key not in data:
        raise _InvalidRecord(f"{name} is missing")
    value = data[key]
    if not isinstance(value, str):
        raise _InvalidRecord(f"{name} must be a string, got {json_type(value)}")
    if not value.strip():
        raise _InvalidRecord(f"{name} is empty")
    return value


def _required_label(data: Mapping[str, object]) -> int:
    if "label" not in data:
        raise _InvalidRecord("'label' is missing")
    label = data["label"]
    if isinstance(label, bool) or label not in (0, 1):
        raise _InvalidRecord(f"'label' must be 0 or 1, got {label!r}")
    return 1 if label == 1 else 0


def _required_str_list(data: Mapping[str, object], key: str) -> list[str]:
    if key not in data:
        raise _InvalidRecord(f"'{key}' is missing")
    value = data[key]
    if not isinstance(value, list):
        raise _InvalidRecord(f"'{key}' must be a list of strings, got {json_type(value)}")
    items: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item:
            raise _InvalidRecord(f"'{key}' must hold non-empty strings only, got {json_type(item)}")
        items.append(item)
    return items


def json_type(value: object) -> str:
    """How a JSON value's type reads in an error message ("a string", "an object", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def record_to_messages(
    record: ConversationRecord, *, platform: str = "replay", base_time: datetime | None = None
) -> list[ChatMessage]:
    """Translate a recorded conversation into the ``ChatMessage`` stream an adapter would have produced.

    The record id becomes the channel, its source the space, and message ``i`` is sent ``i`` seconds after
    ``base_time`` (timezone-aware; default 2024-01-01T00:00Z). A DM's recipients are every other author of
    the record, in order of first appearance.
    """
    start = DEFAULT_BASE_TIME if base_time is None else base_time
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("base_time must be timezone-aware")
    start = start.astimezone(UTC)
    is_dm = record.setting == "dm"
    authors = _authors_in_order(record.messages) if is_dm else ()
    chat_messages: list[ChatMessage] = []
    for index, message in enumerate(record.messages):
        reply_to_message_id: str | None = None
        reply_to_author_id: str | None = None
        if message.reply_to is not None:
            if not 0 <= message.reply_to < index:
                raise ValueError(
                    f"{record.id}: message {index} replies to {message.reply_to}, not an earlier message"
                )
            reply_to_message_id = f"{record.id}:{message.reply_to}"
            reply_to_author_id = record.messages[message.reply_to].author
        chat_messages.append(
            ChatMessage(
                platform=platform,
                space_id=record.source,
                channel_id=record.id,
                message_id=f"{record.id}:{index}",
                author_id=message.author,
                text=message.text,
                timestamp=start + timedelta(seconds=index),
                is_dm=is_dm,
                reply_to_message_id=reply_to_message_id,
                reply_to_author_id=reply_to_author_id,
                recipient_ids=tuple(author for author in authors if author != message.author),
            )
        )
    return chat_messages


def eval_messages(record: ConversationRecord, *, ordinal: int) -> list[ChatMessage]:
    """A record's messages as ``vigil eval`` replays them: platform "eval", each record in a space of its own
    (``ordinal``, its place in the run, then source and id), so that no state leaks between conversations,
    nor between two records with the same id (a chat and its early cut in another file: the second would
    otherwise read as a redelivery of the first's messages)."""
    return [
        replace(message, space_id=f"{ordinal}:{record.source}/{record.id}")
        for message in record_to_messages(record, platform="eval")
    ]


def _authors_in_order(messages: Sequence[RecordMessage]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(message.author for message in messages))
