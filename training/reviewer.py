"""Fine-tune a window reviewer: a sentence encoder that reads a pair's recent messages together.

    python -m training.reviewer --data ../shared/data --extra FILE ... --val-extra FILE ...
        --model detector/model --work CACHE --encoder DIR --out DIR [--epochs 3] [--max-length 128]
        [--window 24] [--seed 0] [--threads 2] [--threshold 0.3] [--rebuild]

The pair model reads one message at a time and keeps a small state; the reviewer reads a window again, all
of it at once, and gives P(the member marked "me" is grooming the other). It is all-MiniLM-L6-v2
(``--encoder``, a folder with config.json and model.safetensors; the tokenizer is ``--model``'s
tokenizer.json, the same vocabulary), mean-pooled over the window's tokens, and one linear unit.

A window (serving's ``vigil.detector.reviewer.encode_window``, the one rule for both) is the last
``--window`` messages of one candidate member's pair sequence (``training.pair_head.sequences_of``), ending at
one of the member's own messages: each message is the tokens of "me:" (the member's) or "them:" (the
other's) followed by at most ``MESSAGE_TOKENS`` of its own tokens (no special tokens); messages are taken from
the newest back while they fit ``--max-length`` - 2 whole, then wrapped in [CLS] ... [SEP]. The texts are the
model texts (``training.data.model_text``), as serving reads them.

Where the windows end (``pick_steps``): at the member's own messages once they have written ``MIN_OWN``,
where the shipped pair model (``--model``'s pair_model.onnx, replayed step by step as serving runs it) gives
the member a risk of at least ``HOT_RISK``: ``HOT_PICKS`` of those at random; where it never does, one own
message at random for a share of the sequences (``COLD_SHARE_GROOMING`` of grooming members',
``COLD_SHARE_OTHER`` of the others). The picks of each member are drawn from the crc32 of its conversation and
name (``window_rng``), the same in every process. Training windows are the TRAIN split of ``--data`` and the
``--extra`` conversations; validation windows its CALIB split and ``--val-extra``. Both are kept in ``--work``
(windows_train.jsonl, windows_val.jsonl) and read again while what built them is unchanged (``--rebuild``
builds them anew).

Training: weighted binary cross-entropy (a negative at a hot step weighs ``HOT_NEGATIVE_WEIGHT``, then the
positives are scaled so the two classes weigh the same), AdamW, linear warm-up then linear decay, gradient
clipping, the embeddings frozen, batches of similar lengths. It reports the validation ROC AUC after every
epoch, over all windows and over the hot ones.

``--out`` gets ``reviewer.onnx`` (inputs ``input_ids`` and ``attention_mask``, int64 [batch, tokens];
output ``logit`` [batch]): int8, dynamically quantised per channel with the head kept fp32 and made portable
(``training.portable_quant``): the fp32 encoder (90 MB) does not fit the model directory's 60 MB, so int8 it
is, and the report says how far it moves the validation probabilities and how many windows it moves across
``--threshold``; and ``reviewer.json``, the ``reviewer`` section of ``metadata.json`` as serving reads it
(the threshold, the encoding settings, golden windows a runtime checks itself against at load) with the
validation figures, the file's SHA-256 and the training report. The threshold is the monitor's: an alert the
policy decides is held back while the reviewer reads the window below it (``bots.core.monitor``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import shutil
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from tokenizers import Tokenizer

from training.cli import run_reported
from training.counter_gate import BaseModel, replay_base
from training.data import Split, SplitConfig, assign_splits, load_dataset
from training.pair_head import CandidateSequence, FeatureTable, load_extra, sequences_of
from training.portable_quant import portable_int8
from vigil.bots.core.ports import ReviewLine
from vigil.detector.cues import text_cues
from vigil.detector.golden import file_sha256
from vigil.detector.reviewer import encode_window

logger = logging.getLogger(__name__)

# The window and its encoding (reviewer.json records them; serving reads them from there).
MAX_LENGTH = 128
WINDOW_MESSAGES = 24
MESSAGE_TOKENS = 40
OWN_PREFIX = "me:"
OTHER_PREFIX = "them:"

# Where windows end.
MIN_OWN = 2  # the member's own messages so far
HOT_RISK = 0.5
HOT_PICKS = 3
COLD_SHARE_GROOMING = 0.3
COLD_SHARE_OTHER = 0.1

HOT_NEGATIVE_WEIGHT = 2.0
EVAL_BATCH = 64
# The monitor's: chosen as the largest that holds back no grooming alert of the policy set (model card).
THRESHOLD = 0.3
OPSET = 17
REVIEWER_FILE = "reviewer.onnx"
HEAD_PREFIX = "/head/"
SOURCE = "all-MiniLM-L6-v2 fine-tuned"
SPLITS = ("train", "val")

# Windows whose probability reviewer.json records, for a runtime to check its own reading against. Made up
# here, so that no conversation from the data ships with the model.
GOLDEN_WINDOWS: tuple[tuple[tuple[bool, str], ...], ...] = (
    ((True, "hi"), (False, "hey")),
    (
        (False, "did u finish the maths hw"),
        (True, "nah not yet lol"),
        (False, "dont tell mom i copied yours"),
        (True, "ok i wont"),
    ),
    (
        (True, "how old are you"),
        (False, "13"),
        (True, "you seem really mature for your age"),
        (False, "thanks"),
        (True, "this is our secret ok, dont tell your parents we talk"),
    ),
)


# ========================================================================================= windows


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """One training or validation window: the lines (own, model text), oldest first, ending at the step."""

    conversation_id: str
    source: str
    candidate: str
    label: int
    weight: float  # the sequence's source weight (reported; training weighs classes, not sources)
    risk: float  # the shipped pair model's risk for the member at the last line
    hot: bool  # picked among the member's hot steps (risk >= HOT_RISK)
    lines: tuple[tuple[bool, str], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "source": self.source,
            "candidate": self.candidate,
            "label": self.label,
            "weight": self.weight,
            "risk": self.risk,
            "hot": self.hot,
            "lines": [[int(own), text] for own, text in self.lines],
        }

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Window:
        return cls(
            conversation_id=str(row["conversation_id"]),
            source=str(row["source"]),
            candidate=str(row["candidate"]),
            label=int(row["label"]),
            weight=float(row["weight"]),
            risk=float(row["risk"]),
            hot=bool(row["hot"]),
            lines=tuple((bool(own), str(text)) for own, text in row["lines"]),
        )


def window_rng(conversation_id: str, candidate: str, *, seed: int = 0) -> random.Random:
    """The random source of one member's picks: from the crc32 of its conversation and name (and ``seed``),
    the same in every process, where Python's ``hash()`` of a string is not."""
    key = zlib.crc32(f"{conversation_id}\x00{candidate}".encode())
    return random.Random((seed << 32) | key)


