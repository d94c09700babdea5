"""Train the recurrent pair model (issue 12): conversation-level risk, message by message, with speaker roles.

The message model (encoder + risk and signal heads, ``model.onnx``) stays as shipped; this trains what runs on
top of it in production, ``pair_model.onnx`` (see ``vigil.detector.pair.GruPairModel``): a GRU that reads one
pair's messages in order, each as the message model's features plus a flag saying whether the member it scores
wrote it, and gives that member's probability of grooming the other after each of their own messages.

One set of rules with serving:

- Text: ``vigil.bots.core.normalise.model_text`` (through ``training.data.model_text``).
- Pairing: recorded conversations become ``ChatMessage`` streams (``bots.core.replay.record_to_messages``)
  and are split into pairs by the production ``PairResolver``, exactly as ``vigil eval`` and the bots do.
- Alert policy: the replay that calibrates threshold and sustain runs ``vigil.bots.core.policy.next_streak``
  on the pair's top member risk after every pair message, as the monitor does.

Flattened text (segments: chat without speaker boundaries, ``vigil eval``'s segments mode) is read by the
same graph through a branch of its own, selected by ``own == FLATTENED_OWN``: its chunks are unlike messages
and its labels unlike a member's, and training one set of weights on both cost the conversations early alerts
and let adult sexting alert. The conversation branch is trained first, on conversations only; the flattened
branch then on segments only, so it cannot change a conversation's risk.

``--members`` makes the pair model an ensemble: several GRUs trained alone (seeds ``--seed``, ``--seed`` + 1,
...), whose mean logit is the risk and whose states sit side by side in the pair state. A ``behaviour`` member
reads only signal and risk logits (the explanation heads' signals where ``model.onnx`` has them, which
``message_features`` then appends to the features); ``full`` members read the embedding as well.

Only ``pj_koutli`` is not interleaved (each side's lines in order, one after the other): its sides train as
own-message-only sequences, which is also how a member looks before the other answers.

Usage::

    python -m training.pair_head --data ../shared/data --model detector/model --work .artifacts/pair \\
        --out detector/model \\
        [--extra modern.jsonl] [--members full full behaviour behaviour]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import random
import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from tokenizers import Tokenizer

from training.data import (
    Conversation,
    Split,
    SplitConfig,
    assign_splits,
    load_dataset,
    model_text,
    read_conversations,
)
from training.style import chatify, modernise, standardise
from training.variants import TRAINING_SEGMENTS_RESTYLED, training_segments
from training.variants import segments as evaluation_segments
from vigil.bots.core.pairing import PairResolver
from vigil.bots.core.policy import next_streak
from vigil.bots.core.replay import ConversationRecord, RecordMessage, record_to_messages
from vigil.bots.core.segments import segment_texts
from vigil.detector.cues import CUE_VERSIONS, LATEST_CUES
from vigil.detector.cues import text_cues as cues_of
from vigil.detector.metrics import average_precision
from vigil.detector.pair import FLATTENED_OWN, sigmoid

logger = logging.getLogger(__name__)

EMBEDDING_NODE = "/encoder/Div_1_output_0"
EMBEDDING_OUTPUT = "embedding"
PAIR_FILE = "pair_model.onnx"
STATE_SIZE = 64
HIDDEN_IN = 96
OPSET = 17
# A pair's first messages matter most for an early alert; later ones add little but cost time.
MAX_PAIR_MESSAGES = 300
MAX_OWN_ONLY = 150
# Channel logs hold hundreds of pairs; a sample of each log's pairs is enough for negatives.
MAX_PAIRS_PER_CONVERSATION = 24
# Late starts (``--late-starts``): a training pair of at least LATE_START_MIN_MESSAGES also trains from a
# message between these offsets on, to the same end (MAX_PAIR_MESSAGES in), so no new text is encoded.
LATE_START_OFFSETS = (20, 150)
LATE_START_MIN_WINDOW = 30
LATE_START_MIN_MESSAGES = LATE_START_OFFSETS[0] + LATE_START_MIN_WINDOW
# The late starts' own generator (seed + this), so that without them every other draw is as before.
LATE_START_SEED = 7919
# A suspect's first messages ("hi", "asl") are not yet evidence: their loss weight ramps in over this many.
POSITIVE_RAMP = 8
# Cue memory (--cue-memory): each text cue's count in the member's own messages and in the other's, decayed by
# this much per pair message (half-life about 69 messages), read as 1 - exp(-count).
CUE_MEMORY_DECAY = 0.99
HYSTERESIS = 0.15
SIGNAL_AND_RISK = 10  # the last features: 9 signal logits and the risk logit
DROPOUT = 0.1
# Sources whose every sequence trains every epoch; the many easy negatives are sampled afresh each epoch.
# The two branches of the pair model: chat messages and chunks of flattened text.
CHAT = "chat"
FLAT = "flat"
FLAT_INIT_SEED = 1
MEMBER_INIT_SEED = 100
# Hard-negative mining (--mine-weight): an ordinary sequence counts as hard where the uncalibrated first
# model's risk reached this at one of its own messages.
MINING_THRESHOLD = 0.5
# Conversations written for Vigil (templates, and by hand): already in modern style, never restyled.
WRITTEN_SOURCES = ("vigil_modern_train", "vigil_written_train")
# Conversations that only choose the alert policy (threshold, sustain), beside the calibration split.
POLICY_SPLIT = "policy"
POLICY_SOURCE = "vigil_written_policy"
# What one false alert (a look-alike or ordinary pair alerted, a victim named) costs in grooming conversations
# found, when choosing the policy. The policy set is half grooming; a community's chat is almost all ordinary,
# so a false alert there is far more common than the balanced set shows: three conversations found per false
# alert, not F0.5's two.
FALSE_ALERT_COST = 3.0
HARD_SOURCES = ("pj_", "pan12_sample", "sexting_adult", "nps_chat", "formspring", *WRITTEN_SOURCES)
EASY_PER_EPOCH = 20000


@dataclass(frozen=True, slots=True, kw_only=True)
class CandidateSequence:
    """One member ("candidate") of one pair: the pair's messages in order, which are the candidate's own."""

    conversation_id: str
    source: str
    label: int
    text_ids: np.ndarray  # int64 indices into the feature table
    own: np.ndarray  # float32, 1 where the candidate wrote the message
    weight: float
    pair_id: str
    candidate: str
    interleaved: bool
    # Set by hard-negative mining: an ordinary sequence the first model alerted on, trained every epoch.
    mined: bool = False
    # For a restyled copy (standard English, modern apps, chat-speak): the same member's texts in the original
    # conversation, step for step (``link_restyled``); the restyle-consistency loss reads them.
    original_ids: np.ndarray | None = None
    # Per step, who wrote the message as far as the record says: WRITER_MINOR (presents as a child: a decoy,
    # the child of a grooming DM), WRITER_ADULT (a suspect, an adult-only source) or WRITER_UNKNOWN; the
    # writer-age auxiliary loss reads it. None where no step is known.
    writer_minor: np.ndarray | None = None


# ================================================================================ records and pairs


def to_record(conversation: Conversation) -> ConversationRecord:
    return ConversationRecord(
        id=conversation.id,
        source=conversation.source,
        label=conversation.label,
        setting="dm" if conversation.setting == "dm" else "channel",
        interleaved=conversation.interleaved,
        suspects=tuple(conversation.suspects),
        messages=tuple(
            RecordMessage(author=m.author, text=m.text, reply_to=m.reply_to) for m in conversation.messages
        ),
        line_number=0,
        path=Path("."),
    )


def production_pairs(conversation: Conversation) -> dict[tuple[str, str], list[int]]:
    """Message indices of each pair, as the production resolver forms them."""
    resolver = PairResolver()
    pairs: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, message in enumerate(record_to_messages(to_record(conversation), platform="train")):
        for key in resolver.resolve(message, bot_user_ids=frozenset()):
            pairs[(key.user_a, key.user_b)].append(index)
    return pairs


def source_weight(source: str, label: int) -> float:
    if label == 1:
        return 1.0
    if source.startswith("pj") or source == "pan12_sample":
        return 2.0  # decoys: the negatives in exactly the positives' style
    if source == "sexting_adult":
        return 8.0  # sexual chat between adults: the hardest negatives, and few of them
    if source in ("nps_chat", "formspring", *WRITTEN_SOURCES):
        return 2.0
    return 1.0


WRITER_UNKNOWN, WRITER_ADULT, WRITER_MINOR = -1.0, 0.0, 1.0
# Ordinary sources whose every writer is an adult.
ADULT_SOURCES = ("sexting_adult",)


def writer_role(conversation: Conversation, author: str) -> float:
    """Who wrote a message, as far as the record says: a suspect is an adult; a Perverted-Justice decoy
    (``dec-`` ids) and the other member of a grooming DM present as children; everyone in an adult-only
    source is an adult; a record's ``meta.child_authors`` / ``meta.adult_authors`` (generated and realistic
    chats, look-alikes included) name the rest. Otherwise unknown (a channel's bystander may be either)."""
    if author in conversation.suspects or conversation.source in ADULT_SOURCES:
        return WRITER_ADULT
    if author in _meta_ids(conversation, "child_authors"):
        return WRITER_MINOR
    if author in _meta_ids(conversation, "adult_authors"):
        return WRITER_ADULT
    if conversation.label == 1 and (author.startswith("dec-") or conversation.setting == "dm"):
        return WRITER_MINOR
    return WRITER_UNKNOWN


def _meta_ids(conversation: Conversation, key: str) -> frozenset[str]:
    ids = conversation.meta.get(key)
    return frozenset(i for i in ids if isinstance(i, str)) if isinstance(ids, list) else frozenset()


def sequences_of(
    conversation: Conversation,
    *,
    texts: Callable[[str], int],
    rng: random.Random,
    late_starts: float = 0.0,
    late_rng: random.Random | None = None,
) -> list[CandidateSequence]:
    """Each pair's candidate sequences (every pair with a suspect, a sample of the others; each member of a
    pair a candidate). ``late_starts`` > 0 (with ``late_rng``): that share of the pairs long enough also
    gives a copy that starts later (``LATE_START_OFFSETS``), as a log that begins mid-relationship does: the
    age asked and given in the first messages is not there, the rest of the behaviour is."""
    suspects = set(conversation.suspects)
    out: list[CandidateSequence] = []

    def add(pair_id: str, candidate: str, indices: Sequence[int], own: Sequence[int]) -> None:
        label = int(conversation.label == 1 and candidate in suspects)
        roles = np.array(
            [writer_role(conversation, conversation.messages[i].author) for i in indices], dtype=np.float32
        )
        out.append(
            CandidateSequence(
                conversation_id=conversation.id,
                source=conversation.source,
                label=label,
                text_ids=np.array([texts(conversation.messages[i].text) for i in indices], dtype=np.int64),
                own=np.array(own, dtype=np.float32),
                weight=source_weight(conversation.source, label),
                pair_id=pair_id,
                candidate=candidate,
                interleaved=conversation.interleaved,
                writer_minor=roles if (roles != WRITER_UNKNOWN).any() else None,
            )
        )

    if not conversation.interleaved:
        by_author: dict[str, list[int]] = defaultdict(list)
        for i, m in enumerate(conversation.messages):
            by_author[m.author].append(i)
        for author, indices in by_author.items():
            kept = indices[:MAX_OWN_ONLY]
            if len(kept) >= 3:
                add(f"{conversation.id}:{author}", author, kept, [1] * len(kept))
        return out
    pairs = production_pairs(conversation)
    keys = sorted(pairs)
    if conversation.label == 1:
        # Every pair with a suspect, plus a sample of bystander pairs.
        chosen = [k for k in keys if suspects & set(k)]
        rest = [k for k in keys if not suspects & set(k)]
        chosen += rng.sample(rest, min(len(rest), MAX_PAIRS_PER_CONVERSATION // 2))
    else:
        chosen = rng.sample(keys, min(len(keys), MAX_PAIRS_PER_CONVERSATION))
    for a, b in chosen:
        indices = pairs[(a, b)][:MAX_PAIR_MESSAGES]
        if len(indices) < 2:
            continue
        windows = [("", indices)]
        if (
            late_rng is not None
            and len(indices) >= LATE_START_MIN_MESSAGES
            and late_rng.random() < late_starts
        ):
            last = min(LATE_START_OFFSETS[1], len(indices) - LATE_START_MIN_WINDOW)
            start = late_rng.randint(LATE_START_OFFSETS[0], last)
            windows.append((f"@{start}", indices[start:]))
        for suffix, window in windows:
            for candidate in (a, b):
                own = [int(conversation.messages[i].author == candidate) for i in window]
                if sum(own):
                    add(f"{conversation.id}{suffix}:{a}|{b}", candidate, window, own)
    return out


# ====================================================================================== augmentation

# Share of training conversations that get a restyled copy: grooming in standard English and with modern app
# names (so style and dated platforms stop being evidence), negatives in chat-speak (so style stops being
# innocence).
STANDARDISED_SHARE = 0.5
MODERNISED_SHARE = 0.5
CHATIFIED_SHARE = 0.15


# Marks a restyled copy's conversation id: ``<original id>~<kind>``.
RESTYLE_MARK = "~"


def _restyled(
    conversation: Conversation,
    suffix: str,
    transform: Callable[[str, random.Random], str],
    rng: random.Random,
) -> Conversation:
    messages = tuple(dataclasses.replace(m, text=transform(m.text, rng)) for m in conversation.messages)
    return dataclasses.replace(conversation, id=f"{conversation.id}{RESTYLE_MARK}{suffix}", messages=messages)


def _victim_restyled(conversation: Conversation, restyled: Conversation) -> Conversation:
    """The suspects' messages as written, everyone else's from ``restyled`` (same order, same authors)."""
    suspects = set(conversation.suspects)
    messages = tuple(
        original if original.author in suspects else copy
        for original, copy in zip(conversation.messages, restyled.messages, strict=True)
    )
    return dataclasses.replace(conversation, id=f"{conversation.id}{RESTYLE_MARK}vstd", messages=messages)


def augment(
    conversations: Sequence[Conversation],
    *,
    seed: int,
    standardised_share: float = STANDARDISED_SHARE,
    mixed_style: bool = False,
) -> list[Conversation]:
    """Restyled copies of training conversations (the originals are not included). ``mixed_style`` adds, for
    each grooming conversation given a standard-English copy, one where only the others' messages are in
    standard English: a child who writes well is no sign that the other is harmless."""
    rng = random.Random(seed)
    out: list[Conversation] = []
    for conversation in conversations:
        if conversation.label == 1 or conversation.source.startswith("pj_"):
            if rng.random() < standardised_share:
                standard = _restyled(conversation, "std", standardise, rng)
                out.append(standard)
                if mixed_style and conversation.label == 1 and conversation.suspects:
                    out.append(_victim_restyled(conversation, standard))
            if rng.random() < MODERNISED_SHARE:
                out.append(_restyled(conversation, "mod", lambda t, r: modernise(standardise(t, r), r), rng))
        elif conversation.source not in WRITTEN_SOURCES and rng.random() < CHATIFIED_SHARE:
            out.append(_restyled(conversation, "chat", chatify, rng))
    return out


def link_restyled(sequences: Sequence[CandidateSequence]) -> tuple[list[CandidateSequence], int]:
    """Each restyled copy's sequence gets its original's text ids (``original_ids``) where the original
    conversation gave the same member the same pair, step for step; returns the sequences and how many were
    linked. Copies whose pair the original did not sample stay unlinked."""
    originals: dict[tuple[str, str, str], CandidateSequence] = {}
    for sequence in sequences:
        if RESTYLE_MARK not in sequence.conversation_id:
            key = (sequence.conversation_id, _pair_suffix(sequence), sequence.candidate)
            originals[key] = sequence
    out: list[CandidateSequence] = []
    linked = 0
    for sequence in sequences:
        original = None
        if RESTYLE_MARK in sequence.conversation_id:
            base = sequence.conversation_id.split(RESTYLE_MARK, 1)[0]
            original = originals.get((base, _pair_suffix(sequence), sequence.candidate))
        if (
            original is not None
            and len(original.text_ids) == len(sequence.text_ids)
            and np.array_equal(original.own, sequence.own)
        ):
            out.append(dataclasses.replace(sequence, original_ids=original.text_ids))
            linked += 1
        else:
            out.append(sequence)
    return out, linked


def _pair_suffix(sequence: CandidateSequence) -> str:
    return sequence.pair_id[len(sequence.conversation_id) + 1 :]


def restyle_consistency(logits: Any, original_logits: Any, labels: Any) -> Any:
    """Per-step loss that pulls a restyled copy's risk towards its original's where the copy is on the
    wrong side of it: below it for the suspect (a groomer writing standard English is as much evidence),
    above it for everyone else (chat-speak is no evidence against a decoy or an ordinary chatter). Where the
    copy is already on the right side the gradient is zero, so the original is never pulled towards the copy,
    and the originals' own speed is left to the ordinary loss. ``original_logits`` are a fixed target."""
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    copy = torch.sigmoid(logits).detach()
    original = torch.sigmoid(original_logits).detach()
    target = torch.where(labels > 0, torch.maximum(original, copy), torch.minimum(original, copy))
    # BCE against a soft target: its gradient (p - target) is zero where target == p.
    return nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")


# ========================================================================================== features


class FeatureCacheMismatchError(ValueError):
    """The cached features were computed by another message model than the one given."""


def model_digest(model_dir: Path) -> str:
    """SHA-256 of ``model.onnx``'s weights (names and values): new heads change it, re-saving the graph
    with an extra output does not."""
    digest = hashlib.sha256()
    model = onnx.load(str(model_dir / "model.onnx"))
    for initializer in sorted(model.graph.initializer, key=lambda i: i.name):
        digest.update(initializer.name.encode())
        digest.update(onnx.numpy_helper.to_array(initializer).tobytes())
    return digest.hexdigest()


class FeatureTable:
    """Message-model features for every distinct model text, computed once and cached in ``work``.

    ``features.model.txt`` records which model's weights computed them: a cache of another model (other
    heads, ``training.message_heads``) is refused, since mixing its rows with new ones would train the pair
    model on features that serving never produces.
    """

    def __init__(self, *, model_dir: Path, work: Path) -> None:
        self._model_dir = model_dir
        self._matrix_path = work / "features.npy"
        self._texts_path = work / "features.texts.json"
        self._model_path = work / "features.model.txt"
        self._index: dict[str, int] = {}
        self._rows: list[np.ndarray] = []
        self._pending: list[str] = []
        if self._matrix_path.exists() and self._texts_path.exists():
            self._check_model()
            texts = json.loads(self._texts_path.read_text(encoding="utf-8"))
            self._index = {t: i for i, t in enumerate(texts)}
            self._rows = [np.load(self._matrix_path, allow_pickle=False)]
        self._size = len(self._index)

    def _check_model(self) -> None:
        digest = model_digest(self._model_dir)
        if not self._model_path.exists():
            # A cache from before the record was kept: the model given is the only witness.
            logger.warning(
                "%s does not say which model computed it; taking it as %s's",
                self._matrix_path,
                self._model_dir,
            )
            self._model_path.write_text(digest + "\n", encoding="utf-8")
            return
        recorded = self._model_path.read_text(encoding="utf-8").strip()
        if recorded != digest:
            raise FeatureCacheMismatchError(
                f"{self._matrix_path} was computed by another message model than "
                f"{self._model_dir / 'model.onnx'} (weights {recorded[:12]}, this model {digest[:12]}): pass "
                "the model that computed it (--model), or start from an empty work folder"
            )

    def id_of(self, text: str) -> int:
        key = model_text(text)
        index = self._index.get(key)
        if index is None:
            index = self._size
            self._index[key] = index
            self._pending.append(key)
            self._size += 1
        return index

    def compute_pending(self, *, threads: int = 2) -> None:
        if not self._pending:
            return
        logger.info("computing features for %d new texts", len(self._pending))
        session, tokenizer = message_session(self._model_dir, threads=threads)
        if self._rows and self._rows[0].shape[1] != self.width(session):
            raise FeatureCacheMismatchError(
                f"{self._matrix_path} holds {self._rows[0].shape[1]} features per text, but "
                f"{self._model_dir / 'model.onnx'} gives {self.width(session)}: start from an empty work "
                "folder"
            )
        pending = self._pending
        order = sorted(range(len(pending)), key=lambda i: len(pending[i]))
        out = np.zeros((len(pending), self.width(session)), dtype=np.float16)
        started = time.monotonic()
        for start in range(0, len(order), 128):
            rows = order[start : start + 128]
            out[rows] = message_features(session, tokenizer, [pending[i] for i in rows])
            if start % (128 * 100) == 0:
                logger.info(
                    "features: %d/%d, %.0f/s", start, len(order), start / (time.monotonic() - started + 1e-9)
                )
        self._rows.append(out)
        self._pending = []
        self.save()

    @staticmethod
    def width(session: ort.InferenceSession) -> int:
        shapes = {o.name: o.shape for o in session.get_outputs()}
        signals = int(shapes["signal_logits"][1])
        explanation = has_explanation_heads(shapes)
        return int(shapes[EMBEDDING_OUTPUT][1]) + signals * (2 if explanation else 1) + 1

    def texts(self) -> list[str]:
        """The model texts in row order."""
        ordered = [""] * self._size
        for text, index in self._index.items():
            ordered[index] = text
        return ordered

    def matrix(self) -> np.ndarray:
        if self._pending:
            raise RuntimeError("features pending: call compute_pending() first")
        return np.concatenate(self._rows) if len(self._rows) > 1 else self._rows[0]

    def replace_matrix(self, matrix: np.ndarray, *, model_dir: Path) -> None:
        """New features for the same texts, computed by ``model_dir``'s model (``training.message_heads``:
        its new head logits); saved, and later texts are scored by that model too."""
        if self._pending or matrix.shape != self.matrix().shape:
            raise ValueError("replace_matrix needs one row per cached text and nothing pending")
        self._rows = [matrix.astype(np.float16)]
        self._model_dir = model_dir
        self.save()

    def save(self) -> None:
        texts = sorted(self._index, key=self._index.__getitem__)
        np.save(self._matrix_path, self.matrix(), allow_pickle=False)
        self._model_path.write_text(model_digest(self._model_dir) + "\n", encoding="utf-8")
        self._texts_path.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")


def with_embedding_output(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model.onnx`` with the pooled, normalised sentence embedding as an extra output, ``embedding``."""
    if any(o.name == EMBEDDING_OUTPUT for o in model.graph.output):
        return model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    model.graph.node.append(
        onnx.helper.make_node("Identity", [EMBEDDING_NODE], [EMBEDDING_OUTPUT], name="embedding_output")
    )
    width = 384
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(EMBEDDING_OUTPUT, onnx.TensorProto.FLOAT, ["batch", width])
    )
    return model


# model.onnx's output of the signal logits the pair model reads, where explanations use other heads
# (training.message_heads --explanations-only; metadata pair_model.signals_output).
PAIR_SIGNALS_OUTPUT = "pair_signal_logits"


def message_session(model_dir: Path, *, threads: int) -> tuple[ort.InferenceSession, Tokenizer]:
    model = with_embedding_output(onnx.load(str(model_dir / "model.onnx")))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(int(metadata["max_length"]))
    tokenizer.enable_padding()
    return session, tokenizer


def message_features(session: ort.InferenceSession, tokenizer: Tokenizer, texts: Sequence[str]) -> np.ndarray:
    encodings = tokenizer.encode_batch(list(texts))
    feed = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
    }
    # A model whose explanation heads were retrained keeps the pair model's own signals apart, and its
    # explanation signals follow the risk logit (metadata pair_model.explanation_signals).
    if has_explanation_heads(o.name for o in session.get_outputs()):
        risk, signals, embedding, explanation = session.run(
            ["risk_logit", PAIR_SIGNALS_OUTPUT, EMBEDDING_OUTPUT, "signal_logits"], feed
        )
        return np.concatenate([embedding, signals, np.asarray(risk).reshape(-1, 1), explanation], axis=1)
    risk, signals, embedding = session.run(["risk_logit", "signal_logits", EMBEDDING_OUTPUT], feed)
    return np.concatenate([embedding, signals, np.asarray(risk).reshape(-1, 1)], axis=1)


def has_explanation_heads(output_names: Iterable[str]) -> bool:
    """Whether a message model with these outputs serves explanation heads apart from the pair model's
    signals (``pair_signal_logits``, training.message_heads)."""
    return PAIR_SIGNALS_OUTPUT in set(output_names)


def model_has_explanation_heads(model_dir: Path) -> bool:
    graph = onnx.load(str(model_dir / "model.onnx"), load_external_data=False).graph
    return has_explanation_heads(o.name for o in graph.output)


# ============================================================================================= model


# What a member of the pair model reads: "full" the message model's sentence embedding, its (pair) signal
# logits and its risk logit; "behaviour" only signal logits and the risk logit, the explanation heads' signals
# where the model has them (what was asked and offered, not how it was written: the embedding carries the
# training corpus's style, which let short modern chats pass unseen); "embedding" the embedding alone.
MEMBER_KINDS = ("full", "behaviour", "embedding")


def member_mask(kind: str, *, feature_size: int, explanation_signals: bool, text_cues: int = 0) -> np.ndarray:
    """1 for the feature columns a member of ``kind`` reads. The columns: embedding, signal logits, risk
    logit, then (``explanation_signals``) the explanation heads' signal logits, then ``text_cues`` columns of
    the text's age cues (``vigil.detector.cues``), which every member reads."""
    mask = np.zeros(feature_size, dtype=np.float32)
    if text_cues:
        mask[feature_size - text_cues :] = 1.0
        mask[: feature_size - text_cues] = member_mask(
            kind, feature_size=feature_size - text_cues, explanation_signals=explanation_signals
        )
        return mask
    signals = SIGNAL_AND_RISK - 1
    tail = SIGNAL_AND_RISK + (signals if explanation_signals else 0)
    embedding, risk = slice(0, feature_size - tail), feature_size - tail + signals
    if kind in ("full", "embedding"):
        mask[embedding] = 1.0
    if kind == "full":
        mask[embedding.stop : risk + 1] = 1.0
    if kind == "behaviour":
        mask[risk] = 1.0
        if explanation_signals:
            mask[feature_size - signals :] = 1.0
        else:
            mask[embedding.stop : risk] = 1.0
    return mask


def cue_memory_step(counts: Any, *, cues: Any, own: Any, other: Any) -> Any:
    """Cue counts [.., 2C] (own messages', then the other's) after a message with ``cues`` [.., C]; ``own``
    and ``other`` [.., 1] say whose message it is (both 0: it leaves the counts alone). Every pair message
    decays them by ``CUE_MEMORY_DECAY``, so an old pair's memory reads like one a few hundred messages long,
    the longest training shows."""
    import torch  # noqa: PLC0415

    seen = own + other
    decay = 1.0 - (1.0 - CUE_MEMORY_DECAY) * seen
    return counts * decay + torch.cat([cues * own, cues * other], -1)


# The age gate's running means start from this many pseudo-messages of P(child) 0.5: one message does not
# settle whose age it is. The gate reads the means centred and scaled to about -4..4, and starts half open
# (bias AGE_GATE_OPEN, log-sigmoid -0.31, which calibration absorbs): a gate that starts saturated open
# (bias 4, raw means; commit 5228db3) hardly learned in training (weights -0.4, bias 3.86 after it).
AGE_GATE_PRIOR = 2.0
AGE_GATE_OPEN = 1.0
AGE_GATE_SCALE = 8.0
AGE_GATE_SLOTS = 4  # per member: own P(child) sum, own messages, the other's sum, the other's messages


def age_gate_means(sums: Any) -> Any:
    """(own, other) mean P(child) [.., 2] from the gate's running sums [.., 4], with the prior."""
    import torch  # noqa: PLC0415

    prior = AGE_GATE_PRIOR
    own = (sums[..., 0] + 0.5 * prior) / (sums[..., 1] + prior)
    other = (sums[..., 2] + 0.5 * prior) / (sums[..., 3] + prior)
    return torch.stack([own, other], -1)


def age_gate_input(sums: Any) -> Any:
    """What the gate's linear layer reads: the two means centred on 0.5 and scaled by AGE_GATE_SCALE."""
    return (age_gate_means(sums) - 0.5) * AGE_GATE_SCALE


def build_model(
    feature_size: int,
    *,
    members: Sequence[str] = ("full",),
    explanation_signals: bool = False,
    text_cues: int = 0,
    writer_head: bool = False,
    state_only: bool = False,
    cue_memory: bool = False,
    age_gate: bool = False,
    gate_memory: bool = False,
) -> Any:
    """A pair model of ``members`` (kinds of ``MEMBER_KINDS``): each a GRU over the pair's messages; the
    conversation risk logit is their mean, the state their states side by side (``STATE_SIZE`` each).
    ``writer_head``: each member also gets a linear head on its per-message input that says whether the
    message's writer is a child (the writer-age auxiliary loss; training only, never exported).
    ``state_only``: a member's risk reads its recurrent state alone, not also the message in hand, so one
    ordinary message cannot swing it; the evidence has to build up in the state.
    ``cue_memory``: the state also holds, after the members' slots, each of the ``text_cues`` counted in the
    member's own messages and in the other's (``cue_memory_step``), and every member's input and risk read
    it: who gave a child's age, who asked for secrecy or a photo stays known however many ordinary messages
    follow, where a GRU trained on short windows forgets.
    ``age_gate``: each member's risk also passes a learned gate on who the pair's writers are: its writer head
    (``writer_head``, needed) reads P(child) of every message, the state keeps running sums of it for the
    member's own messages and the other's, and log-sigmoid of a linear function of the two means is added
    to the member's risk logit, a soft AND of "the steps" and "an adult with a child".
    ``gate_memory``: the age gate also reads the cue counts ``cue_memory`` keeps (kept in the state the same
    way), and nothing else does: who gave a child's age, who named family the two share, stays known to the
    gate, which can only lower a member's risk, while the members read each message as without a memory."""
    # torch is in the train extra only: everything else in this module runs (and is tested) without it.
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    unknown = sorted(set(members) - set(MEMBER_KINDS))
    if unknown or not members:
        raise ValueError(f"pair model members must be some of {MEMBER_KINDS}, got {list(members)}")
    if cue_memory and not text_cues:
        raise ValueError("a cue memory needs the text cues (--text-cues)")
    if age_gate and not writer_head:
        raise ValueError("an age gate needs the writer head (--writer-age above 0)")
    if gate_memory and not (age_gate and text_cues):
        raise ValueError("a gate memory needs the age gate and the text cues (--age-gate, --text-cues)")
    memory_size = 2 * text_cues if cue_memory or gate_memory else 0
    member_memory = memory_size if cue_memory else 0
    gate_inputs = 2 + (memory_size if gate_memory else 0)
    gate_size = AGE_GATE_SLOTS * len(members) if age_gate else 0

    class ChatMember(nn.Module):  # type: ignore[misc,unused-ignore]  # torch is untyped where it is absent
        def __init__(self, kind: str) -> None:
            super().__init__()
            self.inp = nn.Sequential(nn.Linear(feature_size + 1, HIDDEN_IN), nn.GELU(), nn.Dropout(DROPOUT))
            self.gru = nn.GRU(HIDDEN_IN, STATE_SIZE, batch_first=True)
            self.out = nn.Linear(STATE_SIZE + HIDDEN_IN, 1)
            mask = member_mask(
                kind, feature_size=feature_size, explanation_signals=explanation_signals, text_cues=text_cues
            )
            self.register_buffer("feature_mask", torch.from_numpy(mask))
            # 0 masks the message in hand out of the output layer (same shapes and draws either way).
            self.register_buffer("skip", torch.tensor(0.0 if state_only else 1.0))
            # Created last, so that the other weights draw the same random numbers with or without it.
            self.writer: Any = nn.Linear(HIDDEN_IN, 1) if writer_head else None
            self.memory_in: Any = nn.Linear(member_memory, HIDDEN_IN, bias=False) if member_memory else None
            self.memory_out: Any = nn.Linear(member_memory, 1, bias=False) if member_memory else None
            self.gate: Any = None
            if age_gate:
                self.gate = nn.Linear(gate_inputs, 1)
                nn.init.zeros_(self.gate.weight)
                nn.init.constant_(self.gate.bias, AGE_GATE_OPEN)

        def _z(self, x: Any, own: Any, memory: Any) -> Any:
            linear, activation, dropout = self.inp
            pre = linear(torch.cat([x * self.feature_mask, own], -1))
            if self.memory_in is not None:
                pre = pre + self.memory_in(memory)
            return dropout(activation(pre))

        def _risk(self, states: Any, z: Any, memory: Any) -> Any:
            logit = self.out(torch.cat([states, z * self.skip], -1))
            if self.memory_out is not None:
                logit = logit + self.memory_out(memory)
            return logit.squeeze(-1)

        def _advance(self, z: Any, state: Any, memory: Any) -> tuple[Any, Any]:
            _, hidden = self.gru(z.unsqueeze(1), state.unsqueeze(0))
            next_state = hidden.squeeze(0)
            return self._risk(next_state, z, memory), next_state

        def step(self, features: Any, own: Any, state: Any, memory: Any = None) -> tuple[Any, Any]:
            return self._advance(self._z(features, own, memory), state, memory)

        def gated_step(
            self, features: Any, own: Any, state: Any, memory: Any, *, chat: Any, sums: Any
        ) -> tuple[Any, Any, Any]:
            """``step`` with the age gate: (logit + the gate's log-sigmoid, next state, the gate's sums after
            this message; own, chat [N, 1]; a flattened chunk, chat 0, leaves the sums as they were). The
            writer head reads the same input the GRU does, computed once."""
            z = self._z(features, own, memory)
            logit, next_state = self._advance(z, state, memory)
            child = torch.sigmoid(self.writer(z))
            mine, theirs = own * chat, (1.0 - own) * chat
            sums = sums + torch.cat([child * mine, mine, child * theirs, theirs], -1)
            gate = nn.functional.logsigmoid(self.gate(self._gate_input(sums, memory))).squeeze(-1)
            return logit + gate, next_state, sums

        @staticmethod
        def _gate_input(sums: Any, memory: Any) -> Any:
            if not gate_memory:
                return age_gate_input(sums)
            return torch.cat([age_gate_input(sums), memory], -1)

        def writer_logits(self, x: Any, own: Any) -> Any:
            """Per message: is its writer a child? From the same input the GRU reads."""
            return self.writer(self.inp(torch.cat([x * self.feature_mask, own.unsqueeze(-1)], -1))).squeeze(
                -1
            )

        def sequence(self, x: Any, own: Any, memory: Any = None) -> Any:
            z = self._z(x, own.unsqueeze(-1), memory)
            states, _ = self.gru(z)
            logits = self._risk(states, z, memory)
            if self.gate is not None:
                child = torch.sigmoid(self.writer(z)).squeeze(-1)
                theirs = 1.0 - own
                sums = torch.stack(
                    [
                        torch.cumsum(child * own, 1),
                        torch.cumsum(own, 1),
                        torch.cumsum(child * theirs, 1),
                        torch.cumsum(theirs, 1),
                    ],
                    -1,
                )
                gate = self.gate(self._gate_input(sums, memory))
                logits = logits + nn.functional.logsigmoid(gate).squeeze(-1)
            return logits

    class PairGru(nn.Module):  # type: ignore[misc,unused-ignore]
        """One step: (features, own, state) -> (risk_logit, next_state); ``forward_sequence`` for training.

        Two branches: the ``chat`` members for chat messages (own 0 or 1) and ``flat_inp``/``flat_gru``/
        ``flat_out`` for chunks of flattened text (own == FLATTENED_OWN), whose state is the first member's
        slot of the state.
        """

        def __init__(self) -> None:
            super().__init__()
            self.kinds = tuple(members)
            self.memory_size = memory_size
            self.gate_size = gate_size
            self.state_size = STATE_SIZE * len(members) + memory_size + gate_size
            self.chat = nn.ModuleList()
            self.chat.append(ChatMember(members[0]))
            for index, kind in enumerate(members[1:], start=1):
                # The others from forked generators: the first trains exactly as a one-member model would.
                with torch.random.fork_rng():
                    torch.manual_seed(MEMBER_INIT_SEED + index)
                    self.chat.append(ChatMember(kind))
            # Drawn from a forked generator: the conversation branch trains exactly as it would alone.
            with torch.random.fork_rng():
                torch.manual_seed(FLAT_INIT_SEED)
                self.flat_inp = nn.Sequential(
                    nn.Linear(feature_size, HIDDEN_IN), nn.GELU(), nn.Dropout(DROPOUT)
                )
                self.flat_gru = nn.GRU(HIDDEN_IN, STATE_SIZE, batch_first=True)
                self.flat_out = nn.Linear(STATE_SIZE + HIDDEN_IN, 1)

        @staticmethod
        def flatness(own: Any) -> Any:
            """1 where own == FLATTENED_OWN, 0 where own is 0 or 1: which branch a row takes."""
            return 1.0 - torch.abs(own - FLATTENED_OWN) / FLATTENED_OWN

        def _memory_step(self, features: Any, own: Any, counts: Any) -> Any:
            """The counts after one message (own [.., 1]); a flattened chunk leaves them as they were."""
            chat = 1.0 - self.flatness(own)
            cues = features[..., -text_cues:]
            return cue_memory_step(counts, cues=cues, own=own * chat, other=(1.0 - own) * chat)

        def forward(self, features: Any, own: Any, state: Any) -> tuple[Any, Any]:
            members_end = STATE_SIZE * len(self.chat)
            members_state = state[..., :members_end]
            slots = torch.split(members_state, STATE_SIZE, dim=-1)
            counts = memory = None
            if self.memory_size:
                counts = self._memory_step(
                    features, own, state[..., members_end : members_end + self.memory_size]
                )
                memory = 1.0 - torch.exp(-counts)
            gate_sums: list[Any] = []
            if self.gate_size:
                chat_rows = 1.0 - self.flatness(own)
                old_sums = torch.split(state[..., members_end + self.memory_size :], AGE_GATE_SLOTS, dim=-1)
                stepped = []
                chat_members: list[Any] = list(self.chat)
                for member, slot, sums in zip(chat_members, slots, old_sums, strict=True):
                    logit, next_slot, new_sums = member.gated_step(
                        features, own, slot, memory, chat=chat_rows, sums=sums
                    )
                    stepped.append((logit, next_slot))
                    gate_sums.append(new_sums)
            else:
                stepped = [
                    member.step(features, own, slot, memory)
                    for member, slot in zip(self.chat, slots, strict=True)
                ]
            chat_logit = torch.stack([logit for logit, _ in stepped], -1).mean(-1)
            chat_state = torch.cat([next_state for _, next_state in stepped], -1)
            flat_z = self.flat_inp(features)
            _, flat_hidden = self.flat_gru(flat_z.unsqueeze(1), slots[0].unsqueeze(0))
            flat_state = flat_hidden.squeeze(0)
            flat_logit = self.flat_out(torch.cat([flat_state, flat_z], -1)).squeeze(-1)
            flat_state = torch.cat([flat_state] + [torch.zeros_like(s) for s in slots[1:]], -1)
            w = self.flatness(own)
            logit = chat_logit * (1.0 - w.squeeze(-1)) + flat_logit * w.squeeze(-1)
            next_state = chat_state * (1.0 - w) + flat_state * w
            if counts is not None:
                next_state = torch.cat([next_state, counts], -1)
            if gate_sums:
                next_state = torch.cat([next_state, *gate_sums], -1)
            return logit, next_state

        def memory_sequence(self, x: Any, own: Any) -> Any:
            """The cue memory (1 - exp(-counts)) after every step of padded sequences [B, T, F]."""
            counts = x.new_zeros((x.shape[0], self.memory_size))
            out = []
            for t in range(x.shape[1]):
                counts = self._memory_step(x[:, t], own[:, t : t + 1], counts)
                out.append(counts)
            return 1.0 - torch.exp(-torch.stack(out, 1))

        def forward_sequence(self, x: Any, own: Any, *, member: int | None = None) -> Any:
            """Logits for every step of padded sequences [B, T, F] (each sequence in one branch): the same
            GRUs as ``forward``, all steps; ``member``: that chat member's alone. A branch no sequence takes
            is not run."""
            w = self.flatness(own)
            logits = torch.zeros_like(own)
            if bool((w < 1.0).any()):
                chosen = list(self.chat) if member is None else [self.chat[member]]
                memory = self.memory_sequence(x, own) if self.memory_size else None
                chat = torch.stack([m.sequence(x, own, memory) for m in chosen], -1).mean(-1)
                logits = logits + chat * (1.0 - w)
            if bool((w > 0.0).any()):
                flat_z = self.flat_inp(x)
                flat_states, _ = self.flat_gru(flat_z)
                logits = logits + self.flat_out(torch.cat([flat_states, flat_z], -1)).squeeze(-1) * w
            return logits

        def branch_parameters(self, branch: str, *, member: int = 0) -> list[Any]:
            if branch == CHAT:
                return list(self.chat[member].parameters())
            modules = (self.flat_inp, self.flat_gru, self.flat_out)
            return [p for m in modules for p in m.parameters()]

    return PairGru()


def _pad(group: Sequence[CandidateSequence], table: np.ndarray) -> tuple[Any, Any, Any]:
    import torch  # noqa: PLC0415

    length = max(len(s.text_ids) for s in group)
    x = np.zeros((len(group), length, table.shape[1]), dtype=np.float32)
    own = np.zeros((len(group), length), dtype=np.float32)
    mask = np.zeros((len(group), length), dtype=np.float32)
    for i, s in enumerate(group):
        n = len(s.text_ids)
        x[i, :n] = table[s.text_ids]
        own[i, :n] = s.own
        mask[i, :n] = 1.0
    return torch.from_numpy(x), torch.from_numpy(own), torch.from_numpy(mask)


def _is_hard(sequence: CandidateSequence) -> bool:
    return sequence.label == 1 or sequence.mined or sequence.source.startswith(HARD_SOURCES)


def mine_hard_negatives(
    sequences: Sequence[CandidateSequence], logits: Sequence[np.ndarray], *, threshold: float, weight: float
) -> tuple[list[CandidateSequence], int]:
    """Negative sequences whose risk reached ``threshold`` at one of their own messages get ``weight`` times
    their weight and are trained every epoch; the others are returned as they were."""
    out: list[CandidateSequence] = []
    mined = 0
    for sequence, lg in zip(sequences, logits, strict=True):
        own = sequence.own > 0
        if sequence.label == 0 and own.any() and float(lg[own].max()) >= _logit(threshold):
            out.append(dataclasses.replace(sequence, weight=sequence.weight * weight, mined=True))
            mined += 1
        else:
            out.append(sequence)
    return out, mined


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def train(
    sequences: Sequence[CandidateSequence],
    table: np.ndarray,
    *,
    epochs: int,
    seed: int,
    batch_size: int = 32,
    model: Any = None,
    members: Sequence[str] = ("full",),
    explanation_signals: bool = False,
    text_cues: int = 0,
    branch: str = CHAT,
    member: int = 0,
    consistency: float = 0.0,
    writer_age: float = 0.0,
    state_only: bool = False,
    cue_memory: bool = False,
    age_gate: bool = False,
    gate_memory: bool = False,
) -> Any:
    """Train one branch (``CHAT`` or ``FLAT``) of ``model`` (a new one of ``members`` if None), for ``CHAT``
    only its chat ``member``; everything else stays as it is. ``consistency`` > 0 adds, for restyled copies
    linked to their original (``link_restyled``), that weight of ``restyle_consistency`` at every own step:
    the member's risk on its original is the target where the copy falls on the wrong side of it.
    ``writer_age`` > 0 adds that weight of a per-message loss on the member's writer head (who wrote the
    message, a child or an adult, where ``writer_minor`` knows): the input layer learns age, which the
    message's risk alone does not say."""
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    torch.manual_seed(seed)
    rng = random.Random(seed)
    if model is None:
        model = build_model(
            table.shape[1],
            members=members,
            explanation_signals=explanation_signals,
            text_cues=text_cues,
            writer_head=writer_age > 0.0,
            state_only=state_only,
            cue_memory=cue_memory,
            age_gate=age_gate,
            gate_memory=gate_memory,
        )
    optimiser = torch.optim.AdamW(model.branch_parameters(branch, member=member), lr=2e-3, weight_decay=1e-4)
    hard = [s for s in sequences if _is_hard(s)]
    easy = [s for s in sequences if not _is_hard(s)]
    per_epoch = len(hard) + min(len(easy), EASY_PER_EPOCH)
    steps = epochs * math.ceil(per_epoch / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=steps)
    started = time.monotonic()
    for epoch in range(epochs):
        chosen = hard + rng.sample(easy, min(len(easy), EASY_PER_EPOCH))
        # Similar lengths in a batch: little padding.
        ordered = sorted(chosen, key=lambda s: len(s.text_ids))
        batches = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
        rng.shuffle(batches)
        model.train()
        total = 0.0
        for group in batches:
            x, own, mask = _pad(group, table)
            logits = model.forward_sequence(x, own, member=member if branch == CHAT else None)
            y = torch.tensor([float(s.label) for s in group]).unsqueeze(1).expand_as(logits)
            w = torch.tensor([s.weight for s in group]).unsqueeze(1).expand_as(logits)
            # A member's risk is read at their own messages only (own 1, or FLATTENED_OWN for a segment).
            own_step = (own > 0).float()
            ramp = torch.clamp(torch.cumsum(own_step, 1) / POSITIVE_RAMP, max=1.0)
            w = w * torch.where(y > 0, ramp, torch.ones_like(ramp))
            step_mask = mask * own_step
            loss = (
                nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none") * w * step_mask
            ).sum()
            if consistency > 0.0 and branch == CHAT:
                loss = loss + consistency * _consistency_sum(
                    model, group, table, logits=logits, step_mask=step_mask, member=member
                )
            if writer_age > 0.0 and branch == CHAT:
                loss = loss + writer_age * _writer_age_sum(model.chat[member], group, x=x, own=own, mask=mask)
            loss = loss / step_mask.sum().clamp(min=1.0)
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            total += float(loss.detach())
        logger.info("epoch %d: loss %.4f (%.0f s)", epoch, total / len(batches), time.monotonic() - started)
    return model.eval()


def _consistency_sum(
    model: Any,
    group: Sequence[CandidateSequence],
    table: np.ndarray,
    *,
    logits: Any,
    step_mask: Any,
    member: int,
) -> Any:
    """``restyle_consistency`` summed over the linked copies' own steps, each weighted as its sequence."""
    import torch  # noqa: PLC0415

    linked = [i for i, s in enumerate(group) if s.original_ids is not None]
    if not linked:
        return logits.new_zeros(())
    originals = [
        dataclasses.replace(s, text_ids=s.original_ids)
        for s in (group[i] for i in linked)
        if s.original_ids is not None
    ]
    x_original, own_original, _ = _pad(originals, table)
    rows = torch.tensor(linked)
    length = logits.shape[1]
    # The target is the member's judgement of the original, without dropout's noise.
    model.eval()
    with torch.no_grad():
        target = model.forward_sequence(x_original, own_original, member=member)
    model.train()
    padded = logits.new_zeros((len(linked), length))
    padded[:, : target.shape[1]] = target
    labels = torch.tensor([float(group[i].label) for i in linked]).unsqueeze(1).expand(-1, length)
    weights = torch.tensor([group[i].weight for i in linked]).unsqueeze(1).expand(-1, length)
    per_step = restyle_consistency(logits[rows], padded, labels)
    return (per_step * weights * step_mask[rows]).sum()


def _writer_age_sum(member: Any, group: Sequence[CandidateSequence], *, x: Any, own: Any, mask: Any) -> Any:
    """Binary cross-entropy of the member's writer head at every message whose writer's age is known."""
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    roles = np.full(tuple(mask.shape), WRITER_UNKNOWN, dtype=np.float32)
    for i, sequence in enumerate(group):
        if sequence.writer_minor is not None:
            roles[i, : len(sequence.writer_minor)] = sequence.writer_minor
    labels = torch.from_numpy(roles)
    known = (labels != WRITER_UNKNOWN).float() * mask
    logits = member.writer_logits(x, own)
    losses = nn.functional.binary_cross_entropy_with_logits(logits, labels.clamp(min=0.0), reduction="none")
    return (losses * known).sum()


def train_chat_members(
    sequences: Sequence[CandidateSequence],
    table: np.ndarray,
    *,
    members: Sequence[str],
    epochs: int,
    seed: int,
    explanation_signals: bool = False,
    text_cues: int = 0,
    consistency: float = 0.0,
    writer_age: float = 0.0,
    state_only: bool = False,
    cue_memory: bool = False,
    age_gate: bool = False,
    gate_memory: bool = False,
) -> Any:
    """A new pair model of ``members``, each chat member trained alone (seed ``seed + index``): members that
    differ in seed and in what they read disagree where the data says little, and their mean is steadier than
    any one of them (the thresholds single models chose on the calibration split ranged 0.8-0.95)."""
    model = train(
        sequences,
        table,
        epochs=epochs,
        seed=seed,
        members=members,
        explanation_signals=explanation_signals,
        text_cues=text_cues,
        consistency=consistency,
        writer_age=writer_age,
        state_only=state_only,
        cue_memory=cue_memory,
        age_gate=age_gate,
        gate_memory=gate_memory,
    )
    for index in range(1, len(members)):
        logger.info("pair model member %d of %d (%s)", index + 1, len(members), members[index])
        model = train(
            sequences,
            table,
            epochs=epochs,
            seed=seed + index,
            model=model,
            member=index,
            consistency=consistency,
            writer_age=writer_age,
        )
    return model


def step_logits(model: Any, sequences: Sequence[CandidateSequence], table: np.ndarray) -> list[np.ndarray]:
    import torch  # noqa: PLC0415

    out: list[np.ndarray] = [np.zeros(0)] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i].text_ids))
    with torch.no_grad():
        for start in range(0, len(order), 128):
            rows = order[start : start + 128]
            x, own, _ = _pad([sequences[i] for i in rows], table)
            logits = model.forward_sequence(x, own).numpy()
            for j, i in enumerate(rows):
                out[i] = logits[j, : len(sequences[i].text_ids)].astype(np.float64)
    return out


def fit_calibration(
    sequences: Sequence[CandidateSequence], logits: Sequence[np.ndarray]
) -> tuple[float, float]:
    """Platt scaling (a * logit + b) on own-message steps, so the output reads as a probability."""
    x = np.concatenate([lg[s.own > 0] for s, lg in zip(sequences, logits, strict=True)])
    y = np.concatenate([np.full(int((s.own > 0).sum()), s.label, dtype=np.float64) for s in sequences])
    return platt_fit(x, y)


def platt_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Minimise the logistic loss of ``sigmoid(a * x + b)`` against ``y`` (Newton with step halving).

    Plain Newton steps from (1, 0) overshoot when a well-fitted model's logits reach the tens: the loss is
    flat in the saturated tail, the first step lands far out and the fit ran away (a = -2.6e9 in one run).
    Halving each step until the loss goes down keeps every step an improvement on a convex loss."""

    def loss(a: float, b: float) -> float:
        z = a * x + b
        return float(np.sum(np.logaddexp(0.0, z) - y * z))

    a, b = 1.0, 0.0
    current = loss(a, b)
    for _ in range(200):
        p = np.exp(-np.logaddexp(0.0, -(a * x + b)))  # the sigmoid, without overflow
        g = np.array([np.sum((p - y) * x), np.sum(p - y)])
        w = p * (1 - p)
        h = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-6 * np.eye(2)
        delta = np.linalg.solve(h, g)
        step = 1.0
        while step > 1e-6:
            trial_a, trial_b = a - step * float(delta[0]), b - step * float(delta[1])
            trial = loss(trial_a, trial_b)
            if trial <= current:
                break
            step /= 2
        else:
            break  # no step improves the loss: at the optimum up to rounding
        a, b, current = trial_a, trial_b, trial
        if np.abs(step * delta).max() < 1e-8:
            break
    return a, b


def apply_calibration(model: Any, a: float, b: float, *, branch: str = CHAT) -> None:
    import torch  # noqa: PLC0415

    # The chat logit is the members' mean: scaling each member's by a and adding b scales the mean alike.
    layers = [member.out for member in model.chat] if branch == CHAT else [model.flat_out]
    with torch.no_grad():
        for layer in layers:
            layer.weight.mul_(a)
            layer.bias.mul_(a).add_(b)


def segment_figures(sequences: Sequence[CandidateSequence], logits: Sequence[np.ndarray]) -> dict[str, Any]:
    """A segment's score is its highest chunk risk (``bots.core.segments.score_segment``); PR-AUC as
    ``vigil eval`` computes it."""
    scores = [float(lg.max()) for lg in logits]
    labels = [s.label for s in sequences]
    return {
        "segments": len(sequences),
        "positive": int(sum(labels)),
        "pr_auc": round(average_precision(scores, labels=labels) or 0.0, 4),
    }


# ============================================================================================ replay


@dataclass(frozen=True, slots=True, kw_only=True)
class PairOutcome:
    conversation_id: str
    source: str
    suspect_pair: bool
    interleaved: bool
    # Index (within the pair's messages) of the first alert, the member it named, and how many messages that
    # member had written by then.
    first_alert: int | None
    named: str | None
    named_own_messages: int
    suspects: frozenset[str]
    messages: int


def replay_pairs(
    sequences: Sequence[CandidateSequence],
    logits: Sequence[np.ndarray],
    *,
    threshold: float,
    sustain: int,
    limit: int | None = None,
) -> list[PairOutcome]:
    """The monitor's rule over each pair: risk per member read at their own messages, top member, streak."""
    by_pair: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(sequences):
        by_pair[s.pair_id].append(i)
    outcomes = []
    for members in by_pair.values():
        first = sequences[members[0]]
        n = len(first.text_ids) if limit is None else min(limit, len(first.text_ids))
        risks = np.zeros((len(members), n))
        counts = np.zeros((len(members), n), dtype=np.int64)
        for row, i in enumerate(members):
            own = sequences[i].own[:n] > 0
            p = 1.0 / (1.0 + np.exp(-logits[i][:n]))
            last = np.maximum.accumulate(np.where(own, np.arange(n), -1))
            risks[row] = np.where(last >= 0, p[np.maximum(last, 0)], 0.0)
            counts[row] = np.cumsum(own)
        streak = 0
        alert: int | None = None
        named: str | None = None
        named_count = 0
        for t in range(n):
            top_row = int(np.argmax(risks[:, t]))
            streak = next_streak(
                risk=float(risks[top_row, t]),
                previous_streak=streak,
                threshold=threshold,
                hysteresis=HYSTERESIS,
            )
            if streak >= sustain:
                alert, named = t, sequences[members[top_row]].candidate
                named_count = int(counts[top_row, t])
                break
        suspects = frozenset(sequences[i].candidate for i in members if sequences[i].label == 1)
        outcomes.append(
            PairOutcome(
                conversation_id=first.conversation_id,
                source=first.source,
                suspect_pair=bool(suspects),
                interleaved=first.interleaved,
                first_alert=alert,
                named=named,
                named_own_messages=named_count,
                suspects=suspects,
                messages=n,
            )
        )
    return outcomes


def figures(
    sequences: Sequence[CandidateSequence], logits: Sequence[np.ndarray], *, threshold: float, sustain: int
) -> dict[str, Any]:
    """Early recall on interleaved grooming pairs, victims named, and false alerts per 10,000 messages."""
    out: dict[str, Any] = {}
    for limit in (50, 100, None):
        outcomes = replay_pairs(sequences, logits, threshold=threshold, sustain=sustain, limit=limit)
        # A conversation's messages: the pair limit is per pair, which for two-person chats is the same.
        grooming = defaultdict(list)
        for o in outcomes:
            if o.suspect_pair and o.interleaved:
                grooming[o.conversation_id].append(o)
        hit = [c for c, os in grooming.items() if any(o.named in o.suspects for o in os)]
        victim = [
            c
            for c, os in grooming.items()
            if any(o.named is not None and o.named not in o.suspects for o in os)
        ]
        lat = [
            min(o.named_own_messages for o in os if o.named in o.suspects)
            for c, os in grooming.items()
            if c in hit
        ]
        key = "all" if limit is None else str(limit)
        out[f"recall@{key}"] = f"{len(hit)}/{len(grooming)}"
        out[f"victim_named@{key}"] = len(victim)
        if lat:
            out[f"median_suspect_msgs@{key}"] = float(np.median(lat))
        if limit is None:
            # False alerts: pairs in conversations without grooming (a decoy named alone in a non-interleaved
            # grooming record is counted as victim_named's concern, not here).
            grooming_conversations = {o.conversation_id for o in outcomes if o.suspect_pair}
            fa: Counter[str] = Counter()
            msgs: Counter[str] = Counter()
            for o in outcomes:
                if o.conversation_id in grooming_conversations:
                    continue
                msgs[o.source] += o.messages
                fa[o.source] += int(o.first_alert is not None)
            out["false_alerts_per_10k"] = {s: round(1e4 * fa[s] / msgs[s], 1) for s in sorted(msgs)}
            out["negative_pairs_alerted"] = {s: fa[s] for s in sorted(fa) if fa[s]}
    return out


def choose_policy(
    sequences: Sequence[CandidateSequence], logits: Sequence[np.ndarray]
) -> tuple[float, int, dict[str, Any]]:
    """Threshold and sustain on the policy conversations: the most grooming conversations found less
    ``FALSE_ALERT_COST`` for each false alert (a negative pair alerted, a victim named), then the most found
    within 50 messages, then the fewest suspect messages before the alert; among equals the higher threshold
    and longer sustain (the same catches with more margin)."""
    best: tuple[float, int, dict[str, Any]] | None = None
    best_key: tuple[float, ...] | None = None
    # Never 1: the policy promises that one message alone never alerts (bots/core/policy.py).
    for sustain in (2, 3):
        for threshold in np.round(np.arange(0.5, 0.96, 0.05), 2):
            fig = figures(sequences, logits, threshold=float(threshold), sustain=sustain)
            wrong = sum(fig["negative_pairs_alerted"].values()) + fig["victim_named@all"]
            key = (
                _found(fig["recall@all"]) - FALSE_ALERT_COST * wrong,
                _found(fig["recall@50"]),
                -float(fig.get("median_suspect_msgs@all", 1e9)),
                float(threshold),
                float(sustain),
            )
            if best_key is None or key > best_key:
                best, best_key = (float(threshold), sustain, fig), key
    assert best is not None
    return best


def _found(fraction: str) -> float:
    return float(fraction.split("/", maxsplit=1)[0])


# ============================================================================================ export


def export_onnx(model: Any, path: Path, feature_size: int) -> None:
    import torch  # noqa: PLC0415

    features = torch.zeros(2, feature_size)
    own = torch.ones(2, 1)
    state = torch.zeros(2, model.state_size)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (features, own, state),
            str(path),
            input_names=["features", "own", "state"],
            output_names=["risk_logit", "next_state"],
            dynamic_axes={n: {0: "n"} for n in ("features", "own", "state", "risk_logit", "next_state")},
            opset_version=OPSET,
            dynamo=False,
        )


