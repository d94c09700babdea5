"""Helpers shared by the pipeline and state benchmarks: the machine, percentiles, RSS and the replay mix."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import random
import resource
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vigil.bots.core.models import ChatMessage
from vigil.bots.core.replay import ConversationRecord, iter_records, record_to_messages

BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
# Share of the replay's length that one conversation spans.
_SPAN = 1.0 / 3.0

# The replay mix: share of messages, most messages taken per conversation, sources. Channel logs, ordinary
# one-on-one chats, and the first 150 messages of grooming conversations (many of them, not a few long ones).
MIX: dict[str, tuple[float, int, tuple[str, ...]]] = {
    "channel": (0.50, 400, ("irc_disentanglement", "slack_disentangled", "nps_chat", "conda_dota2")),
    "dm": (
        0.35,
        400,
        (
            "switchboard_swda",
            "topical_chat",
            "personachat",
            "dailydialog",
            "human_chat",
            "twitter_threads",
            "formspring",
            "sexting_adult",
        ),
    ),
    "positive": (0.15, 150, ("pj_chatcoder1", "pj_pj24", "pan12_sample")),
}


def machine() -> dict[str, Any]:
    """What the figures were measured on, and how busy it was (other processes share the cores)."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    return {
        "nproc": usable,
        "cpu_model": model,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def model_fingerprint(model_dir: Path) -> str:
    """The first 12 hex digits of model.onnx's SHA-256, so figures name the exact model they measured."""
    digest = hashlib.sha256()
    with (model_dir / "model.onnx").open("rb") as model:
        for block in iter(lambda: model.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float:
    """Resident set size now (Linux), else the peak."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def write_json(path: Path, payload: object) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayMix:
    messages: tuple[ChatMessage, ...]
    conversations: int
    by_class: dict[str, int]
    by_source: dict[str, int]


def _conversations(path: Path, *, cap: int) -> Iterator[ConversationRecord]:
    for record in iter_records(path):
        if isinstance(record, ConversationRecord) and record.interleaved:
            yield dataclasses.replace(record, messages=record.messages[:cap])


def load_mix(data_dir: Path, *, messages: int, seed: int = 20261121) -> ReplayMix:
    """Real chat from the shared data, many conversations at once, as one arrival-ordered stream.

    Each class of ``MIX`` contributes its share of ``messages``, taking conversations (up to the class's cap
    of messages each, from the start) round-robin over its sources. The conversations are then interleaved at
    random, each keeping its own order and spanning a third of the replay from a random start, like many
    people talking in a community at the same time; timestamps follow the interleaved order, one second
    apart. A record's source is its space and its id its channel (``record_to_messages``).
    """
    conversations_dir = data_dir / "conversations"
    if not conversations_dir.is_dir():
        raise SystemExit(f"{data_dir} has no conversations/ folder (the shared data README describes it)")
    rng = random.Random(seed)
    streams: list[list[ChatMessage]] = []
    by_class: dict[str, int] = {}
    by_source: dict[str, int] = {}
    for name, (share, cap, sources) in MIX.items():
        quota = round(messages * share)
        readers = [
            _conversations(conversations_dir / f"{source}.jsonl.xz", cap=cap)
            for source in sources
            if (conversations_dir / f"{source}.jsonl.xz").exists()
        ]
        taken = 0
        while taken < quota and readers:
            for reader in list(readers):
                record = next(reader, None)
                if record is None:
                    readers.remove(reader)
                    continue
                stream = record_to_messages(record, platform="bench")
                streams.append(stream)
                taken += len(stream)
                by_source[record.source] = by_source.get(record.source, 0) + len(stream)
                if taken >= quota:
                    break
        by_class[name] = taken
    # Random interleaving that keeps each conversation's order: each conversation starts at a random time and
    # lasts a third of the replay, so at any moment about a third of them are active and alerts (which come
    # some way into a grooming conversation) happen all along the replay, not only near its start.
    positioned: list[tuple[float, int, int]] = []
    for stream_index, stream in enumerate(streams):
        start = rng.random() * (1.0 - _SPAN)
        spots = sorted(start + _SPAN * rng.random() for _ in stream)
        positioned.extend((spot, stream_index, i) for i, spot in enumerate(spots))
    positioned.sort()
    ordered = tuple(
        dataclasses.replace(streams[stream_index][i], timestamp=BASE_TIME + timedelta(seconds=rank))
        for rank, (_, stream_index, i) in enumerate(positioned)
    )
    return ReplayMix(messages=ordered, conversations=len(streams), by_class=by_class, by_source=by_source)