def pick_steps(
    own: np.ndarray, risk: np.ndarray, *, label: int, rng: random.Random, hot_picks: int = HOT_PICKS
) -> tuple[list[int], bool]:
    """The steps of one sequence that windows end at, and whether they are hot ones: among the member's own
    messages from its ``MIN_OWN``-th on, up to ``hot_picks`` of those with ``risk`` >= ``HOT_RISK``; where
    there are none, one of them with probability ``COLD_SHARE_GROOMING`` (``label`` 1) or
    ``COLD_SHARE_OTHER``."""
    own_count = np.cumsum(own)
    steps = [t for t in range(len(risk)) if own[t] > 0 and own_count[t] >= MIN_OWN]
    if not steps:
        return [], False
    hot = [t for t in steps if risk[t] >= HOT_RISK]
    if hot:
        return rng.sample(hot, min(hot_picks, len(hot))), True
    share = COLD_SHARE_GROOMING if label else COLD_SHARE_OTHER
    return ([rng.choice(steps)] if rng.random() < share else []), False


def windows_of(
    sequences: Sequence[CandidateSequence],
    logits: Sequence[np.ndarray],
    *,
    texts: Sequence[str],
    window: int,
    seed: int = 0,
) -> list[Window]:
    """The windows of ``sequences``, given the pair model's risk logits after each of their steps."""
    out: list[Window] = []
    for sequence, logit in zip(sequences, logits, strict=True):
        risk = np.exp(-np.logaddexp(0.0, -np.asarray(logit, dtype=np.float64)))
        rng = window_rng(sequence.conversation_id, sequence.candidate, seed=seed)
        steps, hot = pick_steps(sequence.own, risk, label=sequence.label, rng=rng)
        for t in steps:
            out.append(
                Window(
                    conversation_id=sequence.conversation_id,
                    source=sequence.source,
                    candidate=sequence.candidate,
                    label=int(sequence.label),
                    weight=float(sequence.weight),
                    risk=float(risk[t]),
                    hot=hot,
                    lines=tuple(
                        (bool(sequence.own[i] > 0.5), texts[int(sequence.text_ids[i])])
                        for i in range(max(0, t - window + 1), t + 1)
                    ),
                )
            )
    return out


