"""The learned (GRU) pair model: real ONNX Runtime on a GRU step built from seeded weights, checked against a
numpy GRU; the detector's features; the attribution rule; the stored state; every load-time refusal."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto
from tokenizers import Tokenizer

from tests.detector.conftest import EMBEDDING_DIM, TINY_SIGNALS, ModelDirFactory
from tests.support.gru_model import (
    PAIR_MODEL_FILE,
    GruWeights,
    add_gru_pair_model,
    build_gru_graph,
    random_weights,
    reference_step,
)
from vigil.detector import (
    FLATTENED_OWN,
    EmaPairModel,
    GruPairModel,
    MessageScore,
    ModelLoadError,
    OnnxDetector,
    write_golden,
)
from vigil.detector.cues import CUE_VERSIONS, text_cues

FEATURE_SIZE = EMBEDDING_DIM + len(TINY_SIGNALS) + 1
STATE_SIZE = 6
TEXTS = (
    "hi how are you",
    "what is your age",
    "lol ok",
    "dont tell your parents this is our secret",
    "want to meet later tonight",
    "send a pic",
    "nice game cool",
    "",
)


def weights(**overrides: int) -> GruWeights:
    sizes = {"feature_size": FEATURE_SIZE, "state_size": STATE_SIZE, **overrides}
    return random_weights(**sizes)


@pytest.fixture
def gru_dir(build_model_dir: ModelDirFactory) -> Path:
    return add_gru_pair_model(build_model_dir(embedding_output=True), weights())


@pytest.fixture
async def gru_detector(gru_dir: Path) -> Any:
    detector = await OnnxDetector.load(gru_dir, intra_op_threads=1)
    try:
        yield detector
    finally:
        await detector.aclose()


def gru_of(detector: OnnxDetector) -> GruPairModel:
    model = detector.pair_model
    assert isinstance(model, GruPairModel)
    return model


def members(state: str) -> dict[str, tuple[int, float, np.ndarray]]:
    """Decode a GRU state: member -> (own messages, risk, hidden state)."""
    raw = json.loads(state)
    assert raw["v"] == 1
    return {
        author: (count, risk, np.frombuffer(base64.b64decode(hidden), dtype="<f4"))
        for author, (count, risk, hidden) in raw["m"].items()
    }


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


# --- the detector's features --------------------------------------------------------------------------------


async def test_features_are_embedding_signal_logits_and_risk_logit(gru_dir: Path, gru_detector: Any) -> None:
    scores = await gru_detector.score(list(TEXTS))
    # The embedding computed independently: the same graph run by hand on the tokenizer's ids, one text alone.
    session = ort.InferenceSession(str(gru_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(gru_dir / "tokenizer.json"))
    tokenizer.no_padding()
    for text, score in zip(TEXTS, scores, strict=True):
        features = score.features
        assert features is not None
        assert features.dtype == np.float32 and features.shape == (FEATURE_SIZE,)
        assert not features.flags.writeable
        ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
        (embedding,) = session.run(["embedding"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        np.testing.assert_allclose(features[:EMBEDDING_DIM], embedding[0], rtol=1e-5, atol=1e-6)
        signal_logits = [logit(p) for p in score.signals]
        np.testing.assert_allclose(features[EMBEDDING_DIM:-1], signal_logits, rtol=1e-4, atol=1e-4)
        assert features[-1] == pytest.approx(logit(score.risk), abs=1e-4)
    with pytest.raises(ValueError, match="read-only"):
        scores[0].features[0] = 1.0  # type: ignore[index]


async def test_an_ema_model_scores_without_features(tiny_detector: OnnxDetector) -> None:
    (score,) = await tiny_detector.score(["what is your age"])
    assert score.features is None
    assert isinstance(tiny_detector.pair_model, EmaPairModel)


async def test_features_do_not_change_score_equality(gru_detector: Any) -> None:
    a, b = await gru_detector.score(["lol ok", "lol ok"])
    assert a == b and "features" not in repr(a)


# --- GruPairModel against numpy -----------------------------------------------------------------------------


async def test_gru_matches_a_numpy_gru_step_by_step(gru_detector: Any) -> None:
    model = gru_of(gru_detector)
    gru = weights()
    scores = await gru_detector.score(list(TEXTS))
    authors = ["a", "b", "a", "a", "b", "a", "b", "a"]
    hidden = {"a": np.zeros(STATE_SIZE, np.float32), "b": np.zeros(STATE_SIZE, np.float32)}
    risk = {"a": 0.0, "b": 0.0}
    state = model.initial_state()
    for author, score in zip(authors, scores, strict=True):
        other = "b" if author == "a" else "a"
        assert score.features is not None
        logits, next_states = reference_step(
            gru,
            np.stack([score.features, score.features]),
            np.array([[1.0], [0.0]], np.float32),
            np.stack([hidden[author], hidden[other]]),
        )
        hidden[author], hidden[other] = next_states[0], next_states[1]
        risk[author] = sigmoid(float(logits[0]))
        state = model.update(state=state, author_id=author, other_id=other, score=score)
        decoded = members(state)
        for member in ("a", "b"):
            np.testing.assert_allclose(decoded[member][2], hidden[member], rtol=1e-4, atol=1e-5)
            assert decoded[member][1] == pytest.approx(risk[member], abs=1e-5)
        expected = sorted(risk.items(), key=lambda item: (-item[1], item[0]))
        got = model.author_risks(state=state)
        assert [r.author_id for r in got] == [name for name, _ in expected]
        assert [r.risk for r in got] == pytest.approx([value for _, value in expected], abs=1e-5)
    assert {m: c for m, (c, _, _) in members(state).items()} == {"a": 5, "b": 3}
    # Random weights really do move things: the two members end far apart and away from the start.
    assert abs(risk["a"] - risk["b"]) > 1e-3 and np.abs(hidden["b"]).max() > 0.05


async def test_the_other_members_messages_move_their_state_but_never_their_risk(gru_detector: Any) -> None:
    model = gru_of(gru_detector)
    scores = await gru_detector.score(list(TEXTS[:4]))
    state = model.initial_state()
    previous_hidden = np.zeros(STATE_SIZE, np.float32)
    for score in scores[:3]:
        state = model.update(state=state, author_id="adult", other_id="kid", score=score)
        count, risk, hidden = members(state)["kid"]
        # The kid has never written: risk exactly 0, but their hidden state follows the conversation.
        assert count == 0 and risk == 0.0
        assert not np.array_equal(hidden, previous_hidden)
        previous_hidden = hidden
    risks = {r.author_id: r.risk for r in model.author_risks(state=state)}
    assert risks["kid"] == 0.0 and risks["adult"] > 0.0
    adult_risk = risks["adult"]
    # Now the kid writes: only the kid's risk is set; the adult's stays exactly what it was.
    state = model.update(state=state, author_id="kid", other_id="adult", score=scores[3])
    risks = {r.author_id: r.risk for r in model.author_risks(state=state)}
    assert risks["adult"] == adult_risk and risks["kid"] > 0.0
    assert members(state)["kid"][0] == 1 and members(state)["adult"][0] == 3


async def test_one_step_is_one_session_run_with_two_rows(gru_detector: Any) -> None:
    model = gru_of(gru_detector)
    (score,) = await gru_detector.score(["what is your age"])
    calls: list[dict[str, np.ndarray]] = []

    class CountingSession:
        def run(self, names: list[str], feed: dict[str, np.ndarray]) -> Any:
            calls.append(feed)
            return model.session.run(names, feed)

    counting = dataclasses.replace(model, session=CountingSession())  # type: ignore[arg-type]
    counting.update(state=model.initial_state(), author_id="a", other_id="b", score=score)
    assert len(calls) == 1
    assert calls[0]["features"].shape == (2, FEATURE_SIZE)
    assert calls[0]["own"].tolist() == [[1.0], [0.0]]
    # A chunk of flattened text: the row of the member it is credited to carries FLATTENED_OWN.
    counting.update(
        state=model.initial_state(), author_id="a", other_id="b", score=score, speaker_known=False
    )
    assert calls[1]["own"].tolist() == [[FLATTENED_OWN], [0.0]]
    assert 0.0 < FLATTENED_OWN < 1.0


# --- the stored state ---------------------------------------------------------------------------------------


async def test_state_round_trips_and_stays_small(gru_detector: Any) -> None:
    model = gru_of(gru_detector)
    scores = await gru_detector.score(list(TEXTS))
    state = model.initial_state()
    for index, score in enumerate(scores):
        author, other = ("a", "b") if index % 2 == 0 else ("b", "a")
        state = model.update(state=state, author_id=author, other_id=other, score=score)
    raw = json.loads(state)
    assert set(raw) == {"v", "k", "m"} and raw["k"] == model.fingerprint
    # Re-serialised by hand (as a store might), the state reads back identically and steps identically.
    copy = json.dumps(raw, indent=2)
    assert model.author_risks(state=copy) == model.author_risks(state=state)
    after = model.update(state=state, author_id="a", other_id="b", score=scores[1])
    assert model.update(state=copy, author_id="a", other_id="b", score=scores[1]) == after
    # Two members, each base64 of STATE_SIZE float32 plus a count and a risk.
    assert len(state) < 120 + 2 * (math.ceil(4 * STATE_SIZE / 3) * 4 + 40)


async def test_a_64_wide_state_is_well_under_a_kilobyte(build_model_dir: ModelDirFactory) -> None:
    model_dir = add_gru_pair_model(build_model_dir(embedding_output=True), weights(state_size=64))
    detector = await OnnxDetector.load(model_dir, intra_op_threads=1)
    try:
        (score,) = await detector.score(["what is your age"])
        model = gru_of(detector)
        state = model.update(state=model.initial_state(), author_id="a" * 20, other_id="b" * 20, score=score)
        assert len(state) < 900
    finally:
        await detector.aclose()


def corrupt_states(model: GruPairModel) -> list[tuple[str, str]]:
    good_hidden = base64.b64encode(np.zeros(STATE_SIZE, "<f4").tobytes()).decode()
    nan_hidden = base64.b64encode(np.full(STATE_SIZE, np.nan, "<f4").tobytes()).decode()
    short_hidden = base64.b64encode(np.zeros(STATE_SIZE - 1, "<f4").tobytes()).decode()

    def gru(member: object, **top: object) -> str:
        return json.dumps({"v": 1, "k": model.fingerprint, "m": {"a": member}, **top})

    return [
        ("{not json", "Expecting property name"),
        ("[1, 2]", "not a JSON object"),
        ('{"a": 5}', "neither the GRU's nor the EMA's format"),
        (json.dumps({"v": 2, "k": model.fingerprint, "m": {}}), "version 2"),
        (json.dumps({"v": 1, "k": model.fingerprint, "m": [1]}), "no member map"),
        (gru([1, 0.5]), "not \\[count, risk, hidden\\]"),
        (gru([-1, 0.5, good_hidden]), "bad message count"),
        (gru([True, 0.5, good_hidden]), "bad message count"),
        (gru([1, 1.5, good_hidden]), "risk is not a probability"),
        (gru([1, float("nan"), good_hidden]), "risk is not a probability"),
        (gru([1, 0.5, 7]), "hidden state is not a string"),
        (gru([1, 0.5, "***"]), "not base64"),
        (gru([1, 0.5, short_hidden]), f"expected {4 * STATE_SIZE}"),
        (gru([1, 0.5, nan_hidden]), "non-finite hidden state"),
    ]


async def test_corrupt_states_raise_value_error(gru_detector: Any) -> None:
    model = gru_of(gru_detector)
    (score,) = await gru_detector.score(["lol ok"])
    for state, message in corrupt_states(model):
        with pytest.raises(ValueError, match=message):
            model.author_risks(state=state)
        with pytest.raises(ValueError, match=message):
            model.update(state=state, author_id="a", other_id="b", score=score)


async def test_states_of_older_or_other_pair_models_start_afresh(gru_detector: Any) -> None:
    model = gru_of(gru_detector)
    (score,) = await gru_detector.score(["what is your age"])
    fresh = model.update(state=model.initial_state(), author_id="a", other_id="b", score=score)
    assert model.update(state="", author_id="a", other_id="b", score=score) == fresh
    # A pair saved by the EMA model of an older model directory, with a member named "v" for good measure.
    ema_state = EmaPairModel(alpha=0.5, min_messages=2).update(
        state="{}", author_id="v", other_id="a", score=score
    )
    assert model.update(state=ema_state, author_id="a", other_id="b", score=score) == fresh
    # A pair saved by another GRU pair model (an upgrade): its hidden states mean nothing here.
    other_model = json.loads(fresh)
    other_model["k"] = "0" * len(model.fingerprint)
    other_model["m"]["a"][1] = 0.99
    assert model.update(state=json.dumps(other_model), author_id="a", other_id="b", score=score) == fresh
    # And the EMA model, put back after a GRU model, starts GRU states afresh rather than failing.
    ema = EmaPairModel(alpha=0.5, min_messages=2)
    assert ema.update(state=fresh, author_id="a", other_id="b", score=score) == ema.update(
        state="{}", author_id="a", other_id="b", score=score
    )


async def test_update_needs_the_features(gru_detector: Any) -> None:
    model = gru_of(gru_detector)
    with pytest.raises(ValueError, match=r"needs MessageScore\.features"):
        model.update(
            state="{}", author_id="a", other_id="b", score=MessageScore(risk=0.5, signals=(0.1,) * 3)
        )
    short = MessageScore(risk=0.5, signals=(0.1,) * 3, features=np.zeros(FEATURE_SIZE - 1, np.float32))
    with pytest.raises(ValueError, match=f"takes \\[{FEATURE_SIZE}\\]"):
        model.update(state="{}", author_id="a", other_id="b", score=short)
    (score,) = await gru_detector.score(["lol"])
    with pytest.raises(ValueError, match="two different members"):
        model.update(state="{}", author_id="a", other_id="a", score=score)


async def test_the_pair_session_is_single_threaded_cpu_and_the_model_immutable(gru_detector: Any) -> None:
    model = gru_of(gru_detector)
    options = model.session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert model.session.get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.state_size = 3  # type: ignore[misc]
    # Loaded once with the detector: the same object on every access.
    assert gru_detector.pair_model is model


async def test_golden_check_works_with_the_extra_output(gru_dir: Path) -> None:
    golden = write_golden(gru_dir)
    assert golden.cases
    detector = await OnnxDetector.load(gru_dir, intra_op_threads=1)
    try:
        assert detector.runtime_check.status == "ok"
    finally:
        await detector.aclose()


@pytest.mark.parametrize("version", CUE_VERSIONS)
async def test_a_model_trained_on_age_cues_gets_them_last_in_its_features(
    build_model_dir: ModelDirFactory, version: str
) -> None:
    cues = text_cues(version)
    width = len(cues.names)
    model_dir = add_gru_pair_model(
        build_model_dir(embedding_output=True), weights(feature_size=FEATURE_SIZE + width)
    )
    edit_pair_section(model_dir, text_cues=version)
    texts = ["im 13 lol", "my wife is asleep", "what grade r u in", "8th"]
    detector = await OnnxDetector.load(model_dir, intra_op_threads=1)
    plain_dir = add_gru_pair_model(build_model_dir(name="plain", embedding_output=True), weights())
    plain = await OnnxDetector.load(plain_dir, intra_op_threads=1)
    try:
        scores = await detector.score(texts)
        without = await plain.score(texts)
    finally:
        await detector.aclose()
        await plain.aclose()
    for text, score, other in zip(texts, scores, without, strict=True):
        assert score.features is not None and other.features is not None
        assert score.features.shape == (FEATURE_SIZE + width,)
        np.testing.assert_allclose(score.features[:FEATURE_SIZE], other.features, rtol=1e-6)
        assert tuple(score.features[FEATURE_SIZE:]) == cues.of(text)
    # minor_age, adult_age, school, adult_life: the first four cues of every version.
    assert [tuple(s.features[FEATURE_SIZE : FEATURE_SIZE + 4]) for s in scores if s.features is not None] == [
        (1.0, 0.0, 0.0, 0.0),
        (0.0, 0.0, 0.0, 1.0),
        (0.0, 0.0, 0.0, 0.0),
        (0.0, 0.0, 1.0, 0.0),
    ]


async def test_cues_of_an_unknown_version_are_refused(build_model_dir: ModelDirFactory) -> None:
    model_dir = add_gru_pair_model(
        build_model_dir(embedding_output=True), weights(feature_size=FEATURE_SIZE + 5)
    )
    edit_pair_section(model_dir, text_cues="age_v9")
    assert "'pair_model.text_cues': text cues 'age_v9' are not known" in await refusal(model_dir)


# --- load-time refusals -------------------------------------------------------------------------------------


def edit_pair_section(model_dir: Path, **changes: Any) -> None:
    path = model_dir / "metadata.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            del metadata["pair_model"][key]
        else:
            metadata["pair_model"][key] = value
    path.write_text(json.dumps(metadata), encoding="utf-8")


async def refusal(model_dir: Path) -> str:
    with pytest.raises(ModelLoadError) as raised:
        await OnnxDetector.load(model_dir, intra_op_threads=1)
    return str(raised.value)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"file": None}, "'pair_model.file' is missing"),
        ({"file": "missing.onnx"}, "'pair_model.file' names 'missing.onnx'"),
        ({"file": "../model.onnx"}, "must name a file inside the model directory"),
        ({"state_size": None}, "'pair_model.state_size' is missing"),
        ({"state_size": "64"}, "'pair_model.state_size' must be an integer"),
        ({"state_size": 0}, "'pair_model.state_size' must be >= 1"),
        ({"feature_size": 4}, "'pair_model.feature_size' is 4"),
        ({"embedding_output": None}, "'pair_model.embedding_output' is missing"),
        ({"signals_output": 3}, "'pair_model.signals_output' must be a non-empty string"),
        (
            {"signals_output": "pair_signal_logits"},
            "'pair_model.signals_output' names output 'pair_signal_logits'",
        ),
        ({"explanation_signals": "yes"}, "'pair_model.explanation_signals' must be true or false"),
        # Explanation signals after the risk logit: 3 more logits, so a smaller embedding than the model's.
        ({"explanation_signals": True}, "= embedding + 7 signal and risk logits needs 5"),
    ],
)
async def test_bad_gru_metadata_names_the_key(gru_dir: Path, changes: dict[str, Any], expected: str) -> None:
    edit_pair_section(gru_dir, **changes)
    message = await refusal(gru_dir)
    assert "metadata.json" in message and expected in message


async def test_embedding_output_absent_from_the_model(build_model_dir: ModelDirFactory) -> None:
    model_dir = add_gru_pair_model(build_model_dir(embedding_output=False), weights())
    message = await refusal(model_dir)
    assert "'pair_model.embedding_output' names output 'embedding'" in message
    assert "model.onnx" in message and "signal_logits" in message


async def test_feature_size_inconsistent_with_the_embedding(build_model_dir: ModelDirFactory) -> None:
    # A pair model for one more feature than embedding (8) + 3 signals + 1 risk logit.
    model_dir = add_gru_pair_model(
        build_model_dir(embedding_output=True), weights(feature_size=FEATURE_SIZE + 1)
    )
    message = await refusal(model_dir)
    assert "model.onnx: output 'embedding' is 8 wide" in message
    assert (
        f"'pair_model.feature_size' {FEATURE_SIZE + 1}" in message and f"needs {EMBEDDING_DIM + 1}" in message
    )


@pytest.mark.parametrize(
    ("graph_options", "expected"),
    [
        ({"input_names": ("feats", "own", "state")}, "has inputs ['feats', 'own', 'state']"),
        ({"output_names": ("logit", "next_state")}, "has outputs ['logit', 'next_state']"),
        ({"batch_dim": 1}, "fixed batch dimension 1"),
        ({"own_type": TensorProto.DOUBLE}, "'own' is tensor(double)"),
    ],
)
async def test_pair_graph_off_contract(
    build_model_dir: ModelDirFactory, graph_options: dict[str, Any], expected: str
) -> None:
    model_dir = build_model_dir(embedding_output=True)
    gru = weights()
    add_gru_pair_model(model_dir, gru, graph=build_gru_graph(gru, **graph_options))
    message = await refusal(model_dir)
    assert PAIR_MODEL_FILE in message and expected in message


async def test_pair_feature_width_disagreeing_with_metadata(build_model_dir: ModelDirFactory) -> None:
    model_dir = add_gru_pair_model(
        build_model_dir(embedding_output=True), weights(feature_size=FEATURE_SIZE + 1)
    )
    edit_pair_section(model_dir, feature_size=FEATURE_SIZE)
    message = await refusal(model_dir)
    assert PAIR_MODEL_FILE in message and f"'features' has shape ['N', {FEATURE_SIZE + 1}]" in message


async def test_pair_state_size_disagreeing_with_metadata(gru_dir: Path) -> None:
    edit_pair_section(gru_dir, state_size=STATE_SIZE + 1)
    message = await refusal(gru_dir)
    assert PAIR_MODEL_FILE in message and f"'state' has shape ['N', {STATE_SIZE}]" in message


async def test_pair_graph_that_fails_when_run(build_model_dir: ModelDirFactory) -> None:
    # Declared shapes pass (a symbolic feature width), but the weights take one more feature than it gets.
    model_dir = build_model_dir(embedding_output=True)
    wide = weights(feature_size=FEATURE_SIZE + 1)
    add_gru_pair_model(model_dir, wide, graph=build_gru_graph(wide, declared_feature_size="F"))
    edit_pair_section(model_dir, feature_size=FEATURE_SIZE)
    message = await refusal(model_dir)
    assert PAIR_MODEL_FILE in message and "failed a trial run" in message


async def test_a_pair_graph_without_output_shapes_is_checked_by_running_it(
    build_model_dir: ModelDirFactory,
) -> None:
    gru = weights()
    model_dir = add_gru_pair_model(
        build_model_dir(embedding_output=True), gru, graph=build_gru_graph(gru, declare_output_shapes=False)
    )
    detector = await OnnxDetector.load(model_dir, intra_op_threads=1)
    await detector.aclose()
    wide = weights(feature_size=FEATURE_SIZE + 1)
    add_gru_pair_model(
        model_dir, wide, graph=build_gru_graph(wide, declared_feature_size="F", declare_output_shapes=False)
    )
    edit_pair_section(model_dir, feature_size=FEATURE_SIZE)
    assert "failed a trial run" in await refusal(model_dir)


async def test_pair_file_that_is_not_onnx(gru_dir: Path) -> None:
    (gru_dir / PAIR_MODEL_FILE).write_bytes(b"not a model")
    message = await refusal(gru_dir)
    assert f"{PAIR_MODEL_FILE} is not a loadable ONNX model" in message
