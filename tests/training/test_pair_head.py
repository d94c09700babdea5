"""The pair model's training rules that must match serving: pairing, attribution, alert replay, calibration.

Torch-free parts only (torch is in the train extra, not the test lock); the trained model's own behaviour is
tested through the shipped ``pair_model.onnx`` in tests/detector.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from training.data import Conversation, Message
from training.pair_head import (
    BEHAVIOUR_CUES_BIAS,
    ECHO_CUES_BIAS,
    EMBEDDING_OUTPUT,
    INDIRECT_CUES_BIAS,
    LATE_START_MIN_MESSAGES,
    LATE_START_OFFSETS,
    MAX_PAIR_MESSAGES,
    MEMBER_KINDS,
    SECRECY_LET_CUES_BIAS,
    SHARED_FAMILY_CUES_BIAS,
    TEXT_CUES_BIAS,
    THIRD_PERSON_CUES_BIAS,
    WRITER_ADULT,
    WRITER_MINOR,
    WRITER_UNKNOWN,
    WRITTEN_SOURCES,
    CandidateSequence,
    augment,
    choose_policy,
    cue_biases,
    fit_calibration,
    link_restyled,
    member_mask,
    mine_hard_negatives,
    platt_fit,
    production_pairs,
    replay_pairs,
    restyle_consistency,
    segment_figures,
    segment_sequence,
    sequences_of,
    source_weight,
    to_record,
    with_embedding_output,
    writer_role,
)
from training.pair_head import _source_weight as main_source_weight
from training.pair_head import _writer_age_sum as writer_age_sum
from vigil.bots.core.pairing import PairResolver
from vigil.bots.core.replay import record_to_messages
from vigil.bots.core.segments import segment_texts
from vigil.detector.pair import FLATTENED_OWN, sigmoid

OFF, DEC, BYSTANDER = "off-aaaaaaaaaaaa", "dec-bbbbbbbbbbbb", "u-cccccccccccc"


def _conversation(
    *, setting: str = "dm", interleaved: bool = True, authors: list[str] | None = None
) -> Conversation:
    order = authors or [OFF, DEC, OFF, DEC, OFF, DEC]
    return Conversation(
        id="c-1",
        source="pj_chatcoder1",
        label=1,
        setting=setting,
        interleaved=interleaved,
        suspects=(OFF,),
        messages=tuple(Message(author=a, text=f"message {i} from {a[:3]}") for i, a in enumerate(order)),
    )


def _texts() -> tuple[dict[str, int], object]:
    index: dict[str, int] = {}

    def id_of(text: str) -> int:
        return index.setdefault(text, len(index))

    return index, id_of


def test_pairs_are_the_production_resolvers() -> None:
    conversation = _conversation(setting="channel", authors=[OFF, DEC, BYSTANDER, OFF, DEC, OFF])
    resolver = PairResolver()
    expected: dict[tuple[str, str], list[int]] = {}
    for i, message in enumerate(record_to_messages(to_record(conversation), platform="train")):
        for key in resolver.resolve(message, bot_user_ids=frozenset()):
            expected.setdefault((key.user_a, key.user_b), []).append(i)
    assert production_pairs(conversation) == expected
    assert (DEC, OFF) in expected  # A, B, A turn-taking in a channel forms the pair


def test_each_member_of_a_pair_is_a_candidate_with_own_flags_and_label() -> None:
    _, id_of = _texts()
    sequences = sequences_of(_conversation(), texts=id_of, rng=random.Random(0))  # type: ignore[arg-type]
    by_candidate = {s.candidate: s for s in sequences}
    assert set(by_candidate) == {OFF, DEC}
    assert by_candidate[OFF].label == 1 and by_candidate[DEC].label == 0
    assert by_candidate[OFF].own.tolist() == [1, 0, 1, 0, 1, 0]
    assert by_candidate[DEC].own.tolist() == [0, 1, 0, 1, 0, 1]
    # The same messages, in order: the state sees both sides.
    assert by_candidate[OFF].text_ids.tolist() == by_candidate[DEC].text_ids.tolist()
    assert by_candidate[DEC].weight > 1.0  # decoys are style-matched hard negatives


def test_non_interleaved_sides_are_own_message_sequences() -> None:
    _, id_of = _texts()
    conversation = _conversation(interleaved=False, authors=[OFF] * 4 + [DEC] * 3)
    sequences = sequences_of(conversation, texts=id_of, rng=random.Random(0))  # type: ignore[arg-type]
    assert {s.candidate: len(s.text_ids) for s in sequences} == {OFF: 4, DEC: 3}
    assert all(s.own.min() == 1.0 for s in sequences)


def test_a_late_start_copies_a_long_pair_from_later_on_and_changes_nothing_else() -> None:
    long = dataclasses.replace(
        _conversation(),
        messages=tuple(
            Message(author=(OFF, DEC)[i % 2], text=f"message {i}") for i in range(MAX_PAIR_MESSAGES + 40)
        ),
    )
    _, id_of = _texts()
    plain = sequences_of(long, texts=id_of, rng=random.Random(0))  # type: ignore[arg-type]
    late = sequences_of(
        long,
        texts=id_of,  # type: ignore[arg-type]
        rng=random.Random(0),
        late_starts=1.0,
        late_rng=random.Random(1),
    )
    assert [_key(s) for s in late[: len(plain)]] == [_key(s) for s in plain]
    copies = late[len(plain) :]
    assert {s.candidate: s.label for s in copies} == {OFF: 1, DEC: 0}
    for copy in copies:
        start = int(copy.pair_id.split("@", 1)[1].split(":", 1)[0])
        assert LATE_START_OFFSETS[0] <= start <= LATE_START_OFFSETS[1]
        original = next(s for s in plain if s.candidate == copy.candidate)
        # The same messages from ``start`` on, to the same end: nothing past MAX_PAIR_MESSAGES to encode.
        assert copy.text_ids.tolist() == original.text_ids[start:].tolist()
        assert copy.own.tolist() == original.own[start:].tolist()
        assert copy.pair_id != original.pair_id and copy.conversation_id == original.conversation_id
    assert len({s.pair_id for s in copies}) == 1  # both members of the copy are one pair


def test_a_pair_too_short_for_a_late_start_gets_none() -> None:
    short = dataclasses.replace(
        _conversation(),
        messages=tuple(
            Message(author=(OFF, DEC)[i % 2], text=f"message {i}") for i in range(LATE_START_MIN_MESSAGES - 1)
        ),
    )
    _, id_of = _texts()
    kwargs: dict[str, Any] = {"texts": id_of, "rng": random.Random(0)}
    late = sequences_of(short, late_starts=1.0, late_rng=random.Random(1), **kwargs)
    assert [_key(s) for s in late] == [_key(s) for s in sequences_of(short, **kwargs)]


def _key(sequence: CandidateSequence) -> tuple[Any, ...]:
    return (
        sequence.pair_id,
        sequence.candidate,
        sequence.label,
        sequence.weight,
        sequence.text_ids.tolist(),
        sequence.own.tolist(),
    )


def _sequence(candidate: str, label: int, own: list[int]) -> CandidateSequence:
    return CandidateSequence(
        conversation_id="c-1",
        source="pj_pj24",
        label=label,
        text_ids=np.arange(len(own)),
        own=np.array(own, dtype=np.float32),
        weight=1.0,
        pair_id="c-1:p",
        candidate=candidate,
        interleaved=True,
    )


def test_replay_reads_a_members_risk_at_their_own_messages_only() -> None:
    suspect = _sequence(OFF, 1, [1, 0, 1, 0, 1, 0])
    decoy = _sequence(DEC, 0, [0, 1, 0, 1, 0, 1])
    # The decoy's logits are high at the suspect's messages: never read, so the decoy is never named.
    decoy_logits = np.array([9.0, -9.0, 9.0, -9.0, 9.0, -9.0])
    suspect_logits = np.array([-9.0, 9.0, 9.0, 9.0, 9.0, 9.0])
    (outcome,) = replay_pairs([suspect, decoy], [suspect_logits, decoy_logits], threshold=0.7, sustain=2)
    # Message 2 is the suspect's first high own message; message 3 (the decoy's) sustains the pair risk.
    assert outcome.first_alert == 3
    assert outcome.named == OFF
    assert outcome.named_own_messages == 2


def test_replay_honours_sustain_and_limit() -> None:
    suspect = _sequence(OFF, 1, [1, 0, 1, 0, 1, 0])
    decoy = _sequence(DEC, 0, [0, 1, 0, 1, 0, 1])
    logits = [np.full(6, 9.0), np.full(6, -9.0)]
    (late,) = replay_pairs([suspect, decoy], logits, threshold=0.7, sustain=4)
    assert late.first_alert == 3
    (cut,) = replay_pairs([suspect, decoy], logits, threshold=0.7, sustain=4, limit=3)
    assert cut.first_alert is None


def _pair(conversation_id: str, label: int, risk: float) -> tuple[list[CandidateSequence], list[np.ndarray]]:
    """A six-message pair whose first member's risk is ``risk`` throughout (the other's never counts)."""
    own = [1, 0, 1, 0, 1, 0]
    first = dataclasses.replace(
        _sequence(OFF, label, own), conversation_id=conversation_id, pair_id=f"{conversation_id}:p"
    )
    second = dataclasses.replace(
        _sequence(DEC, 0, [1 - o for o in own]),
        conversation_id=conversation_id,
        pair_id=f"{conversation_id}:p",
    )
    logit = float(np.log(risk / (1 - risk)))
    return [first, second], [np.full(6, logit), np.full(6, -9.0)]


def _policy_of(pairs: list[tuple[str, int, float]]) -> tuple[float, int]:
    sequences: list[CandidateSequence] = []
    logits: list[np.ndarray] = []
    for conversation_id, label, risk in pairs:
        more, more_logits = _pair(conversation_id, label, risk)
        sequences += more
        logits += more_logits
    threshold, sustain, _ = choose_policy(sequences, logits)
    return threshold, sustain


def test_the_policy_weighs_each_false_alert_against_three_conversations_found() -> None:
    # 0.90 finds two groomings with no false alert; 0.70 would find a third at the cost of a look-alike.
    assert _policy_of([("g1", 1, 0.97), ("g2", 1, 0.92), ("g3", 1, 0.72), ("n1", 0, 0.82)]) == (0.9, 2)
    # Four more found outweigh one false alert: the highest threshold that finds them.
    four = [(f"g{i}", 1, 0.72) for i in range(4)]
    assert _policy_of([*four, ("n1", 0, 0.82)]) == (0.7, 2)
    # Two more found do not; with nothing found, the most margin. (Sustain 2 above: the same catches, a
    # message earlier.)
    assert _policy_of([("g1", 1, 0.72), ("g2", 1, 0.72), ("n1", 0, 0.82)]) == (0.95, 3)


def test_platt_calibration_recovers_a_known_scale() -> None:
    rng = np.random.default_rng(0)
    true = rng.normal(0.0, 2.0, size=4000)
    labels = (rng.random(4000) < 1 / (1 + np.exp(-(0.5 * true - 1.0)))).astype(int)
    sequences = [_sequence("x", int(y), [1]) for y in labels]
    a, b = fit_calibration(sequences, [np.array([t]) for t in true])
    assert a == pytest.approx(0.5, abs=0.1)
    assert b == pytest.approx(-1.0, abs=0.15)
    # Segments: every chunk is a step of the member, at own == FLATTENED_OWN; other-member steps are not.
    flattened = [
        dataclasses.replace(s, own=np.array([FLATTENED_OWN, 0.0], dtype=np.float32), text_ids=np.arange(2))
        for s in sequences
    ]
    assert fit_calibration(flattened, [np.array([t, 50.0]) for t in true]) == pytest.approx((a, b))


def test_platt_calibration_does_not_run_away_on_saturated_logits() -> None:
    # A model trained to a tiny loss: logits in the tens, nearly separable. Plain Newton steps from (1, 0)
    # overshot here and returned a = -2.6e9 in a real run.
    rng = np.random.default_rng(1)
    labels = (rng.random(20000) < 0.05).astype(float)
    logits = np.where(labels > 0, rng.normal(18.0, 9.0, labels.size), rng.normal(-25.0, 9.0, labels.size))
    a, b = platt_fit(logits, labels)
    assert 0.0 < a < 5.0
    z = a * logits + b
    loss = float(np.sum(np.logaddexp(0.0, z) - labels * z))
    # No worse than the identity (a=1, b=0) and than any nearby (a, b): it is the optimum.
    for other_a, other_b in ((1.0, 0.0), (a + 0.01, b), (a - 0.01, b), (a, b + 0.1), (a, b - 0.1)):
        z_other = other_a * logits + other_b
        assert loss <= float(np.sum(np.logaddexp(0.0, z_other) - labels * z_other)) + 1e-6


def test_embedding_output_is_added_once() -> None:
    node = onnx.helper.make_node("Identity", ["x"], ["/encoder/Div_1_output_0"])
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 384])],
        [
            onnx.helper.make_tensor_value_info(
                "/encoder/Div_1_output_0", onnx.TensorProto.FLOAT, ["batch", 384]
            )
        ],
    )
    model = onnx.helper.make_model(graph)
    once = with_embedding_output(model)
    twice = with_embedding_output(once)
    names = [o.name for o in twice.graph.output]
    assert names.count(EMBEDDING_OUTPUT) == 1
    assert [o.name for o in model.graph.output] == ["/encoder/Div_1_output_0"]  # the input is not modified


@pytest.mark.parametrize("explanation_signals", [False, True])
def test_each_member_kind_reads_its_own_feature_columns(explanation_signals: bool) -> None:
    embedding, signals = 6, 9
    size = embedding + signals + 1 + (signals if explanation_signals else 0)
    risk = embedding + signals

    def columns(kind: str) -> list[int]:
        mask = member_mask(kind, feature_size=size, explanation_signals=explanation_signals)
        return [int(i) for i in np.flatnonzero(mask)]

    # full: what the pair model has always read; never the explanation heads' columns.
    assert columns("full") == list(range(risk + 1))
    assert columns("embedding") == list(range(embedding))
    # behaviour: signal and risk logits; the explanation heads' signals where the features hold them.
    pair_signals = list(range(embedding, risk))
    behaviour = [risk, *range(size - signals, size)] if explanation_signals else [*pair_signals, risk]
    assert columns("behaviour") == behaviour


def test_every_member_kind_reads_the_age_cues_after_its_own_columns() -> None:
    embedding, signals, cues = 6, 9, 5
    size = embedding + 2 * signals + 1 + cues
    for kind in MEMBER_KINDS:
        mask = member_mask(kind, feature_size=size, explanation_signals=True, text_cues=cues)
        without = member_mask(kind, feature_size=size - cues, explanation_signals=True)
        assert list(mask[: size - cues]) == list(without)
        assert list(mask[size - cues :]) == [1.0] * cues


def test_a_model_reading_the_steps_names_their_bias_too() -> None:
    assert cue_biases("age_v1") == cue_biases("age_v2") == (TEXT_CUES_BIAS,)
    assert cue_biases("behaviour_v3") == (TEXT_CUES_BIAS, BEHAVIOUR_CUES_BIAS)
    assert cue_biases("behaviour_v4") == (TEXT_CUES_BIAS, BEHAVIOUR_CUES_BIAS, INDIRECT_CUES_BIAS)
    assert cue_biases("behaviour_v5") == (
        TEXT_CUES_BIAS,
        BEHAVIOUR_CUES_BIAS,
        INDIRECT_CUES_BIAS,
        ECHO_CUES_BIAS,
    )
    assert cue_biases("behaviour_v6") == (*cue_biases("behaviour_v5"), THIRD_PERSON_CUES_BIAS)
    assert cue_biases("behaviour_v7") == (*cue_biases("behaviour_v6"), SECRECY_LET_CUES_BIAS)
    assert cue_biases("behaviour_v8") == (*cue_biases("behaviour_v7"), SHARED_FAMILY_CUES_BIAS)


def test_a_segment_is_read_as_vigil_eval_reads_it() -> None:
    index, id_of = _texts()
    text = "hey how r u?? im 13 lol\ndont tell ur mom ok. " + "word " * 80
    segment = {"id": "s-1", "source": "sexting_adult", "label": 0, "text": text}
    sequence = segment_sequence(segment, texts=id_of, max_length=64)  # type: ignore[arg-type]
    assert sequence is not None
    chunks = segment_texts(text, max_length=64)
    assert set(index) == set(chunks)
    assert sequence.text_ids.tolist() == [index[c] for c in chunks]
    assert sequence.own.tolist() == [FLATTENED_OWN] * len(chunks)
    assert (sequence.label, sequence.weight) == (0, 8.0)  # adult sexting weighs as in conversations
    empty = {"id": "s-2", "source": "pj_chatcoder1", "label": 1, "text": "!!! ... :)"}
    assert segment_sequence(empty, texts=id_of, max_length=64) is None  # type: ignore[arg-type]


def test_a_segment_scores_its_highest_chunk() -> None:
    # The groomer's segment peaks late; the ordinary one is high on average but lower at its peak.
    groomer = dataclasses.replace(_sequence("segment", 1, [1, 1, 1]), own=np.full(3, FLATTENED_OWN))
    ordinary = dataclasses.replace(_sequence("segment", 0, [1, 1, 1]), own=np.full(3, FLATTENED_OWN))
    logits = [np.array([-3.0, -2.0, 4.0]), np.array([2.0, 2.5, 2.0])]
    assert segment_figures([groomer, ordinary], logits) == {"segments": 2, "positive": 1, "pr_auc": 1.0}
    assert segment_figures([groomer, ordinary], logits[::-1])["pr_auc"] == 0.5


def test_mining_marks_ordinary_sequences_that_reached_the_threshold_at_their_own_messages() -> None:
    grooming = _sequence(OFF, 1, [1, 0, 1])
    alerted = _sequence(DEC, 0, [1, 0, 1])
    only_the_other_high = _sequence(BYSTANDER, 0, [1, 0, 1])
    logits = [np.array([3.0, 0.0, 3.0]), np.array([-2.0, 0.0, 0.5]), np.array([-2.0, 5.0, -1.0])]
    mined, count = mine_hard_negatives(
        [grooming, alerted, only_the_other_high], logits, threshold=0.6, weight=4.0
    )
    assert count == 1
    assert (mined[1].mined, mined[1].weight) == (True, 4.0)
    assert mined[0] == grooming and mined[2] == only_the_other_high  # positives are never mined


def test_probabilities_of_extreme_logits_do_not_overflow() -> None:
    # The export check compares probabilities with the serving sigmoid; confident negatives reach -700.
    assert sigmoid(0.0) == 0.5
    assert sigmoid(-1000.0) == 0.0 and sigmoid(1000.0) == 1.0


@pytest.mark.parametrize("source", WRITTEN_SOURCES)
def test_conversations_written_for_vigil_are_weighted_alike_and_never_restyled(source: str) -> None:
    assert source_weight(source, 0) == 2.0  # look-alikes: hard negatives
    assert source_weight(source, 1) == 1.0
    benign = [
        dataclasses.replace(_conversation(), id=f"c-{i}", source=source, label=0, suspects=())
        for i in range(40)
    ]
    assert augment(benign, seed=0) == []  # already modern: no chat-speak copies
    ordinary = [dataclasses.replace(c, source="personachat") for c in benign]
    assert augment(ordinary, seed=0)  # ordinary chat gets some


def test_negative_weights_are_read_as_source_equals_weight() -> None:
    assert main_source_weight("sexting_adult=16") == ("sexting_adult", 16.0)
    with pytest.raises(argparse.ArgumentTypeError, match="SOURCE=WEIGHT"):
        main_source_weight("sexting_adult")


def test_a_mixed_style_copy_restyles_only_the_others_and_leaves_the_other_copies_as_they_were() -> None:
    texts = ["hey wat r u up 2", "nm u", "ur cute lol", "thx", "wanna meet up", "idk"]
    grooming = dataclasses.replace(
        _conversation(),
        messages=tuple(
            Message(author=author, text=text)
            for author, text in zip([OFF, DEC, OFF, DEC, OFF, DEC], texts, strict=True)
        ),
    )
    plain = augment([grooming], seed=3, standardised_share=1.0)
    mixed = augment([grooming], seed=3, standardised_share=1.0, mixed_style=True)
    standard = next(c for c in plain if c.id.endswith("~std"))
    # The same rng draws: every copy made without it is made the same with it (the feature cache holds).
    assert [c for c in mixed if not c.id.endswith("~vstd")] == plain
    (victim_only,) = [c for c in mixed if c.id.endswith("~vstd")]
    for original, restyled, copy in zip(
        grooming.messages, standard.messages, victim_only.messages, strict=True
    ):
        assert copy.author == original.author
        assert copy.text == (original.text if original.author == OFF else restyled.text)
    assert [m.text for m in victim_only.messages if m.author == DEC] != texts[1::2]  # restyled indeed
    negative = dataclasses.replace(grooming, label=0, suspects=())
    assert not any(c.id.endswith("~vstd") for c in augment([negative], seed=3, mixed_style=True))


def test_restyled_copies_are_linked_to_their_originals_member_by_member_and_step_by_step() -> None:
    _, id_of = _texts()
    original = dataclasses.replace(
        _conversation(),
        messages=tuple(
            Message(author=a, text=t)
            for a, t in zip(
                [OFF, DEC, OFF, DEC], ["hey wat r u up 2", "nm u", "ur cute lol", "thx"], strict=True
            )
        ),
    )
    (standard,) = [c for c in augment([original], seed=0, standardised_share=1.0) if c.id.endswith("~std")]
    rng = random.Random(0)
    sequences = sequences_of(original, texts=id_of, rng=rng) + sequences_of(  # type: ignore[arg-type]
        standard,
        texts=id_of,  # type: ignore[arg-type]
        rng=rng,
    )
    # A copy whose pair the original lacks (another length) stays unlinked.
    stray = dataclasses.replace(sequences[-1], text_ids=sequences[-1].text_ids[:2], own=sequences[-1].own[:2])
    linked, count = link_restyled([*sequences, stray])
    assert count == 2
    by_key = {(s.conversation_id, s.candidate): s for s in linked[:4]}
    for candidate in (OFF, DEC):
        copy, source = by_key[(standard.id, candidate)], by_key[(original.id, candidate)]
        assert copy.original_ids is not None and copy.original_ids.tolist() == source.text_ids.tolist()
        assert copy.text_ids.tolist() != source.text_ids.tolist()  # restyled indeed
        assert source.original_ids is None  # originals are never linked
    assert linked[-1].original_ids is None


def test_restyle_consistency_pulls_a_copy_only_towards_its_original_and_only_from_the_wrong_side() -> None:
    torch = pytest.importorskip("torch")  # training extra
    original = torch.tensor([[2.0, 2.0, -2.0, -2.0]])
    copy = torch.tensor([[0.0, 3.0, 0.0, -3.0]], requires_grad=True)
    for label, wrong_side in ((1.0, [True, False, False, True]), (0.0, [False, True, True, False])):
        copy.grad = None
        restyle_consistency(copy, original, torch.full_like(original, label)).sum().backward()
        gradient = copy.grad[0].tolist()
        # A suspect's copy under the original is pulled up (negative gradient); a non-suspect's copy over it
        # down; a copy already on the right side is left alone.
        assert [g != 0.0 for g in gradient] == wrong_side
        assert all(g < 0.0 if label else g > 0.0 for g, w in zip(gradient, wrong_side, strict=True) if w)


def test_a_writer_is_a_child_or_an_adult_only_where_the_record_says_so() -> None:
    pj = _conversation(setting="channel", authors=[OFF, DEC, BYSTANDER, OFF, DEC, OFF])
    assert [writer_role(pj, a) for a in (OFF, DEC, BYSTANDER)] == [WRITER_ADULT, WRITER_MINOR, WRITER_UNKNOWN]
    child, adult = "u-dddddddddddd", "u-eeeeeeeeeeee"
    written_dm = dataclasses.replace(pj, source="vigil_written_train", setting="dm", suspects=(adult,))
    assert [writer_role(written_dm, a) for a in (adult, child)] == [WRITER_ADULT, WRITER_MINOR]
    # In a grooming channel a non-suspect may be another adult: unknown.
    assert writer_role(dataclasses.replace(written_dm, setting="channel"), child) == WRITER_UNKNOWN
    look_alike = dataclasses.replace(written_dm, label=0, suspects=())
    assert (
        writer_role(look_alike, child) == WRITER_UNKNOWN and writer_role(look_alike, adult) == WRITER_UNKNOWN
    )
    sexting = dataclasses.replace(look_alike, source="sexting_adult")
    assert writer_role(sexting, child) == WRITER_ADULT
    # A generated or realistic record names its writers in meta, look-alikes included.
    named = dataclasses.replace(look_alike, meta={"child_authors": [child], "adult_authors": [adult]})
    roles = [writer_role(named, a) for a in (adult, child, BYSTANDER)]
    assert roles == [WRITER_ADULT, WRITER_MINOR, WRITER_UNKNOWN]
    assert writer_role(dataclasses.replace(named, meta={"child_authors": child}), child) == WRITER_UNKNOWN

    _, id_of = _texts()
    by_candidate = {
        s.candidate: s
        for s in sequences_of(_conversation(), texts=id_of, rng=random.Random(0))  # type: ignore[arg-type]
    }
    # Both members' sequences carry every step's writer: the suspect's steps adult, the decoy's child.
    for sequence in by_candidate.values():
        assert sequence.writer_minor is not None
        assert sequence.writer_minor.tolist() == [WRITER_ADULT, WRITER_MINOR] * 3
    ordinary = dataclasses.replace(_conversation(), source="personachat", label=0, suspects=())
    assert all(
        s.writer_minor is None
        for s in sequences_of(ordinary, texts=id_of, rng=random.Random(0))  # type: ignore[arg-type]
    )


def test_the_writer_age_loss_reads_only_the_steps_whose_writer_is_known() -> None:
    torch = pytest.importorskip("torch")  # training extra
    logits = torch.zeros((1, 4), requires_grad=True)

    class Member:
        def writer_logits(self, x: object, own: object) -> object:
            return logits

    sequence = dataclasses.replace(
        _sequence(OFF, 1, [1, 0, 1]),
        writer_minor=np.array([WRITER_ADULT, WRITER_MINOR, WRITER_UNKNOWN], dtype=np.float32),
    )
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the fourth step is padding
    writer_age_sum(Member(), [sequence], x=None, own=None, mask=mask).backward()
    # An adult's message is pushed towards "adult" (positive gradient), a child's towards "child".
    assert logits.grad[0].tolist() == [0.5, -0.5, 0.0, 0.0]


def test_a_state_only_member_reads_the_message_through_its_state_alone() -> None:
    torch = pytest.importorskip("torch")  # training extra
    from training.pair_head import STATE_SIZE, build_model  # noqa: PLC0415

    size = 32
    torch.manual_seed(0)
    both = build_model(size).eval()
    torch.manual_seed(0)
    state_only = build_model(size, state_only=True).eval()
    features = torch.randn(1, size)
    own = torch.ones(1, 1)
    state = torch.zeros(1, STATE_SIZE)
    with torch.no_grad():
        member = state_only.chat[0]
        logit, next_state = member.step(features, own, state)
        # The risk is the output layer on the new state, whatever the message in hand adds beside it.
        blank = torch.zeros(1, member.out.in_features - STATE_SIZE)
        expected = member.out(torch.cat([next_state, blank], -1))
        assert torch.allclose(logit, expected.squeeze(-1))
        # The default reads both, as every shipped model does; the weights are drawn alike either way.
        assert float(both.chat[0].skip) == 1.0 and float(member.skip) == 0.0
        assert torch.equal(both.chat[0].out.weight, member.out.weight)


def test_a_cue_memory_counts_each_cue_by_whose_message_it_was() -> None:
    torch = pytest.importorskip("torch")  # training extra
    from training.pair_head import CUE_MEMORY_DECAY, cue_memory_step  # noqa: PLC0415

    counts = torch.zeros(1, 4)
    school_and_secrecy = torch.tensor([[1.0, 1.0]])
    counts = cue_memory_step(counts, cues=school_and_secrecy, own=torch.ones(1, 1), other=torch.zeros(1, 1))
    counts = cue_memory_step(
        counts, cues=torch.tensor([[1.0, 0.0]]), own=torch.zeros(1, 1), other=torch.ones(1, 1)
    )
    # Own counts first, then the other's; each pair message decays what came before.
    assert torch.allclose(counts, torch.tensor([[CUE_MEMORY_DECAY, CUE_MEMORY_DECAY, 1.0, 0.0]]))
    # A flattened chunk (neither own nor other) leaves the memory as it was.
    kept = cue_memory_step(counts, cues=school_and_secrecy, own=torch.zeros(1, 1), other=torch.zeros(1, 1))
    assert torch.equal(kept, counts)


def _steps_as_it_trains(model: Any, x: Any, own: Any) -> Any:
    """Steps ``model`` message by message, as serving does, checks each risk against training's path over
    the whole sequence (1e-5), and returns the state after the last message."""
    import torch  # noqa: PLC0415

    state = torch.zeros(1, model.state_size)
    stepped = []
    with torch.no_grad():
        trained = model.forward_sequence(x, own)[0]
        for t in range(x.shape[1]):
            logit, state = model(x[:, t], own[:, t : t + 1], state)
            stepped.append(float(logit[0]))
    assert torch.allclose(trained, torch.tensor(stepped), atol=1e-5)
    return state


def test_a_cue_memory_model_steps_as_it_trains_and_keeps_the_counts_in_its_state() -> None:
    torch = pytest.importorskip("torch")  # training extra
    from training.pair_head import STATE_SIZE, build_model  # noqa: PLC0415

    size, cues = 32, 3
    with pytest.raises(ValueError, match="text cues"):
        build_model(size, cue_memory=True)
    torch.manual_seed(0)
    model = build_model(size, members=("full", "behaviour"), text_cues=cues, cue_memory=True).eval()
    assert model.state_size == 2 * STATE_SIZE + 2 * cues
    steps = 6
    x = torch.randn(1, steps, size)
    x[..., -cues:] = torch.tensor([[1.0, 0.0, 0.0]] * steps)
    own = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0, 1.0]])
    state = _steps_as_it_trains(model, x, own)
    memory = state[0, -2 * cues :]
    # The first cue fired in all six messages: three of the member's own, three of the other's.
    assert float(memory[0]) > 2.9 and float(memory[cues]) > 2.9
    assert float(memory[1]) == 0.0 and float(memory[cues + 1]) == 0.0
    # The counts reach the risk: the same message after a different history scores differently.
    with torch.no_grad():
        fresh, _ = model(x[:, -1], own[:, -1:], torch.zeros(1, model.state_size))
        blank = state.clone()
        blank[0, : 2 * STATE_SIZE] = 0.0
        remembered, _ = model(x[:, -1], own[:, -1:], blank)
    assert float(fresh[0]) != float(remembered[0])


def _assert_exports_and_loads(model: object, *, size: int, cues: int, folder: Path) -> None:
    """The model exported to ONNX steps a chat pair and a flattened segment as training's path does, and
    loads through ``GruPairModel.load`` as serving loads it."""
    from training.pair_head import check_export, export_onnx  # noqa: PLC0415
    from vigil.detector.pair import GruPairModel  # noqa: PLC0415

    state_size = int(model.state_size)  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    table = rng.normal(size=(8, size)).astype(np.float32)
    table[:, -cues:] = rng.integers(0, 2, size=(8, cues))
    path = folder / "pair_model.onnx"
    export_onnx(model, path, size)
    chat = _sequence("a", 1, [1, 0, 1, 1, 0, 1, 0, 1])
    segment = dataclasses.replace(chat, own=np.full(8, FLATTENED_OWN, dtype=np.float32))
    assert check_export(model, path, [chat, segment], table) < 1e-5
    loaded = GruPairModel.load(path, state_size=state_size, feature_size=size)
    assert loaded.state_size == state_size


def test_a_cue_memory_model_exports_and_loads_as_serving_loads_it(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")  # training extra
    from training.pair_head import build_model  # noqa: PLC0415

    size, cues = 24, 4
    torch.manual_seed(0)
    model = build_model(size, members=("full", "behaviour"), text_cues=cues, cue_memory=True).eval()
    _assert_exports_and_loads(model, size=size, cues=cues, folder=tmp_path)


def test_an_age_gate_model_steps_as_it_trains_and_keeps_its_sums_in_its_state() -> None:
    torch = pytest.importorskip("torch")  # training extra
    from training.pair_head import AGE_GATE_SLOTS, STATE_SIZE, build_model  # noqa: PLC0415

    size = 32
    with pytest.raises(ValueError, match="writer head"):
        build_model(size, age_gate=True)
    torch.manual_seed(0)
    model = build_model(size, members=("full", "behaviour"), writer_head=True, age_gate=True).eval()
    assert model.state_size == 2 * STATE_SIZE + 2 * AGE_GATE_SLOTS
    # A gate that has learned something: the member's own P(child) lowers its risk, the other's raises it.
    for member in model.chat:
        member.gate.weight.data = torch.tensor([[-12.0, 12.0]])
    steps = 6
    x = torch.randn(1, steps, size)
    own = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0, 1.0]])
    state = _steps_as_it_trains(model, x, own)
    sums = state[0, 2 * STATE_SIZE :].reshape(2, AGE_GATE_SLOTS)
    # Per member: three own messages and three of the other's counted, each P(child) between 0 and 1.
    assert sums[:, 1].tolist() == [3.0, 3.0] and sums[:, 3].tolist() == [3.0, 3.0]
    assert bool(((sums[:, 0] > 0) & (sums[:, 0] < 3)).all())
    # The sums reach the risk: an author read as a child scores lower than one read as an adult.
    with torch.no_grad():
        child, adult = state.clone(), state.clone()
        child[0, 2 * STATE_SIZE :] = torch.tensor([3.0, 3.0, 0.0, 3.0] * 2)
        adult[0, 2 * STATE_SIZE :] = torch.tensor([0.0, 3.0, 3.0, 3.0] * 2)
        as_child, _ = model(x[:, -1], own[:, -1:], child)
        as_adult, _ = model(x[:, -1], own[:, -1:], adult)
    assert float(as_child[0]) < float(as_adult[0]) - 1.0
    # A flattened chunk leaves the sums as they were.
    with torch.no_grad():
        _, after = model(x[:, -1], torch.full((1, 1), FLATTENED_OWN), state)
    assert torch.equal(after[0, 2 * STATE_SIZE :], state[0, 2 * STATE_SIZE :])


def test_an_age_gate_model_exports_and_loads_as_serving_loads_it(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")  # training extra
    from training.pair_head import build_model  # noqa: PLC0415

    size, cues = 24, 4
    torch.manual_seed(0)
    model = build_model(
        size, members=("full", "behaviour"), text_cues=cues, cue_memory=True, writer_head=True, age_gate=True
    ).eval()
    for member in model.chat:
        member.gate.weight.data = torch.tensor([[-3.0, 2.0]])
    _assert_exports_and_loads(model, size=size, cues=cues, folder=tmp_path)


def test_a_gate_memory_reaches_the_risk_through_the_gate_alone(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")  # training extra
    from training.pair_head import AGE_GATE_SLOTS, STATE_SIZE, build_model  # noqa: PLC0415

    size, cues = 32, 3
    with pytest.raises(ValueError, match="gate memory"):
        build_model(size, text_cues=cues, writer_head=True, gate_memory=True)
    torch.manual_seed(0)
    model = build_model(
        size, members=("full", "behaviour"), text_cues=cues, writer_head=True, age_gate=True, gate_memory=True
    ).eval()
    assert model.state_size == 2 * STATE_SIZE + 2 * cues + 2 * AGE_GATE_SLOTS
    for member in model.chat:
        assert member.memory_in is None and member.memory_out is None
        assert member.gate.weight.shape == (1, 2 + 2 * cues)
        # A gate that learned that the first cue in the other's messages means no grooming.
        weights = torch.zeros(1, 2 + 2 * cues)
        weights[0, 2 + cues] = -12.0
        member.gate.weight.data = weights
    steps = 6
    x = torch.randn(1, steps, size)
    x[..., -cues:] = 0.0
    own = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0, 1.0]])
    plain = _steps_as_it_trains(model, x, own)
    x_cue = x.clone()
    x_cue[0, 1, -cues:] = torch.tensor([1.0, 0.0, 0.0])  # the other's message gives the first cue
    remembered = _steps_as_it_trains(model, x_cue, own)
    counts = remembered[0, 2 * STATE_SIZE : 2 * STATE_SIZE + 2 * cues]
    assert float(counts[cues]) > 0.9 and float(counts[0]) == 0.0
    with torch.no_grad():
        before, _ = model(x[:, -1], own[:, -1:], plain)
        after, _ = model(x[:, -1], own[:, -1:], remembered)
        # The same members' states and gate sums, the counts alone changed: the gate reads them.
        swapped = plain.clone()
        swapped[0, 2 * STATE_SIZE : 2 * STATE_SIZE + 2 * cues] = counts
        gated, _ = model(x[:, -1], own[:, -1:], swapped)
    assert float(after[0]) < float(before[0]) - 3.0
    assert float(gated[0]) < float(before[0]) - 3.0
    _assert_exports_and_loads(model, size=size, cues=cues, folder=tmp_path)
