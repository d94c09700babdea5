"""The scale-out topology as real processes, fed real chat: one ``vigil gateway`` (HTTP API), two ``vigil
worker`` processes, one ``vigil deliver``, a real NATS server and a real Postgres database, with the shipped
model scoring the realistic example conversations (grooming and benign, spread over 8 spaces).

The end state must equal one ``vigil run`` process (SQLite) fed the same messages: the same alerts for the
same pairs with the same case numbers, risks, revisions and evidence, none lost and none doubled, while
workers are SIGKILLed at seeded random moments mid-stream (and restarted, as a supervisor would) and, in one
run, the broker is restarted. Each alert is posted to the webhook exactly once. Each run (seed) kills a
worker five times; the suite runs two seeds, ``VIGIL_SCALE_OUT_SEEDS=10`` runs ten.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
from collections.abc import Sequence
from pathlib import Path

import nats
import pytest

from tests.broker.replay import conversation_messages, stored_snapshot
from tests.broker.scale_out import (
    STREAM,
    Topology,
    environment,
    send_all,
    wait_for_gateway,
    wait_until,
    webhook_receiver,
    write_config,
)
from tests.support.nats_server import NatsServer
from tests.support.process import REPO, free_port, start_vigil, wait_until_listening
from vigil.bots.core.models import ChatMessage
from vigil.bots.metrics import fetch_metrics
from vigil.storage.postgres import PostgresStore
from vigil.storage.sqlite import SqliteStore

SPACES = 8
# [broker] partitions in the topology's config (tests/broker/scale_out.py).
PARTITIONS = 16
# Per run: kills of a worker at seeded random batches (two runs: ten kills in all).
KILLS_PER_RUN = 5
# Runs (seeds) in a suite run; VIGIL_SCALE_OUT_SEEDS=10 for the measurement (docs/scale.md).
SEEDS = int(os.environ.get("VIGIL_SCALE_OUT_SEEDS", "2"))
PACE_S = 1.0


@pytest.fixture(scope="module")
def messages() -> list[ChatMessage]:
    lines = (REPO / "examples" / "realistic_conversations.jsonl").read_text(encoding="utf-8").splitlines()
    return conversation_messages([json.loads(line) for line in lines], spaces=SPACES)


@pytest.fixture(scope="module")
def single_process(messages: list[ChatMessage], tmp_path_factory: pytest.TempPathFactory) -> object:
    """The reference: ``vigil run`` alone (SQLite, no broker) fed the same batches through its HTTP API."""
    folder = tmp_path_factory.mktemp("single-process")
    return asyncio.run(_single_process(messages, folder))


async def _single_process(messages: list[ChatMessage], folder: Path) -> object:
    http_port, webhook_port = free_port(), free_port()
    config = write_config(
        folder, http_port=http_port, webhook_port=webhook_port, backend="sqlite", broker=False
    )
    async with webhook_receiver(webhook_port) as receiver:
        process = await start_vigil(config, environment(dsn=None, nats_url=None))
        try:
            await wait_until_listening(http_port, process)
            await send_all(http_port, messages)
            snapshot = await stored_snapshot(SqliteStore(str(folder / "single.sqlite3")), spaces=SPACES)
            await wait_until(
                lambda: _delivered(receiver.created, len(snapshot)), timeout_s=60, what="webhook posts"
            )
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()
    assert len(snapshot) >= 10, "the replay must raise alerts for the comparison to mean anything"
    assert set(receiver.created.values()) == {1}
    return snapshot


@pytest.fixture
def servers(nats_server: NatsServer, postgres_dsn: str) -> tuple[NatsServer, str]:
    """The broker and an empty database of one run."""
    return nats_server, postgres_dsn


async def _workers_report(ports: object) -> bool:
    snapshots = [await fetch_metrics(port=port) for port in ports]  # type: ignore[attr-defined]
    held = sum(snap.value("vigil_partitions_owned", role="worker") or 0 for snap in snapshots)
    waiting = [snap.value("vigil_broker_backlog", role="worker") for snap in snapshots]
    return held == PARTITIONS and waiting == [0, 0]


async def _holds_partitions(topology: Topology, name: str) -> bool:
    return "took partition" in topology.current_log(name)


async def _delivered(created: object, count: int) -> bool:
    return len(created) >= count  # type: ignore[arg-type]


async def stream_empty(url: str) -> bool:
    client = await nats.connect(url)
    try:
        info = await client.jetstream().stream_info(STREAM)
        return info.state.messages == 0
    finally:
        await client.close()


async def scale_out_run(
    messages: Sequence[ChatMessage],
    *,
    folder: Path,
    dsn: str,
    nats_server: NatsServer,
    seed: int,
    restart_broker: bool,
) -> tuple[dict[tuple[str, str, str], object], Topology, dict[tuple[str, int], int]]:
    rng = random.Random(seed)
    http_port, webhook_port = free_port(), free_port()
    config = write_config(folder, http_port=http_port, webhook_port=webhook_port)
    topology = Topology(config=config, env=environment(dsn=dsn, nats_url=nats_server.url), folder=folder)
    metrics_ports = {"worker-1": free_port(), "worker-2": free_port()}

    async def start_worker(name: str) -> None:
        await topology.start("worker", name, "--metrics-port", str(metrics_ports[name]))

    broker_restart_after = rng.randrange(1, KILLS_PER_RUN) if restart_broker else None

    async def kill_workers_mid_stream() -> None:
        """Each kill hits a worker that is scoring (it holds partitions and the stream is being fed), at a
        seeded random moment, so it may be scoring, committing or acknowledging a batch; it is started
        again at once, as a supervisor would."""
        for kill in range(KILLS_PER_RUN):
            victim = rng.choice(["worker-1", "worker-2"])
            await wait_until(
                lambda v=victim: _holds_partitions(topology, v), timeout_s=60, what=f"{victim} scoring"
            )
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            await topology.kill(victim)
            await start_worker(victim)
            if kill + 1 == broker_restart_after:
                # While both workers are scoring (not loading after a kill), so both must reconnect.
                for name in ("worker-1", "worker-2"):
                    await wait_until(
                        lambda n=name: _holds_partitions(topology, n), timeout_s=60, what=f"{name} scoring"
                    )
                await asyncio.sleep(rng.uniform(0.3, 1.0))
                await asyncio.to_thread(nats_server.restart)

    async with webhook_receiver(webhook_port) as receiver:
        await topology.start("gateway", "gateway")
        await start_worker("worker-1")
        await start_worker("worker-2")
        await topology.start("deliver", "deliver-1")
        try:
            await wait_for_gateway(http_port, topology, "gateway")
            killer = asyncio.create_task(kill_workers_mid_stream())
            # Live traffic over about 25 s, long enough for every kill to land while messages flow.
            await send_all(http_port, messages, pace_s=PACE_S)
            await killer
            await wait_until(lambda: stream_empty(nats_server.url), timeout_s=180, what="the stream")
            # The last batch is acknowledged after its commit: once the stream is empty, all is stored.
            snapshot = await stored_snapshot(PostgresStore(dsn), spaces=SPACES)
            await wait_until(
                lambda: _delivered(receiver.created, len(snapshot)), timeout_s=90, what="webhook posts"
            )
            await asyncio.sleep(1.0)  # a second post of some alert would show now
            # Each worker's metrics: together they hold every partition, and nothing waits on the broker.
            await wait_until(
                lambda: _workers_report(metrics_ports.values()), timeout_s=30, what="the workers' metrics"
            )
        finally:
            codes = await topology.stop_all()
    assert codes == {name: 0 for name in codes}, {name: topology.log(name)[-3000:] for name in codes}
    assert topology.kills == KILLS_PER_RUN
    return dict(snapshot), topology, dict(receiver.created)


@pytest.mark.parametrize("seed", range(1, SEEDS + 1))
async def test_workers_killed_mid_stream_and_a_broker_restart_change_no_alert(
    seed: int,
    messages: list[ChatMessage],
    single_process: dict[tuple[str, str, str], object],
    servers: tuple[NatsServer, str],
    tmp_path: Path,
) -> None:
    nats_server, postgres_dsn = servers
    restart_broker = seed == 1
    snapshot, topology, created = await scale_out_run(
        messages,
        folder=tmp_path,
        dsn=postgres_dsn,
        nats_server=nats_server,
        seed=seed,
        restart_broker=restart_broker,
    )
    assert snapshot == single_process
    # Every alert posted once: none lost, none doubled.
    assert sorted(created) == sorted({(space, s.case_number) for (space, _, _), s in single_process.items()})  # type: ignore[attr-defined]
    assert set(created.values()) == {1}
    # Both workers scored, and partitions moved when one died.
    assert "took partition" in topology.log("worker-1") and "took partition" in topology.log("worker-2")
    if restart_broker:
        for name in ("gateway", "worker-1", "worker-2"):
            assert "reconnected to NATS" in topology.log(name), f"{name} never saw the broker restart"
