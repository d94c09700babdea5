"""How much a message's score depends on the batch it is scored in, and what serving-side batching can do.

    python -m benchmarks.batch_invariance --data FILE [FILE ...] [--messages N] [--batchings K] [--json OUT]

The shipped model quantises activations dynamically, one scale per tensor, so a row's score moves with the
other rows of its batch and with the padding they need. This scores each message alone (batch size 1, the
reference the golden check uses) and then in ``--batchings`` random mixed batches of 64 (messages sampled
evenly from the files given), through the detector's own scorer (``_OnnxScorer.score_batch``, what the
``Batcher`` hands a full batch to), and compares. Besides the shipped batching it measures:

- ``one_run``: the 64 rows in one ``session.run``, padded to the longest (no length sorting);
- ``exact_length``: one run per exact token length: no padding at all, so only batch-mates differ;
- ``padding_only`` (a diagnostic, not a way to serve): each message alone but padded to the width of the
  sub-batch the shipped batching puts it in, so only padding differs;
- ``alone``: batch size 1, batch-invariant by construction;
- ``baseline_model`` (with ``--baseline-model-dir DIR``): another model directory, e.g. the export before
  ``training.portable_quant``, in the shipped batching; compared with the main model's scores alone, so it
  shows whether the two score alike, and timed beside it.

For each: mean, p95, p99 and max absolute difference of the risk probability from the message scored alone,
the largest signal difference, and the share of messages whose side of the model's threshold changes. Then
the serving strategies are timed over the same batches, interleaved round by round on a shared machine:
throughputs are reported as ratios to the shipped batching within each round (median over rounds).

Messages are read with lzma/json from the shared data format (``.jsonl`` or ``.jsonl.xz``, conversation or
line records) and never written anywhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import lzma
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Encoding

from benchmarks.common import machine, model_fingerprint
from vigil.detector.onnx_detector import (
    _length_groups,
    _load_model,
    _OnnxScorer,
    _sigmoid,
    load_default_model_dir,
)

logger = logging.getLogger(__name__)

BATCH_SIZE = 64
# Messages read per file at most before sampling, so one huge file does not dominate the start-up time.
_MAX_READ_PER_FILE = 50_000

FloatArray = npt.NDArray[np.float64]
# A way to score one batch of texts: rows of [risk, signal...] probabilities, in the texts' order.
Strategy = Callable[[_OnnxScorer, Sequence[str]], FloatArray]


@dataclass(frozen=True, slots=True, kw_only=True)
class Difference:
    """Scores under one batching against the same messages scored alone, over every (message, batching)."""

    mode: str
    pairs: int
    risk_mean_abs: float
    risk_p95_abs: float
    risk_p99_abs: float
    risk_max_abs: float
    signal_max_abs: float
    # Share of (message, batching) pairs on the other side of the threshold than the message alone...
    threshold_flips: float
    # ...and share of messages that flip in at least one of the batchings.
    messages_flipping: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Throughput:
    mode: str
    msgs_per_s_median: float
    ratio_to_shipped_median: float
    ratio_to_shipped_range: tuple[float, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchInvarianceResult:
    model: str
    model_sha256_12: str
    onnxruntime: str
    messages: int
    sources: dict[str, int]
    batch_size: int
    batchings: int
    threshold: float
    mean_token_length: float
    differences: list[Difference]
    throughput: list[Throughput]
    timing_rounds: int
    intra_op_threads: int
    machine: dict[str, Any]


# --- data -----------------------------------------------------------------------------------------------


def _open(path: Path) -> IO[str]:
    if path.suffix == ".xz":
        return lzma.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def message_texts(path: Path) -> list[str]:
    """Non-empty message texts of a shared-format file (conversation records or line records)."""
    texts: list[str] = []
    with _open(path) as lines:
        for line in lines:
            if not line.strip():
                continue
            record = json.loads(line)
            found = [m["text"] for m in record["messages"]] if "messages" in record else [record["text"]]
            texts.extend(text for text in found if isinstance(text, str) and text.strip())
            if len(texts) >= _MAX_READ_PER_FILE:
                break
    if not texts:
        raise SystemExit(f"{path} holds no message texts")
    return texts


def sample_messages(paths: Sequence[Path], *, count: int, seed: int) -> tuple[list[str], dict[str, int]]:
    """``count`` messages sampled evenly across the files (without replacement where a file is big enough)."""
    rng = random.Random(seed)
    share, extra = divmod(count, len(paths))
    sample: list[str] = []
    sources: dict[str, int] = {}
    for index, path in enumerate(paths):
        texts = message_texts(path)
        wanted = share + (1 if index < extra else 0)
        taken = rng.sample(texts, wanted) if wanted <= len(texts) else rng.choices(texts, k=wanted)
        sample.extend(taken)
        sources[path.name] = len(taken)
    rng.shuffle(sample)
    return sample, sources


# --- batching strategies --------------------------------------------------------------------------------


def _encode(scorer: _OnnxScorer, texts: Sequence[str]) -> list[Encoding]:
    encodings: list[Encoding] = scorer.tokenizer.encode_batch([text[: scorer.max_chars] for text in texts])
    return encodings


def _run(scorer: _OnnxScorer, encodings: Sequence[Encoding], *, width: int | None = None) -> FloatArray:
    """One ``session.run`` over the rows, padded to ``width`` (default: the longest row)."""
    longest = max(1, *(len(encoding.ids) for encoding in encodings))
    width = longest if width is None else max(width, longest)
    feed = {
        "input_ids": np.full((len(encodings), width), scorer.pad_id, dtype=np.int64),
        "attention_mask": np.zeros((len(encodings), width), dtype=np.int64),
        "token_type_ids": np.full((len(encodings), width), scorer.pad_type_id, dtype=np.int64),
    }
    for row, encoding in enumerate(encodings):
        length = len(encoding.ids)
        feed["input_ids"][row, :length] = encoding.ids
        feed["attention_mask"][row, :length] = 1
        feed["token_type_ids"][row, :length] = encoding.type_ids
    risk, signals = scorer.session.run(
        [scorer.risk_output, scorer.signals_output],
        {name: array for name, array in feed.items() if name in scorer.input_names},
    )
    logits = np.column_stack([np.asarray(risk).reshape(len(encodings)), np.asarray(signals)])
    return np.asarray(_sigmoid(logits), dtype=np.float64)


def shipped(scorer: _OnnxScorer, texts: Sequence[str]) -> FloatArray:
    return np.array([[score.risk, *score.signals] for score in scorer.score_batch(texts)])


def alone(scorer: _OnnxScorer, texts: Sequence[str]) -> FloatArray:
    return np.vstack([_run(scorer, [encoding]) for encoding in _encode(scorer, texts)])


def one_run(scorer: _OnnxScorer, texts: Sequence[str]) -> FloatArray:
    return _run(scorer, _encode(scorer, texts))


def exact_length(scorer: _OnnxScorer, texts: Sequence[str]) -> FloatArray:
    encodings = _encode(scorer, texts)
    rows_by_length: dict[int, list[int]] = {}
    for row, encoding in enumerate(encodings):
        rows_by_length.setdefault(len(encoding.ids), []).append(row)
    result = np.zeros((len(texts), 1 + scorer.signal_count))
    for rows in rows_by_length.values():
        result[rows] = _run(scorer, [encodings[row] for row in rows])
    return result


def padding_only(scorer: _OnnxScorer, texts: Sequence[str]) -> FloatArray:
    """Each row alone, padded to the width of its sub-batch in the shipped batching."""
    encodings = _encode(scorer, texts)
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
    result = np.zeros((len(texts), 1 + scorer.signal_count))
    for group in _length_groups([len(encodings[i].ids) for i in order]):
        rows = [order[position] for position in group]
        width = max(len(encodings[row].ids) for row in rows)
        for row in rows:
            result[row] = _run(scorer, [encodings[row]], width=width)[0]
    return result


COMPARED: dict[str, Strategy] = {
    "shipped": shipped,
    "one_run": one_run,
    "exact_length": exact_length,
    "padding_only": padding_only,
}
TIMED: dict[str, Strategy] = {
    "shipped": shipped,
    "exact_length": exact_length,
    "one_run": one_run,
    "alone": alone,
}
BASELINE = "baseline_model"
# A mode: the scorer it runs on and how it batches.
Mode = tuple[_OnnxScorer, Strategy]


def baseline_scorer(model_dir: Path, *, intra_op_threads: int) -> _OnnxScorer:
    """Another model directory (e.g. an earlier export of the same model), loaded as a scorer."""
    model = _load_model(
        model_dir,
        intra_op_threads=intra_op_threads,
        inter_op_threads=1,
        accept_runtime_drift=True,
        check_runtime=False,
    )
    return model.scorer


# --- measuring ------------------------------------------------------------------------------------------


def batches_of(order: Sequence[int]) -> list[list[int]]:
    return [list(order[start : start + BATCH_SIZE]) for start in range(0, len(order), BATCH_SIZE)]


def score_in_batches(
    scorer: _OnnxScorer, texts: Sequence[str], batches: Sequence[Sequence[int]], strategy: Strategy
) -> FloatArray:
    result = np.zeros((len(texts), 1 + scorer.signal_count))
    for rows in batches:
        result[list(rows)] = strategy(scorer, [texts[row] for row in rows])
    return result


def difference(
    mode: str, reference: FloatArray, runs: Sequence[FloatArray], *, threshold: float
) -> Difference:
    deltas = np.stack([np.abs(run - reference) for run in runs])  # [batchings, messages, outputs]
    risk = deltas[:, :, 0].ravel()
    sides = np.stack([run[:, 0] >= threshold for run in runs]) != (reference[:, 0] >= threshold)
    return Difference(
        mode=mode,
        pairs=int(risk.size),
        risk_mean_abs=_significant(risk.mean()),
        risk_p95_abs=_significant(np.quantile(risk, 0.95)),
        risk_p99_abs=_significant(np.quantile(risk, 0.99)),
        risk_max_abs=_significant(risk.max()),
        signal_max_abs=_significant(deltas[:, :, 1:].max()),
        threshold_flips=round(float(sides.mean()), 5),
        messages_flipping=round(float(sides.any(axis=0).mean()), 5),
    )


def _significant(value: Any) -> float:
    # Four significant digits: 0.0277 and 1.5e-07 (a rewrite's float noise) both stay readable.
    return float(f"{float(value):.4g}")


def _cell(value: float) -> str:
    return f"{value:8.4f}" if value == 0 or value >= 1e-4 else f"{value:8.1e}"


def time_strategies(
    timed: dict[str, Mode], texts: Sequence[str], batches: Sequence[Sequence[int]], *, rounds: int
) -> list[Throughput]:
    """Each round times every mode once, in a rotated order; ratios are taken within a round."""
    speeds: dict[str, list[float]] = {mode: [] for mode in timed}
    ratios: dict[str, list[float]] = {mode: [] for mode in timed}
    modes = list(timed)
    for round_index in range(rounds):
        rotated = modes[round_index % len(modes) :] + modes[: round_index % len(modes)]
        this_round: dict[str, float] = {}
        for mode in rotated:
            scorer, strategy = timed[mode]
            started = time.perf_counter()
            score_in_batches(scorer, texts, batches, strategy)
            this_round[mode] = len(texts) / (time.perf_counter() - started)
        for mode in modes:
            speeds[mode].append(this_round[mode])
            ratios[mode].append(this_round[mode] / this_round["shipped"])
    return [
        Throughput(
            mode=mode,
            msgs_per_s_median=round(statistics.median(speeds[mode]), 1),
            ratio_to_shipped_median=round(statistics.median(ratios[mode]), 3),
            ratio_to_shipped_range=(round(min(ratios[mode]), 3), round(max(ratios[mode]), 3)),
        )
        for mode in modes
    ]


def run_benchmark(arguments: argparse.Namespace) -> BatchInvarianceResult:
    model_dir: Path = arguments.model_dir
    # The detector's own loader and scorer, so the batching measured is the one that serves.
    model = _load_model(
        model_dir,
        intra_op_threads=arguments.intra_op_threads,
        inter_op_threads=1,
        accept_runtime_drift=True,
        check_runtime=False,
    )
    scorer = model.scorer
    threshold = model.spec.info.default_threshold
    texts, sources = sample_messages(arguments.data, count=arguments.messages, seed=arguments.seed)
    lengths = [len(encoding.ids) for encoding in _encode(scorer, texts)]
    logger.info("scoring %d messages alone", len(texts))
    reference = score_in_batches(scorer, texts, [[row] for row in range(len(texts))], alone)

    rng = random.Random(arguments.seed)
    batchings = []
    for _ in range(arguments.batchings):
        order = list(range(len(texts)))
        rng.shuffle(order)
        batchings.append(batches_of(order))
    compared: dict[str, Mode] = {mode: (scorer, strategy) for mode, strategy in COMPARED.items()}
    timed: dict[str, Mode] = {mode: (scorer, strategy) for mode, strategy in TIMED.items()}
    if arguments.baseline_model_dir is not None:
        baseline = baseline_scorer(arguments.baseline_model_dir, intra_op_threads=arguments.intra_op_threads)
        compared[BASELINE] = timed[BASELINE] = (baseline, shipped)
    differences = []
    for mode, (mode_scorer, strategy) in compared.items():
        logger.info("scoring %d messages in %d batchings: %s", len(texts), len(batchings), mode)
        runs = [score_in_batches(mode_scorer, texts, batches, strategy) for batches in batchings]
        differences.append(difference(mode, reference, runs, threshold=threshold))
    alone_again = score_in_batches(scorer, texts, batchings[0], alone)
    differences.append(difference("alone", reference, [alone_again], threshold=threshold))

    logger.info("timing %d rounds", arguments.rounds)
    throughput = time_strategies(timed, texts, batchings[0], rounds=arguments.rounds)
    info = model.spec.info
    return BatchInvarianceResult(
        model=f"{info.name} {info.version}",
        model_sha256_12=model_fingerprint(model_dir),
        onnxruntime=str(ort.__version__),
        messages=len(texts),
        sources=sources,
        batch_size=BATCH_SIZE,
        batchings=len(batchings),
        threshold=threshold,
        mean_token_length=round(statistics.fmean(lengths), 2),
        differences=differences,
        throughput=throughput,
        timing_rounds=arguments.rounds,
        intra_op_threads=arguments.intra_op_threads,
        machine=machine(),
    )


def report(result: BatchInvarianceResult) -> str:
    lines = [
        f"model {result.model} ({result.model_sha256_12}), onnxruntime {result.onnxruntime}, "
        f"intra_op_threads={result.intra_op_threads}",
        f"{result.messages} messages from {len(result.sources)} files (mean {result.mean_token_length} "
        f"tokens), each alone and in {result.batchings} random mixed batchings of {result.batch_size}",
        "absolute risk difference from the message scored alone; signals: largest signal difference; flips: "
        f"pairs on the other side of {result.threshold:g}; msgs: messages that flip in any batching",
        f"  {'mode':<13} {'mean':>8} {'p95':>8} {'p99':>8} {'max':>8} {'signals':>8} {'flips':>7} "
        f"{'msgs':>7}",
    ]
    for d in result.differences:
        lines.append(
            f"  {d.mode:<13} {_cell(d.risk_mean_abs)} {_cell(d.risk_p95_abs)} {_cell(d.risk_p99_abs)} "
            f"{_cell(d.risk_max_abs)} {_cell(d.signal_max_abs)} {d.threshold_flips:7.2%} "
            f"{d.messages_flipping:7.2%}"
        )
    lines.append(
        f"throughput over the same batches, {result.timing_rounds} interleaved rounds "
        "(ratio to shipped within each round: median [min, max]):"
    )
    for t in result.throughput:
        low, high = t.ratio_to_shipped_range
        lines.append(
            f"  {t.mode:<13} {t.msgs_per_s_median:9.1f} msgs/s   x{t.ratio_to_shipped_median:.3f} "
            f"[{low:.3f}, {high:.3f}]"
        )
    return "\n".join(lines)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.batch_invariance",
        description="Batch-composition dependence of the detector's scores, and batching strategies' cost.",
    )
    parser.add_argument(
        "--data", type=Path, nargs="+", required=True, help="shared-format .jsonl or .jsonl.xz files"
    )
    parser.add_argument("--model-dir", type=Path, default=load_default_model_dir())
    parser.add_argument("--messages", type=int, default=2048, help="messages sampled, evenly across files")
    parser.add_argument("--batchings", type=int, default=3, help="random batchings of the messages compared")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of every serving strategy")
    parser.add_argument("--intra-op-threads", type=int, default=2, help="as [detector] intra_op_threads")
    parser.add_argument(
        "--baseline-model-dir",
        type=Path,
        help="also measure another model directory (e.g. an earlier export) in the shipped batching",
    )
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    arguments = parser.parse_args(argv)
    if min(arguments.messages, arguments.batchings, arguments.rounds, arguments.intra_op_threads) < 1:
        parser.error("--messages, --batchings, --rounds and --intra-op-threads must be >= 1")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    arguments = parse_arguments(argv)
    result = run_benchmark(arguments)
    print(report(result))
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
