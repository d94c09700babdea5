from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from vigil.bots.core.policy import (
    SUSPECT_SWITCH_MARGIN,
    Decision,
    PolicyConfig,
    PolicyInput,
    alert_outlook,
    decide,
    deferred_post_time,
    named_suspect,
    next_streak,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def policy(**overrides: object) -> PolicyConfig:
    values: dict[str, object] = {
        "threshold": 0.7,
        "sustain_messages": 3,
        "hysteresis": 0.1,
        "cooldown": timedelta(hours=6),
        "update_min_delta": 0.05,
        "max_alerts_per_hour": 2,
        "shadow_mode": False,
    }
    values.update(overrides)
    return PolicyConfig(**values)  # type: ignore[arg-type]


def state(
    risk: float, *, streak: int = 0, open_risk: float | None = None, snoozed: datetime | None = None
) -> PolicyInput:
    return PolicyInput(
        risk=risk,
        previous_streak=streak,
        has_open_alert=open_risk is not None,
        open_alert_risk=open_risk or 0.0,
        snoozed_until=snoozed,
        now=NOW,
    )


def replay(risks: list[float], p: PolicyConfig) -> list[Decision]:
    streak, decisions, open_risk = 0, [], None
    for risk in risks:
        outcome = decide(p, state(risk, streak=streak, open_risk=open_risk))
        streak = outcome.streak
        decisions.append(outcome.decision)
        if outcome.decision is not Decision.NONE:
            open_risk = risk
    return decisions


def test_one_spiky_message_never_alerts() -> None:
    assert replay([0.1, 0.99, 0.1, 0.99, 0.1], policy()) == [Decision.NONE] * 5


def test_sustained_evidence_raises_once_then_updates_only_on_real_growth() -> None:
    decisions = replay([0.8, 0.8, 0.8, 0.81, 0.82, 0.9, 0.9, 0.96], policy())
    assert decisions == [
        Decision.NONE,
        Decision.NONE,
        Decision.RAISE,
        Decision.NONE,  # +0.01: not enough growth to edit the alert
        Decision.NONE,
        Decision.UPDATE,  # +0.10 over the raised value
        Decision.NONE,
        Decision.UPDATE,
    ]
    assert decisions.count(Decision.RAISE) == 1


def test_hysteresis_band_keeps_a_run_alive_without_counting() -> None:
    assert next_streak(risk=0.65, previous_streak=2, threshold=0.7, hysteresis=0.1) == 2
    assert next_streak(risk=0.65, previous_streak=0, threshold=0.7, hysteresis=0.1) == 0
    assert next_streak(risk=0.55, previous_streak=2, threshold=0.7, hysteresis=0.1) == 0
    # Hovering at the threshold still reaches the sustain count.
    assert replay([0.72, 0.66, 0.71, 0.64, 0.75], policy())[-1] is Decision.RAISE


def test_dropping_below_the_band_resets_the_run() -> None:
    assert replay([0.8, 0.8, 0.5, 0.8, 0.8], policy()) == [Decision.NONE] * 5


def test_snoozed_pair_does_not_alert_until_snooze_ends() -> None:
    p = policy(sustain_messages=1)
    assert decide(p, state(0.9, snoozed=NOW + timedelta(minutes=1))).decision is Decision.NONE
    assert decide(p, state(0.9, snoozed=NOW - timedelta(minutes=1))).decision is Decision.RAISE


def test_hourly_cap_defers_instead_of_dropping() -> None:
    p = policy(max_alerts_per_hour=2)
    assert deferred_post_time(now=NOW, alerts_last_hour=1, policy=p) == NOW
    assert deferred_post_time(now=NOW, alerts_last_hour=2, policy=p) == NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    "bad",
    [
        {"threshold": 0.0},
        {"threshold": 1.0},
        {"sustain_messages": 0},
        {"hysteresis": 0.8},
        {"max_alerts_per_hour": 0},
    ],
)
def test_invalid_policy_is_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        policy(**bad)


def test_new_evidence_updates_an_open_alert_without_a_risk_rise() -> None:
    p = policy()
    quiet = decide(p, state(0.91, streak=3, open_risk=0.95))
    assert quiet.decision is Decision.NONE
    with_evidence = decide(p, dataclasses.replace(state(0.91, streak=3, open_risk=0.95), new_evidence=True))
    assert with_evidence.decision is Decision.UPDATE
    # Without an open alert, evidence alone raises nothing: raising is the streak's job.
    assert decide(p, dataclasses.replace(state(0.1), new_evidence=True)).decision is Decision.NONE


def test_an_open_alert_names_the_other_member_only_once_they_clearly_pass_its_suspect() -> None:
    assert SUSPECT_SWITCH_MARGIN == 0.1
    assert named_suspect(named="adult", risks={"adult": 0.73, "kid": 0.82}) == "adult"
    assert named_suspect(named="adult", risks={"adult": 0.73, "kid": 0.84}) == "kid"
    assert named_suspect(named="adult", risks={"adult": 0.9, "kid": 0.2}) == "adult"
    # The named member gone from the state (a reset): whoever is there, once clearly at risk.
    assert named_suspect(named="adult", risks={"kid": 0.05}) == "adult"
    assert named_suspect(named="adult", risks={"kid": 0.5}) == "kid"
    assert named_suspect(named="adult", risks={}) == "adult"
    assert named_suspect(named="adult", risks={"adult": 0.5, "kid": 0.55}, margin=0.0) == "kid"


def test_the_outlook_says_why_a_pair_has_no_alert() -> None:
    def outlook(risk: float, streak: int, snoozed_until: datetime | None = None) -> str:
        return alert_outlook(policy(), risk=risk, streak=streak, snoozed_until=snoozed_until, now=NOW)

    assert outlook(0.2, 0).startswith("no alert: the risk (0.20) is below the alert threshold (0.70)")
    assert "for 2 of the 3 messages in a row" in outlook(0.8, 2)
    # At the sustain with no alert: the model's alert reviewer held it back.
    held = outlook(0.9, 4)
    assert held.startswith("held back:") and "for 4 messages in a row" in held and "second reading" in held
    assert outlook(0.9, 4, snoozed_until=NOW + timedelta(hours=1)).startswith("snoozed until")
