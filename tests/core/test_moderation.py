"""The moderator service: one set of permission and validation rules for Discord and Slack, tested once.

Against the in-memory store (the ports' second implementation); the adapters' own tests check that each
platform renders these answers and refusals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.storage.builders import make_pair_state, make_risk_point
from vigil.bots.core.cases import Actor, Role
from vigil.bots.core.models import PairKey, SpaceSettings, WindowMessage, signals_seen
from vigil.bots.core.moderation import THRESHOLD_MAX, THRESHOLD_MIN, Denied, ModeratorService
from vigil.bots.core.policy import PolicyConfig
from vigil.storage import InMemoryStore

NOW = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)
SPACE = "space-1"
POLICY = PolicyConfig(
    threshold=0.9,
    sustain_messages=2,
    hysteresis=0.1,
    cooldown=timedelta(hours=6),
    update_min_delta=0.05,
    max_alerts_per_hour=10,
    shadow_mode=False,
)


def actor(*roles: Role) -> Actor:
    return Actor(platform="test", space_id=SPACE, user_id="u-1", roles=frozenset(roles))


ADMIN = actor(Role.ADMIN)
MODERATOR = actor(Role.MODERATOR)
CHILD_SAFETY = actor(Role.CHILD_SAFETY)
MEMBER = actor()


async def policy_for(*, platform: str, space_id: str) -> PolicyConfig:
    return POLICY


@pytest.fixture
async def store() -> AsyncIterator[InMemoryStore]:
    async with InMemoryStore() as opened:
        yield opened


def service(store: InMemoryStore, changed: list[SpaceSettings] | None = None) -> ModeratorService:
    return ModeratorService(
        platform="test",
        store=store,
        default_threshold=0.9,
        default_shadow_mode=False,
        policy_for=policy_for,
        on_settings_changed=changed.append if changed is not None else None,
        clock=lambda: NOW,
    )


@pytest.mark.parametrize(
    "who", [MODERATOR, CHILD_SAFETY, MEMBER], ids=["moderator", "child-safety", "member"]
)
async def test_only_admins_change_settings(store: InMemoryStore, who: Actor) -> None:
    moderation = service(store)
    assert (await moderation.set_threshold(who, value=0.8)).denied is Denied.ADMINS_ONLY
    assert (await moderation.set_ignored(who, channel_ids=["c1"], ignored=True)).denied is Denied.ADMINS_ONLY
    assert (await moderation.setup(who, alert_channel_id="c-alerts")).denied is Denied.ADMINS_ONLY
    assert await store.get_space_settings(platform="test", space_id=SPACE) is None


@pytest.mark.parametrize("value", [0.0, 1e-320, 0.049, 0.995, 1.0, 1.5, float("nan"), float("inf"), -0.5])
async def test_a_threshold_outside_the_range_is_refused(store: InMemoryStore, value: float) -> None:
    change = await service(store).set_threshold(ADMIN, value=value)
    assert change.denied is Denied.THRESHOLD_OUT_OF_RANGE
    assert await store.get_space_settings(platform="test", space_id=SPACE) is None


async def test_thresholds_at_the_bounds_are_kept_and_default_restores(store: InMemoryStore) -> None:
    changed: list[SpaceSettings] = []
    moderation = service(store, changed)
    for value in (THRESHOLD_MIN, THRESHOLD_MAX, 0.8):
        change = await moderation.set_threshold(ADMIN, value=value)
        assert change.denied is None and change.threshold == value and not change.threshold_is_default
    reset = await moderation.set_threshold(ADMIN, value=None)
    assert reset.threshold == 0.9 and reset.threshold_is_default
    assert len(changed) == 4, "every saved change is announced (the adapters' role caches)"
    stored = await store.get_space_settings(platform="test", space_id=SPACE)
    assert stored is not None and stored.threshold is None


async def test_ignoring_and_watching_channels_again(store: InMemoryStore) -> None:
    moderation = service(store)
    await moderation.set_ignored(ADMIN, channel_ids=["c1", "c2"], ignored=True)
    change = await moderation.set_ignored(ADMIN, channel_ids=["c1"], ignored=False)
    assert change.settings is not None and change.settings.ignored_channel_ids == frozenset({"c2"})


async def test_setup_keeps_what_is_not_given_unless_the_form_replaces_the_roles(store: InMemoryStore) -> None:
    moderation = service(store)
    await moderation.setup(
        ADMIN, alert_channel_id="c-alerts", moderator_role_id="mods", child_safety_role_id="cs"
    )
    kept = await moderation.setup(ADMIN, alert_channel_id="c-new")
    assert kept.settings is not None
    assert (kept.settings.alert_channel_id, kept.settings.moderator_role_id) == ("c-new", "mods")
    assert kept.settings.child_safety_role_id == "cs"
    replaced = await moderation.setup(
        ADMIN, alert_channel_id="c-new", moderator_role_id="mods", replace_roles=True
    )
    assert replaced.settings is not None and replaced.settings.child_safety_role_id is None


@pytest.mark.parametrize(
    ("who", "allowed"),
    [(ADMIN, True), (MODERATOR, True), (CHILD_SAFETY, True), (MEMBER, False)],
    ids=["admin", "moderator", "child-safety", "member"],
)
async def test_status_is_for_anyone_with_a_vigil_role(
    store: InMemoryStore, who: Actor, allowed: bool
) -> None:
    answer = await service(store).status(who)
    assert (answer.value is not None) is allowed
    assert answer.denied is (None if allowed else Denied.ROLES_ONLY)
    if answer.value is not None:
        assert answer.value.threshold == 0.9 and answer.value.threshold_is_default
        assert (answer.value.alerts_today, answer.value.pending_deliveries) == (0, 0)


@pytest.mark.parametrize(
    ("who", "allowed"),
    [(ADMIN, False), (MODERATOR, True), (CHILD_SAFETY, True), (MEMBER, False)],
    ids=["admin", "moderator", "child-safety", "member"],
)
async def test_pair_history_is_for_moderators_and_the_child_safety_role(
    store: InMemoryStore, who: Actor, allowed: bool
) -> None:
    key = PairKey.of(platform="test", space_id=SPACE, first="adult", second="kid")
    await store.save_pair(dataclasses.replace(make_pair_state(key, risk=0.95), above_threshold_streak=1))
    await store.append_risk(make_risk_point(key, 9))
    answer = await service(store).pair_history(who, first="kid", second="adult")
    assert answer.denied is (None if allowed else Denied.MODERATORS_ONLY)
    if allowed:
        history = answer.value
        assert history is not None and history.key == key and history.state is not None
        assert len(history.points) == 1 and history.open_case is None
        assert history.outlook is not None and "1 of the 2 messages" in history.outlook


async def test_pair_history_of_one_person_with_themselves_is_refused(store: InMemoryStore) -> None:
    answer = await service(store).pair_history(MODERATOR, first="kid", second="kid")
    assert answer.denied is Denied.SAME_PERSON


def window_message(index: int, *, author_id: str, signals: tuple[str, ...]) -> WindowMessage:
    return WindowMessage(
        message_id=f"m-{index}",
        channel_id="c-1",
        thread_id=None,
        author_id=author_id,
        text="not looked at",
        timestamp=NOW + timedelta(seconds=index),
        risk=0.5,
        signals=signals,
    )


def test_signals_are_the_authors_own_most_frequent_first_ties_by_name() -> None:
    window = [
        window_message(1, author_id="adult", signals=("secrecy", "asks_age")),
        window_message(2, author_id="adult", signals=("meeting",)),
        window_message(3, author_id="adult", signals=("secrecy",)),
        # The other member's signals are not the suspect's.
        window_message(4, author_id="kid", signals=("meeting", "meeting_again", "gifts")),
        window_message(5, author_id="adult", signals=()),
    ]
    assert signals_seen(window, author_id="adult") == ("secrecy", "asks_age", "meeting")
    assert signals_seen(window, author_id="kid") == ("gifts", "meeting", "meeting_again")
    assert signals_seen(window, author_id="nobody") == ()
    assert signals_seen([], author_id="adult") == ()


async def test_pair_history_lists_the_likely_groomers_signals_and_the_threshold(store: InMemoryStore) -> None:
    key = PairKey.of(platform="test", space_id=SPACE, first="adult", second="kid")
    state = dataclasses.replace(make_pair_state(key, risk=0.5), suspect_id="adult")
    await store.save_pair(state)
    for index, (author, signals) in enumerate(
        [("kid", ("gifts",)), ("adult", ("asks_age",)), ("adult", ("secrecy", "asks_age")), ("adult", ())]
    ):
        await store.append_window(key, window_message(index, author_id=author, signals=signals), keep=10)

    history = (await service(store).pair_history(MODERATOR, first="adult", second="kid")).value

    assert history is not None
    assert history.signals == ("asks_age", "secrecy")
    assert history.threshold == POLICY.threshold


async def test_an_unknown_pair_has_no_signals_but_still_a_threshold(store: InMemoryStore) -> None:
    history = (await service(store).pair_history(MODERATOR, first="adult", second="kid")).value
    assert history is not None and history.state is None
    assert (history.signals, history.points, history.outlook) == ((), (), None)
    assert history.threshold == POLICY.threshold
