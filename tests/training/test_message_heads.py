"""Retraining the message model's heads: how template lines are labelled, and that new head weights go into
the shipped int8 graph without touching the encoder (checked by loading and scoring with ``OnnxDetector``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.support.gru_model import build_gru_graph, random_weights
from training.data import Conversation, model_text, read_conversations
from training.message_heads import (
    HEAD_PARAMETERS,
    WEIGHT_CHILD,
    WEIGHT_LOOKALIKE,
    check_explanations_only,
    head_state,
    modern_examples,
    replace_heads,
    with_explanation_heads,
    with_new_heads,
)
from training.modern_lines import modern_conversations
from training.pair_head import (
    AGE_GATE_BIAS,
    PAIR_SIGNALS_OUTPUT,
    POLICY_SOURCE_ENTRY,
    FeatureCacheMismatchError,
    FeatureTable,
    message_features,
    message_session,
    model_digest,
    write_model_dir,
)
from training.weak_labels import SIGNAL_NAMES, WeakLabeler
from vigil.detector.onnx_detector import OnnxDetector, load_default_model_dir, write_golden


@pytest.fixture(scope="module")
def conversations(tmp_path_factory: pytest.TempPathFactory) -> list[Conversation]:
    path = tmp_path_factory.mktemp("modern") / "modern.jsonl"
    records = modern_conversations(seed=5, count_grooming=30, count_benign=30)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return read_conversations(path)


def test_template_lines_are_labelled_by_the_move_they_make(conversations: list[Conversation]) -> None:
    examples = modern_examples(conversations, labeler=WeakLabeler.default(), extra_weight=1.0)
    staged_by_suspect = {
        model_text(m.text)
        for c in conversations
        if c.label == 1
        for m in c.messages
        if m.stage and m.author in c.suspects
    }
    positives = [e for e in examples if e.risk == 1]
    assert positives
    assert all(e.role == "offender" and e.text in staged_by_suspect for e in positives)
    roles = {e.role for e in examples}
    assert roles == {"offender", "offender_talk", "child", "lookalike"}
    # The adult's small talk teaches the signals nothing wrong, and the risk head nothing at all.
    assert all(e.weight == 0 and e.risk == 0 for e in examples if e.role == "offender_talk")
    child = {e.weight for e in examples if e.role == "child"}
    lookalike = {e.weight for e in examples if e.role == "lookalike"}
    assert child == {WEIGHT_CHILD} and lookalike == {WEIGHT_LOOKALIKE}
    # The block is balanced: a template line weighs as much on either side.
    positive = sum(e.weight for e in examples if e.risk == 1)
    negative = sum(e.weight for e in examples if e.risk == 0)
    assert positive == pytest.approx(negative)
    halved = modern_examples(conversations, labeler=WeakLabeler.default(), extra_weight=0.5)
    assert sum(e.weight for e in halved) == pytest.approx((positive + negative) / 2)


def test_a_staged_line_gets_its_stage_signal_even_where_no_regex_fires(
    conversations: list[Conversation],
) -> None:
    labeler = WeakLabeler.default()
    examples = {e.text: e for e in modern_examples(conversations, labeler=labeler, extra_weight=1.0)}
    gifts = SIGNAL_NAMES.index("gifts_money")
    staged = [
        m.text
        for c in conversations
        for m in c.messages
        if m.stage == "gifts" and not labeler.labels(m.text)[gifts]
    ]
    assert staged, "every gift line matched a regex: the stage adds nothing to test"
    assert all(examples[text].signals[gifts] == 1 for text in staged)
    # A look-alike's line with the same words gets the regex's labels only, and risk 0.
    lookalike = [e for e in examples.values() if e.role == "lookalike"]
    assert all(e.signals == labeler.labels(e.text) for e in lookalike)


@pytest.fixture(scope="module")
def shipped() -> onnx.ModelProto:
    return onnx.load(str(load_default_model_dir() / "model.onnx"))


def test_reading_and_writing_the_same_heads_changes_nothing(shipped: onnx.ModelProto) -> None:
    state = head_state(shipped)
    assert set(state) == set(HEAD_PARAMETERS)
    assert state["risk.0.weight"].shape == (512, 384)  # torch layout [out, in]
    rewritten = replace_heads(shipped, state)
    before = {i.name: numpy_helper.to_array(i) for i in shipped.graph.initializer}
    after = {i.name: numpy_helper.to_array(i) for i in rewritten.graph.initializer}
    assert before.keys() == after.keys()
    for name, value in before.items():
        assert after[name].dtype == value.dtype, name
        np.testing.assert_array_equal(after[name], value, err_msg=name)
    assert [n.SerializeToString() for n in rewritten.graph.node] == [
        n.SerializeToString() for n in shipped.graph.node
    ]


def test_heads_of_the_wrong_shape_are_refused(shipped: onnx.ModelProto) -> None:
    state = head_state(shipped)
    state["signals.3.weight"] = np.zeros((8, 128), dtype=np.float32)
    with pytest.raises(ValueError, match=r"heads\.signals\.3\.weight"):
        replace_heads(shipped, state)


async def test_new_heads_load_and_score_through_the_detector(
    shipped: onnx.ModelProto, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(load_default_model_dir(), model_dir)
    state = head_state(shipped)
    # A risk head that ignores the text: logit 3 for every message; the signal heads stay as shipped.
    state["risk.3.weight"] = np.zeros_like(state["risk.3.weight"])
    state["risk.3.bias"] = np.array([3.0], dtype=np.float32)
    onnx.save_model(replace_heads(shipped, state), str(model_dir / "model.onnx"))
    write_golden(model_dir)
    texts = ["how old r u", "gg everyone", "ok"]
    new = await OnnxDetector.load(model_dir)
    old = await OnnxDetector.load(load_default_model_dir())
    try:
        new_scores, old_scores = await new.score(texts), await old.score(texts)
    finally:
        await new.aclose()
        await old.aclose()
    expected = 1 / (1 + np.exp(-3.0))
    assert [s.risk for s in new_scores] == pytest.approx([expected] * 3, abs=1e-6)
    assert [s.risk for s in old_scores] != pytest.approx([expected] * 3, abs=1e-3)
    for new_score, old_score in zip(new_scores, old_scores, strict=True):
        assert new_score.signals == pytest.approx(old_score.signals, abs=1e-6)
        assert new_score.features is not None and old_score.features is not None
        # The embedding (the encoder's output) is untouched; the risk logit column carries the new head.
        np.testing.assert_allclose(new_score.features[:384], old_score.features[:384], atol=1e-6)
        assert float(new_score.features[384 + 9]) == pytest.approx(3.0, abs=1e-5)


def test_feature_table_refuses_a_cache_of_other_heads(shipped: onnx.ModelProto, tmp_path: Path) -> None:
    old_dir, new_dir, work = tmp_path / "old", tmp_path / "new", tmp_path / "work"
    shutil.copytree(load_default_model_dir(), old_dir)
    shutil.copytree(load_default_model_dir(), new_dir)
    state = head_state(shipped)
    state["signals.3.bias"] = state["signals.3.bias"] + 1
    onnx.save_model(replace_heads(shipped, state), str(new_dir / "model.onnx"))
    assert model_digest(old_dir) != model_digest(new_dir)

    table = FeatureTable(model_dir=old_dir, work=work)
    work.mkdir()
    ids = [table.id_of(text) for text in ("how old r u", "gg")]
    table.compute_pending()
    first = table.matrix().copy()
    # The shipped model has explanation heads: their signal logits follow the pair model's and the risk logit.
    assert first.shape == (2, 384 + 9 + 1 + 9) and ids == [0, 1]
    # Reopened with the model that computed it: the same rows, nothing recomputed.
    np.testing.assert_array_equal(FeatureTable(model_dir=old_dir, work=work).matrix(), first)
    # Opened with other heads: refused, naming both.
    with pytest.raises(FeatureCacheMismatchError, match="another message model"):
        FeatureTable(model_dir=new_dir, work=work)
    # message_heads hands the cache over with the new heads' logits; from then on it belongs to them.
    replaced = first.copy()
    replaced[:, 384:] += 1
    table.replace_matrix(replaced, model_dir=new_dir)
    np.testing.assert_array_equal(FeatureTable(model_dir=new_dir, work=work).matrix(), replaced)
    with pytest.raises(FeatureCacheMismatchError):
        FeatureTable(model_dir=old_dir, work=work)
    with pytest.raises(ValueError, match="one row per cached text"):
        table.replace_matrix(replaced[:1], model_dir=new_dir)


async def test_explanation_heads_change_the_signals_and_nothing_the_pair_model_reads(
    shipped: onnx.ModelProto, tmp_path: Path
) -> None:
    # The shipped model (2026.12.2) has explanation heads already: new ones replace them and nothing else.
    assert PAIR_SIGNALS_OUTPUT in {o.name for o in shipped.graph.output}
    state = head_state(shipped)
    # Explanation heads that fire every signal; the risk weights given here must be ignored.
    state["signals.3.bias"] = state["signals.3.bias"] + 30.0
    state["risk.3.bias"] = state["risk.3.bias"] + 30.0
    explained = with_explanation_heads(shipped, state)
    assert [o.name for o in explained.graph.output] == [o.name for o in shipped.graph.output]
    await _same_pair_model_new_explanations(explained, tmp_path / "model")


async def test_explanation_heads_added_to_a_model_without_them(
    shipped: onnx.ModelProto, tmp_path: Path
) -> None:
    # A model as training.train exports it: one set of signal heads, the ones the pair model reads.
    plain = onnx.ModelProto()
    plain.CopyFrom(shipped)
    pair_heads = {
        i.name: numpy_helper.to_array(i) for i in shipped.graph.initializer if i.name.startswith("pair_")
    }
    for field, keep in (
        (plain.graph.node, [n for n in plain.graph.node if not n.name.startswith("/pair_heads/")]),
        (plain.graph.initializer, [i for i in plain.graph.initializer if not i.name.startswith("pair_")]),
        (plain.graph.output, [o for o in plain.graph.output if o.name != PAIR_SIGNALS_OUTPUT]),
    ):
        kept = [type(item).FromString(item.SerializeToString()) for item in keep]
        del field[:]
        field.extend(kept)
    state = head_state(plain)
    for name, value in pair_heads.items():
        state[name.removeprefix("pair_heads.")] = value.T if name.endswith("weight") else value
    plain = replace_heads(plain, state)
    assert len(pair_heads) == 4 and PAIR_SIGNALS_OUTPUT not in {o.name for o in plain.graph.output}

    state["signals.3.bias"] = state["signals.3.bias"] + 30.0
    explained = with_explanation_heads(plain, state)
    assert PAIR_SIGNALS_OUTPUT in {o.name for o in explained.graph.output}
    await _same_pair_model_new_explanations(explained, tmp_path / "model")


def _with_plain_pair_model(model_dir: Path) -> None:
    """A pair model that reads only the pair signals (no ``explanation_signals``, as 2026.12.2's did) in
    place of ``model_dir``'s: the kind whose input ``--explanations-only`` must leave as it is."""
    weights = random_weights(feature_size=384 + 9 + 1, state_size=8)
    onnx.save_model(build_gru_graph(weights), str(model_dir / "pair_model.onnx"))
    path = model_dir / "metadata.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))
    metadata["pair_model"].update(feature_size=384 + 9 + 1, state_size=8, explanation_signals=False)
    metadata["pair_model"].pop("text_cues", None)  # nor the age cues (2026.12.6)
    path.write_text(json.dumps(metadata), encoding="utf-8")
    write_golden(model_dir)


async def _same_pair_model_new_explanations(model: onnx.ModelProto, model_dir: Path) -> None:
    """``model`` in a copy of the shipped model dir, with a pair model that reads the pair signals only: the
    same risks, features and pair risks as the shipped model, and every explanation signal firing."""
    shipped_dir = model_dir.parent / "shipped"
    shutil.copytree(load_default_model_dir(), shipped_dir)
    _with_plain_pair_model(shipped_dir)
    shutil.copytree(shipped_dir, model_dir)
    onnx.save_model(model, str(model_dir / "model.onnx"))
    write_golden(model_dir)
    texts = ["how old r u", "gg everyone", "add me on snap lol", ""]
    new = await OnnxDetector.load(model_dir)
    old = await OnnxDetector.load(shipped_dir)
    try:
        new_scores, old_scores = await new.score(texts), await old.score(texts)
        pair = new.pair_model
        new_state = old_state = pair.initial_state()
        for index, (new_score, old_score) in enumerate(zip(new_scores, old_scores, strict=True)):
            author, other = ("a", "b") if index % 2 == 0 else ("b", "a")
            new_state = pair.update(state=new_state, author_id=author, other_id=other, score=new_score)
            old_state = old.pair_model.update(
                state=old_state, author_id=author, other_id=other, score=old_score
            )
        assert pair.author_risks(state=new_state) == old.pair_model.author_risks(state=old_state)
    finally:
        await new.aclose()
        await old.aclose()
    for new_score, old_score in zip(new_scores, old_scores, strict=True):
        assert all(p > 0.99 for p in new_score.signals)  # explanations: the new heads
        assert new_score.risk == old_score.risk  # the risk head is the shipped one
        assert new_score.features is not None and old_score.features is not None
        np.testing.assert_array_equal(new_score.features, old_score.features)  # the pair model's input


async def test_a_pair_model_written_for_a_model_with_explanation_heads_reads_both_signal_heads(
    tmp_path: Path,
) -> None:
    # training.pair_head trains on pair_signal_logits and, after the risk logit, the explanation heads'
    # signal_logits where model.onnx has both (message_features), so the model dir it writes must tell
    # serving to feed the same columns in the same order.
    shipped_dir = load_default_model_dir()
    out = tmp_path / "out"
    feature_size = 384 + 9 + 1 + 9
    weights = random_weights(feature_size=feature_size, state_size=8)
    pair_path = tmp_path / "pair_model.onnx"
    onnx.save_model(build_gru_graph(weights), str(pair_path))
    write_model_dir(
        shipped_dir,
        out,
        onnx_path=pair_path,
        threshold=0.9,
        sustain=2,
        feature_size=feature_size,
        version="test",
        state_size=8,
        members=("full", "behaviour"),
        policy_set=True,
        age_gate=True,
    )
    metadata = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    # A gated pair model names the gate's known bias.
    assert metadata["known_biases"].count(AGE_GATE_BIAS) == 1
    # The policy conversations are named among the data, as what chose the threshold, not training data.
    assert metadata["training_data"].count(POLICY_SOURCE_ENTRY) == 1
    assert metadata["pair_model"]["signals_output"] == PAIR_SIGNALS_OUTPUT
    assert metadata["pair_model"]["explanation_signals"] is True
    assert metadata["pair_model"]["members"] == ["full", "behaviour"]
    session, tokenizer = message_session(out, threads=1)
    written = await OnnxDetector.load(out)
    try:
        (score,) = await written.score(["2800 if u add my snap"])
    finally:
        await written.aclose()
    assert score.features is not None and score.features.shape == (feature_size,)
    expected = message_features(session, tokenizer, ["2800 if u add my snap"])[0]
    np.testing.assert_allclose(score.features, expected, atol=1e-5)
    # The last columns are the explanations' signals (what the alert shows), the first signal columns the
    # pair model's own heads (2026.11's): both reach the pair model.
    explanation = 1.0 / (1.0 + np.exp(-score.features[-9:].astype(np.float64)))
    np.testing.assert_allclose(explanation, score.signals, atol=1e-5)
    assert not np.allclose(score.features[384:393], score.features[-9:], atol=0.1)


async def test_new_heads_reach_the_pair_models_signals_of_a_model_with_explanation_heads(
    shipped: onnx.ModelProto, tmp_path: Path
) -> None:
    # Retraining both heads of 2026.12.2 rewrites the feature cache with the new signal logits, so the pair
    # model's copy (pair_signal_logits, what serving feeds it) must carry the same new signals.
    state = head_state(shipped)
    state["signals.3.bias"] = state["signals.3.bias"] + 30.0
    model_dir = tmp_path / "model"
    shutil.copytree(load_default_model_dir(), model_dir)
    onnx.save_model(with_new_heads(shipped, state), str(model_dir / "model.onnx"))
    write_golden(model_dir)
    detector = await OnnxDetector.load(model_dir)
    shipped_detector = await OnnxDetector.load(load_default_model_dir())
    try:
        (score,) = await detector.score(["gg everyone"])
        (before,) = await shipped_detector.score(["gg everyone"])
    finally:
        await detector.aclose()
        await shipped_detector.aclose()
    assert score.features is not None
    assert all(p > 0.99 for p in score.signals)
    # The pair model's signal logits are the new explanation heads' too: the shipped explanation logits + 30.
    explanation_logits = np.log(np.array(before.signals) / (1 - np.array(before.signals)))
    np.testing.assert_allclose(score.features[384:393], explanation_logits + 30.0, atol=1e-3)


def test_explanations_only_refuses_a_pair_model_that_reads_the_explanation_signals() -> None:
    shipped = json.loads((load_default_model_dir() / "metadata.json").read_text(encoding="utf-8"))
    # 2026.12.3's behaviour members read the explanation heads: new ones would move its alerts.
    assert shipped["pair_model"]["explanation_signals"] is True
    with pytest.raises(ValueError, match="pair model reads the explanation signals"):
        check_explanations_only(shipped)
    shipped["pair_model"]["explanation_signals"] = False
    check_explanations_only(shipped)  # 2026.12.2's kind: explanations alone may change
