"""Pair-model benchmark: the cost of one pair update, as the monitor pays it, for two model directories.

    python -m benchmarks.pair_update --data ../shared/data --model-dir DIR --baseline-model-dir OLD \\
        [--updates 20000] [--rounds 5] [--json OUT]

Two-member pairs are taken from real conversations (``--sources``, up to 150 messages each, so states grow
as they do in production). Every message is scored once by each model directory's own detector; then each
round times ``update`` followed by ``author_risks`` on the new state (the monitor's two calls) for
``--updates`` pair updates, round-robin over the pairs, with one thread, and the two models take turns
(baseline, model, baseline, ...), so load from other processes hits both alike. Reported per model: the
median and range over rounds of microseconds per pair update, of ``update`` alone and of ``author_risks``
alone, and the stored state's size for a pair at the end. The ratio model / baseline per round is the figure
to read on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import machine, write_json
from vigil.bots.core.ports import PairModel
from vigil.bots.core.replay import ConversationRecord, iter_records
from vigil.detector import MessageScore, OnnxDetector

DEFAULT_SOURCES = ("pj_pj24", "personachat", "dailydialog")
MAX_MESSAGES = 150
PAIRS_PER_SOURCE = 48


@dataclass(frozen=True, slots=True, kw_only=True)
class PairStream:
    """One two-member pair's messages in order: (author, other) and the author's score for each."""

    members: tuple[tuple[str, str], ...]
    scores: tuple[MessageScore, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundTiming:
    both_us: float
    update_us: float
    risks_us: float
    state_bytes: float


def two_member_conversations(data_dir: Path, sources: Sequence[str]) -> list[ConversationRecord]:
    out: list[ConversationRecord] = []
    for source in sources:
        taken = 0
        for record in iter_records(data_dir / "conversations" / f"{source}.jsonl.xz"):
            if not isinstance(record, ConversationRecord) or not record.interleaved:
                continue
            if len({m.author for m in record.messages}) != 2 or len(record.messages) < 4:
                continue
            out.append(record)
            taken += 1
            if taken >= PAIRS_PER_SOURCE:
                break
    return out


async def pair_streams(model_dir: Path, records: Sequence[ConversationRecord]) -> list[PairStream]:
    detector = await OnnxDetector.load(model_dir, intra_op_threads=1)
    try:
        streams = []
        for record in records:
            messages = record.messages[:MAX_MESSAGES]
            scores = await detector.score([m.text for m in messages])
            authors = sorted({m.author for m in messages})
            members = tuple((m.author, next(a for a in authors if a != m.author)) for m in messages)
            streams.append(PairStream(members=members, scores=tuple(scores)))
        return streams
    finally:
        await detector.aclose()


def time_round(pair_model: PairModel, streams: Sequence[PairStream], *, updates: int) -> RoundTiming:
    states = [pair_model.initial_state() for _ in streams]
    positions = [0] * len(streams)
    update_ns = risks_ns = 0
    for step in range(updates):
        i = step % len(streams)
        stream = streams[i]
        k = positions[i]
        author, other = stream.members[k]
        started = time.perf_counter_ns()
        state = pair_model.update(state=states[i], author_id=author, other_id=other, score=stream.scores[k])
        middle = time.perf_counter_ns()
        pair_model.author_risks(state=state)
        ended = time.perf_counter_ns()
        update_ns += middle - started
        risks_ns += ended - middle
        # A pair that reaches its end starts again from nothing, so states stay realistic in size.
        if k + 1 >= len(stream.scores):
            states[i], positions[i] = pair_model.initial_state(), 0
        else:
            states[i], positions[i] = state, k + 1
    sizes = [len(s.encode()) for s in states if s != pair_model.initial_state()]
    return RoundTiming(
        both_us=(update_ns + risks_ns) / updates / 1000,
        update_us=update_ns / updates / 1000,
        risks_us=risks_ns / updates / 1000,
        state_bytes=statistics.median(sizes) if sizes else 0.0,
    )


def summary(rounds: Sequence[RoundTiming]) -> dict[str, Any]:
    def stat(values: list[float]) -> dict[str, float]:
        return {
            "median": round(statistics.median(values), 1),
            "min": round(min(values), 1),
            "max": round(max(values), 1),
        }

    return {
        "update_and_author_risks_us": stat([r.both_us for r in rounds]),
        "update_us": stat([r.update_us for r in rounds]),
        "author_risks_us": stat([r.risks_us for r in rounds]),
        "state_bytes": stat([r.state_bytes for r in rounds]),
    }


async def run(arguments: argparse.Namespace) -> dict[str, Any]:
    records = two_member_conversations(arguments.data, arguments.sources)
    if not records:
        raise SystemExit(f"no two-member conversations in {arguments.data} for {arguments.sources}")
    dirs = {"baseline": arguments.baseline_model_dir, "model": arguments.model_dir}
    models: dict[str, tuple[PairModel, list[PairStream]]] = {}
    for name, model_dir in dirs.items():
        detector = await OnnxDetector.load(model_dir, intra_op_threads=1)
        pair_model = detector.pair_model
        await detector.aclose()
        models[name] = (pair_model, await pair_streams(model_dir, records))
    timings: dict[str, list[RoundTiming]] = {name: [] for name in dirs}
    load = []
    for _ in range(arguments.rounds):
        for name in dirs:  # baseline first, then the model, every round
            pair_model, streams = models[name]
            timings[name].append(time_round(pair_model, streams, updates=arguments.updates))
        load.append(round(os.getloadavg()[0], 2))
    ratios = [m.both_us / b.both_us for b, m in zip(timings["baseline"], timings["model"], strict=True)]
    return {
        "machine": machine(),
        "pairs": len(records),
        "updates_per_round": arguments.updates,
        "model_dirs": {name: str(path) for name, path in dirs.items()},
        "baseline": summary(timings["baseline"]),
        "model": summary(timings["model"]),
        "ratio_model_over_baseline": {
            "median": round(statistics.median(ratios), 3),
            "per_round": [round(r, 3) for r in ratios],
        },
        "load_average_1m_after_each_round": load,
    }


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pair_update", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--baseline-model-dir", type=Path, required=True)
    parser.add_argument("--sources", nargs="+", default=list(DEFAULT_SOURCES))
    parser.add_argument("--updates", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    result = asyncio.run(run(arguments))
    if arguments.json is not None:
        write_json(arguments.json, result)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
