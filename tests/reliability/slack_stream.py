"""The Slack crash suites' event stream and its checks: the scan crash test's conversations as Slack message
events, the fake workspace that holds them, and the checks on a clean run's end state."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.reliability.state import DatabaseState, write_conversations
from tests.slack.fake_slack import FakeSlack

TEAM = "T1"


START = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)


THREAD_LENGTH = 10


@dataclass(frozen=True, slots=True)
class SlackEvent:
    """One event callback: its JSON body as Slack sends it; the message's channel and author."""

    body: str
    channel: str
    user: str


def slack_id(prefix: str, name: str) -> str:
    """``u-turn0-adult`` → ``UTURN0ADULT``: the shape of Slack's user and channel ids."""
    return prefix + re.sub(r"[^A-Z0-9]", "", name.upper().removeprefix("U-"))


def slack_events(folder: Path) -> list[SlackEvent]:
    """Part of the scan crash test's conversations (five turn-taking channels, the four grooming ones among
    them; a grooming DM; the first 30 messages of a reply-chain channel, as threads of ten): 276 message
    events, one conversation after another."""
    data = folder / "conversations.jsonl"
    write_conversations(data)
    records = {
        r["id"]: r for r in (json.loads(line) for line in data.read_text(encoding="utf-8").splitlines())
    }
    chosen = ["chan-000", "dm-000", "turn-000", "turn-001", "turn-002", "turn-004", "turn-006"]
    events: list[SlackEvent] = []
    clock = START
    for record_id in chosen:
        record = records[record_id]
        is_dm = record["setting"] == "dm"
        channel = slack_id("D" if is_dm else "C", record_id)
        messages = record["messages"][:30] if record_id.startswith("chan-") else record["messages"]
        parent: tuple[str, str] | None = None  # (ts, author) of the thread being replied to
        for index, message in enumerate(messages):
            clock += timedelta(seconds=5)
            ts = f"{int(clock.timestamp())}.000100"
            author = slack_id("U", str(message["author"]))
            event: dict[str, object] = {
                "type": "message",
                "channel": channel,
                "user": author,
                "text": message["text"],
                "ts": ts,
                "channel_type": "im" if is_dm else "channel",
                "team": TEAM,
            }
            if message["reply_to"] is not None:
                # A reply chain becomes Slack threads: every tenth message starts one, the others reply in it.
                if index % THREAD_LENGTH == 0 or parent is None:
                    parent = (ts, author)
                else:
                    event |= {"thread_ts": parent[0], "parent_user_id": parent[1]}
            body = {
                "token": "legacy",
                "team_id": TEAM,
                "api_app_id": "A1",
                "event": event,
                "type": "event_callback",
                "event_id": f"Ev{len(events):06d}",
                "event_time": int(clock.timestamp()),
                "authorizations": [{"team_id": TEAM, "user_id": "UBOT", "is_bot": True}],
            }
            events.append(SlackEvent(body=json.dumps(body), channel=channel, user=author))
    return events


def populate(fake: FakeSlack, events: list[SlackEvent]) -> None:
    """The workspace's members and conversations, as the Web API would describe them."""
    for event in events:
        fake.users.setdefault(event.user, {})
        fake.channels.setdefault(
            event.channel, {"is_private": event.channel.startswith("D"), "is_member": True}
        )


async def kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
    await process.wait()


def checked_clean_run(state: DatabaseState, *, events: list[SlackEvent]) -> DatabaseState:
    """An uninterrupted run's end state, once it is shown to hold what the comparison rests on."""
    assert state.seen == len(events)
    assert state.alerts and all(count == 1 for count in state.alerts.values())
    turn_taking = [key for key in state.alerts if key[1].startswith("UTURN") and key[2].startswith("UTURN")]
    assert len(turn_taking) == 4, "the turn-taking channels' grooming alerts are part of the comparison"
    assert any(key[1] == "UADULT00" or key[2] == "UADULT00" for key in state.alerts), (
        "the grooming DM's alert"
    )
    return state


def assert_same_as_clean(seed: int, state: DatabaseState, clean: DatabaseState) -> None:
    assert state.seen == clean.seen, seed  # every event stored once: none lost, none twice
    assert state.alerts == clean.alerts, seed  # same pairs, one alert each: none lost, none doubled
    # The turn-taking memory outlived the process: the interrupted conversation's pairs are whole too.
    assert state.pairs == clean.pairs, seed
