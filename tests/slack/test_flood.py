"""A flood through the real slack-bolt adapter in Socket Mode (Slack's default): shed by the ingest queue's
documented policy, acknowledged, and never piled up in the adapter."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.slack.harness import ADULT, KID, SlackHarness, running_slack
from vigil.bots.core.ingest import IngestQueue
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

DM = "D0KIDDM01"


def envelope(slack: SlackHarness, event: dict[str, Any], number: int) -> dict[str, Any]:
    return {
        "envelope_id": f"env-{number}",
        "type": "events_api",
        "accepts_response_payload": False,
        "retry_attempt": 0,
        "retry_reason": "",
        "payload": slack.event_body(event),
    }


def looked_at(queue: IngestQueue) -> int:
    """Messages the queue admitted or refused (one displaced after admission counts once)."""
    stats = queue.stats()
    return stats.accepted + stats.shed.get("chatter_full", 0) + stats.shed.get("priority_full", 0)


async def test_a_socket_mode_flood_is_shed_by_the_ingest_queue_and_never_piles_up_in_the_adapter(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector, caplog: pytest.LogCaptureFixture
) -> None:
    """While the store is stalled, 600 channel messages and 10 DMs arrive: the queue holds at most its
    capacity, chatter beyond it is shed (and acknowledged: retries would only add to the flood), DMs are
    kept, the adapter holds only what the queue admitted, and everything recovers once the store is back."""
    # Above the 64 events the adapter once held at a time (until stored), as in production (2,048).
    capacity = 128
    async with running_slack(
        store=sqlite_store, detector=keyword_detector, mode="socket", queue_capacity=capacity
    ) as slack:
        queue = slack.queue
        assert queue is not None
        worker = asyncio.create_task(queue.run())
        try:
            await slack.configure()
            caplog.set_level(logging.WARNING, logger="vigil.bots.core.ingest")
            chatter: list[dict[str, Any]] = []
            dms: list[dict[str, Any]] = []
            tasks_before = len(asyncio.all_tasks())
            async with slack.store.transaction():  # the worker's next batch waits for the store
                for n in range(600):
                    event = slack.message_event(user=f"UGAMER{n % 12:03d}", text=f"gg round {n}")
                    chatter.append(event)
                    await slack.fake.socket_send(envelope(slack, event, n))
                    if n % 60 == 0:
                        dm = slack.message_event(user=ADULT, text=f"hi {n}", channel=DM, channel_type="im")
                        dms.append(dm)
                        await slack.fake.socket_send(envelope(slack, dm, 10_000 + n))
                await slack.fake.wait_for(lambda: looked_at(queue) >= 610, what="the flood", within=15.0)
                stats = queue.stats()
                assert stats.depth <= capacity
                assert stats.shed.get("chatter_full", 0) >= 600 - capacity - stats.in_flight
                # What is held is what the queue admitted (a few tasks each), not the flood.
                held = stats.depth + stats.in_flight
                assert held <= capacity + 2 * 8
                await slack.fake.wait_for(
                    lambda: len(asyncio.all_tasks()) - tasks_before <= 3 * held + 10,
                    what="the adapter to hold only what the queue admitted",
                )
                # Shed chatter is acknowledged at once, while the store is still stalled.
                await slack.fake.wait_for(
                    lambda: len(slack.fake.socket_acks) >= 600 - held, what="the shed chatter's acks"
                )
            await slack.fake.wait_for(
                lambda: len(slack.fake.socket_acks) >= 610, what="every envelope acknowledged", within=15.0
            )
            for dm in dms:
                result = slack.handler.results[f"{DM}/{dm['ts']}"]
                assert result.skipped != "shed", "direct messages are never shed"
            shed = [
                e for e in chatter if slack.handler.results[f"{e['channel']}/{e['ts']}"].skipped == "shed"
            ]
            assert sum(queue.stats().shed.values()) == len(shed)
            assert any("overloaded: shedding messages" in r.getMessage() for r in caplog.records)
            # Recovered: a new message is scored again.
            after = slack.message_event(user=KID, text=f"<@{ADULT}> good games everyone")
            await slack.fake.socket_send(envelope(slack, after, 99_999))
            message_id = f"{after['channel']}/{after['ts']}"
            result = await slack.fake.wait_for(lambda: slack.handler.results.get(message_id), what="it")
            assert result.skipped is None
        finally:
            queue.close()
            await worker