def replay_model(model_dir: Path) -> tuple[BaseModel, str]:
    """What replaying ``model_dir``'s pair model needs (gated or not), and the cue version it reads."""
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    pair = metadata.get("pair_model")
    if not isinstance(pair, dict) or pair.get("type") != "gru":
        raise ValueError(f"{model_dir}: no recurrent pair model to replay (metadata.json pair_model)")
    if "text_cues" not in pair or not pair.get("members"):
        raise ValueError(f"{model_dir}: metadata.json pair_model names no text_cues or members")
    base = BaseModel(
        path=model_dir / pair["file"],
        state_size=int(pair["state_size"]),
        feature_size=int(pair["feature_size"]),
        cues=len(text_cues(pair["text_cues"]).names),
        members=len(pair["members"]),
    )
    return base, str(pair["text_cues"])


def build_windows(
    *,
    data: Path,
    extra: Sequence[Path],
    val_extra: Sequence[Path],
    model_dir: Path,
    work: Path,
    window: int,
    seed: int,
    threads: int,
) -> dict[str, list[Window]]:
    """The training windows (``data``'s TRAIN split and ``extra``) and the validation windows (its CALIB split
    and ``val_extra``)."""
    base, cues_version = replay_model(model_dir)
    work.mkdir(parents=True, exist_ok=True)
    table = FeatureTable(model_dir=model_dir, work=work)
    dataset = load_dataset([data])
    splits = assign_splits(dataset.conversations, config=SplitConfig())
    conversations = {
        "train": [c for c in dataset.conversations if splits[c.id] is Split.TRAIN] + load_extra(extra),
        "val": [c for c in dataset.conversations if splits[c.id] is Split.CALIB] + load_extra(val_extra),
    }
    rng = random.Random(seed)
    sequences: dict[str, list[CandidateSequence]] = {}
    for name in SPLITS:
        sequences[name] = [
            s for c in conversations[name] for s in sequences_of(c, texts=table.id_of, rng=rng)
        ]
        logger.info(
            "%s: %d conversations, %d sequences, %d steps",
            name,
            len(conversations[name]),
            len(sequences[name]),
            sum(len(s.text_ids) for s in sequences[name]),
        )
    table.compute_pending(threads=threads)
    texts = table.texts()
    matrix = np.concatenate(
        [table.matrix().astype(np.float32), text_cues(cues_version).matrix(texts)], axis=1
    )
    if matrix.shape[1] < base.feature_size:
        raise ValueError(
            f"{model_dir}: the pair model reads {base.feature_size} features, the message model and "
            f"{cues_version} give {matrix.shape[1]}"
        )
    out: dict[str, list[Window]] = {}
    for name in SPLITS:
        logits = [logit for logit, _ in replay_base(base, sequences[name], matrix)] if sequences[name] else []
        out[name] = windows_of(sequences[name], logits, texts=texts, window=window, seed=seed)
        counts = Counter((w.source, w.label, w.hot) for w in out[name])
        for (source, label, hot), count in sorted(counts.items()):
            logger.info("%s windows: %s label %d%s: %d", name, source, label, " hot" if hot else "", count)
    return out


