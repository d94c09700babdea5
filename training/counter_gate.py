"""A counter-evidence gate fitted over a frozen pair model.

    python -m training.counter_gate --model detector/model --fit FILE [FILE ...] --work CACHE --out DIR
        [--data ../shared/data] [--text-cues behaviour_v9] [--reads counter|all] [--objective steps|peak]

Every retrain of the pair model moves the figures a seed moves (early alerts, standard English, validation
false alerts) by as much as the change it was for. This leaves the pair model as it is and adds one small,
readable piece after it: a gate that can only lower a member's risk, on what the pair has said so far that
speaks against grooming. It reads each cue of ``--text-cues`` counted in the member's own messages and in the
other's (decayed per message as ``training.pair_head.CUE_MEMORY_DECAY``, read as 1 - exp(-count)), the
``BOTH_SIDES`` groups on the two sides multiplied (both give a child's age or school; both name family they
share), and how child-like the member and how adult-like the other write by the frozen model's own age gate
(the sums in its state); it adds log-sigmoid of a linear function of them to the member's risk logit, with
the bias fixed open. By default (``--reads counter``) only counter-evidence has a weight, and every weight
closes (``COUNTER_CUES``: carers kept in, shared family, the member's own child age and school, the other's
adult age and life); ``--reads all`` weighs every input either way.

It is fitted on conversations the frozen model never trained on (``--fit``: the policy set, newer written
conversations, moderators' verdicts from ``vigil export-labels``; ``--data`` adds the CALIB split), where its
mistakes are honest ones: on its own training data the model is already right. The result is a model
directory whose ``pair_model.onnx`` is the old graph followed by the gate, one ONNX file as before, so
serving is unchanged: more state per member (the counts) and the longer cue version's features.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from training.cli import run_reported
from training.data import Split, SplitConfig, assign_splits, load_dataset
from training.pair_head import (
    AGE_GATE_PRIOR,
    AGE_GATE_SCALE,
    AGE_GATE_SLOTS,
    CUE_MEMORY_DECAY,
    POSITIVE_RAMP,
    CandidateSequence,
    FeatureTable,
    load_extra,
    sequences_of,
)
from vigil.detector.cues import text_cues
from vigil.detector.pair import FLATTENED_OWN

logger = logging.getLogger(__name__)

GATE_OPEN = 4.0  # the gate's starting bias: log-sigmoid(4) = -0.018, next to nothing taken off
L2 = 1e-5
PEAK_TEMPERATURE = 0.25
BASE = "base/"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BaseModel:
    """What the gate needs of the frozen model directory."""

    path: Path
    state_size: int
    feature_size: int
    cues: int  # text cue columns the frozen model reads (the last of its features)
    members: int

    @classmethod
    def read(cls, model_dir: Path) -> BaseModel:
        metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
        pair = metadata.get("pair_model")
        if not isinstance(pair, dict) or pair.get("type") != "gru":
            raise ValueError(f"{model_dir}: no recurrent pair model to gate (metadata.json pair_model)")
        if "text_cues" not in pair:
            raise ValueError(f"{model_dir}: the pair model reads no text cues; the gate builds on them")
        if pair.get("counter_gate"):
            raise ValueError(
                f"{model_dir}: the pair model has a counter gate already (fit over write_ungated's copy)"
            )
        return cls(
            path=model_dir / pair["file"],
            state_size=int(pair["state_size"]),
            feature_size=int(pair["feature_size"]),
            cues=len(text_cues(pair["text_cues"]).names),
            members=len(pair["members"]),
        )


def write_ungated(model_dir: Path, out: Path) -> WriterReader | None:
    """Write ``model_dir`` without its counter gate to ``out`` (the frozen graph and metadata it was composed
    over; the other files linked or copied), so a new gate can be fitted in place of the shipped one. Returns
    the shipped gate's writer reader, if it had one, for the new gate to read as well."""
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    pair = metadata["pair_model"]
    gate = pair.pop("counter_gate", None)
    if not gate:
        raise ValueError(f"{model_dir}: the pair model has no counter gate")
    composed = onnx.load(str(model_dir / pair["file"]))
    # The extractor needs the frozen graph's inputs typed, which only shape inference records.
    frozen = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(composed)).extract_model(
        [f"{BASE}features", f"{BASE}own", f"{BASE}state"], [f"{BASE}risk_logit", f"{BASE}next_state"]
    )
    _strip_prefix(frozen.graph)
    frozen.opset_import.extend(op for op in composed.opset_import if op not in frozen.opset_import)
    frozen.ir_version = composed.ir_version
    onnx.checker.check_model(frozen)
    initializers = {tensor.name: tensor for tensor in composed.graph.initializer}
    reader = None
    if "reader_weight" in initializers:
        reader = WriterReader(
            weight=numpy_helper.to_array(initializers["reader_weight"]).reshape(-1),
            bias=float(numpy_helper.to_array(initializers["reader_bias"]).reshape(-1)[0]),
        )
    names = text_cues(gate["reads_text_cues"]).names
    base_cues = text_cues(gate["base_text_cues"]).names
    pair["state_size"] = int(pair["state_size"]) - 2 * len(names) - (AGE_GATE_SLOTS if reader else 0)
    pair["feature_size"] = int(pair["feature_size"]) - len(names) + len(base_cues)
    pair["text_cues"] = gate["base_text_cues"]
    if pair.get("trained_text_cues") == pair["text_cues"]:
        del pair["trained_text_cues"]
    out.mkdir(parents=True, exist_ok=True)
    for item in model_dir.iterdir():
        if item.is_file() and item.name not in (pair["file"], "metadata.json", "golden.json"):
            target = out / item.name
            target.unlink(missing_ok=True)
            try:
                target.hardlink_to(item)
            except OSError:
                shutil.copy2(item, target)
    onnx.save(frozen, str(out / pair["file"]))
    (out / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return reader


def _strip_prefix(graph: onnx.GraphProto) -> None:
    def bare(name: str) -> str:
        return name[len(BASE) :] if name.startswith(BASE) else name

    for node in graph.node:
        node.name = bare(node.name)
        node.input[:] = [bare(name) for name in node.input]
        node.output[:] = [bare(name) for name in node.output]
    for collection in (graph.input, graph.output, graph.value_info):
        for value in collection:
            value.name = bare(value.name)
    for tensor in graph.initializer:
        tensor.name = bare(tensor.name)


# Cue groups read on both sides at once: both write their own child's age or school (two children), both
# name family the two share. Each side alone is also grooming's (a child gives her age; a groomer says
# "our secret" about "mom"); the two together rarely are.
BOTH_SIDES = (("minor_age", "school"), ("shared_family",))


def both_sides_selector(names: Sequence[str]) -> np.ndarray:
    """[2C, 2G]: sums each group's counts on the member's side (first G columns), then the other's."""
    count = len(names)
    selector = np.zeros((2 * count, 2 * len(BOTH_SIDES)), dtype=np.float32)
    for group, cues in enumerate(BOTH_SIDES):
        for cue in cues:
            if cue in names:
                selector[names.index(cue), group] = 1.0
                selector[count + names.index(cue), len(BOTH_SIDES) + group] = 1.0
    return selector


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WriterReader:
    """A linear reading of who writes a message (P(child) = sigmoid(features . weight + bias)) over the frozen
    model's features, for the gate in place of the frozen model's own writer heads: ``--writer-reader`` an
    ``.npz`` with ``weight`` [base features] and ``bias``."""

    weight: np.ndarray
    bias: float

    @classmethod
    def read(cls, path: Path, *, feature_size: int) -> WriterReader:
        with np.load(path) as saved:
            weight = np.asarray(saved["weight"], dtype=np.float32)
            bias = float(saved["bias"])
        if weight.shape != (feature_size,):
            raise ValueError(f"{path}: a writer reader of {weight.shape} for {feature_size} features")
        return cls(weight=weight, bias=bias)

    def sums(self, features: np.ndarray, own: np.ndarray) -> np.ndarray:
        """The running sums [T, 4] (own P(child), own messages, the other's, the other's messages) after
        each step of one member's sequence, as the frozen age gate keeps them for one member."""
        child = 1.0 / (1.0 + np.exp(-(features.astype(np.float64) @ self.weight + self.bias)))
        chat = np.abs(own - FLATTENED_OWN) / FLATTENED_OWN
        mine, theirs = own * chat, (1.0 - own) * chat
        return np.cumsum(np.stack([child * mine, mine, child * theirs, theirs], -1), 0).astype(np.float32)


def gate_inputs(
    *, cues: np.ndarray, own: np.ndarray, sums: np.ndarray, members: int, names: Sequence[str]
) -> np.ndarray:
    """The gate's inputs after each step of one member's sequence: the cue memory (own messages', then the
    other's), each ``BOTH_SIDES`` group's memory on the two sides multiplied, and how child-like the member
    and how adult-like the other write by the frozen model's age gate (its running P(child) means, centred,
    scaled and cut at 0). ``cues`` [T, C], ``own`` [T] (0/1), ``sums`` [T, members * 4] (the age gate's
    slots after each step)."""
    steps, count = cues.shape
    # As serving: a chunk of flattened text (own FLATTENED_OWN) neither counts nor decays the memory.
    chat = np.abs(own - FLATTENED_OWN) / FLATTENED_OWN
    counts = np.zeros(2 * count, dtype=np.float64)
    all_counts = np.zeros((steps, 2 * count), dtype=np.float64)
    for t in range(steps):
        mine, theirs = own[t] * chat[t], (1.0 - own[t]) * chat[t]
        decay = 1.0 - (1.0 - CUE_MEMORY_DECAY) * chat[t]
        counts = counts * decay + np.concatenate([cues[t] * mine, cues[t] * theirs])
        all_counts[t] = counts
    memory = 1.0 - np.exp(-all_counts)
    grouped = 1.0 - np.exp(-(all_counts @ both_sides_selector(names)))
    both = grouped[:, : len(BOTH_SIDES)] * grouped[:, len(BOTH_SIDES) :]
    slots = sums.reshape(steps, members, AGE_GATE_SLOTS)
    prior = AGE_GATE_PRIOR
    own_mean = ((slots[..., 0] + 0.5 * prior) / (slots[..., 1] + prior)).mean(-1)
    other_mean = ((slots[..., 2] + 0.5 * prior) / (slots[..., 3] + prior)).mean(-1)
    own_child = np.maximum((own_mean - 0.5) * AGE_GATE_SCALE, 0.0)
    other_adult = np.maximum((0.5 - other_mean) * AGE_GATE_SCALE, 0.0)
    return np.concatenate([memory, both, np.stack([own_child, other_adult], -1)], -1).astype(np.float32)


def replay_base(
    base: BaseModel, sequences: Sequence[CandidateSequence], table: np.ndarray, *, batch: int = 4096
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(risk logits [T], age-gate sums [T, members * 4]) of the frozen model after every step of each
    sequence, run step by step as serving runs it."""
    session = ort.InferenceSession(str(base.path), providers=["CPUExecutionProvider"])
    gate_width = base.members * AGE_GATE_SLOTS
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for start in range(0, len(sequences), batch):
        group = sequences[start : start + batch]
        longest = max(len(s.text_ids) for s in group)
        logits = np.zeros((len(group), longest), dtype=np.float32)
        sums = np.zeros((len(group), longest, gate_width), dtype=np.float32)
        state = np.zeros((len(group), base.state_size), dtype=np.float32)
        for t in range(longest):
            active = np.array([i for i, s in enumerate(group) if len(s.text_ids) > t])
            features = table[[int(group[i].text_ids[t]) for i in active], : base.feature_size]
            own = np.array([[group[i].own[t]] for i in active], dtype=np.float32)
            logit, next_state = session.run(
                None, {"features": features.astype(np.float32), "own": own, "state": state[active]}
            )
            logits[active, t] = logit
            state[active] = next_state
            sums[active, t] = next_state[:, -gate_width:]
        out.extend((logits[i, : len(s.text_ids)], sums[i, : len(s.text_ids)]) for i, s in enumerate(group))
    return out


# What the gate may read: only what speaks against grooming. The steps themselves (secrecy, a photo, a gift)
# are the frozen model's evidence; a gate that read them too learned to close on a child giving her age.
COUNTER_CUES = (
    ("own", "carer_in"),
    ("other", "carer_in"),
    ("own", "shared_family"),
    ("other", "shared_family"),
    ("own", "minor_age"),
    ("own", "school"),
    ("other", "adult_age"),
    ("other", "adult_life"),
    ("own", "adults_remark"),
    ("other", "adults_remark"),
)
COUNTER_WRITERS = ("own P(child)", "other P(adult)")


def counter_columns(names: Sequence[str], *, writers: bool = True) -> list[int]:
    """The gate inputs' columns it may weigh, for cues ``names``: the counter cues it has, then the
    both-sides groups and (``writers``) the writer readings (the last columns of ``gate_inputs``)."""
    count = len(names)
    columns = [
        (0 if side == "own" else count) + names.index(cue) for side, cue in COUNTER_CUES if cue in names
    ]
    tail = 2 * count
    return [*columns, *range(tail, tail + len(BOTH_SIDES) + (len(COUNTER_WRITERS) if writers else 0))]


def fit_gate(
    inputs: Sequence[np.ndarray],
    logits: Sequence[np.ndarray],
    sequences: Sequence[CandidateSequence],
    *,
    columns: Sequence[int],
    positive_weight: float = 1.0,
    only_close: bool = True,
    objective: str = "steps",
    steps: int = 600,
) -> tuple[np.ndarray, float]:
    """The gate's weights (0 outside ``columns``; with ``only_close`` never above 0) and its bias, which stays
    open (``GATE_OPEN``). ``objective`` "steps": weighted binary cross-entropy of frozen logit +
    log-sigmoid(gate) at each member's own messages, as the pair model trains (positives ramped in over their
    first ``POSITIVE_RAMP`` messages); "peak": of each sequence's smooth maximum instead. Grooming weighted
    ``positive_weight``; a little L2."""
    import torch  # noqa: PLC0415

    x = torch.from_numpy(np.concatenate(inputs)[:, list(columns)]).double()
    base = torch.from_numpy(np.concatenate(logits)).double()
    labels, weights = [], []
    for s in sequences:
        own = s.own.astype(np.float64)
        ramp = (
            np.minimum(np.cumsum(own) / POSITIVE_RAMP, 1.0) * positive_weight
            if s.label
            else np.ones_like(own)
        )
        labels.append(np.full(len(own), float(s.label)))
        weights.append(own * ramp * s.weight / max(own.sum(), 1.0))
    y = torch.from_numpy(np.concatenate(labels))
    w = torch.from_numpy(np.concatenate(weights))
    w = w / w.sum()
    # "peak": a pair alerts on its highest risk, not its average: binary cross-entropy of each sequence's
    # smooth maximum (temperature PEAK_TEMPERATURE) over the member's own messages.
    owned = np.concatenate([s.own > 0 for s in sequences])
    sequence_of = torch.from_numpy(
        np.concatenate([np.full(len(s.own), i) for i, s in enumerate(sequences)])[owned]
    )
    peak_y = torch.tensor([float(s.label) for s in sequences], dtype=torch.float64)
    peak_w = torch.tensor(
        [s.weight * (positive_weight if s.label else 1.0) * float((s.own > 0).any()) for s in sequences],
        dtype=torch.float64,
    )
    peak_w = peak_w / peak_w.sum()
    owned_t = torch.from_numpy(owned)
    weight = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    # The bias stays open: the gate closes only where something was said, never on every pair alike (a
    # learned bias recalibrates the whole model instead, moving every pair's risk and so the threshold).
    bias = torch.tensor(GATE_OPEN, dtype=torch.float64)
    optimiser = torch.optim.Adam([weight], lr=0.05)
    for _ in range(steps):
        optimiser.zero_grad()
        logit = base + torch.nn.functional.logsigmoid(x @ weight + bias)
        loss: Any
        if objective == "peak":
            mass = torch.zeros(len(sequences), dtype=torch.float64).index_add(
                0, sequence_of, torch.exp(logit[owned_t] / PEAK_TEMPERATURE)
            )
            peak = PEAK_TEMPERATURE * torch.log(mass.clamp(min=1e-300))
            loss = (
                torch.nn.functional.binary_cross_entropy_with_logits(peak, peak_y, reduction="none") * peak_w
            ).sum()
        else:
            loss = (
                torch.nn.functional.binary_cross_entropy_with_logits(logit, y, reduction="none") * w
            ).sum()
        loss = loss + L2 * (weight**2).sum()
        loss.backward()
        optimiser.step()
        if only_close:
            with torch.no_grad():  # projected: counter-evidence only ever closes the gate
                weight.clamp_(max=0.0)
    full = np.zeros(np.concatenate(inputs[:1]).shape[1], dtype=np.float32)
    full[list(columns)] = weight.detach().numpy()
    return full, float(bias)


def _const(name: str, value: np.ndarray | float) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _ints(name: str, values: Sequence[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def compose(
    base: BaseModel,
    *,
    weight: np.ndarray,
    bias: float,
    names: Sequence[str],
    reader: WriterReader | None = None,
) -> onnx.ModelProto:
    """The frozen graph followed by the gate, as one step model with serving's inputs and outputs:
    ``features`` [N, base features + new cues], ``own`` [N, 1], ``state`` [N, base state + 2 * cues, + 4
    with a ``reader``]."""
    cues = len(names)
    frozen = onnx.load(str(base.path))
    frozen = onnx.compose.add_prefix(frozen, BASE)
    extra_features = cues - base.cues
    feature_size = base.feature_size + extra_features
    counts_end = base.state_size + 2 * cues
    state_size = counts_end + (AGE_GATE_SLOTS if reader is not None else 0)
    members = 1 if reader is not None else base.members
    gate_width = members * AGE_GATE_SLOTS
    select = np.zeros((4, gate_width, members), dtype=np.float32)
    for member in range(members):
        for slot in range(AGE_GATE_SLOTS):
            select[slot, member * AGE_GATE_SLOTS + slot, member] = 1.0
    init = [
        _ints("axis1", [1]),
        _ints("zero", [0]),
        _ints("f_base", [base.feature_size]),
        _ints("f_end", [feature_size]),
        _ints("cues_start", [feature_size - cues]),
        _ints("s_base", [base.state_size]),
        _ints("s_end", [counts_end]),
        _const("flat_own", FLATTENED_OWN),
        _const("one", 1.0),
        _const("decay_loss", 1.0 - CUE_MEMORY_DECAY),
        _const("half_prior", 0.5 * AGE_GATE_PRIOR),
        _const("prior", AGE_GATE_PRIOR),
        _const("centre", 0.5),
        _const("scale", AGE_GATE_SCALE),
        _const("sel_own_sum", select[0]),
        _const("sel_own_n", select[1]),
        _const("sel_other_sum", select[2]),
        _const("sel_other_n", select[3]),
        _const("both_select", both_sides_selector(names)),
        _ints("groups", [len(BOTH_SIDES)]),
        _ints("groups2", [2 * len(BOTH_SIDES)]),
        _const("gate_weight", weight.reshape(-1, 1)),
        _const("gate_bias", np.array([bias], dtype=np.float32)),
    ]
    node = helper.make_node
    nodes = [
        node("Slice", ["features", "zero", "f_base", "axis1"], [f"{BASE}features"]),
        node("Identity", ["own"], [f"{BASE}own"]),
        node("Slice", ["state", "zero", "s_base", "axis1"], [f"{BASE}state"]),
        *frozen.graph.node,
        node("Slice", ["features", "cues_start", "f_end", "axis1"], ["cue_row"]),
        node("Slice", ["state", "s_base", "s_end", "axis1"], ["counts"]),
        # chat 1 for a chat message (own 0 or 1), 0 for a chunk of flattened text (own FLATTENED_OWN)
        node("Sub", ["own", "flat_own"], ["own_off"]),
        node("Abs", ["own_off"], ["own_dist"]),
        node("Div", ["own_dist", "flat_own"], ["chat"]),
        node("Mul", ["own", "chat"], ["mine"]),
        node("Sub", ["one", "own"], ["not_own"]),
        node("Mul", ["not_own", "chat"], ["theirs"]),
        node("Mul", ["chat", "decay_loss"], ["decay_off"]),
        node("Sub", ["one", "decay_off"], ["decay"]),
        node("Mul", ["counts", "decay"], ["kept"]),
        node("Mul", ["cue_row", "mine"], ["cues_mine"]),
        node("Mul", ["cue_row", "theirs"], ["cues_theirs"]),
        node("Concat", ["cues_mine", "cues_theirs"], ["added"], axis=1),
        node("Add", ["kept", "added"], ["next_counts"]),
        node("MatMul", ["next_counts", "both_select"], ["group_counts"]),
        node("Neg", ["group_counts"], ["neg_group_counts"]),
        node("Exp", ["neg_group_counts"], ["group_faded"]),
        node("Sub", ["one", "group_faded"], ["group_memory"]),
        node("Slice", ["group_memory", "zero", "groups", "axis1"], ["group_own"]),
        node("Slice", ["group_memory", "groups", "groups2", "axis1"], ["group_other"]),
        node("Mul", ["group_own", "group_other"], ["both"]),
        node("Neg", ["next_counts"], ["neg_counts"]),
        node("Exp", ["neg_counts"], ["faded"]),
        node("Sub", ["one", "faded"], ["memory"]),
    ]
    if reader is None:
        init.append(_ints("sums_start", [base.state_size - gate_width]))
        nodes.append(node("Slice", [f"{BASE}next_state", "sums_start", "s_base", "axis1"], ["sums"]))
    else:
        init += [
            _ints("s_all", [state_size]),
            _const("reader_weight", reader.weight.reshape(-1, 1)),
            _const("reader_bias", np.array([reader.bias], dtype=np.float32)),
        ]
        nodes += [
            node("MatMul", [f"{BASE}features", "reader_weight"], ["reader_raw"]),
            node("Add", ["reader_raw", "reader_bias"], ["reader_logit"]),
            node("Sigmoid", ["reader_logit"], ["reader_child"]),
            node("Mul", ["reader_child", "mine"], ["reader_mine"]),
            node("Mul", ["reader_child", "theirs"], ["reader_theirs"]),
            node("Concat", ["reader_mine", "mine", "reader_theirs", "theirs"], ["reader_added"], axis=1),
            node("Slice", ["state", "s_end", "s_all", "axis1"], ["reader_sums"]),
            node("Add", ["reader_sums", "reader_added"], ["sums"]),
        ]
    for side in ("own", "other"):
        nodes += [
            node("MatMul", ["sums", f"sel_{side}_sum"], [f"{side}_sum"]),
            node("MatMul", ["sums", f"sel_{side}_n"], [f"{side}_n"]),
            node("Add", [f"{side}_sum", "half_prior"], [f"{side}_num"]),
            node("Add", [f"{side}_n", "prior"], [f"{side}_den"]),
            node("Div", [f"{side}_num", f"{side}_den"], [f"{side}_ratio"]),
            node("ReduceMean", [f"{side}_ratio"], [f"{side}_mean"], axes=[1], keepdims=1),
            node("Sub", [f"{side}_mean", "centre"], [f"{side}_centred"]),
            node("Mul", [f"{side}_centred", "scale"], [f"{side}_scaled"]),
        ]
    nodes += [
        node("Relu", ["own_scaled"], ["own_in"]),
        node("Neg", ["other_scaled"], ["other_flipped"]),
        node("Relu", ["other_flipped"], ["other_in"]),
    ]
    nodes += [
        node("Concat", ["memory", "both", "own_in", "other_in"], ["gate_in"], axis=1),
        node("MatMul", ["gate_in", "gate_weight"], ["gate_raw"]),
        node("Add", ["gate_raw", "gate_bias"], ["gate"]),
        node("Neg", ["gate"], ["neg_gate"]),
        node("Softplus", ["neg_gate"], ["softplus"]),
        node("Neg", ["softplus"], ["log_gate"]),  # log-sigmoid(gate)
        node("Mul", ["log_gate", "chat"], ["lowered"]),
        node("Squeeze", ["lowered", "axis1"], ["lowered_flat"]),
        node("Add", [f"{BASE}risk_logit", "lowered_flat"], ["risk_logit"]),
        node(
            "Concat",
            [f"{BASE}next_state", "next_counts", *(["sums"] if reader is not None else [])],
            ["next_state"],
            axis=1,
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "pair_model_counter_gate",
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", feature_size]),
            helper.make_tensor_value_info("own", TensorProto.FLOAT, ["n", 1]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, ["n", state_size]),
        ],
        [
            helper.make_tensor_value_info("risk_logit", TensorProto.FLOAT, ["n"]),
            helper.make_tensor_value_info("next_state", TensorProto.FLOAT, ["n", state_size]),
        ],
        initializer=[*frozen.graph.initializer, *init],
    )
    model = helper.make_model(graph, opset_imports=list(frozen.opset_import))
    model.ir_version = frozen.ir_version
    onnx.checker.check_model(model)
    return model


def fit_sequences(
    *,
    model_dir: Path,
    work: Path,
    fit: Sequence[Path],
    data: Path | None,
    seed: int,
    threads: int,
    writers: str | None = None,
) -> tuple[list[CandidateSequence], FeatureTable]:
    """The member sequences to fit on: ``fit``'s conversations (with ``writers``, only those whose
    ``meta.writer`` is one of its letters, and those that name none) and ``data``'s CALIB split."""
    table = FeatureTable(model_dir=model_dir, work=work)
    rng = random.Random(seed)
    conversations = [
        c for c in load_extra(fit) if writers is None or c.meta.get("writer", "") in ("", *writers)
    ]
    if data is not None:
        dataset = load_dataset([data])
        splits = assign_splits(dataset.conversations, config=SplitConfig())
        conversations += [c for c in dataset.conversations if splits[c.id] is Split.CALIB]
    sequences = [s for c in conversations for s in sequences_of(c, texts=table.id_of, rng=rng)]
    table.compute_pending(threads=threads)
    return sequences, table