def check_export(model: Any, path: Path, sequences: Sequence[CandidateSequence], table: np.ndarray) -> float:
    """Largest probability difference between the ONNX step model, run step by step, and training's path."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = step_logits(model, sequences, table)
    worst = 0.0
    for s, ref in zip(sequences, reference, strict=True):
        state = np.zeros((1, model.state_size), dtype=np.float32)
        for t, text_id in enumerate(s.text_ids):
            logit, state = session.run(
                None,
                {
                    "features": table[text_id : text_id + 1].astype(np.float32),
                    "own": np.array([[s.own[t]]], dtype=np.float32),
                    "state": state,
                },
            )
            worst = max(worst, abs(sigmoid(float(logit[0])) - sigmoid(float(ref[t]))))
    return worst


# ============================================================================================== main


def segment_sequence(
    segment: Mapping[str, Any], *, texts: Callable[[str], int], max_length: int
) -> CandidateSequence | None:
    """A flattened segment as the pair model reads it in ``vigil eval``: its chunks, own == FLATTENED_OWN."""
    chunks = segment_texts(str(segment["text"]), max_length=max_length)
    if not chunks:
        return None
    label = int(segment["label"])
    source = str(segment["source"])
    return CandidateSequence(
        conversation_id=str(segment["id"]),
        source=source,
        label=label,
        text_ids=np.array([texts(chunk) for chunk in chunks], dtype=np.int64),
        own=np.full(len(chunks), FLATTENED_OWN, dtype=np.float32),
        weight=source_weight(source, label),
        pair_id=str(segment["id"]),
        candidate="segment",
        interleaved=True,
    )


def load_extra(paths: Iterable[Path]) -> list[Conversation]:
    out: list[Conversation] = []
    for path in paths:
        out.extend(read_conversations(path))
    return out


def build_sequences(
    *,
    data: Path,
    model_dir: Path,
    work: Path,
    extra: Sequence[Path],
    realistic: Path,
    seed: int,
    threads: int,
    policy: Sequence[Path] = (),
    standardised_share: float = STANDARDISED_SHARE,
    standard_weight: float = 1.0,
    look_alike_weight: float | None = None,
    negative_weights: Mapping[str, float] | None = None,
    text_cues: str | None = None,
    mixed_style: bool = False,
    late_starts: float = 0.0,
) -> tuple[dict[str, list[CandidateSequence]], np.ndarray]:
    """Sequences per split (train with extra and restyled conversations; "realistic" for reporting only;
    ``POLICY_SPLIT`` for choosing the alert policy only), and
    flattened segments per split under ``segments:<split>`` (train: ``training_segments``; the others: the
    evaluation windows of ``training.variants``)."""
    work.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset([data])
    splits = assign_splits(dataset.conversations, config=SplitConfig())
    table = FeatureTable(model_dir=model_dir, work=work)
    rng = random.Random(seed)
    late_rng = random.Random(seed + LATE_START_SEED) if late_starts > 0.0 else None
    by_split: dict[str, list[CandidateSequence]] = defaultdict(list)
    for conversation in dataset.conversations:
        split = splits[conversation.id]
        by_split[str(split)].extend(
            sequences_of(
                conversation,
                texts=table.id_of,
                rng=rng,
                late_starts=late_starts,
                late_rng=late_rng if split is Split.TRAIN else None,
            )
        )
    added = load_extra(extra)
    training = [c for c in dataset.conversations if splits[c.id] is Split.TRAIN] + added
    restyled = added + augment(
        training, seed=seed, standardised_share=standardised_share, mixed_style=mixed_style
    )
    for conversation in restyled:
        sequences = sequences_of(
            conversation, texts=table.id_of, rng=rng, late_starts=late_starts, late_rng=late_rng
        )
        if conversation.source.startswith("pj_") and conversation.id.endswith(("~std", "~mod", "~vstd")):
            # Perverted-Justice grooming in standard English: what keeps chat-speak from being the evidence.
            sequences = [
                dataclasses.replace(s, weight=s.weight * standard_weight) if s.label == 1 else s
                for s in sequences
            ]
        if look_alike_weight is not None and conversation.source in WRITTEN_SOURCES:
            sequences = [
                dataclasses.replace(s, weight=look_alike_weight) if s.label == 0 else s for s in sequences
            ]
        by_split[str(Split.TRAIN)].extend(sequences)
    if negative_weights:
        by_split[str(Split.TRAIN)] = [
            dataclasses.replace(s, weight=negative_weights[s.source])
            if s.label == 0 and s.source in negative_weights
            else s
            for s in by_split[str(Split.TRAIN)]
        ]
    for conversation in read_conversations(realistic):
        by_split["realistic"].extend(sequences_of(conversation, texts=table.id_of, rng=rng))
    for conversation in load_extra(policy):
        by_split[POLICY_SPLIT].extend(sequences_of(conversation, texts=table.id_of, rng=rng))
    max_length = int(json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))["max_length"])
    for split in (Split.TRAIN, Split.CALIB, Split.VAL):
        chosen = [c for c in dataset.conversations if splits[c.id] is split]
        if split is Split.TRAIN:
            # Like the conversations: restyled and template-written chats too, so that chat-speak is no
            # more evidence in a segment than in a conversation.
            windows = training_segments(chosen, seed=seed) + training_segments(
                restyled, seed=seed, per_grooming=TRAINING_SEGMENTS_RESTYLED
            )
        else:
            windows = evaluation_segments(chosen, seed=seed)
        by_split[f"segments:{split}"] = [
            sequence
            for window in windows
            if (sequence := segment_sequence(window, texts=table.id_of, max_length=max_length)) is not None
        ]
    for name, items in sorted(by_split.items()):
        logger.info(
            "%s: %d sequences (%d positive), %d steps",
            name,
            len(items),
            sum(s.label for s in items),
            sum(len(s.text_ids) for s in items),
        )
    table.compute_pending(threads=threads)
    matrix = table.matrix().astype(np.float32)
    if text_cues is not None:
        matrix = np.concatenate([matrix, cues_of(text_cues).matrix(table.texts())], axis=1)
    return dict(by_split), matrix


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    work: Path = args.work
    by_split, matrix = build_sequences(
        data=args.data,
        model_dir=args.model,
        work=work,
        extra=args.extra,
        realistic=args.realistic,
        seed=args.seed,
        threads=args.threads,
        policy=args.policy_extra,
        standardised_share=args.standardised_share,
        standard_weight=args.standard_weight,
        look_alike_weight=args.look_alike_weight,
        negative_weights=dict(args.negative_weight),
        text_cues=args.text_cues,
        mixed_style=args.mixed_style,
        late_starts=args.late_starts,
    )
    text_cues = len(cues_of(args.text_cues).names) if args.text_cues else 0
    train_seed = args.train_seed if args.train_seed is not None else args.seed
    explanation_signals = model_has_explanation_heads(args.model)

    def new_model(sequences: Sequence[CandidateSequence]) -> Any:
        return train_chat_members(
            sequences,
            matrix,
            members=args.members,
            epochs=args.epochs,
            seed=train_seed,
            explanation_signals=explanation_signals,
            text_cues=text_cues,
            consistency=args.consistency,
            writer_age=args.writer_age,
            state_only=args.state_only,
            cue_memory=args.cue_memory,
            age_gate=args.age_gate,
            gate_memory=args.gate_memory,
        )

    if args.consistency > 0.0:
        by_split["train"], linked = link_restyled(by_split["train"])
        logger.info(
            "restyle consistency %.2f: %d restyled sequences linked to their originals",
            args.consistency,
            linked,
        )
    model = new_model(by_split["train"])
    if args.mine_weight > 1.0:
        # Hard-negative mining: the ordinary chats the first model alerted on weigh more in a second model.
        mined, count = mine_hard_negatives(
            by_split["train"],
            step_logits(model, by_split["train"], matrix),
            threshold=MINING_THRESHOLD,
            weight=args.mine_weight,
        )
        logger.info("mined %d hard negative sequences; training again", count)
        by_split["train"] = mined
        model = new_model(mined)
    calib_logits = step_logits(model, by_split[str(Split.CALIB)], matrix)
    a, b = fit_calibration(by_split[str(Split.CALIB)], calib_logits)
    logger.info("calibration: a=%.3f b=%.3f", a, b)
    apply_calibration(model, a, b)
    calib_logits = step_logits(model, by_split[str(Split.CALIB)], matrix)
    policy_sequences = by_split[str(Split.CALIB)] + by_split.get(POLICY_SPLIT, [])
    threshold, sustain, _ = choose_policy(policy_sequences, step_logits(model, policy_sequences, matrix))
    logger.info("policy: threshold %.2f, sustain %d", threshold, sustain)
    report: dict[str, Any] = {"threshold": threshold, "sustain": sustain, "calibration": [a, b]}
    for split in (str(Split.CALIB), POLICY_SPLIT, str(Split.VAL), "realistic"):
        if not by_split.get(split):
            continue
        logits = step_logits(model, by_split[split], matrix)
        report[split] = figures(by_split[split], logits, threshold=threshold, sustain=sustain)
        logger.info("%s: %s", split, json.dumps(report[split]))
    # Then the flattened-text branch, on segments only: the conversation branch's outputs stay as they are.
    calib_segments = by_split[f"segments:{Split.CALIB}"]
    model = train(
        by_split[f"segments:{Split.TRAIN}"],
        matrix,
        epochs=args.epochs,
        seed=args.seed,
        model=model,
        branch=FLAT,
    )
    a, b = fit_calibration(calib_segments, step_logits(model, calib_segments, matrix))
    logger.info("flattened-text calibration: a=%.3f b=%.3f", a, b)
    apply_calibration(model, a, b, branch=FLAT)
    report["flattened_calibration"] = [a, b]
    for split in (str(Split.CALIB), str(Split.VAL)):
        segments = by_split[f"segments:{split}"]
        report[f"segments:{split}"] = segment_figures(segments, step_logits(model, segments, matrix))
        logger.info("segments:%s: %s", split, json.dumps(report[f"segments:{split}"]))
    onnx_path = work / PAIR_FILE
    export_onnx(model, onnx_path, matrix.shape[1])
    checked = by_split["realistic"][:20] + by_split[f"segments:{Split.VAL}"][:20]
    report["export_max_diff"] = check_export(model, onnx_path, checked, matrix)
    logger.info("ONNX vs training path: max probability difference %.2e", report["export_max_diff"])
    torch.save(model.state_dict(), work / "pair_model.pt")
    (work / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.out is not None:
        write_model_dir(
            args.model,
            args.out,
            onnx_path=onnx_path,
            threshold=threshold,
            sustain=sustain,
            feature_size=int(matrix.shape[1]),
            version=args.version,
            report=report,
            state_size=int(model.state_size),
            members=args.members,
            written=any(
                sequence.source == WRITTEN_SOURCE["source"] for sequence in by_split[str(Split.TRAIN)]
            ),
            policy_set=bool(by_split.get(POLICY_SPLIT)),
            text_cues=args.text_cues,
            age_gate=args.age_gate,
        )
    return report


PAIR_MODEL_BIASES = (
    "The pair model (2026.12.0) also learned from template-written modern conversations"
    " (training.modern_lines): it can alert within a handful of messages on an adult befriending and praising"
    " a younger-sounding player, before anything a moderator would call grooming; read the alert's evidence.",
    "Sexual chat between adults no longer alerts on its own in the validation data, but adult flirting with a"
    " playful age remark, and adults role-playing school ages, can.",
)
MODERN_SOURCE = {
    "source": "vigil_modern_train",
    "licence": "Written for Vigil from templates (training/modern_lines.py), same licence as Vigil",
    "role": "pair model: modern-style grooming and look-alike conversations (train only)",
}
TEXT_CUES_BIAS = (
    "The pair model (2026.12.6) also reads age cues from each message's text (vigil.detector.cues): a child"
    " who gives their age or school year is recognised sooner, and adults who give theirs are flagged less"
    ' often. Ages written otherwise ("almost a teenager", other languages) are no cue, adults role-playing'
    " school ages read as minors, and a child who never says their age is judged on the conversation's"
    " behaviour alone."
)
BEHAVIOUR_CUES_BIAS = (
    "The pair model (from cues behaviour_v3) also reads five of grooming's steps from each message's text"
    " (vigil.detector.cues: secrecy, a private channel, gifts, meeting, photos), in chat-speak and standard"
    " English alike. Steps asked for in words the patterns do not know (other languages, euphemism, new"
    " apps) are judged by the encoder alone, and the same words between friends, family or adults fire the"
    " cues too: the model learned when they matter from both kinds of chat, but a look-alike that also gives"
    " a child's age is the likeliest false alert."
)


INDIRECT_CUES_BIAS = (
    "The pair model (from cues behaviour_v4) also reads a parent's watch over the writer as a sign of a child"
    ' ("can\'t, my mom\'s home", "my mom blocked pix", spring break) and checking for it as secrecy ("is'
    ' your mom home?", "are you home alone?"): an adult who lives with their parents reads a little younger,'
    " and a parent asking a child's friend whether an adult is home reads as a step. Slow romance in standard"
    ' English ("I wish you were here", "if I could get there") is read as meeting, between adults too.'
)
ECHO_CUES_BIAS = (
    "The pair model (from cues behaviour_v5) reads a child's age or school year as the writer's only where"
    ' the message does not speak of the other\'s ("are you in middle school?", "Seventh grade and'
    ' already...", "pick you up after school"), unless the writer gives their own too: a child who asks'
    " a friend about their grade gives no school cue in that message, and an echo the patterns do not know"
    " still reads as the writer's own age."
)
THIRD_PERSON_CUES_BIAS = (
    'The pair model (from cues behaviour_v6) reads an age said of a third person ("I have a thirteen year'
    ' old at home", "what does a 13 yr old like") as no age of the writer, and a parent\'s "my 13 year old"'
    " as adult life: an adult who speaks of children by their age reads less like a child, and a child who"
    ' says "I\'m 13, my brother is a 16 year old" keeps their own age; an age said of oneself in the third'
    ' person ("a 44 year old man like me") is no cue.'
)
SECRECY_LET_CUES_BIAS = (
    'The pair model (from cues behaviour_v7) reads "let" as secrecy only where someone would know, see or'
    ' find out ("dont let ur mom see this"): "dont let anyone take your mid" or "never let anyone pressure'
    ' you" is no secret, and a secret asked for with "let" in words the patterns do not know ("dont let ur'
    ' mom that u like...", a typo) is judged without the cue.'
)
SHARED_FAMILY_CUES_BIAS = (
    'The pair model (from cues behaviour_v8) reads family the writer shares with the other ("our mom", a bare'
    ' "dont tell mom" or "ask dad", "coming home for thanksgiving") as a sign of kin, which it learned lowers'
    " risk: a groomer who poses as family, or abuse within a family, may alert later."
)
# Cue versions whose rules each bias describes; a later version inherits the earlier ones'.
_CUE_BIAS_FROM = (
    ("behaviour_v3", BEHAVIOUR_CUES_BIAS),
    ("behaviour_v4", INDIRECT_CUES_BIAS),
    ("behaviour_v5", ECHO_CUES_BIAS),
    ("behaviour_v6", THIRD_PERSON_CUES_BIAS),
    ("behaviour_v7", SECRECY_LET_CUES_BIAS),
    ("behaviour_v8", SHARED_FAMILY_CUES_BIAS),
)


def cue_biases(text_cues: str) -> tuple[str, ...]:
    """The known biases a model reading the text cues of this version inherits from them."""
    cues_of(text_cues)  # an unknown version is refused by name
    rank = CUE_VERSIONS.index(text_cues)
    inherited = (bias for version, bias in _CUE_BIAS_FROM if CUE_VERSIONS.index(version) <= rank)
    return (TEXT_CUES_BIAS, *inherited)


WRITTEN_BIAS = (
    "The pair model (2026.12.4) also learned from conversations hand-written for Vigil (examples/written):"
    " modern grooming is found far more often, but Perverted-Justice-style explicit chats alert later than"
    " before, and its realistic test sets come from the same kind of writer, so chat unlike theirs may fare"
    " worse."
)
AGE_GATE_BIAS = (
    "The pair model (2026.12.8) gates each person's risk on how child-like their own messages and the"
    " other's read (its writer-age head, learned from Perverted-Justice decoys, children in written chats"
    " and adults in ordinary ones): the same steps weigh more from an adult to a child. An adult who writes"
    " like a teenager is gated like one, a child who writes formally like an adult, and two teenagers"
    " swapping apps and pictures still alert when one of them reads older."
)
POLICY_SOURCE_ENTRY = {
    "source": POLICY_SOURCE,
    "licence": "Written for Vigil by hand, conversation by conversation, same licence as Vigil",
    "role": "pair model: chose the alert threshold and sustain, beside the calibration split; not trained on",
}
WRITTEN_SOURCE = {
    "source": "vigil_written_train",
    "licence": "Written for Vigil by hand, conversation by conversation, same licence as Vigil",
    "role": "pair model: modern grooming and look-alike conversations in free style (train only)",
}


def write_model_dir(
    source: Path,
    out: Path,
    *,
    onnx_path: Path,
    threshold: float,
    sustain: int,
    feature_size: int,
    version: str,
    report: Mapping[str, Any] | None = None,
    state_size: int = STATE_SIZE,
    members: Sequence[str] = ("full",),
    written: bool = False,
    policy_set: bool = False,
    text_cues: str | None = None,
    age_gate: bool = False,
) -> None:
    """The shipped model dir: model.onnx with its embedding output, pair_model.onnx, metadata, golden."""
    from vigil.detector.onnx_detector import write_golden  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    if source.resolve() != out.resolve():
        for name in ("tokenizer.json", "metadata.json"):
            shutil.copyfile(source / name, out / name)
        reviewer = json.loads((source / "metadata.json").read_text(encoding="utf-8")).get("reviewer")
        if isinstance(reviewer, dict) and "file" in reviewer:
            # The alert reviewer reads text, not the pair model's features: it comes along; its threshold was
            # chosen over the old pair model's alerts (check the new model with vigil eval).
            shutil.copyfile(source / reviewer["file"], out / reviewer["file"])
            logger.info("kept the alert reviewer %s of %s", reviewer["file"], source)
    model = with_embedding_output(onnx.load(str(source / "model.onnx")))
    onnx.save_model(model, str(out / "model.onnx"))
    shutil.copyfile(onnx_path, out / PAIR_FILE)
    metadata = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    metadata["version"] = version
    metadata["default_threshold"] = threshold
    metadata["policy_defaults"] = {"sustain_messages": sustain}
    if MODERN_SOURCE not in metadata.setdefault("training_data", []):
        metadata["training_data"].append(MODERN_SOURCE)
    if written and WRITTEN_SOURCE not in metadata["training_data"]:
        metadata["training_data"].append(WRITTEN_SOURCE)
    if policy_set and POLICY_SOURCE_ENTRY not in metadata["training_data"]:
        metadata["training_data"].append(POLICY_SOURCE_ENTRY)
    biases = [b for b in metadata.get("known_biases", []) if "minimum message count" not in b]
    metadata["known_biases"] = biases + [b for b in PAIR_MODEL_BIASES if b not in biases]
    if written and WRITTEN_BIAS not in metadata["known_biases"]:
        metadata["known_biases"].append(WRITTEN_BIAS)
    if age_gate and AGE_GATE_BIAS not in metadata["known_biases"]:
        metadata["known_biases"].append(AGE_GATE_BIAS)
    if report is not None:
        metadata.setdefault("metrics", {})["pair_model_replay"] = dict(report)
    metadata["pair_model"] = {
        "type": "gru",
        "file": PAIR_FILE,
        "state_size": state_size,
        "feature_size": feature_size,
        "embedding_output": EMBEDDING_OUTPUT,
        "members": list(members),
    }
    if has_explanation_heads(o.name for o in model.graph.output):
        # message_features read these for training: serving must feed the same ones, in the same order.
        metadata["pair_model"]["signals_output"] = PAIR_SIGNALS_OUTPUT
        metadata["pair_model"]["explanation_signals"] = True
    if text_cues is not None:
        # The features end with the text's cues; serving computes them with the same module.
        metadata["pair_model"]["text_cues"] = text_cues
        for bias in cue_biases(text_cues):
            if bias not in metadata["known_biases"]:
                metadata["known_biases"].append(bias)
    (out / "metadata.json").write_text(
        json.dumps(metadata, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    write_golden(out)


def _source_weight(text: str) -> tuple[str, float]:
    source, _, weight = text.partition("=")
    try:
        return source, float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SOURCE=WEIGHT, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.pair_head", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--model", type=Path, default=Path("detector/model"), help="message model dir")
    parser.add_argument("--work", type=Path, default=Path(".artifacts/pair"))
    parser.add_argument("--out", type=Path, default=None, help="write the finished model dir here")
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="more training conversations")
    parser.add_argument(
        "--realistic", type=Path, default=Path("examples/realistic_conversations.jsonl"), help="report only"
    )
    parser.add_argument(
        "--policy-extra",
        type=Path,
        nargs="*",
        default=[],
        help="conversations that only choose the alert policy, with the calibration split (never trained on)",
    )
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument(
        "--standardised-share",
        type=float,
        default=STANDARDISED_SHARE,
        help="share of grooming and Perverted-Justice training chats that get a standard-English copy",
    )
    parser.add_argument(
        "--negative-weight",
        type=_source_weight,
        action="append",
        default=[],
        metavar="SOURCE=W",
        help="weight of a source's ordinary training sequences (e.g. sexting_adult=16; repeatable)",
    )
    parser.add_argument(
        "--look-alike-weight",
        type=float,
        default=None,
        help="weight of the written look-alikes' members (default: source_weight's, 2)",
    )
    parser.add_argument(
        "--standard-weight",
        type=float,
        default=1.0,
        help="weight of the suspect in standard-English copies of Perverted-Justice grooming chats",
    )
    parser.add_argument(
        "--mixed-style",
        action="store_true",
        help="also a copy of each standardised grooming chat with only the others' messages in standard "
        "English (weighted as the standard-English copies)",
    )
    parser.add_argument(
        "--late-starts",
        type=float,
        default=0.0,
        help="share of training pairs of at least 50 messages that also train from a later start (20-150 "
        "messages in), as a log that begins mid-relationship: the age said at the start is not there to lean "
        "on (0: none)",
    )
    parser.add_argument(
        "--consistency",
        type=float,
        default=0.0,
        help="weight of the restyle-consistency loss: a restyled copy's risk is pulled towards its original's"
        " where it falls on the wrong side of it (0: off)",
    )
    parser.add_argument(
        "--writer-age",
        type=float,
        default=0.0,
        help="weight of the writer-age auxiliary loss: each member's input layer also learns whether a"
        " message's writer is a child (decoys, the child of a grooming DM) or an adult (0: off)",
    )
    parser.add_argument(
        "--state-only",
        action="store_true",
        help="each member's risk reads its recurrent state alone, not also the message in hand"
        " (default: both)",
    )
    parser.add_argument(
        "--cue-memory",
        action="store_true",
        help="the pair state also counts each text cue in the member's own messages and in the other's"
        " (decayed per message); every member reads the counts (needs --text-cues)",
    )
    parser.add_argument(
        "--gate-memory",
        action="store_true",
        help="the age gate also reads the cue counts --cue-memory keeps; the members do not"
        " (needs --age-gate and --text-cues)",
    )
    parser.add_argument(
        "--age-gate",
        action="store_true",
        help="each member's risk also passes a learned gate on the running mean P(child) its writer head"
        " reads for the member and for the other (needs --writer-age above 0)",
    )
    parser.add_argument(
        "--mine-weight", type=float, default=1.0, help="weight of mined hard negatives (1: no mining)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--train-seed",
        type=int,
        default=None,
        help="seed of the conversation branch's weights and batch order only (default: --seed); the data,"
        " its restyled copies and the feature cache stay those of --seed, so seeds compare in minutes",
    )
    parser.add_argument(
        "--text-cues",
        nargs="?",
        const=LATEST_CUES,
        default=None,
        choices=CUE_VERSIONS,
        help=f"the pair model also reads each message's text cues of this version (vigil.detector.cues; "
        f"{LATEST_CUES} when none is named), as serving then does",
    )
    parser.add_argument(
        "--members",
        nargs="+",
        choices=MEMBER_KINDS,
        default=["full"],
        help="the pair model's members, in order (e.g. full full behaviour): their mean risk is the pair's",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--version", default="2026.12.0")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    report = run(args)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