def _paths(paths: Iterable[Path]) -> list[str]:
    return [str(p.resolve()) for p in paths]


def cached_windows(
    *,
    data: Path,
    extra: Sequence[Path],
    val_extra: Sequence[Path],
    model_dir: Path,
    work: Path,
    window: int,
    seed: int,
    threads: int,
    rebuild: bool = False,
) -> dict[str, list[Window]]:
    """``build_windows``, kept in ``work`` (windows_<split>.jsonl, and windows.json saying what built them)
    and read back while that is unchanged and ``rebuild`` is not given."""
    base, _ = replay_model(model_dir)
    built_from = {
        "data": str(data.resolve()),
        "extra": _paths(extra),
        "val_extra": _paths(val_extra),
        "pair_model": file_sha256(base.path),
        "window": window,
        "seed": seed,
    }
    files = {name: work / f"windows_{name}.jsonl" for name in SPLITS}
    stamp = work / "windows.json"
    if not rebuild and stamp.exists() and all(f.exists() for f in files.values()):
        if json.loads(stamp.read_text(encoding="utf-8")) == built_from:
            logger.info("reading the windows kept in %s", work)
            return {
                name: [
                    Window.from_json(json.loads(line)) for line in path.open(encoding="utf-8") if line.strip()
                ]
                for name, path in files.items()
            }
        logger.info("the windows kept in %s were built from other inputs: building them anew", work)
    windows = build_windows(
        data=data,
        extra=extra,
        val_extra=val_extra,
        model_dir=model_dir,
        work=work,
        window=window,
        seed=seed,
        threads=threads,
    )
    for name, path in files.items():
        with path.open("w", encoding="utf-8") as handle:
            for item in windows[name]:
                handle.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")
    stamp.write_text(json.dumps(built_from, indent=2) + "\n", encoding="utf-8")
    return windows


# ======================================================================================== encoding


def reviewer_tokenizer(path: Path) -> Tokenizer:
    """The tokenizer as ``encode_window`` needs it: no padding, no truncation."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def encode_windows(
    windows: Iterable[Sequence[tuple[bool, str]]],
    *,
    tokenizer: Tokenizer,
    max_length: int = MAX_LENGTH,
    message_tokens: int = MESSAGE_TOKENS,
    own_prefix: str = OWN_PREFIX,
    other_prefix: str = OTHER_PREFIX,
) -> list[list[int]]:
    """The token ids of each window (lines: (the member's own?, model text), oldest first), by serving's
    rule (``vigil.detector.reviewer.encode_window``): what the reviewer trains on is what it reads.
    ``tokenizer`` must have padding and truncation off (``reviewer_tokenizer``)."""
    if tokenizer.padding is not None or tokenizer.truncation is not None:
        raise ValueError("encoding needs a tokenizer without padding or truncation (reviewer_tokenizer)")
    return [
        encode_window(
            [ReviewLine(own=own, text=text) for own, text in lines],
            tokenizer=tokenizer,
            max_length=max_length,
            message_tokens=message_tokens,
            own_prefix=own_prefix,
            other_prefix=other_prefix,
        )
        for lines in windows
    ]


def pad_batch(encodings: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), int64 [batch, longest], padded with 0 at the end."""
    longest = max(len(e) for e in encodings)
    ids = np.zeros((len(encodings), longest), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding)] = encoding
        mask[row, : len(encoding)] = 1
    return ids, mask


def _by_length(encodings: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i]))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def roc_auc(labels: Sequence[int] | np.ndarray, scores: np.ndarray) -> float | None:
    """The area under the ROC curve, or None where only one class is there."""
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    labels = np.asarray(labels)
    if len(set(labels.tolist())) < 2:
        return None
    return round(float(roc_auc_score(labels, scores)), 4)


