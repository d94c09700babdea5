"""Scale-out throughput: how many messages per second 1, 2, ... ``vigil worker`` processes score together.

    python -m benchmarks.scale_out --data ../shared/data [--layouts 1x1 1x2 2x1] [--repeat 3] [--json OUT]

Each layout ``WxT`` is W ``vigil worker`` processes with T ONNX threads each, on one real NATS server
(JetStream) and one real Postgres database, both throwaway servers on this machine (the test suite's:
Postgres with fsync off, on its Unix socket; NATS on loopback). For each run:

1. a fresh database and stream; the workers start and settle their partitions (not timed);
2. real chat from the shared data (``benchmarks.common.load_mix``; each conversation in one of 64 spaces, as
   in a community of many servers) is published to the stream as fast as it takes it;
3. timed: from the first publish until the stream is empty (every message scored, stored, acknowledged).

Also measured per run, from Postgres' own counters (``pg_stat_database``): transactions, and rows inserted,
updated and deleted, per message. Layouts alternate within each repetition (the machine is shared and
noisy), and the load average is recorded with each run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.common import load_mix, machine, write_json
from tests.storage.postgres_server import (
    PostgresServer,
    fresh_database,
    postgres_server_or_skip,
    start_postgres_server,
)
from tests.support.nats_server import nats_server_or_skip, start_nats_server
from vigil.bots.broker.nats import BrokerLayout, JetStreamPublisher, NatsBroker
from vigil.bots.core.models import ChatMessage

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SPACES = 64
PARTITIONS = 32
# Counters of pg_stat_database compared before and after a run.
_PG_COUNTERS = ("xact_commit", "tup_inserted", "tup_updated", "tup_deleted", "tup_fetched")


@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    workers: int
    threads: int

    @classmethod
    def parse(cls, text: str) -> Layout:
        workers, _, threads = text.partition("x")
        return cls(workers=int(workers), threads=int(threads or 1))

    def __str__(self) -> str:
        return f"{self.workers}x{self.threads}"


def spread(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Each conversation (channel) in one of ``SPACES`` spaces: its pairs stay together."""
    return [
        dataclasses.replace(
            m, space_id=f"space-{zlib.crc32(f'{m.space_id}/{m.channel_id}'.encode()) % SPACES}"
        )
        for m in messages
    ]


def write_config(folder: Path, *, threads: int, stream: str) -> Path:
    config = folder / f"{stream}.toml"
    config.write_text(
        '[storage]\nbackend = "postgres"\npostgres_max_connections = 4\n'
        f"[detector]\nintra_op_threads = {threads}\n"
        "[policy]\ncooldown_minutes = 0\nmax_alerts_per_hour = 3600\n"
        f'[broker]\nenabled = true\nstream = "{stream}"\npartitions = {PARTITIONS}\nlease_s = 5.0\n',
        encoding="utf-8",
    )
    return config


async def pg_counters(dsn: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            f"SELECT {', '.join(_PG_COUNTERS)} FROM pg_stat_database WHERE datname = current_database()"
        )
        return {name: int(row[name]) for name in _PG_COUNTERS}
    finally:
        await connection.close()


async def settled(broker: NatsBroker, workers: int) -> bool:
    try:
        keys = await broker.owners.keys()
    except Exception:
        return False
    names = {k for k in keys if k.startswith("w.")}
    owned = {k for k in keys if k.startswith("p.")}
    if len(names) != workers or len(owned) != PARTITIONS:
        return False
    holders = {(await broker.owners.get(k)).value for k in owned}
    return len(holders) == workers


