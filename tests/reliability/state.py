"""The crash suites' data and database reads: the conversations they feed Vigil and the end state they
compare."""

from __future__ import annotations

import json
import random
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

FILLER = ("hello there", "nice game tonight", "ok see you later", "lol nice", "hello", "see you")


GROOMING = ("keep it secret ok", "what is your age", "our secret tonight", "secret groom", "age age")


def write_conversations(path: Path, *, seed: int = 7, dms: int = 20, reply_channels: int = 3) -> int:
    """DMs (some alert-worthy), reply-chain channels and turn-taking channels (a few thousand messages with
    the defaults); returns the message count."""
    rng = random.Random(seed)
    records: list[dict[str, object]] = []
    total = 0
    for n in range(dms):
        adult, other = f"u-adult{n:02d}", f"u-peer{n:02d}"
        grooming = n % 4 == 0
        messages: list[dict[str, object]] = []
        for i in range(rng.randint(30, 70)):
            author = adult if i % 2 == 0 else other
            text = rng.choice(GROOMING) if grooming and author == adult and i > 6 else rng.choice(FILLER)
            messages.append({"author": author, "text": text, "reply_to": None, "ts": None})
        records.append(_record(f"dm-{n:03d}", "dm", messages, suspects=[adult] if grooming else []))
        total += len(messages)
    for n in range(reply_channels):
        people = [f"u-chan{n}-{k}" for k in range(8)]
        messages = []
        previous = ""
        for i in range(rng.randint(150, 250)):
            author = rng.choice([p for p in people if p != previous])
            messages.append(
                {"author": author, "text": rng.choice(FILLER), "reply_to": i - 1 if i else None, "ts": None}
            )
            previous = author
        records.append(_record(f"chan-{n:03d}", "channel", messages, suspects=[]))
        total += len(messages)
    for n in range(8):
        # Turn-taking only: two people alternate, nobody replies or mentions; half of them grooming.
        adult, kid = f"u-turn{n}-adult", f"u-turn{n}-kid"
        grooming = n % 2 == 0
        messages = []
        for i in range(rng.randint(30, 60)):
            author = adult if i % 2 == 0 else kid
            text = rng.choice(GROOMING) if grooming and author == adult and i > 6 else rng.choice(FILLER)
            messages.append({"author": author, "text": text, "reply_to": None, "ts": None})
        records.append(_record(f"turn-{n:03d}", "channel", messages, suspects=[adult] if grooming else []))
        total += len(messages)
    rng.shuffle(records)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records), encoding="utf-8")
    return total


def _record(
    record_id: str, setting: str, messages: list[dict[str, object]], *, suspects: list[str]
) -> dict[str, object]:
    return {
        "id": record_id,
        "source": "crash_test",
        "label": 1 if suspects else 0,
        "setting": setting,
        "interleaved": True,
        "suspects": suspects,
        "messages": messages,
    }


@dataclass(frozen=True, slots=True)
class DatabaseState:
    pairs: dict[tuple[str, str, str], tuple[int, float]]
    alerts: dict[tuple[str, str, str], int]
    seen: int
    outbox: int


def read_state(database: Path) -> DatabaseState:
    with closing(sqlite3.connect(database)) as connection:
        pairs = {
            (space, a, b): (count, round(risk, 6))
            for space, a, b, count, risk in connection.execute(
                "SELECT space_id, user_a, user_b, message_count, risk FROM pairs"
            )
        }
        alerts: dict[tuple[str, str, str], int] = {}
        for space, a, b in connection.execute("SELECT space_id, user_a, user_b FROM alerts"):
            alerts[(space, a, b)] = alerts.get((space, a, b), 0) + 1
        seen = connection.execute("SELECT count(*) FROM seen_messages").fetchone()[0]
        outbox = connection.execute("SELECT count(*) FROM outbox").fetchone()[0]
    return DatabaseState(pairs=pairs, alerts=alerts, seen=seen, outbox=outbox)


def seen_count(database: Path) -> int:
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.2)) as connection:
            return int(connection.execute("SELECT count(*) FROM seen_messages").fetchone()[0])
    except sqlite3.Error:
        return 0  # not created yet, or mid-migration