# =========================================================================================== model


def build_reviewer(encoder: Path) -> Any:
    """The encoder in ``encoder`` (config.json, model.safetensors), mean pooling and a linear unit; seed torch
    first (the unit's initial weights)."""
    import torch  # noqa: PLC0415
    from transformers import BertModel  # noqa: PLC0415

    # eager attention: the one ONNX exports as plain operators.
    bert = BertModel.from_pretrained(
        str(encoder), local_files_only=True, add_pooling_layer=False, attn_implementation="eager"
    )

    class Reviewer(torch.nn.Module):  # type: ignore[misc,unused-ignore]  # torch is untyped where it is absent
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert
            self.head = torch.nn.Linear(int(bert.config.hidden_size), 1)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            return self.head(pooled).squeeze(-1)

    return Reviewer()


def score_windows(
    model: Any, encodings: Sequence[Sequence[int]], *, batch_size: int = EVAL_BATCH
) -> np.ndarray:
    """P(grooming) of every encoded window by the torch ``model`` (eval mode, batches of similar lengths)."""
    import torch  # noqa: PLC0415

    model.eval()
    scores = np.zeros(len(encodings), dtype=np.float64)
    with torch.no_grad():
        for rows in _by_length(encodings, batch_size):
            ids, mask = pad_batch([encodings[i] for i in rows])
            logit = model(torch.from_numpy(ids), torch.from_numpy(mask))
            scores[rows] = torch.sigmoid(logit).double().numpy()
    return scores


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    epochs: int = 3
    batch_size: int = 16
    learning_rate: float = 4e-5
    weight_decay: float = 0.01
    warmup_steps: int = 100
    clip: float = 1.0
    bucket_batches: int = 20  # batches are cut from runs of this many batches' windows sorted by length
    seed: int = 0
    log_every: int = 50


def class_weights(windows: Sequence[Window]) -> tuple[np.ndarray, np.ndarray]:
    """(labels, weights): a negative at a hot step weighs ``HOT_NEGATIVE_WEIGHT``, any other window 1; then
    the positives are scaled so that the two classes weigh the same."""
    labels = np.array([w.label for w in windows], dtype=np.float32)
    weights = np.array([HOT_NEGATIVE_WEIGHT if w.hot and not w.label else 1.0 for w in windows])
    positive = labels == 1
    if positive.any() and (~positive).any():
        weights[positive] *= weights[~positive].sum() / weights[positive].sum()
    return labels, weights


