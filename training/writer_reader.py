"""A linear writer-age reader for ``training.counter_gate --writer-reader``.

    python -m training.writer_reader --data ../shared/data --extra FILE ... --model detector/model
        --work CACHE --out reader.npz [--text-cues behaviour_v9] [--per-writer 40]

P(child) of a message's writer = sigmoid(features . weight + bias), over the frozen pair model's features
(the message model's embedding, signals and risk, then the first of the cue columns it reads). Fitted by
logistic regression on the TRAIN split's and ``--extra``'s messages whose writer's age the records say
(``training.pair_head.writer_role``: Perverted-Justice decoys and the children of grooming DMs present as
children, suspects and adult-only sources are adults, and records that name their writers, as
``training.modern_lines --name-writers`` writes them), at most ``--per-writer`` messages per writer and
conversation, each (source, age) weighted by one over the square root of its count, so that the
Perverted-Justice decoys do not decide alone what a child's writing is. The pair model's own writer heads
read the same features through each member's input layer, trained beside the risk; this reads them alone.
It reports the area under the ROC curve of each writer's mean P(child) on the realistic set (``--realistic``).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.cli import run_reported
from training.pair_head import WRITER_UNKNOWN, CandidateSequence, build_sequences
from vigil.detector.metrics import average_precision

logger = logging.getLogger(__name__)

L2 = 1e-3


def writer_examples(
    sequences: Sequence[CandidateSequence], *, per_writer: int, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(feature rows, 1 child / 0 adult, source) of the candidates' own messages whose writer is known, at
    most ``per_writer`` per candidate and conversation."""
    rng = random.Random(seed)
    by_writer: dict[tuple[str, str, str], tuple[float, set[int]]] = {}
    for s in sequences:
        if s.writer_minor is None:
            continue
        for text_id, own, role in zip(s.text_ids, s.own, s.writer_minor, strict=False):
            if own != 1.0 or role == WRITER_UNKNOWN:
                continue
            key = (s.source, s.conversation_id, s.candidate)
            by_writer.setdefault(key, (float(role), set()))[1].add(int(text_id))
    rows: list[int] = []
    labels: list[float] = []
    sources: list[str] = []
    for (source, _, _), (role, text_ids) in sorted(by_writer.items()):
        chosen = sorted(text_ids)
        rng.shuffle(chosen)
        for text_id in chosen[:per_writer]:
            rows.append(text_id)
            labels.append(role)
            sources.append(source)
    return np.array(rows, dtype=np.int64), np.array(labels, dtype=np.float32), sources


def fit_reader(
    x: np.ndarray, y: np.ndarray, sources: Sequence[str], *, steps: int = 200
) -> tuple[np.ndarray, float]:
    """Weighted, L2-regularised logistic regression on standardised features; returns the weight and bias on
    the raw features."""
    import torch  # noqa: PLC0415

    counts = Counter(zip(sources, y.tolist(), strict=True))
    weights = np.array([1.0 / np.sqrt(counts[(s, r)]) for s, r in zip(sources, y.tolist(), strict=True)])
    weights = weights / weights.sum()
    mean = x.mean(0)
    scale = x.std(0) + 1e-6
    features = torch.from_numpy((x - mean) / scale).double()
    target = torch.from_numpy(y).double()
    w = torch.from_numpy(weights)
    weight = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Any:
        optimiser.zero_grad()
        logit = features @ weight + bias
        loss: Any = (
            torch.nn.functional.binary_cross_entropy_with_logits(logit, target, reduction="none") * w
        ).sum() + L2 * (weight**2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)  # type: ignore[no-untyped-call,unused-ignore]  # torch is untyped where absent
    raw = weight.detach().numpy() / scale
    return raw.astype(np.float32), float(bias.detach()) - float(np.sum(raw * mean))


def writer_auc(
    sequences: Sequence[CandidateSequence], matrix: np.ndarray, weight: np.ndarray, bias: float
) -> dict[str, float]:
    """Each known writer's mean P(child) over their own messages: the area under the ROC curve (children
    against adults), the mean for each and the average precision of finding the children."""
    means: dict[tuple[str, str], tuple[float, list[float]]] = {}
    for s in sequences:
        if s.writer_minor is None:
            continue
        for text_id, own, role in zip(s.text_ids, s.own, s.writer_minor, strict=False):
            if own == 1.0 and role != WRITER_UNKNOWN:
                child = 1.0 / (1.0 + np.exp(-(float(matrix[text_id] @ weight) + bias)))
                means.setdefault((s.conversation_id, s.candidate), (float(role), []))[1].append(child)
    labels = np.array([role for role, _ in means.values()])
    scores = np.array([float(np.mean(values)) for _, values in means.values()])
    children, adults = scores[labels == 1.0], scores[labels == 0.0]
    if not len(children) or not len(adults):
        return {"writers": float(len(scores))}
    auc = float(np.mean([(c > a) + 0.5 * (c == a) for c in children for a in adults]))
    return {
        "writers": float(len(scores)),
        "auc": auc,
        "average_precision": average_precision(scores.tolist(), labels=labels.astype(int).tolist()) or 0.0,
        "child_mean": float(children.mean()),
        "adult_mean": float(adults.mean()),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    metadata = json.loads((args.model / "metadata.json").read_text(encoding="utf-8"))
    feature_size = int(metadata["pair_model"]["feature_size"])
    by_split, matrix = build_sequences(
        data=args.data,
        model_dir=args.model,
        work=args.work,
        extra=args.extra,
        realistic=args.realistic,
        seed=args.seed,
        threads=args.threads,
        text_cues=args.text_cues,
    )
    # The frozen model's columns: its message features and the first of the cue columns (a cue version only
    # appends cues).
    matrix = matrix[:, :feature_size]
    rows, labels, sources = writer_examples(by_split["train"], per_writer=args.per_writer, seed=args.seed)
    logger.info(
        "%d messages of %d sources (%.0f%% children)", len(rows), len(set(sources)), 100 * labels.mean()
    )
    weight, bias = fit_reader(matrix[rows], labels, sources)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, weight=weight, bias=np.float32(bias))
    return {
        split: writer_auc(by_split.get(split, []), matrix, weight, bias) for split in ("val", "realistic")
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.writer_reader", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="more training conversations")
    parser.add_argument("--model", type=Path, required=True, help="the frozen model directory")
    parser.add_argument("--work", type=Path, required=True, help="feature cache folder")
    parser.add_argument("--out", type=Path, required=True, help="the .npz to write")
    parser.add_argument("--text-cues", default="behaviour_v9", help="the cue version the gate will read")
    parser.add_argument(
        "--realistic", type=Path, default=Path("examples/realistic_conversations.jsonl"), help="report only"
    )
    parser.add_argument("--per-writer", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    return run_reported(run, parser.parse_args(argv), prog="training.writer_reader")


if __name__ == "__main__":
    raise SystemExit(main())
