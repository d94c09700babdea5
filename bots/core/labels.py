"""Learning from verdicts: moderators' decisions as labelled conversations, pseudonymised.

``export_labels`` writes confirmed and escalated cases (label 1) and dismissed cases (label 0) in the shared
JSON Lines conversation format (``bots.core.replay`` reads it; ``vigil eval`` measures on it). Authors become
salted hashes; the salt is kept in the store, so a re-export gives the same pseudonyms. Mentions, links and
e-mail addresses in the text become placeholders, as in the project's training data, and timestamps are left
out: with them, a reader could find the messages on the platform.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from vigil.bots.core.cases import CaseState
from vigil.bots.core.models import WindowMessage
from vigil.bots.core.ports import CaseRecord, LabelStore, PseudonymStore

__all__ = ["LABELS_SOURCE", "export_labels", "pseudonymiser"]

logger = logging.getLogger(__name__)

LABELS_SOURCE = "vigil_cases"
_SALT_NAMESPACE = "vigil.pseudonyms"
_SALT_KEY = "salt"
_PSEUDONYM_HEX = 12
_LABELS = {CaseState.CONFIRMED: 1, CaseState.ESCALATED: 1, CaseState.DISMISSED: 0}
_BATCH = 200

# Platform mention syntaxes (Discord <@123>, <@!123>, <@&123>; Slack <@U123>, <@U123|name>), links, e-mails.
_MENTION = re.compile(r"<[@#][!&]?[A-Za-z0-9]+(?:\|[^>]*)?>")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")


async def pseudonymiser(store: PseudonymStore) -> Callable[[str], str]:
    """A function from an id to its stable pseudonym (``u-`` and 12 hex digits of a salted SHA-256)."""
    async with store.transaction():
        salt = await store.get_record(_SALT_NAMESPACE, _SALT_KEY)
        if salt is None:
            salt = secrets.token_hex(32)
            await store.put_record(_SALT_NAMESPACE, _SALT_KEY, salt)
    salt_bytes = bytes.fromhex(salt)

    def pseudonym(value: str) -> str:
        digest = hashlib.sha256(salt_bytes + value.encode("utf-8")).hexdigest()
        return f"u-{digest[:_PSEUDONYM_HEX]}"

    return pseudonym


def scrub_text(text: str) -> str:
    """Placeholders for mentions, links and e-mail addresses (as in the training data)."""
    text = _MENTION.sub("<user>", text)
    text = _URL.sub("<url>", text)
    return _EMAIL.sub("<email>", text)


async def export_labels(store: LabelStore, *, out: Path, platform: str | None) -> int:
    """Write every decided case whose text is still kept to ``out``; returns how many were written.

    The file is replaced atomically, so a reader never sees half of it.
    """
    pseudonym = await pseudonymiser(store)
    lines: list[str] = []
    skipped = 0
    async for batch in store.iter_cases(platform=platform, batch=_BATCH):
        for case in batch:
            label = _LABELS.get(case.state)
            if label is None or case.text_purged_at is not None:
                continue
            record = await _record(store, case, label=label, pseudonym=pseudonym)
            if record is None:
                skipped += 1
                continue
            lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True))
    await asyncio.to_thread(_write_atomically, out, "".join(f"{line}\n" for line in lines))
    logger.info("exported %d labelled cases (%d without usable text skipped)", len(lines), skipped)
    return len(lines)


async def _record(
    store: LabelStore, case: CaseRecord, *, label: int, pseudonym: Callable[[str], str]
) -> dict[str, object] | None:
    alert = case.alert
    messages = _conversation(
        [
            *(await store.load_evidence(alert.alert_id)),
            *(await store.load_window(alert.key)),
            *alert.evidence,
        ],
        members=(alert.key.user_a, alert.key.user_b),
    )
    if not messages:
        return None
    authors = {m.author_id for m in messages}
    if label == 1 and alert.suspect_id not in authors:
        return None
    space = pseudonym(f"{alert.key.platform}:{alert.key.space_id}").removeprefix("u-")
    return {
        "id": f"vigil-{space}-{alert.case_number}",
        "source": LABELS_SOURCE,
        "label": label,
        "setting": "dm",
        "interleaved": True,
        "suspects": [pseudonym(f"{alert.key.platform}:{alert.suspect_id}")] if label == 1 else [],
        "messages": [
            {
                "author": pseudonym(f"{alert.key.platform}:{m.author_id}"),
                "text": m.text,
                "reply_to": None,
                "ts": None,
            }
            for m in messages
        ],
        "meta": {"case_state": case.state.value, "case_source": case.source.value},
    }


def _conversation(messages: Sequence[WindowMessage], *, members: tuple[str, str]) -> list[WindowMessage]:
    """The pair's own messages, each once (preserved copy first), in time order, with non-empty text."""
    unique: dict[str, WindowMessage] = {}
    for message in messages:
        if message.author_id in members and message.message_id not in unique:
            scrubbed = scrub_text(message.text).strip()
            if scrubbed:
                unique[message.message_id] = WindowMessage(
                    message_id=message.message_id,
                    channel_id=message.channel_id,
                    thread_id=message.thread_id,
                    author_id=message.author_id,
                    text=scrubbed,
                    timestamp=message.timestamp,
                    risk=message.risk,
                    signals=message.signals,
                )
    return sorted(unique.values(), key=lambda m: (m.timestamp, m.message_id))


def _write_atomically(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