def length_batches(
    lengths: Sequence[int], *, batch_size: int, bucket_batches: int, rng: random.Random
) -> list[list[int]]:
    """One epoch's batches: the windows shuffled, cut in runs of ``bucket_batches`` batches, each run sorted
    by length and cut into batches, and the batches shuffled."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    run = batch_size * bucket_batches
    runs = [sorted(order[i : i + run], key=lambda j: lengths[j]) for i in range(0, len(order), run)]
    batches = [chunk[i : i + batch_size] for chunk in runs for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def train_reviewer(
    model: Any,
    *,
    train: Sequence[Window],
    train_ids: Sequence[Sequence[int]],
    validation: Sequence[Window],
    validation_ids: Sequence[Sequence[int]],
    config: TrainConfig,
) -> list[dict[str, Any]]:
    """Fine-tune ``model`` (``build_reviewer``) in place; returns each epoch's report (mean training loss,
    validation ROC AUC over all windows and over the hot ones)."""
    import torch  # noqa: PLC0415

    if len(train) != len(train_ids) or len(validation) != len(validation_ids):
        raise ValueError("one encoding per window")
    labels, weights = class_weights(train)
    for parameter in model.bert.embeddings.parameters():
        parameter.requires_grad = False
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    total = config.epochs * math.ceil(len(train) / config.batch_size)

    def rate(step: int) -> float:
        warm = min(1.0, step / config.warmup_steps) if config.warmup_steps else 1.0
        return warm * max(0.0, 1.0 - step / total)

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, rate)
    rng = random.Random(config.seed)
    lengths = [len(ids) for ids in train_ids]
    validation_labels = np.array([w.label for w in validation])
    hot = np.array([w.hot for w in validation], dtype=bool)
    report: list[dict[str, Any]] = []
    started = time.monotonic()
    step = 0
    for epoch in range(config.epochs):
        model.train()
        losses: list[float] = []
        batches = length_batches(
            lengths, batch_size=config.batch_size, bucket_batches=config.bucket_batches, rng=rng
        )
        for batch in batches:
            ids, mask = pad_batch([train_ids[i] for i in batch])
            logit = model(torch.from_numpy(ids), torch.from_numpy(mask))
            weight = torch.from_numpy(weights[batch]).float()
            loss: Any = (
                torch.nn.functional.binary_cross_entropy_with_logits(
                    logit, torch.from_numpy(labels[batch]), reduction="none"
                )
                * weight
            ).sum() / float(weights[batch].sum())
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, config.clip)
            optimiser.step()
            schedule.step()
            step += 1
            losses.append(float(loss.detach()))
            if config.log_every and step % config.log_every == 0:
                logger.info(
                    "epoch %d step %d/%d loss %.4f (%.0f s)",
                    epoch + 1,
                    step,
                    total,
                    float(np.mean(losses[-config.log_every :])),
                    time.monotonic() - started,
                )
        scores = score_windows(model, validation_ids)
        epoch_report = {
            "epoch": epoch + 1,
            "train_loss": round(float(np.mean(losses)), 4) if losses else None,
            "roc_auc": roc_auc(validation_labels, scores) if len(scores) else None,
            "hot_roc_auc": roc_auc(validation_labels[hot], scores[hot]) if hot.any() else None,
            "seconds": round(time.monotonic() - started, 1),
        }
        logger.info("epoch %s", epoch_report)
        report.append(epoch_report)
    return report


# ========================================================================================== export


def export_onnx(model: Any, path: Path) -> None:
    """``model`` as ONNX: ``input_ids``, ``attention_mask`` (int64 [batch, tokens]) -> ``logit`` [batch]."""
    import torch  # noqa: PLC0415

    model.eval()
    ids = torch.ones(2, 12, dtype=torch.long)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 8:] = 0
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logit"],
            dynamic_axes={**axes, "logit": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def quantise(source: Path, target: Path) -> None:
    """int8 weights per channel, dynamic activations (the linear unit kept fp32), made portable: the same
    scores on every CPU and in every batch (``training.portable_quant``)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415

    graph = onnx.load(str(source))
    head = [node.name for node in graph.graph.node if node.name.startswith(HEAD_PREFIX)]
    logging.disable(logging.WARNING)  # the quantiser logs every tensor, and advice, on the root logger
    try:
        quantize_dynamic(
            str(source),
            str(target),
            per_channel=True,
            weight_type=QuantType.QInt8,
            # quantize_dynamic first rewrites a Gemm as "<name>_MatMul" + Add: exclude both spellings.
            nodes_to_exclude=head + [f"{name}_MatMul" for name in head],
        )
    finally:
        logging.disable(logging.NOTSET)
    onnx.save_model(portable_int8(onnx.load_model(str(target))), str(target))


