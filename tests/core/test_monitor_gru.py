"""The Monitor with a learned (GRU) pair model: real SQLite file, real ONNX Runtime for both graphs.

The keyword model (scores known from the words) gains an embedding output, and the GRU step is built so that
its one read-out unit tracks the author's own risk logits (``tests.support.gru_model.accumulating_weights``).
Expected pair risks come from the numpy GRU run on the detector's own features, so every step of the
production path is checked: message in, features, GRU step in the store transaction, state saved, policy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.core.monitoring import START, Conversation, make_monitor
from tests.support.fakes import FakeClock
from tests.support.gru_model import (
    KEYWORD_GRU_WEIGHTS,
    GruWeights,
    reference_step,
)
from vigil.bots.core.policy import Decision
from vigil.detector import GruPairModel, OnnxDetector
from vigil.storage.sqlite import SqliteStore

WEIGHTS = KEYWORD_GRU_WEIGHTS
THRESHOLD = 0.7  # make_monitor's policy: threshold 0.7, sustain 2 messages


async def expected_risks(
    detector: OnnxDetector, weights: GruWeights, script: list[tuple[str, str]], members: tuple[str, str]
) -> list[dict[str, float]]:
    """Each member's risk after each message, by the numpy GRU on the detector's features."""
    scores = await detector.score([text for _, text in script])
    hidden = {member: np.zeros(weights.state_size, np.float32) for member in members}
    risk = dict.fromkeys(members, 0.0)
    history = []
    for (author, _), score in zip(script, scores, strict=True):
        other = members[1] if author == members[0] else members[0]
        assert score.features is not None
        logits, states = reference_step(
            weights,
            np.stack([score.features, score.features]),
            np.array([[1.0], [0.0]], np.float32),
            np.stack([hidden[author], hidden[other]]),
        )
        hidden[author], hidden[other] = states[0], states[1]
        risk[author] = 1.0 / (1.0 + math.exp(-float(logits[0])))
        history.append(dict(risk))
    return history


async def test_grooming_pattern_alerts_on_the_grus_risk_naming_the_adult(
    sqlite_store: SqliteStore, gru_keyword_detector: OnnxDetector
) -> None:
    assert isinstance(gru_keyword_detector.pair_model, GruPairModel)
    monitor = make_monitor(sqlite_store, gru_keyword_detector, FakeClock(START))
    talk = Conversation()
    script = [
        (talk.a, "hello there"),
        (talk.b, "hello"),
        (talk.a, "nice game tonight"),
        (talk.b, "lol"),
        (talk.a, "our secret ok"),
        (talk.b, "ok"),
        (talk.a, "secret groom"),
        (talk.b, "see you later"),
        (talk.a, "groom secret tonight"),
        (talk.b, "ok lol"),
    ]
    expected = await expected_risks(gru_keyword_detector, WEIGHTS, script, (talk.a, talk.b))
    results = [await monitor.handle(talk.say(author, text)) for author, text in script]

    # The pair's risk is the GRU's, step by step (the larger member risk), and the adult is the suspect.
    pair_risks = [result.pairs[0].risk for result in results]
    assert pair_risks == pytest.approx([max(step.values()) for step in expected], abs=1e-5)
    # The test GRU really crosses the threshold, and only through the adult's own messages.
    above = [risk >= THRESHOLD for risk in pair_risks]
    assert not any(above[:4]) and any(above)
    assert all(step[talk.b] < 0.2 for step in expected)
    # The kid's turns never set the adult's risk: it is unchanged across each of the kid's messages.
    for index, (author, _) in enumerate(script[1:], start=1):
        if author == talk.b:
            assert expected[index][talk.a] == expected[index - 1][talk.a]

    raised = [(i, e) for i, r in enumerate(results) for e in r.alerts if e.decision is Decision.RAISE]
    assert len(raised) == 1
    index, event = raised[0]
    # Sustain 2: raised on the first message whose risk and the previous message's are both over.
    assert index == next(i for i in range(1, len(above)) if above[i] and above[i - 1])
    assert event.alert.suspect_id == talk.a and event.alert.other_id == talk.b
    assert event.alert.risk == pytest.approx(pair_risks[index], abs=1e-6)

    # The stored state is the GRU's (versioned JSON) and reads back to the same risks.
    state = await sqlite_store.load_pair(results[-1].pairs[0].key)
    assert state is not None and state.model_state.startswith('{"v":1,')
    stored = {
        r.author_id: r.risk for r in gru_keyword_detector.pair_model.author_risks(state=state.model_state)
    }
    assert stored == pytest.approx(expected[-1], abs=1e-5)


async def test_ordinary_chat_stays_quiet(
    sqlite_store: SqliteStore, gru_keyword_detector: OnnxDetector
) -> None:
    monitor = make_monitor(sqlite_store, gru_keyword_detector, FakeClock(START))
    talk = Conversation()
    for i in range(20):
        author = talk.a if i % 2 else talk.b
        result = await monitor.handle(talk.say(author, "nice game tonight lol"))
        assert result.alerts == () and result.pairs[0].risk < 0.2


async def test_pairs_saved_by_an_older_ema_model_continue_with_the_gru(
    sqlite_store: SqliteStore, keyword_detector: OnnxDetector, gru_keyword_detector: OnnxDetector
) -> None:
    # A model upgrade: pairs in the database hold the EMA's state; the GRU starts them afresh, no errors.
    talk = Conversation()
    old = make_monitor(sqlite_store, keyword_detector, FakeClock(START))
    for _ in range(2):
        await old.handle(talk.say(talk.a, "hello there"))
    new = make_monitor(sqlite_store, gru_keyword_detector, FakeClock(START))
    result = await new.handle(talk.say(talk.a, "secret groom"))
    expected = await expected_risks(
        gru_keyword_detector, WEIGHTS, [(talk.a, "secret groom")], (talk.a, talk.b)
    )
    assert result.pairs[0].risk == pytest.approx(expected[0][talk.a], abs=1e-5)
    state = await sqlite_store.load_pair(result.pairs[0].key)
    assert state is not None and state.message_count == 3