def write_model_dir(
    *,
    base_dir: Path,
    out: Path,
    model: onnx.ModelProto,
    cues_version: str,
    names: Sequence[str],
    weight: np.ndarray,
    bias: float,
    version: str | None,
    fitted_on: Sequence[str],
    reader: str | None = None,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for item in base_dir.iterdir():
        if item.is_file() and item.name not in ("pair_model.onnx", "metadata.json", "golden.json"):
            shutil.copy2(item, out / item.name)
    onnx.save(model, str(out / "pair_model.onnx"))
    metadata = json.loads((base_dir / "metadata.json").read_text(encoding="utf-8"))
    pair = metadata["pair_model"]
    base_cues = pair["text_cues"]
    count = len(names)
    pair["state_size"] = int(pair["state_size"]) + 2 * count + (AGE_GATE_SLOTS if reader else 0)
    pair["feature_size"] = int(pair["feature_size"]) + count - len(text_cues(base_cues).names)
    pair["text_cues"] = cues_version
    # The frozen weights learned from the cue version they were trained on (which may be older still).
    pair.setdefault("trained_text_cues", base_cues)
    pair["counter_gate"] = {
        "reads_text_cues": cues_version,
        "base_text_cues": base_cues,
        "bias": round(bias, 4),
        "weights": {
            **{f"own {name}": round(float(w), 4) for name, w in zip(names, weight[:count], strict=True)},
            **{
                f"other {name}": round(float(w), 4)
                for name, w in zip(names, weight[count : 2 * count], strict=True)
            },
            **{
                f"both {'/'.join(group)}": round(float(weight[2 * count + i]), 4)
                for i, group in enumerate(BOTH_SIDES)
            },
            COUNTER_WRITERS[0]: round(float(weight[-2]), 4),
            COUNTER_WRITERS[1]: round(float(weight[-1]), 4),
        },
        "fitted_on": list(fitted_on),
        "writer_reader": reader,
    }
    if version:
        metadata["version"] = version
    (out / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")


def run(args: argparse.Namespace) -> dict[str, Any]:
    model_dir: Path = args.model
    shipped_reader = None
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    if (metadata.get("pair_model") or {}).get("counter_gate"):
        # A model that ships a gate: the new gate replaces it, over the same frozen model.
        model_dir = args.work / "ungated"
        shipped_reader = write_ungated(args.model, model_dir)
        logger.info("%s has a counter gate: fitting a new one in its place, over %s", args.model, model_dir)
    base = BaseModel.read(model_dir)
    cues = text_cues(args.text_cues)
    if len(cues.names) < base.cues:
        raise ValueError(f"{args.text_cues} has fewer cues than the model reads ({base.cues})")
    sequences, table = fit_sequences(
        model_dir=model_dir,
        work=args.work,
        fit=args.fit,
        data=args.data,
        seed=args.seed,
        threads=args.threads,
        writers=args.fit_writers,
    )
    features = table.matrix().astype(np.float32)
    cue_matrix = cues.matrix(table.texts())
    # The frozen model's cue columns are the first of the new version's (a version only appends cues).
    matrix = np.concatenate([features, cue_matrix], axis=1)
    replayed = replay_base(base, sequences, matrix)
    reader = (
        WriterReader.read(args.writer_reader, feature_size=base.feature_size)
        if args.writer_reader
        else shipped_reader
    )
    reader_name = (
        args.writer_reader.name if args.writer_reader else f"the reader of {args.model}" if reader else None
    )
    if reader is not None:
        replayed = [
            (logits, reader.sums(matrix[s.text_ids, : base.feature_size], s.own))
            for s, (logits, _) in zip(sequences, replayed, strict=True)
        ]
    members = 1 if reader is not None else base.members
    inputs = [
        gate_inputs(cues=cue_matrix[s.text_ids], own=s.own, sums=sums, members=members, names=cues.names)
        for s, (_, sums) in zip(sequences, replayed, strict=True)
    ]
    weight, bias = fit_gate(
        inputs,
        [logits for logits, _ in replayed],
        sequences,
        columns=(
            counter_columns(cues.names, writers=not args.without_writers)
            if args.reads == "counter"
            else list(range(inputs[0].shape[1]))
        ),
        positive_weight=args.positive_weight,
        only_close=args.reads == "counter",
        objective=args.objective,
    )
    names = [
        *(f"{side} {name}" for side in ("own", "other") for name in cues.names),
        *(f"both {'/'.join(group)}" for group in BOTH_SIDES),
        *COUNTER_WRITERS,
    ]
    for name, value in sorted(zip(names, weight, strict=True), key=lambda item: item[1]):
        if value != 0.0:
            logger.info("gate weight %-28s %+.3f", name, value)
    logger.info("gate bias %+.3f", bias)
    model = compose(base, weight=weight, bias=bias, names=cues.names, reader=reader)
    write_model_dir(
        base_dir=model_dir,
        out=args.out,
        model=model,
        cues_version=args.text_cues,
        names=cues.names,
        weight=weight,
        bias=bias,
        version=args.version,
        fitted_on=[str(p) for p in args.fit]
        + ([f"writers {args.fit_writers}"] if args.fit_writers else [])
        + (["CALIB split"] if args.data else []),
        reader=reader_name,
    )
    return {
        "sequences": len(sequences),
        "weights": dict(zip(names, map(float, weight), strict=True)),
        "bias": bias,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.counter_gate", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help="the frozen model directory; one that ships a gate has it replaced (its writer reader kept)",
    )
    parser.add_argument("--fit", type=Path, nargs="+", required=True, help="conversations to fit the gate on")
    parser.add_argument(
        "--fit-writers",
        help="only --fit conversations whose meta.writer is one of these letters (or that name no writer)",
    )
    parser.add_argument("--data", type=Path, help="the shared data folder: its CALIB split joins --fit")
    parser.add_argument("--text-cues", default="behaviour_v9", help="the cue version the gate reads")
    parser.add_argument("--work", type=Path, required=True, help="feature cache folder")
    parser.add_argument("--out", type=Path, required=True, help="the model directory to write")
    parser.add_argument("--version", help="the new model's version")
    parser.add_argument(
        "--positive-weight",
        type=float,
        default=1.0,
        help="weight of a grooming pair's steps against a negative's",
    )
    parser.add_argument(
        "--reads",
        choices=("counter", "all"),
        default="counter",
        help="counter: the gate weighs only counter-evidence and only closes (default); all: every input,"
        " either sign",
    )
    parser.add_argument(
        "--objective",
        choices=("steps", "peak"),
        default="steps",
        help="steps: every own message's risk, as the pair model trains; peak: each pair's highest risk",
    )
    parser.add_argument(
        "--without-writers",
        action="store_true",
        help="with --reads counter: leave out how child- or adult-like each side writes (cues only)",
    )
    parser.add_argument(
        "--writer-reader",
        type=Path,
        help="an .npz (weight, bias) reading P(child) from the frozen model's features, for the gate in place"
        " of the frozen model's own writer heads",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    return run_reported(run, parser.parse_args(argv), prog="training.counter_gate")


if __name__ == "__main__":
    raise SystemExit(main())