def onnx_session(path: Path, *, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def onnx_logits(
    session: ort.InferenceSession, encodings: Sequence[Sequence[int]], *, batch_size: int = EVAL_BATCH
) -> np.ndarray:
    logits = np.zeros(len(encodings), dtype=np.float64)
    for rows in _by_length(encodings, batch_size):
        ids, mask = pad_batch([encodings[i] for i in rows])
        (logit,) = session.run(["logit"], {"input_ids": ids, "attention_mask": mask})
        logits[rows] = np.asarray(logit, dtype=np.float64).reshape(-1)
    return logits


def _probability(logits: np.ndarray) -> np.ndarray:
    return np.asarray(np.exp(-np.logaddexp(0.0, -logits)))


def golden_windows(
    session: ort.InferenceSession,
    *,
    tokenizer: Tokenizer,
    max_length: int,
    window: int,
    lines: Sequence[Sequence[tuple[bool, str]]] = GOLDEN_WINDOWS,
) -> list[dict[str, Any]]:
    """Each window of ``lines`` with its probability as serving reads it: alone, its last ``window`` lines."""
    out: list[dict[str, Any]] = []
    for item in lines:
        kept = list(item)[-window:]
        (encoding,) = encode_windows([kept], tokenizer=tokenizer, max_length=max_length)
        probability = float(_probability(onnx_logits(session, [encoding], batch_size=1))[0])
        out.append({"lines": [[own, text] for own, text in item], "probability": round(probability, 6)})
    return out


def write_reviewer(
    model: Any,
    *,
    out: Path,
    work: Path,
    validation: Sequence[Window],
    validation_ids: Sequence[Sequence[int]],
    tokenizer: Tokenizer,
    max_length: int,
    window: int,
    threads: int,
    threshold: float,
) -> dict[str, Any]:
    """Export ``model`` to ``out``/reviewer.onnx (int8, portable; the exports pass through ``work``); returns
    the validation figures of the file written (with how far int8 moved them from the fp32 export, and
    across ``threshold``), its SHA-256 and the golden windows."""
    if not validation_ids:
        raise ValueError("no validation windows to check the export on")
    work.mkdir(parents=True, exist_ok=True)
    fp32, int8 = work / "reviewer_fp32.onnx", work / "reviewer_int8.onnx"
    export_onnx(model, fp32)
    torch_scores = score_windows(model, validation_ids)
    fp32_scores = _probability(onnx_logits(onnx_session(fp32, threads=threads), validation_ids))
    quantise(fp32, int8)
    scores = _probability(onnx_logits(onnx_session(int8, threads=threads), validation_ids))
    export_gap = float(np.abs(fp32_scores - torch_scores).max())
    gaps = np.abs(scores - fp32_scores)
    crossed = int(((scores >= threshold) != (fp32_scores >= threshold)).sum())
    chosen, kind = int8, "int8 (dynamic, per channel, portable; head fp32)"
    out.mkdir(parents=True, exist_ok=True)
    target = out / REVIEWER_FILE
    shutil.copyfile(chosen, target)
    labels = np.array([w.label for w in validation])
    hot = np.array([w.hot for w in validation], dtype=bool)
    return {
        "validation": {
            "windows": len(validation),
            "positives": int(labels.sum()),
            "hot_windows": int(hot.sum()),
            "roc_auc": roc_auc(labels, scores),
            "hot_roc_auc": roc_auc(labels[hot], scores[hot]) if hot.any() else None,
            "weights": kind,
            "int8_max_difference": round(float(gaps.max()), 5),
            "int8_mean_difference": round(float(gaps.mean()), 5),
            "int8_across_threshold": crossed,
            "export_max_difference": round(export_gap, 6),
        },
        "sha256": file_sha256(target),
        "golden": golden_windows(
            onnx_session(target, threads=threads), tokenizer=tokenizer, max_length=max_length, window=window
        ),
    }


# ============================================================================================= CLI


def run(args: argparse.Namespace) -> dict[str, Any]:
    if not 0.0 < args.threshold < 1.0:
        raise ValueError(f"--threshold must be in (0, 1), got {args.threshold}")
    if args.epochs < 1 or args.window < 1 or args.max_length < 8:
        raise ValueError("--epochs and --window must be at least 1, --max-length at least 8")
    for path in (args.model / "tokenizer.json", args.encoder / "config.json"):
        if not path.is_file():
            raise ValueError(f"no {path}")
    windows = cached_windows(
        data=args.data,
        extra=args.extra,
        val_extra=args.val_extra,
        model_dir=args.model,
        work=args.work,
        window=args.window,
        seed=args.seed,
        threads=args.threads,
        rebuild=args.rebuild,
    )
    for name in SPLITS:
        if len({w.label for w in windows[name]}) < 2:
            raise ValueError(
                f"the {name} windows need both grooming and other members ({len(windows[name])})"
            )
    tokenizer = reviewer_tokenizer(args.model / "tokenizer.json")
    ids = {
        name: encode_windows(
            [w.lines for w in windows[name]], tokenizer=tokenizer, max_length=args.max_length
        )
        for name in SPLITS
    }
    import torch  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = build_reviewer(args.encoder)
    config = TrainConfig(epochs=args.epochs, seed=args.seed)
    epochs = train_reviewer(
        model,
        train=windows["train"],
        train_ids=ids["train"],
        validation=windows["val"],
        validation_ids=ids["val"],
        config=config,
    )
    written = write_reviewer(
        model,
        out=args.out,
        work=args.work,
        validation=windows["val"],
        validation_ids=ids["val"],
        tokenizer=tokenizer,
        max_length=args.max_length,
        window=args.window,
        threads=args.threads,
        threshold=args.threshold,
    )
    training = {
        "data": str(args.data),
        "extra": [str(p) for p in args.extra],
        "val_extra": [str(p) for p in args.val_extra],
        "model": str(args.model),
        "encoder": str(args.encoder),
        "windows": {
            name: {
                "windows": len(windows[name]),
                "positives": sum(w.label for w in windows[name]),
                "hot": sum(w.hot for w in windows[name]),
            }
            for name in SPLITS
        },
        "settings": {
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "learning_rate": config.learning_rate,
            "weight_decay": config.weight_decay,
            "warmup_steps": config.warmup_steps,
            "clip": config.clip,
            "hot_negative_weight": HOT_NEGATIVE_WEIGHT,
            "embeddings": "frozen",
            "seed": args.seed,
        },
        "epochs": epochs,
    }
    description = {
        "file": REVIEWER_FILE,
        "threshold": args.threshold,
        "max_length": args.max_length,
        "window_messages": args.window,
        "message_tokens": MESSAGE_TOKENS,
        "own_prefix": OWN_PREFIX,
        "other_prefix": OTHER_PREFIX,
        "pooling": "mean",
        "source": SOURCE,
        "validation": written["validation"],
        "sha256": written["sha256"],
        "golden": written["golden"],
        "training": training,
    }
    (args.out / "reviewer.json").write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return {"out": str(args.out), "validation": written["validation"], "training": training}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.reviewer", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (TRAIN, CALIB)")
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="more training conversations")
    parser.add_argument("--val-extra", type=Path, nargs="*", default=[], help="more validation conversations")
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help="the shipped model directory: its pair model finds the hot steps, its tokenizer encodes",
    )
    parser.add_argument("--work", type=Path, required=True, help="feature and window cache folder")
    parser.add_argument(
        "--encoder", type=Path, required=True, help="all-MiniLM-L6-v2 (config.json, model.safetensors)"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for reviewer.onnx and reviewer.json")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=MAX_LENGTH, help="tokens per window")
    parser.add_argument("--window", type=int, default=WINDOW_MESSAGES, help="messages per window")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--threshold",
        type=float,
        default=THRESHOLD,
        help="below it the monitor holds an alert back (the largest keeping every policy-set alert)",
    )
    parser.add_argument("--rebuild", action="store_true", help="build the windows anew, not from --work")
    return run_reported(run, parser.parse_args(argv), prog="training.reviewer")


if __name__ == "__main__":
    raise SystemExit(main())
