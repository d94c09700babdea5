"""One entry point for ``vigil scan``: whatever file it is given, the conversations in it.

Detected by content, never by name:

* a zip (``PK`` magic) or a folder with ``users.json``/``channels.json``: a Slack workspace export;
* xz-compressed data: JSON Lines (``bots.core.replay.iter_records``);
* a JSON document with ``guild``, ``channel`` and ``messages``: a DiscordChatExporter export (pretty-printed
  or on one line);
* any other file whose first line is a JSON object, or that is empty: JSON Lines.

JSON Lines files also yield ``SegmentRecord``s (flattened text), which a scan may count and skip.
"""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from vigil.bots.core.replay import BadRecord, Record, iter_records
from vigil.bots.importers.discord_export import discord_export_records, looks_like_discord_export
from vigil.bots.importers.slack_export import is_slack_export_folder, iter_slack_export

logger = logging.getLogger(__name__)

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_XZ_MAGIC = b"\xfd7zXZ\x00"
_UTF8_BOM = b"\xef\xbb\xbf"


def iter_conversations(path: Path, *, on_read: Callable[[int], None] | None = None) -> Iterator[Record]:
    """Yield the records of one export, JSON Lines file or unzipped Slack export folder.

    Raises ``FileNotFoundError`` at once for a missing path; bad content is a ``BadRecord``, never an error.
    ``on_read``: told the bytes of a JSON Lines file read so far, after each record (exports are parsed
    whole, so they report nothing until they end).
    """
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "No such conversation file", str(path))
    return _iter(path, on_read=on_read)


def _iter(path: Path, *, on_read: Callable[[int], None] | None) -> Iterator[Record]:
    if path.is_dir():
        if is_slack_export_folder(path):
            logger.info("%s: reading as an unzipped Slack export", path)
            yield from iter_slack_export(path)
        else:
            yield BadRecord(
                path=path,
                line_number=0,
                reason="a folder that is not an unzipped Slack export (no users.json or channels.json)",
            )
        return
    with path.open("rb") as handle:
        head = handle.read(len(_XZ_MAGIC))
        handle.seek(0)
        if head.startswith(_ZIP_MAGIC):
            kind = "slack"
        elif head == _XZ_MAGIC:
            kind = "jsonl"
        else:
            first_line = handle.readline().removeprefix(_UTF8_BOM)
            kind = _sniff_json(first_line)
    if kind == "slack":
        logger.info("%s: reading as a Slack export zip", path)
        yield from iter_slack_export(path)
    elif kind == "jsonl":
        yield from iter_records(path, on_read=on_read)
    else:
        yield from _discord_or_bad(path)


def _sniff_json(first_line: bytes) -> str:
    """ "jsonl" when the first line is a JSON object of its own (and not a one-line Discord export)."""
    if not first_line.strip():
        return "jsonl"
    try:
        data: object = json.loads(first_line)
    except (ValueError, RecursionError):
        # Not one object per line: a pretty-printed document, or garbage the Discord reader will name.
        return "document"
    if looks_like_discord_export(data):
        return "document"
    return "jsonl"


def _discord_or_bad(path: Path) -> Iterator[Record]:
    raw = path.read_bytes()
    try:
        data: object = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        yield BadRecord(path=path, line_number=0, reason=f"not UTF-8 text (byte {error.start})")
        return
    except (ValueError, RecursionError) as error:
        yield BadRecord(
            path=path,
            line_number=0,
            reason=f"neither JSON Lines nor a JSON export (invalid JSON: {error})",
        )
        return
    if not looks_like_discord_export(data):
        yield BadRecord(
            path=path,
            line_number=0,
            reason="a JSON document that is not a DiscordChatExporter export (expected 'guild', 'channel' "
            "and 'messages') and not JSON Lines",
        )
        return
    logger.info("%s: reading as a DiscordChatExporter export", path)
    yield from discord_export_records(data, path=path)