async def one_run(
    messages: Sequence[ChatMessage],
    *,
    layout: Layout,
    server: PostgresServer,
    nats_url: str,
    folder: Path,
    index: int,
) -> dict[str, Any]:
    stream = f"BENCH_{index}"
    config = write_config(folder, threads=layout.threads, stream=stream)
    with fresh_database(server) as dsn:
        env = {**os.environ, "VIGIL_POSTGRES_DSN": dsn, "VIGIL_NATS_URL": nats_url, "PYTHONPATH": str(REPO)}
        broker = await NatsBroker.connect(
            servers=[nats_url],
            layout=BrokerLayout(stream=stream, partitions=PARTITIONS, lease_s=5.0, max_age_s=3600.0),
            name="benchmark",
        )
        processes = []
        try:
            for n in range(layout.workers):
                processes.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "vigil", "--config", str(config), "worker", "--name",
                        f"bench-{n}", cwd=REPO, env=env,
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=(folder / f"{stream}-{n}.log").open("wb"),
                    )
                )  # fmt: skip
            deadline = time.monotonic() + 120
            while not await settled(broker, layout.workers):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the workers of {layout} never settled (see {folder})")
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)
            before = await pg_counters(dsn)
            publisher = JetStreamPublisher(broker=broker, cipher=None)
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            by_partition: dict[int, list[ChatMessage]] = {}
            for message in messages:
                by_partition.setdefault(broker.layout.partition_of(message), []).append(message)

            async def publish(part: list[ChatMessage]) -> None:
                for message in part:
                    await publisher.handle(message)

            await asyncio.gather(*(publish(part) for part in by_partition.values()))
            published = time.perf_counter() - started
            while True:  # polled: the stream has no "empty" event
                if (await broker.js.stream_info(stream)).state.messages == 0:
                    break
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            after = await pg_counters(dsn)
        finally:
            for process in processes:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
            for process in processes:
                await process.wait()
            with contextlib.suppress(Exception):
                await broker.js.delete_stream(stream)
            await broker.aclose()
    per_message = {name: (after[name] - before[name]) / len(messages) for name in _PG_COUNTERS}
    return {
        "layout": str(layout),
        "messages": len(messages),
        "seconds": round(elapsed, 2),
        "msgs_per_s": round(len(messages) / elapsed, 1),
        "publish_s": round(published, 2),
        "postgres_per_message": {k: round(v, 2) for k, v in per_message.items()},
        "load_avg_1m_before": round(load_before, 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    messages = spread(load_mix(Path(args.data), messages=args.messages).messages)
    layouts = [Layout.parse(text) for text in args.layouts]
    runs: list[dict[str, Any]] = []
    with (
        start_postgres_server(postgres_server_or_skip()) as server,
        start_nats_server(nats_server_or_skip()) as nats,
        tempfile.TemporaryDirectory(prefix="vigil-scale-bench-") as scratch,
    ):
        index = 0
        for repetition in range(args.repeat):
            for layout in layouts:
                index += 1
                result = await one_run(
                    messages,
                    layout=layout,
                    server=server,
                    nats_url=nats.url,
                    folder=Path(scratch),
                    index=index,
                )
                result["repetition"] = repetition + 1
                runs.append(result)
                print(result, file=sys.stderr)
    by_layout: dict[str, list[float]] = {}
    for run in runs:
        by_layout.setdefault(run["layout"], []).append(run["msgs_per_s"])
    baseline = str(layouts[0])
    return {
        "machine": machine(),
        "spaces": SPACES,
        "partitions": PARTITIONS,
        "runs": runs,
        "msgs_per_s_by_layout": by_layout,
        f"ratio_to_{baseline}": {
            name: [round(v / b, 2) for v, b in zip(values, by_layout[baseline], strict=True)]
            for name, values in by_layout.items()
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data", required=True, help="the shared data folder (its conversations/)")
    parser.add_argument("--layouts", nargs="+", default=["1x1", "2x1", "1x2"], help="WORKERSxTHREADS")
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(main_async(args))
    if args.json:
        write_json(Path(args.json), result)
    print(result["msgs_per_s_by_layout"], result[f"ratio_to_{args.layouts[0]}"])


if __name__ == "__main__":
    main()
