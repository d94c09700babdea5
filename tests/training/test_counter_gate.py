"""The counter-evidence gate over a frozen pair model (``training.counter_gate``): the composed ONNX step
against an independent numpy reference, the detector loading the written model directory, and (with torch)
the fit learning only to close."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.support.gru_model import add_gru_pair_model, random_weights, reference_step
from tests.support.keyword_model import SIGNALS, build_keyword_model
from training.counter_gate import (
    BOTH_SIDES,
    COUNTER_CUES,
    COUNTER_WRITERS,
    GATE_OPEN,
    BaseModel,
    WriterReader,
    compose,
    counter_columns,
    fit_sequences,
    gate_inputs,
    write_model_dir,
    write_ungated,
)
from training.pair_head import AGE_GATE_PRIOR, AGE_GATE_SCALE, CUE_MEMORY_DECAY
from vigil.bots.core.normalise import model_text
from vigil.detector import FLATTENED_OWN, OnnxDetector
from vigil.detector.cues import text_cues

EMBEDDING = 4
BASE_CUES = "behaviour_v7"
GATE_CUES = "behaviour_v9"
MEMBERS = 2
STATE = 12  # the last MEMBERS * 4 columns are read as the age gate's sums
BASE_FEATURES = EMBEDDING + len(SIGNALS) + 1 + len(text_cues(BASE_CUES).names)
WEIGHTS = random_weights(feature_size=BASE_FEATURES, state_size=STATE, seed=5, scale=0.4)


def base_dir(directory: Path) -> Path:
    build_keyword_model(directory, embedding_size=EMBEDDING, name="counter-gate-test-model")
    add_gru_pair_model(directory, WEIGHTS)
    path = directory / "metadata.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))
    metadata["pair_model"].update(text_cues=BASE_CUES, members=["full"] * MEMBERS)
    path.write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    return directory


def gate_weight(seed: int = 3) -> np.ndarray:
    names = text_cues(GATE_CUES).names
    weight = np.zeros(2 * len(names) + len(BOTH_SIDES) + 2, dtype=np.float32)
    columns = counter_columns(names)
    weight[columns] = -np.random.default_rng(seed).uniform(0.5, 4.0, size=len(columns))
    return weight


def write_gated(
    base_path: Path, out: Path, *, weight: np.ndarray, reader: WriterReader | None = None
) -> Path:
    """The model directory ``training.counter_gate`` writes for this gate over ``base_path``."""
    names = text_cues(GATE_CUES).names
    write_model_dir(
        base_dir=base_path,
        out=out,
        model=compose(BaseModel.read(base_path), weight=weight, bias=GATE_OPEN, names=names, reader=reader),
        cues_version=GATE_CUES,
        names=names,
        weight=weight,
        bias=GATE_OPEN,
        version="test-gated",
        fitted_on=["test"],
        reader="test reader" if reader is not None else None,
    )
    return out


def reference_gate(
    weight: np.ndarray, *, cues: np.ndarray, own: float, counts: np.ndarray, sums: np.ndarray
) -> tuple[float, np.ndarray]:
    """The gate's log-sigmoid and the next counts for one row, written out from the module's description;
    ``sums`` [members, 4]: the writer sums after this row."""
    chat = abs(own - FLATTENED_OWN) / FLATTENED_OWN
    mine, theirs = own * chat, (1.0 - own) * chat
    counts = counts * (1.0 - (1.0 - CUE_MEMORY_DECAY) * chat) + np.concatenate([cues * mine, cues * theirs])
    sums = sums.astype(np.float64)
    own_mean = np.mean((sums[:, 0] + AGE_GATE_PRIOR / 2) / (sums[:, 1] + AGE_GATE_PRIOR))
    other_mean = np.mean((sums[:, 2] + AGE_GATE_PRIOR / 2) / (sums[:, 3] + AGE_GATE_PRIOR))
    names = text_cues(GATE_CUES).names
    both = []
    for group in BOTH_SIDES:
        mine_count = sum(counts[names.index(cue)] for cue in group)
        theirs_count = sum(counts[len(names) + names.index(cue)] for cue in group)
        both.append((1.0 - np.exp(-mine_count)) * (1.0 - np.exp(-theirs_count)))
    inputs = np.concatenate(
        [
            1.0 - np.exp(-counts),
            both,
            [max((own_mean - 0.5) * AGE_GATE_SCALE, 0.0), max((0.5 - other_mean) * AGE_GATE_SCALE, 0.0)],
        ]
    )
    gate = float(inputs @ weight.astype(np.float64) + GATE_OPEN)
    return -float(np.logaddexp(0.0, -gate)) * chat, counts


@pytest.mark.parametrize("with_reader", [False, True])
def test_the_composed_step_is_the_frozen_step_followed_by_the_gate(tmp_path: Path, with_reader: bool) -> None:
    base = BaseModel.read(base_dir(tmp_path / "base"))
    names = text_cues(GATE_CUES).names
    weight = gate_weight()
    rng = np.random.default_rng(0)
    reader = (
        WriterReader(weight=rng.normal(size=BASE_FEATURES).astype(np.float32), bias=0.3)
        if with_reader
        else None
    )
    model = compose(base, weight=weight, bias=GATE_OPEN, names=names, reader=reader)
    # An initializer no node reads makes onnxruntime warn at every load.
    used = {name for graph_node in model.graph.node for name in graph_node.input}
    assert {tensor.name for tensor in model.graph.initializer} <= used
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    steps = 40
    message_features = rng.normal(size=(steps, EMBEDDING + len(SIGNALS) + 1)).astype(np.float32)
    cues = (rng.random(size=(steps, len(names))) < 0.25).astype(np.float32)
    owns = rng.integers(0, 2, size=steps).astype(np.float32)
    owns[[7, 19]] = FLATTENED_OWN  # flattened chunks: the frozen model reads them, the gate does not
    extra = 4 if with_reader else 0
    state = np.zeros((1, base.state_size + 2 * len(names) + extra), dtype=np.float32)
    base_state = np.zeros((1, STATE), dtype=np.float32)
    counts = np.zeros(2 * len(names))
    every = np.concatenate([message_features, cues], axis=1)
    reader_sums = reader.sums(every[:, :BASE_FEATURES], owns) if reader is not None else None
    lowered = 0
    log_gates, step_sums = [], []
    for t in range(steps):
        features = every[t][None, :]
        own = np.array([[owns[t]]], dtype=np.float32)
        logit, state = session.run(None, {"features": features, "own": own, "state": state})
        base_logit, base_state = reference_step(WEIGHTS, features[:, :BASE_FEATURES], own, base_state)
        sums = (
            reader_sums[t].reshape(1, 4)
            if reader_sums is not None
            else base_state[0, -MEMBERS * 4 :].reshape(MEMBERS, 4)
        )
        log_gate, counts = reference_gate(weight, cues=cues[t], own=float(owns[t]), counts=counts, sums=sums)
        log_gates.append(log_gate)
        step_sums.append(sums.reshape(-1))
        np.testing.assert_allclose(logit[0], base_logit[0] + log_gate, atol=2e-5)
        np.testing.assert_allclose(state[0, :STATE], base_state[0], atol=2e-5)
        np.testing.assert_allclose(state[0, STATE : STATE + len(counts)], counts, atol=2e-5)
        if reader_sums is not None:
            np.testing.assert_allclose(state[0, STATE + len(counts) :], reader_sums[t], atol=2e-5)
        assert logit[0] <= base_logit[0] + 1e-6  # the gate only ever lowers
        if owns[t] == FLATTENED_OWN:
            assert logit[0] == pytest.approx(base_logit[0], abs=2e-5)
        lowered += int(logit[0] < base_logit[0] - 0.5)
    assert lowered > 0  # the weights were strong enough to matter on this sequence
    # The fit reads the same gate the graph serves: gate_inputs over the whole sequence, flattened chunks too.
    inputs = gate_inputs(
        cues=cues, own=owns, sums=np.stack(step_sums), members=1 if with_reader else MEMBERS, names=names
    )
    chat = np.abs(owns - FLATTENED_OWN) / FLATTENED_OWN
    fitted = -np.logaddexp(0.0, -(inputs.astype(np.float64) @ weight + GATE_OPEN)) * chat
    np.testing.assert_allclose(fitted, log_gates, atol=1e-5)


def test_gate_inputs_count_each_sides_cues_and_read_the_writers_from_the_sums() -> None:
    cues = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    own = np.array([1.0, 0.0, 1.0], dtype=np.float32)
    # one member; own P(child) sum 3 over 3 messages (all child), the other's 0 over 3 (all adult)
    sums = np.tile(np.array([3.0, 3.0, 0.0, 3.0], dtype=np.float32), (3, 1))
    names = ("minor_age", "shared_family")
    inputs = gate_inputs(cues=cues, own=own, sums=sums, members=1, names=names)
    first_own = 1.0 - np.exp(-1.0)
    np.testing.assert_allclose(inputs[0, :4], [first_own, 0.0, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(
        inputs[1, :4], [1.0 - np.exp(-CUE_MEMORY_DECAY), 0.0, 0.0, first_own], rtol=1e-6
    )
    np.testing.assert_allclose(
        inputs[2, 0], 1.0 - np.exp(-(CUE_MEMORY_DECAY**2 + 1.0)), rtol=1e-6
    )  # decayed twice, then one more
    # both sides: a child's age only on the member's side, family only on the other's: neither is both
    np.testing.assert_allclose(inputs[:, 4:6], 0.0)
    both = gate_inputs(cues=cues, own=1.0 - own, sums=sums, members=1, names=names)
    assert (both[:, 4:6] == 0.0).all()
    family = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float32)  # each names family the two share
    shared = gate_inputs(cues=family, own=own[:2], sums=sums[:2], members=1, names=names)
    np.testing.assert_allclose(
        shared[:, 4:6], [[0.0, 0.0], [0.0, (1.0 - np.exp(-CUE_MEMORY_DECAY)) * first_own]]
    )
    own_mean = (3.0 + AGE_GATE_PRIOR / 2) / (3.0 + AGE_GATE_PRIOR)
    other_mean = (0.0 + AGE_GATE_PRIOR / 2) / (3.0 + AGE_GATE_PRIOR)
    np.testing.assert_allclose(
        inputs[:, 6:],
        [[(own_mean - 0.5) * AGE_GATE_SCALE, (0.5 - other_mean) * AGE_GATE_SCALE]] * 3,
        rtol=1e-6,
    )


def test_the_gate_reads_only_counter_evidence() -> None:
    names = text_cues(GATE_CUES).names
    columns = counter_columns(names)
    assert len(columns) == len(COUNTER_CUES) + len(BOTH_SIDES) + len(COUNTER_WRITERS)
    tail = len(BOTH_SIDES) + len(COUNTER_WRITERS)
    assert columns[-tail:] == list(range(2 * len(names), 2 * len(names) + tail))
    read = {("own" if c < len(names) else "other", names[c % len(names)]) for c in columns[:-tail]}
    assert read == set(COUNTER_CUES)
    steps = {"secrecy", "private_channel", "gift", "meeting", "photo", "youth_remark"}
    assert not {cue for _, cue in read} & steps
    assert counter_columns(names, writers=False) == columns[: -len(COUNTER_WRITERS)]


async def test_the_detector_serves_the_written_model_directory(tmp_path: Path) -> None:
    base_path = base_dir(tmp_path / "base")
    names = text_cues(GATE_CUES).names
    weight = np.zeros(2 * len(names) + len(BOTH_SIDES) + 2, dtype=np.float32)
    weight[names.index("carer_in")] = -12.0  # own carer_in: one such message closes the gate
    out = write_gated(base_path, tmp_path / "gated", weight=weight)
    metadata = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    pair = metadata["pair_model"]
    assert pair["text_cues"] == GATE_CUES and pair["counter_gate"]["base_text_cues"] == BASE_CUES
    assert pair["state_size"] == STATE + 2 * len(names)
    assert pair["counter_gate"]["weights"]["own carer_in"] == -12.0
    texts = ["hello there", "ill let your mum know tonight", "see you later"]
    assert text_cues(GATE_CUES).of(model_text(texts[1]))[names.index("carer_in")] == 1.0
    risks = {}
    for name, directory in (("base", base_path), ("gated", out)):
        detector = await OnnxDetector.load(directory, intra_op_threads=1)
        try:
            pair_model = detector.pair_model
            scores = await detector.score(texts)
            state = pair_model.initial_state()
            trace = []
            for score in scores:
                state = pair_model.update(state=state, author_id="adult", other_id="kid", score=score)
                trace.append({r.author_id: r.risk for r in pair_model.author_risks(state=state)}["adult"])
            risks[name] = trace
        finally:
            await detector.aclose()
    assert risks["gated"][0] == pytest.approx(risks["base"][0], abs=0.02)  # the gate starts open
    assert risks["gated"][1] < risks["base"][1] * 0.2  # and a carer kept in closes it
    assert risks["gated"][2] < risks["base"][2] * 0.2  # for as long as the memory holds


def test_a_model_with_a_gate_or_without_cues_is_no_base(tmp_path: Path) -> None:
    path = base_dir(tmp_path / "base")
    metadata_path = path / "metadata.json"
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    metadata["pair_model"]["counter_gate"] = {"bias": 4.0}
    metadata_path.write_text(json.dumps(metadata), encoding="utf-8")
    with pytest.raises(ValueError, match="has a counter gate already"):
        BaseModel.read(path)
    del metadata["pair_model"]["counter_gate"], metadata["pair_model"]["text_cues"]
    metadata_path.write_text(json.dumps(metadata), encoding="utf-8")
    with pytest.raises(ValueError, match="reads no text cues"):
        BaseModel.read(path)
    for pair_model in ({"type": "ema", "alpha": 0.5}, None):
        metadata["pair_model"] = pair_model
        metadata_path.write_text(json.dumps(metadata), encoding="utf-8")
        with pytest.raises(ValueError, match="no recurrent pair model"):
            BaseModel.read(path)


def test_the_fit_learns_to_close_on_counter_evidence_only() -> None:
    pytest.importorskip("torch")  # training extra
    from training.counter_gate import fit_gate  # noqa: PLC0415
    from training.pair_head import CandidateSequence  # noqa: PLC0415

    rng = np.random.default_rng(1)
    inputs, logits, sequences = [], [], []
    # A frozen model calibrated as a whole (at logit 3 about 19 grooming pairs for one look-alike), wrong
    # only where the look-alikes say something grooming does not.
    groups = [(1, 3.0, False)] * 190 + [(0, 3.0, True)] * 10 + [(0, -4.0, False)] * 100
    for i, (label, logit, says) in enumerate(groups):
        steps = 12
        x = np.zeros((steps, 4), dtype=np.float32)
        x[:, 1] = rng.random(steps)  # the same in all: no evidence either way
        if says:
            x[4:, 0] = 1.0
        inputs.append(x)
        logits.append(np.full(steps, logit, dtype=np.float32))
        sequences.append(
            CandidateSequence(
                conversation_id=f"c{i}",
                source="test",
                label=label,
                text_ids=np.arange(steps),
                own=np.ones(steps, dtype=np.float32),
                weight=1.0,
                pair_id=f"c{i}:a|b",
                candidate="a",
                interleaved=True,
            )
        )
    weight, bias = fit_gate(inputs, logits, sequences, columns=[0, 1, 2])
    assert bias == GATE_OPEN
    assert (weight <= 0.0).all() and weight[3] == 0.0  # only closes; never reads a column it may not

    def log_gate(x: np.ndarray) -> np.ndarray:
        return np.asarray(-np.logaddexp(0.0, -(x @ weight + bias)))

    assert weight[0] < -4.0  # closes on what only the look-alikes say
    grooming = np.concatenate([log_gate(x) for x, (label, _, _) in zip(inputs, groups, strict=True) if label])
    look_alikes = np.concatenate(
        [log_gate(x[4:]) for x, (_, _, says) in zip(inputs, groups, strict=True) if says]
    )
    assert grooming.mean() > -0.15  # and takes next to nothing off the grooming pairs
    assert look_alikes.max() < -2.0


def test_a_writer_reader_must_fit_the_frozen_features(tmp_path: Path) -> None:
    path = tmp_path / "reader.npz"
    np.savez(path, weight=np.zeros(BASE_FEATURES - 1, dtype=np.float32), bias=np.float32(0.0))
    with pytest.raises(ValueError, match="a writer reader of"):
        WriterReader.read(path, feature_size=BASE_FEATURES)
    np.savez(path, weight=np.ones(BASE_FEATURES, dtype=np.float32), bias=np.float32(-1.0))
    reader = WriterReader.read(path, feature_size=BASE_FEATURES)
    own = np.array([1.0, 0.0, FLATTENED_OWN, 1.0], dtype=np.float32)
    sums = reader.sums(np.zeros((4, BASE_FEATURES), dtype=np.float32), own)
    child = 1.0 / (1.0 + np.e)  # sigmoid(-1)
    np.testing.assert_allclose(
        sums[-1], [2 * child, 2.0, child, 1.0], rtol=1e-6
    )  # the chunk counts for no one


def test_a_shipped_gate_comes_off_to_leave_the_frozen_model(tmp_path: Path) -> None:
    base_path = base_dir(tmp_path / "base")
    base = BaseModel.read(base_path)
    weight = gate_weight()
    rng = np.random.default_rng(2)
    reader = WriterReader(weight=rng.normal(size=BASE_FEATURES).astype(np.float32), bias=-0.2)
    gated = write_gated(base_path, tmp_path / "gated", weight=weight, reader=reader)
    with pytest.raises(ValueError, match="counter gate already"):
        BaseModel.read(gated)
    ungated = tmp_path / "ungated"
    recovered = write_ungated(gated, ungated)
    assert recovered is not None and recovered.bias == pytest.approx(-0.2)
    np.testing.assert_allclose(recovered.weight, reader.weight)
    before = json.loads((base_path / "metadata.json").read_text(encoding="utf-8"))["pair_model"]
    after = json.loads((ungated / "metadata.json").read_text(encoding="utf-8"))["pair_model"]
    assert after == before
    assert BaseModel.read(ungated) == dataclasses.replace(base, path=ungated / before["file"])
    frozen = ort.InferenceSession(str(base.path), providers=["CPUExecutionProvider"])
    stripped = ort.InferenceSession(str(ungated / before["file"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in stripped.get_inputs()] == [i.name for i in frozen.get_inputs()]
    assert [o.name for o in stripped.get_outputs()] == [o.name for o in frozen.get_outputs()]
    feed = {
        "features": rng.normal(size=(5, BASE_FEATURES)).astype(np.float32),
        "own": np.array([[1.0], [0.0], [1.0], [FLATTENED_OWN], [0.0]], dtype=np.float32),
        "state": rng.normal(size=(5, STATE)).astype(np.float32),
    }
    for want, got in zip(frozen.run(None, feed), stripped.run(None, feed), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    with pytest.raises(ValueError, match="no counter gate"):
        write_ungated(base_path, tmp_path / "again")


def test_the_fit_reads_only_the_writers_asked_for(tmp_path: Path) -> None:
    records = [
        {
            "id": f"c-{writer or 'none'}",
            "source": "vigil_written_train",
            "label": 0,
            "setting": "dm",
            "interleaved": True,
            "suspects": [],
            "meta": {"writer": writer} if writer else {},
            "messages": [
                {"author": ("u-a", "u-b")[i % 2], "text": f"{writer} line {i}", "ts": None, "reply_to": None}
                for i in range(6)
            ],
        }
        for writer in ("T", "A", None)
    ]
    fit = tmp_path / "fit.jsonl"
    fit.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    model = base_dir(tmp_path / "base")
    (tmp_path / "work").mkdir()
    kept = {
        writers: {
            s.conversation_id
            for s in fit_sequences(
                model_dir=model,
                work=tmp_path / "work",
                fit=[fit],
                data=None,
                seed=0,
                threads=1,
                writers=writers,
            )[0]
        }
        for writers in ("TUV", None)
    }
    assert kept == {"TUV": {"c-T", "c-none"}, None: {"c-T", "c-A", "c-none"}}


def test_a_refit_replaces_the_shipped_gate_and_keeps_its_reader(tmp_path: Path) -> None:
    pytest.importorskip("torch")  # training extra
    from training.counter_gate import main  # noqa: PLC0415

    base_path = base_dir(tmp_path / "base")
    rng = np.random.default_rng(4)
    reader = WriterReader(weight=rng.normal(size=BASE_FEATURES).astype(np.float32), bias=0.1)
    gated = write_gated(base_path, tmp_path / "gated", weight=gate_weight(), reader=reader)
    texts = ["hello there", "ill let your mum know tonight", "keep it secret", "what is your age", "ok"]
    records = [
        {
            "id": f"fit-{n}",
            "source": "vigil_written_train",
            "label": n % 2,
            "setting": "dm",
            "interleaved": True,
            "suspects": ["u-a"] if n % 2 else [],
            "messages": [
                {"author": ("u-a", "u-b")[i % 2], "text": texts[(n + i) % 5], "ts": None, "reply_to": None}
                for i in range(8)
            ],
        }
        for n in range(6)
    ]
    fit = tmp_path / "fit.jsonl"
    fit.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    work, out = tmp_path / "work", tmp_path / "refit"
    work.mkdir()
    argv = ["--model", str(gated), "--fit", str(fit), "--work", str(work), "--out", str(out)]
    assert main([*argv, "--threads", "1"]) == 0
    pair = json.loads((out / "metadata.json").read_text(encoding="utf-8"))["pair_model"]
    # One gate, over the frozen model: the base's state, this gate's cue counts and the kept reader's sums.
    assert pair["state_size"] == STATE + 2 * len(text_cues(GATE_CUES).names) + 4
    assert pair["counter_gate"]["base_text_cues"] == BASE_CUES
    assert pair["counter_gate"]["writer_reader"] == f"the reader of {gated}"
    assert pair["counter_gate"]["fitted_on"] == [str(fit)]
    composed = ort.InferenceSession(str(out / "pair_model.onnx"), providers=["CPUExecutionProvider"])
    assert composed.get_inputs()[2].shape[1] == pair["state_size"]
