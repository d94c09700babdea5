"""The scale-out tests' data and comparisons: conversations spread over several spaces, and the end state
of a store (alerts and their pairs) in a form that two runs can be compared by."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.reliability.state import write_conversations
from vigil.bots.core.models import ChatMessage, PairKey
from vigil.bots.core.ports import Store

START = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
PLATFORM = "http"


def crash_test_messages(folder: Path, *, spaces: int) -> list[ChatMessage]:
    """The crash suites' conversations (DMs, reply-chain and turn-taking channels, a few thousand messages,
    grooming among them), each conversation in one of ``spaces`` spaces, interleaved in arrival order."""
    data = folder / "conversations.jsonl"
    write_conversations(data)
    records = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    return conversation_messages(records, spaces=spaces)


def conversation_messages(records: list[dict[str, object]], *, spaces: int) -> list[ChatMessage]:
    """Conversation records (the shape of examples/*.jsonl) as chat messages: conversation ``i`` in space
    ``i % spaces``, round robin between conversations, five seconds apart."""
    queues: list[list[ChatMessage]] = []
    for index, record in enumerate(records):
        record_id = str(record["id"])
        raw = record["messages"]
        assert isinstance(raw, list)
        authors = sorted({str(m["author"]) for m in raw})
        messages: list[ChatMessage] = []
        for position, message in enumerate(raw):
            author = str(message["author"])
            reply_to = message.get("reply_to")
            is_dm = record.get("setting") == "dm"
            messages.append(
                ChatMessage(
                    platform=PLATFORM,
                    space_id=f"space-{index % spaces}",
                    channel_id=record_id,
                    message_id=f"{record_id}-{position}",
                    author_id=author,
                    text=str(message["text"]),
                    timestamp=START,  # set below, in arrival order
                    is_dm=is_dm,
                    recipient_ids=tuple(a for a in authors if a != author) if is_dm else (),
                    reply_to_message_id=None if reply_to is None or is_dm else f"{record_id}-{reply_to}",
                    reply_to_author_id=(
                        None if reply_to is None or is_dm else str(raw[int(str(reply_to))]["author"])
                    ),
                )
            )
        queues.append(messages)
    arrival: list[ChatMessage] = []
    clock = START
    while any(queues):
        for queue in queues:
            if queue:
                clock += timedelta(seconds=5)
                message = queue.pop(0)
                arrival.append(
                    ChatMessage(**{**_fields(message), "timestamp": clock})  # type: ignore[arg-type]
                )
    return arrival


def _fields(message: ChatMessage) -> dict[str, object]:
    return {name: getattr(message, name) for name in ChatMessage.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class AlertSnapshot:
    """An alert as two runs must agree on it (not its wall-clock times nor its database id)."""

    case_number: int
    status: str
    suspect_id: str
    risk: float
    peak_risk: float
    revision: int
    evidence: tuple[str, ...]
    pair_messages: int
    pair_risk: float


async def alert_snapshot(store: Store, *, spaces: int) -> dict[tuple[str, str, str], AlertSnapshot]:
    """Every alert of the test spaces, by (space, user a, user b), with its pair's message count and risk."""
    alerts = []
    for space in range(spaces):
        alerts += await store.alerts_for_space(platform=PLATFORM, space_id=f"space-{space}", limit=10_000)
    pairs = await store.load_pairs({alert.key for alert in alerts})
    snapshot: dict[tuple[str, str, str], AlertSnapshot] = {}
    for alert in alerts:
        key: PairKey = alert.key
        pair = pairs[key]
        entry = (key.space_id, key.user_a, key.user_b)
        assert entry not in snapshot, f"two alerts for one pair: {entry}"
        snapshot[entry] = AlertSnapshot(
            case_number=alert.case_number,
            status=str(alert.status),
            suspect_id=alert.suspect_id,
            risk=round(alert.risk, 4),
            peak_risk=round(alert.peak_risk, 4),
            revision=alert.revision,
            evidence=tuple(m.message_id for m in alert.evidence),
            pair_messages=pair.message_count,
            pair_risk=round(pair.risk, 4),
        )
    return snapshot


async def stored_snapshot(store: Store, *, spaces: int) -> dict[tuple[str, str, str], AlertSnapshot]:
    """``alert_snapshot`` of a store not yet opened: opened for the read, closed after."""
    await store.open()
    try:
        return await alert_snapshot(store, spaces=spaces)
    finally:
        await store.close()
