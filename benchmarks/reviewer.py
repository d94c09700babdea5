"""Alert-reviewer benchmark: what one review costs, in milliseconds and in messages' worth of scoring.

    python -m benchmarks.reviewer --data ../shared/data --model-dir DIR [--windows 200] [--rounds 5] \\
        [--json OUT]

The reviewer (``vigil.detector.reviewer``) runs only when the alert policy is about to raise an alert, a
handful of times per alerting pair, never per message; its cost is that of one review. Windows are the last
``window_messages`` messages before a point of real two-member conversations (``--sources``), as the
monitor hands them over (model texts, the later message's author as the member under review). Each round
times the detector scoring every window's messages in batches (the monitor's path, its messages per
second) and then the reviewer reading every window, one at a time as the monitor calls it; the two take
turns, so load from other processes hits both alike. Reported: the median over rounds of milliseconds per
review (and the round's 99th percentile), the detector's messages per second, their product (one review
costs as much scoring as that many messages, the figure to read on a shared machine), and the resident
memory the loaded reviewer adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import current_rss_mb, machine, model_fingerprint, percentile, write_json
from vigil.bots.core.normalise import model_text
from vigil.bots.core.ports import ReviewLine
from vigil.bots.core.replay import ConversationRecord, iter_records
from vigil.detector import OnnxDetector
from vigil.detector.reviewer import OnnxReviewer

DEFAULT_SOURCES = ("pj_pj24", "personachat", "dailydialog")


def review_windows(
    data_dir: Path, *, sources: Sequence[str], count: int, size: int, seed: int = 20261206
) -> list[tuple[ReviewLine, ...]]:
    """``count`` windows of up to ``size`` messages, ending at random points of two-member conversations."""
    rng = random.Random(seed)
    conversations: list[ConversationRecord] = []
    for source in sources:
        taken = 0
        for record in iter_records(data_dir / "conversations" / f"{source}.jsonl.xz"):
            if taken >= count:
                break
            if isinstance(record, ConversationRecord) and len({m.author for m in record.messages}) == 2:
                conversations.append(record)
                taken += 1
    if not conversations:
        raise ValueError(f"no two-member conversations in {data_dir} for {list(sources)}")
    windows = []
    for _ in range(count):
        record = rng.choice(conversations)
        # As at an alert: most windows are full (the pair has talked a while).
        end = rng.randrange(min(size, len(record.messages)), len(record.messages) + 1)
        messages = record.messages[max(0, end - size) : end]
        member = messages[-1].author
        windows.append(tuple(ReviewLine(own=m.author == member, text=model_text(m.text)) for m in messages))
    return windows


async def run(arguments: argparse.Namespace) -> dict[str, Any]:
    before = current_rss_mb()
    detector = await OnnxDetector.load(arguments.model_dir)
    try:
        reviewer = detector.reviewer
        if not isinstance(reviewer, OnnxReviewer):
            raise ValueError(f"{arguments.model_dir} ships no alert reviewer (metadata.json 'reviewer')")
        loaded = current_rss_mb()
        # The reviewer's own memory: a second copy opened beside the detector's.
        extra = await asyncio.to_thread(
            OnnxReviewer.load,
            model_dir=arguments.model_dir,
            tokenizer_file=arguments.model_dir / "tokenizer.json",
            section=dict(detector.metadata["reviewer"]),
        )
        reviewer_mb = current_rss_mb() - loaded
        del extra
        windows = review_windows(
            arguments.data, sources=arguments.sources, count=arguments.windows, size=reviewer.window_messages
        )
        texts = [line.text for window in windows for line in window]
        rounds = []
        for _ in range(arguments.rounds):
            started = time.perf_counter()
            for start in range(0, len(texts), 256):
                await detector.score(texts[start : start + 256])
            per_second = len(texts) / (time.perf_counter() - started)
            timings = []
            for window in windows:
                started = time.perf_counter()
                await reviewer.review(window)
                timings.append((time.perf_counter() - started) * 1000.0)
            median_ms = statistics.median(timings)
            rounds.append(
                {
                    "review_ms_median": round(median_ms, 2),
                    "review_ms_p99": round(percentile(timings, 99) or 0.0, 2),
                    "detector_messages_per_second": round(per_second, 1),
                    "messages_worth": round(median_ms / 1000.0 * per_second, 1),
                }
            )
    finally:
        await detector.aclose()

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in rounds), 2)

    return {
        "benchmark": "reviewer",
        "machine": machine(),
        "model": model_fingerprint(arguments.model_dir),
        "windows": len(windows),
        "messages_per_window_mean": round(len(texts) / len(windows), 1),
        "rounds": rounds,
        "review_ms_median": median("review_ms_median"),
        "review_ms_p99_median": median("review_ms_p99"),
        "detector_messages_per_second_median": median("detector_messages_per_second"),
        "messages_worth_median": median("messages_worth"),
        "reviewer_rss_mb": round(reviewer_mb, 1),
        "process_rss_mb": round(loaded - before, 1),
    }


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.reviewer", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--model-dir", type=Path, required=True, help="a model directory with a reviewer")
    parser.add_argument("--sources", nargs="+", default=list(DEFAULT_SOURCES))
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    arguments = parser.parse_args(argv)
    if arguments.windows < 1 or arguments.rounds < 1:
        parser.error("--windows and --rounds must be at least 1")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        report = asyncio.run(run(arguments))
    except (OSError, ValueError) as error:
        print(f"benchmarks.reviewer: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    if arguments.json is not None:
        write_json(arguments.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
