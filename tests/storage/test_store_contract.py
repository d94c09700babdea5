"""The ``Store`` contract: every backend in ``STORE_FACTORIES`` must pass all of it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.storage.builders import (
    BASE_TIME,
    deadline,
    make_alert,
    make_pair_key,
    make_pair_state,
    make_risk_point,
    make_window_message,
)
from tests.storage.factories import (
    STORE_FACTORIES,
    StoreFactory,
)
from vigil.bots.core.models import (
    ANY_PLATFORM,
    AlertStatus,
    ChatMessage,
    DeliveryScope,
    OutboxKind,
    SpaceSettings,
)
from vigil.bots.core.pairing import PairResolver, TurnMemory
from vigil.bots.core.ports import PairChanges, Store, StoreError


@pytest.fixture(params=[factory for _, factory in STORE_FACTORIES], ids=[name for name, _ in STORE_FACTORIES])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    factory: StoreFactory = request.param
    opened = await factory(request, tmp_path)
    try:
        yield opened
    finally:
        # Bounded: a test that failed while holding the store's lock must not hang the run.
        await asyncio.wait_for(opened.close(), timeout=5)


class Boom(Exception):
    pass


# ---------------------------------------------------------------------- pairs and messages


@pytest.mark.parametrize("snoozed_until", [None, BASE_TIME + timedelta(hours=6)])
async def test_pair_round_trips_every_field(store: Store, snoozed_until: datetime | None) -> None:
    state = make_pair_state(snoozed_until=snoozed_until)
    assert await store.load_pair(state.key) is None

    await store.save_pair(state)

    assert await store.load_pair(state.key) == state


async def test_pair_datetimes_come_back_as_aware_utc(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    state = dataclasses.replace(
        make_pair_state(),
        first_seen=datetime(2024, 5, 1, 14, 0, tzinfo=plus_two),
        snoozed_until=datetime(2024, 5, 2, 14, 0, 0, 5, tzinfo=plus_two),
    )
    await store.save_pair(state)

    loaded = await store.load_pair(state.key)

    assert loaded is not None
    assert loaded.first_seen == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert loaded.first_seen.utcoffset() == timedelta(0)
    assert loaded.snoozed_until == datetime(2024, 5, 2, 12, 0, 0, 5, tzinfo=UTC)
    assert loaded.snoozed_until is not None and loaded.snoozed_until.utcoffset() == timedelta(0)


async def test_naive_datetimes_are_refused(store: Store) -> None:
    naive = dataclasses.replace(make_pair_state(), last_seen=datetime(2024, 5, 1, 12, 0))
    with pytest.raises(ValueError, match="naive"):
        await store.save_pair(naive)
    assert await store.load_pair(naive.key) is None


async def test_save_pair_overwrites_and_keeps_the_window(store: Store) -> None:
    state = make_pair_state()
    await store.save_pair(state)
    await store.append_window(state.key, make_window_message(1), keep=10)
    updated = dataclasses.replace(
        state,
        first_seen=BASE_TIME - timedelta(days=1),
        last_seen=BASE_TIME + timedelta(hours=1),
        message_count=4,
        channel_ids=("c-7",),
        model_state='{"h": [0.9]}',
        risk=0.5,
        suspect_id=None,
        above_threshold_streak=0,
        snoozed_until=BASE_TIME,
    )

    await store.save_pair(updated)

    assert await store.load_pair(state.key) == updated
    assert await store.load_window(state.key) == [make_window_message(1)]
    assert await store.count_pairs() == 1


async def test_claim_message_is_true_once_per_space(store: Store) -> None:
    async def claim(space_id: str, platform: str = "discord") -> bool:
        return await store.claim_message(
            platform=platform, space_id=space_id, message_id="m-1", seen_at=BASE_TIME
        )

    assert await claim("guild-1") is True
    assert await claim("guild-1") is False
    assert await claim("guild-2") is True
    assert await claim("guild-1", platform="slack") is True
    assert await claim("guild-2") is False


async def test_claim_messages_claims_many_at_once_as_claim_message_would(store: Store) -> None:
    async def claim_many(ids: list[str], space_id: str = "guild-1") -> frozenset[str]:
        return await store.claim_messages(
            platform="discord", space_id=space_id, message_ids=ids, seen_at=BASE_TIME
        )

    await store.claim_message(platform="discord", space_id="guild-1", message_id="m-0", seen_at=BASE_TIME)
    assert await claim_many([]) == frozenset()
    assert await claim_many(["m-0", "m-1", "m-2", "m-1"]) == {"m-1", "m-2"}, "seen before, or given twice"
    assert await claim_many(["m-1", "m-3"]) == {"m-3"}
    assert await claim_many(["m-1"], space_id="guild-2") == {"m-1"}, "per space"
    assert not await store.claim_message(
        platform="discord", space_id="guild-1", message_id="m-2", seen_at=BASE_TIME
    )
    # More than one statement's worth of ids.
    many = [f"n-{n}" for n in range(700)]
    assert await claim_many(many) == frozenset(many)
    assert await store.seen_message_ids(platform="discord", space_id="guild-1", message_ids=many) == set(many)
    assert await store.last_claimed_at(platform="discord", space_id="guild-1") == BASE_TIME


async def test_claims_made_in_a_failed_transaction_are_undone(store: Store) -> None:
    with pytest.raises(Boom):
        async with store.transaction():
            await store.claim_messages(
                platform="discord", space_id="guild-1", message_ids=["m-1", "m-2"], seen_at=BASE_TIME
            )
            raise Boom
    assert (
        await store.seen_message_ids(platform="discord", space_id="guild-1", message_ids=["m-1", "m-2"])
        == frozenset()
    )


async def test_last_claimed_at_is_the_newest_claim_of_that_space(store: Store) -> None:
    assert await store.last_claimed_at(platform="discord", space_id="guild-1") is None
    for minutes, message_id in ((5, "m-2"), (9, "m-1"), (1, "m-3")):
        await store.claim_message(
            platform="discord",
            space_id="guild-1",
            message_id=message_id,
            seen_at=BASE_TIME + timedelta(minutes=minutes),
        )
    await store.claim_message(
        platform="discord", space_id="guild-2", message_id="m-9", seen_at=BASE_TIME + timedelta(hours=1)
    )
    assert await store.last_claimed_at(platform="discord", space_id="guild-1") == BASE_TIME + timedelta(
        minutes=9
    )
    assert await store.last_claimed_at(platform="slack", space_id="guild-1") is None


async def test_seen_message_ids_are_the_claimed_ones_of_that_space(store: Store) -> None:
    for message_id in ("m-1", "m-3"):
        await store.claim_message(
            platform="discord", space_id="guild-1", message_id=message_id, seen_at=BASE_TIME
        )
    await store.claim_message(platform="discord", space_id="guild-2", message_id="m-2", seen_at=BASE_TIME)
    await store.claim_message(platform="slack", space_id="guild-1", message_id="m-2", seen_at=BASE_TIME)
    asked = ["m-1", "m-2", "m-3", "m-4"]
    assert await store.seen_message_ids(platform="discord", space_id="guild-1", message_ids=asked) == {
        "m-1",
        "m-3",
    }
    assert await store.seen_message_ids(platform="discord", space_id="guild-1", message_ids=[]) == frozenset()
    many = [f"x-{n}" for n in range(1_200)]  # more than one query's worth of ids
    for message_id in many[::7]:
        await store.claim_message(platform="http", space_id="t", message_id=message_id, seen_at=BASE_TIME)
    assert await store.seen_message_ids(platform="http", space_id="t", message_ids=many) == set(many[::7])


async def test_pairs_for_user_and_count_pairs(store: Store) -> None:
    ab = make_pair_key("a", "b")
    ca = make_pair_key("c", "a")
    bc = make_pair_key("b", "c")
    elsewhere = make_pair_key("a", "b", space_id="guild-2")
    for key in (ab, ca, bc, elsewhere):
        await store.save_pair(make_pair_state(key))

    pairs_of_a = await store.pairs_for_user(platform="discord", space_id="guild-1", user_id="a")

    assert sorted(pair.key for pair in pairs_of_a) == sorted([ab, ca])
    assert await store.pairs_for_user(platform="discord", space_id="guild-1", user_id="zed") == []
    assert await store.count_pairs() == 4


@pytest.mark.parametrize(("pair_count", "batch", "sizes"), [(5, 2, [2, 2, 1]), (4, 2, [2, 2]), (0, 3, [])])
async def test_iter_pairs_yields_every_pair_in_batches(
    store: Store, pair_count: int, batch: int, sizes: list[int]
) -> None:
    keys = [make_pair_key("u0", f"u{index + 1}") for index in range(pair_count)]
    for key in keys:
        await store.save_pair(make_pair_state(key))

    batches = [list(chunk) async for chunk in store.iter_pairs(batch=batch)]

    assert [len(chunk) for chunk in batches] == sizes
    assert sorted(state.key for chunk in batches for state in chunk) == sorted(keys)


async def test_store_can_be_used_while_iterating_pairs(store: Store) -> None:
    for index in range(3):
        await store.save_pair(make_pair_state(make_pair_key("u0", f"u{index + 1}")))

    async for chunk in store.iter_pairs(batch=1):
        for state in chunk:
            await store.save_pair(dataclasses.replace(state, message_count=99))

    assert [
        state.message_count
        for state in await store.pairs_for_user(platform="discord", space_id="guild-1", user_id="u0")
    ] == [99, 99, 99]


# ---------------------------------------------------------------------- windows and risk history


async def test_window_keeps_the_newest_messages_oldest_first(store: Store) -> None:
    state = make_pair_state()
    other = make_pair_state(make_pair_key("u1", "u3"))
    await store.save_pair(state)
    await store.save_pair(other)
    await store.append_window(other.key, make_window_message(100), keep=3)

    for index in range(1, 7):
        await store.append_window(state.key, make_window_message(index, thread_id="t-9"), keep=3)

    assert await store.load_window(state.key) == [
        make_window_message(index, thread_id="t-9") for index in (4, 5, 6)
    ]
    assert await store.load_window(other.key) == [make_window_message(100)]


async def test_window_order_is_insertion_order_not_timestamp(store: Store) -> None:
    state = make_pair_state()
    await store.save_pair(state)
    late, early = make_window_message(9), make_window_message(1)

    await store.append_window(state.key, late, keep=5)
    await store.append_window(state.key, early, keep=5)

    assert await store.load_window(state.key) == [late, early]


async def test_window_of_an_unsaved_pair(store: Store) -> None:
    key = make_pair_key("x", "y")

    with pytest.raises(StoreError, match="save_pair"):
        await store.append_window(key, make_window_message(1), keep=5)
    assert await store.load_window(key) == []


async def test_risk_history_returns_the_newest_points_oldest_first(store: Store) -> None:
    state = make_pair_state()
    await store.save_pair(state)
    for index in range(1, 6):
        await store.append_risk(make_risk_point(state.key, index))

    assert await store.risk_history(state.key, limit=3) == [make_risk_point(state.key, i) for i in (3, 4, 5)]
    assert await store.risk_history(state.key, limit=50) == [
        make_risk_point(state.key, i) for i in range(1, 6)
    ]
    assert await store.risk_history(make_pair_key("x", "y"), limit=5) == []


async def test_risk_for_an_unsaved_pair_is_refused(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.append_risk(make_risk_point(make_pair_key("x", "y"), 1))


# ---------------------------------------------------------------------- a batch's pair state at once


async def test_load_pairs_returns_the_stored_ones_of_many_keys(store: Store) -> None:
    stored = [make_pair_state(make_pair_key("u1", f"v{i}")) for i in range(300)]
    for state in stored:
        await store.save_pair(state)
    absent = make_pair_key("x", "y")
    wanted = [state.key for state in stored[::-1]] + [absent, stored[0].key]

    found = await store.load_pairs(wanted)

    assert found == {state.key: state for state in stored}
    assert await store.load_pairs([]) == {}


async def test_apply_pair_changes_is_the_same_as_one_call_after_another(store: Store) -> None:
    """Saved pairs (the last state of a key wins), then window messages in order with each touched window
    trimmed to ``keep``, then risk points in order."""
    kept = make_pair_state()
    await store.save_pair(kept)
    for index in range(1, 4):
        await store.append_window(kept.key, make_window_message(index), keep=3)
    fresh = make_pair_state(make_pair_key("u1", "u3"), message_count=1)
    later = dataclasses.replace(fresh, message_count=2, risk=0.75)

    await store.apply_pair_changes(
        PairChanges(
            pairs=(fresh, dataclasses.replace(kept, risk=0.5), later),
            window=(
                (kept.key, make_window_message(4)),
                (fresh.key, make_window_message(10)),
                (kept.key, make_window_message(5)),
            ),
            keep=3,
            risks=(
                make_risk_point(fresh.key, 1),
                make_risk_point(kept.key, 2),
                make_risk_point(fresh.key, 3),
            ),
        )
    )

    assert await store.load_pairs([kept.key, fresh.key]) == {
        kept.key: dataclasses.replace(kept, risk=0.5),
        fresh.key: later,
    }
    assert await store.load_window(kept.key) == [make_window_message(i) for i in (3, 4, 5)]
    assert await store.load_window(fresh.key) == [make_window_message(10)]
    assert await store.risk_history(fresh.key, limit=5) == [
        make_risk_point(fresh.key, 1),
        make_risk_point(fresh.key, 3),
    ]
    assert await store.risk_history(kept.key, limit=5) == [make_risk_point(kept.key, 2)]


@pytest.mark.parametrize("bad", ["window", "risk"])
async def test_apply_pair_changes_for_an_unsaved_pair_applies_nothing(store: Store, bad: str) -> None:
    saved = make_pair_state()
    await store.save_pair(saved)
    ghost = make_pair_key("x", "y")
    changes = PairChanges(
        pairs=(dataclasses.replace(saved, risk=0.9),),
        window=((saved.key, make_window_message(1)),)
        + (((ghost, make_window_message(2)),) if bad == "window" else ()),
        keep=5,
        risks=(make_risk_point(saved.key, 1),) + ((make_risk_point(ghost, 2),) if bad == "risk" else ()),
    )

    with pytest.raises(StoreError, match="save_pair"):
        await store.apply_pair_changes(changes)

    assert await store.load_pair(saved.key) == saved
    assert await store.load_window(saved.key) == []
    assert await store.risk_history(saved.key, limit=5) == []


async def test_open_alerts_for_pairs(store: Store) -> None:
    open_key, closed_key, quiet_key = (
        make_pair_key("u1", "u2"),
        make_pair_key("u3", "u4"),
        make_pair_key("u5", "u6"),
    )
    for key in (open_key, closed_key, quiet_key):
        await store.save_pair(make_pair_state(key))
    opened = await store.create_alert(make_alert(open_key))
    ended = await store.create_alert(make_alert(closed_key))
    await store.update_alert(dataclasses.replace(ended, status=AlertStatus.CLOSED))

    assert await store.open_alerts_for_pairs([open_key, closed_key, quiet_key, make_pair_key("x", "y")]) == {
        open_key: opened
    }
    assert await store.open_alerts_for_pairs([]) == {}


# ---------------------------------------------------------------------- alerts


async def test_create_alert_assigns_ids_and_round_trips(store: Store) -> None:
    await store.save_pair(make_pair_state())
    draft = dataclasses.replace(make_alert(), alert_id=777, case_number=555)

    created = await store.create_alert(draft)

    assert created.case_number == 1
    assert created.alert_id != 777
    assert created == dataclasses.replace(draft, alert_id=created.alert_id, case_number=1)
    assert await store.get_alert(created.alert_id) == created
    assert await store.get_alert(created.alert_id + 1000) is None


async def test_open_alert_keys_lists_the_pairs_with_an_open_alert_in_every_space(store: Store) -> None:
    assert await store.open_alert_keys() == []
    open_here = make_pair_key("u1", "u2")
    open_there = make_pair_key("u1", "u2", platform="slack", space_id="T1")
    closed = make_pair_key("u3", "u4")
    for key in (open_here, open_there, closed):
        await store.save_pair(make_pair_state(key))
    await store.create_alert(make_alert(open_there))
    await store.create_alert(make_alert(open_here))
    ended = await store.create_alert(make_alert(closed))
    await store.update_alert(dataclasses.replace(ended, status=AlertStatus.CLOSED))
    assert await store.open_alert_keys() == sorted([open_here, open_there])


async def test_update_alert_and_open_alert_for_pair(store: Store) -> None:
    key = make_pair_key()
    await store.save_pair(make_pair_state(key))
    created = await store.create_alert(make_alert(key))
    assert await store.open_alert_for_pair(key) == created
    assert await store.open_alert_for_pair(make_pair_key("u1", "u9")) is None

    changed = dataclasses.replace(
        created,
        risk=0.97,
        peak_risk=0.97,
        signals=("meeting",),
        evidence=(make_window_message(5),),
        updated_at=BASE_TIME + timedelta(minutes=1),
        revision=2,
        delivery_ref="chan/msg",
    )
    await store.update_alert(changed)
    assert await store.get_alert(created.alert_id) == changed
    assert await store.open_alert_for_pair(key) == changed

    closed = dataclasses.replace(changed, status=AlertStatus.CLOSED, revision=3)
    await store.update_alert(closed)
    assert await store.get_alert(created.alert_id) == closed
    assert await store.open_alert_for_pair(key) is None

    reopened = await store.create_alert(make_alert(key, created_at=BASE_TIME + timedelta(hours=1)))
    assert reopened.case_number == 2
    assert await store.open_alert_for_pair(key) == reopened


async def test_update_of_an_unknown_alert_is_refused(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.update_alert(dataclasses.replace(make_alert(), alert_id=4242))


async def test_case_numbers_go_up_per_space_independently(store: Store) -> None:
    async def new_case(space_id: str, other_user: str, *, platform: str = "discord") -> int:
        key = make_pair_key("u1", other_user, platform=platform, space_id=space_id)
        await store.save_pair(make_pair_state(key))
        alert = await store.create_alert(make_alert(key))
        # Closing a case never frees its number.
        await store.update_alert(dataclasses.replace(alert, status=AlertStatus.CLOSED))
        return alert.case_number

    assert [await new_case("guild-1", f"u{index + 2}") for index in range(3)] == [1, 2, 3]
    assert [await new_case("guild-2", f"u{index + 2}") for index in range(2)] == [1, 2]
    assert await new_case("guild-1", "u2", platform="slack") == 1
    assert await new_case("guild-1", "u2") == 4
    assert await new_case("guild-2", "u5") == 3

    listed = await store.alerts_for_space(platform="discord", space_id="guild-1", limit=10)
    assert [alert.case_number for alert in listed] == [4, 3, 2, 1]
    assert len({alert.alert_id for alert in listed}) == 4
    assert [
        a.case_number for a in await store.alerts_for_space(platform="discord", space_id="guild-2", limit=2)
    ] == [3, 2]


async def test_count_alerts_since_counts_from_the_boundary_including_shadow(store: Store) -> None:
    for index, (space, shadow) in enumerate(
        [("guild-1", False), ("guild-1", True), ("guild-1", False), ("guild-2", False)]
    ):
        key = make_pair_key("u1", f"u{index + 2}", space_id=space)
        await store.save_pair(make_pair_state(key))
        await store.create_alert(
            make_alert(key, created_at=BASE_TIME + timedelta(hours=index), shadow=shadow)
        )

    def count_since(hours: int, space: str = "guild-1") -> Awaitable[int]:
        return store.count_alerts_since(
            platform="discord", space_id=space, since=BASE_TIME + timedelta(hours=hours)
        )

    assert await count_since(0) == 3
    assert await count_since(1) == 2
    assert await count_since(2) == 1
    assert await count_since(3) == 0
    assert await count_since(0, "guild-2") == 1
    # The same instant in another time zone is the same boundary.
    assert (
        await store.count_alerts_since(
            platform="discord",
            space_id="guild-1",
            since=(BASE_TIME + timedelta(hours=1)).astimezone(timezone(timedelta(hours=-5))),
        )
        == 2
    )


# ---------------------------------------------------------------------- transactions


async def test_transaction_commits_everything_together(store: Store) -> None:
    state = make_pair_state()
    async with deadline(), store.transaction():
        await store.save_pair(state)
        await store.append_window(state.key, make_window_message(1), keep=5)
        alert = await store.create_alert(make_alert(state.key))
        await store.enqueue_delivery(alert_id=alert.alert_id, kind=OutboxKind.POST, revision=1, now=BASE_TIME)

    assert await store.load_pair(state.key) == state
    assert await store.load_window(state.key) == [make_window_message(1)]
    assert await store.get_alert(alert.alert_id) == alert
    assert await store.pending_delivery_count() == 1


async def test_transaction_rolls_back_everything_on_error(store: Store) -> None:
    state = make_pair_state()
    with pytest.raises(Boom):
        async with deadline(), store.transaction():
            assert await store.claim_message(
                platform="discord", space_id="guild-1", message_id="m-1", seen_at=BASE_TIME
            )
            await store.save_pair(state)
            await store.append_window(state.key, make_window_message(1), keep=5)
            alert = await store.create_alert(make_alert(state.key))
            await store.enqueue_delivery(
                alert_id=alert.alert_id, kind=OutboxKind.POST, revision=1, now=BASE_TIME
            )
            await store.put_space_settings(
                SpaceSettings(platform="discord", space_id="guild-1", threshold=0.5)
            )
            # Reads inside the transaction see its own writes.
            assert await store.load_pair(state.key) == state
            raise Boom

    assert await store.load_pair(state.key) is None
    assert await store.count_pairs() == 0
    assert await store.open_alert_for_pair(state.key) is None
    assert await store.pending_delivery_count() == 0
    assert await store.get_space_settings(platform="discord", space_id="guild-1") is None
    assert await store.claim_message(
        platform="discord", space_id="guild-1", message_id="m-1", seen_at=BASE_TIME
    )


async def test_nested_transaction_joins_the_outer_one(store: Store) -> None:
    first, second = make_pair_state(), make_pair_state(make_pair_key("u1", "u3"))
    with pytest.raises(Boom):
        async with deadline(), store.transaction():
            await store.save_pair(first)
            async with store.transaction():
                await store.save_pair(second)
            assert await store.load_pair(second.key) == second
            raise Boom

    assert await store.count_pairs() == 0

    async with deadline(), store.transaction(), store.transaction():
        await store.save_pair(second)
    assert await store.load_pair(second.key) == second


async def test_failed_operation_inside_a_transaction_leaves_the_rest(store: Store) -> None:
    state = make_pair_state()
    async with deadline(), store.transaction():
        await store.save_pair(state)
        with pytest.raises(StoreError):
            await store.append_window(make_pair_key("x", "y"), make_window_message(1), keep=5)
        await store.append_window(state.key, make_window_message(2), keep=5)

    assert await store.load_pair(state.key) == state
    assert await store.load_window(state.key) == [make_window_message(2)]


async def test_other_tasks_wait_for_an_open_transaction(store: Store) -> None:
    first, second = make_pair_state(), make_pair_state(make_pair_key("u1", "u3"))
    inside = asyncio.Event()
    release = asyncio.Event()
    counts_seen: list[int] = []

    async def hold_transaction() -> None:
        async with store.transaction():
            await store.save_pair(first)
            inside.set()
            await release.wait()
            # Still ours: the other task's write has not slipped in.
            counts_seen.append(await store.count_pairs())

    async def read_count() -> None:
        counts_seen.append(await store.count_pairs())

    holder = asyncio.create_task(hold_transaction())
    tasks = [holder]
    try:
        await asyncio.wait_for(inside.wait(), timeout=2)
        tasks.append(asyncio.create_task(store.save_pair(second)))
        tasks.append(asyncio.create_task(read_count()))
        await asyncio.sleep(0.05)
        assert [task.done() for task in tasks] == [False, False, False]
    finally:
        release.set()
        async with deadline():
            await asyncio.gather(*tasks)

    # The reader ran after the commit, never inside the other task's transaction.
    assert counts_seen == [1, 2]
    assert await store.count_pairs() == 2


async def test_a_cancelled_transaction_rolls_back_and_releases_the_store(store: Store) -> None:
    state = make_pair_state()
    inside = asyncio.Event()

    async def hold_forever() -> None:
        async with store.transaction():
            await store.save_pair(state)
            inside.set()
            await asyncio.Event().wait()

    holder = asyncio.create_task(hold_forever())
    async with deadline():
        await inside.wait()
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder
        assert await store.load_pair(state.key) is None
        await store.save_pair(state)
    assert await store.load_pair(state.key) == state


async def test_concurrent_transactions_are_serialised(store: Store) -> None:
    keys = [make_pair_key("u0", f"u{index + 1}") for index in range(8)]

    async def bump(key_index: int) -> None:
        async with store.transaction():
            count = await store.count_pairs()
            await asyncio.sleep(0)
            await store.save_pair(make_pair_state(keys[key_index], message_count=count))

    async with deadline():
        await asyncio.gather(*(bump(index) for index in range(len(keys))))

    counts = sorted(
        state.message_count
        for state in await store.pairs_for_user(platform="discord", space_id="guild-1", user_id="u0")
    )
    assert counts == list(range(len(keys)))


# ---------------------------------------------------------------------- outbox


async def _saved_alert_id(store: Store, second_user: str = "u2") -> int:
    key = make_pair_key("u1", second_user)
    await store.save_pair(make_pair_state(key))
    return (await store.create_alert(make_alert(key))).alert_id


async def test_enqueue_again_bumps_revision_and_pulls_the_attempt_forward(store: Store) -> None:
    alert_id = await _saved_alert_id(store)
    await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.UPDATE, revision=2, now=BASE_TIME)
    [item] = await store.due_deliveries(now=BASE_TIME, limit=10)
    later = BASE_TIME + timedelta(minutes=10)
    await store.fail_delivery(item.item_id, error="rate limited", next_attempt_at=later)

    await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.UPDATE, revision=1, now=later)
    assert await store.due_deliveries(now=BASE_TIME + timedelta(minutes=1), limit=10) == []
    [unchanged] = await store.due_deliveries(now=later, limit=10)
    assert (unchanged.item_id, unchanged.revision, unchanged.next_attempt_at) == (item.item_id, 2, later)

    await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.UPDATE, revision=5, now=BASE_TIME)

    [bumped] = await store.due_deliveries(now=BASE_TIME, limit=10)
    assert bumped.item_id == item.item_id
    assert bumped.revision == 5
    assert bumped.next_attempt_at == BASE_TIME
    assert bumped.attempts == 1
    assert await store.pending_delivery_count() == 1


async def test_enqueue_again_never_pushes_a_due_item_back(store: Store) -> None:
    alert_id = await _saved_alert_id(store)
    await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.POST, revision=1, now=BASE_TIME)

    await store.enqueue_delivery(
        alert_id=alert_id, kind=OutboxKind.POST, revision=1, now=BASE_TIME + timedelta(hours=1)
    )

    [item] = await store.due_deliveries(now=BASE_TIME, limit=10)
    assert (item.revision, item.next_attempt_at, item.attempts) == (1, BASE_TIME, 0)


async def test_due_deliveries_are_ordered_by_time_then_id_and_limited(store: Store) -> None:
    alert_ids = [await _saved_alert_id(store, f"u{index + 2}") for index in range(4)]
    times = [BASE_TIME + timedelta(seconds=s) for s in (30, 10, 10, 99)]
    for alert_id, when in zip(alert_ids, times, strict=True):
        await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.POST, revision=1, now=when)

    due = await store.due_deliveries(now=BASE_TIME + timedelta(seconds=30), limit=10)

    assert [item.alert_id for item in due] == [alert_ids[1], alert_ids[2], alert_ids[0]]
    assert all(item.kind is OutboxKind.POST and item.attempts == 0 for item in due)
    assert due[0].item_id < due[1].item_id
    limited = await store.due_deliveries(now=BASE_TIME + timedelta(seconds=30), limit=2)
    assert [item.alert_id for item in limited] == [alert_ids[1], alert_ids[2]]
    assert await store.pending_delivery_count() == 4


async def test_update_waits_behind_a_pending_post(store: Store) -> None:
    alert_id = await _saved_alert_id(store)
    other_alert_id = await _saved_alert_id(store, "u3")
    await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.POST, revision=1, now=BASE_TIME)
    await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.UPDATE, revision=2, now=BASE_TIME)
    await store.enqueue_delivery(alert_id=other_alert_id, kind=OutboxKind.UPDATE, revision=2, now=BASE_TIME)
    [post] = [
        item for item in await store.due_deliveries(now=BASE_TIME, limit=10) if item.alert_id == alert_id
    ]
    assert post.kind is OutboxKind.POST
    await store.fail_delivery(post.item_id, error="timeout", next_attempt_at=BASE_TIME + timedelta(hours=1))

    # The post is not due, but still pending: the update must not overtake it.
    due_now = await store.due_deliveries(now=BASE_TIME + timedelta(minutes=1), limit=10)
    assert [(item.alert_id, item.kind) for item in due_now] == [(other_alert_id, OutboxKind.UPDATE)]

    await store.complete_delivery(post.item_id, alert_id=alert_id, revision=post.revision, ref="chan/1")
    due_after = await store.due_deliveries(now=BASE_TIME + timedelta(minutes=1), limit=10)
    assert sorted((item.alert_id, item.kind) for item in due_after) == sorted(
        [(alert_id, OutboxKind.UPDATE), (other_alert_id, OutboxKind.UPDATE)]
    )


async def test_fail_delivery_counts_attempts_and_truncates_the_error(store: Store) -> None:
    alert_id = await _saved_alert_id(store)
    await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.POST, revision=1, now=BASE_TIME)
    [item] = await store.due_deliveries(now=BASE_TIME, limit=1)
    assert item.last_error is None

    await store.fail_delivery(
        item.item_id, error="x" * 2000, next_attempt_at=BASE_TIME + timedelta(seconds=5)
    )
    await store.fail_delivery(
        item.item_id, error="forbidden", next_attempt_at=BASE_TIME + timedelta(seconds=60)
    )

    assert await store.due_deliveries(now=BASE_TIME + timedelta(seconds=59), limit=1) == []
    [failed] = await store.due_deliveries(now=BASE_TIME + timedelta(seconds=60), limit=1)
    assert failed.attempts == 2
    assert failed.last_error == "forbidden"
    assert failed.next_attempt_at == BASE_TIME + timedelta(seconds=60)

    await store.fail_delivery(item.item_id, error="y" * 2000, next_attempt_at=BASE_TIME)
    [truncated] = await store.due_deliveries(now=BASE_TIME, limit=1)
    assert truncated.last_error == "y" * 500


async def test_complete_delivery_removes_the_item_and_records_the_ref(store: Store) -> None:
    alert_id = await _saved_alert_id(store)
    await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.POST, revision=1, now=BASE_TIME)
    await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.UPDATE, revision=2, now=BASE_TIME)
    assert await store.pending_delivery_count() == 2
    [post] = await store.due_deliveries(now=BASE_TIME, limit=10)

    await store.complete_delivery(post.item_id, alert_id=alert_id, revision=post.revision, ref="chan/42")

    alert = await store.get_alert(alert_id)
    assert alert is not None and alert.delivery_ref == "chan/42"
    assert await store.pending_delivery_count() == 1
    [update] = await store.due_deliveries(now=BASE_TIME, limit=10)
    assert update.kind is OutboxKind.UPDATE

    await store.complete_delivery(update.item_id, alert_id=alert_id, revision=update.revision, ref=None)

    alert = await store.get_alert(alert_id)
    assert alert is not None and alert.delivery_ref == "chan/42"
    assert await store.pending_delivery_count() == 0
    assert await store.due_deliveries(now=BASE_TIME + timedelta(days=1), limit=10) == []


# ---------------------------------------------------------------------- outbox claims (several workers)

LEASE = timedelta(minutes=5)


async def _posts_due(store: Store, count: int) -> list[int]:
    alert_ids = [await _saved_alert_id(store, f"u{index + 2}") for index in range(count)]
    for alert_id in alert_ids:
        await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.POST, revision=1, now=BASE_TIME)
    return alert_ids


async def test_two_workers_never_claim_the_same_item(store: Store) -> None:
    alert_ids = await _posts_due(store, 5)

    first = await store.claim_deliveries(now=BASE_TIME, limit=2, lease=LEASE, worker="a")
    second = await store.claim_deliveries(now=BASE_TIME, limit=10, lease=LEASE, worker="b")
    third = await store.claim_deliveries(now=BASE_TIME, limit=10, lease=LEASE, worker="c")

    assert [item.alert_id for item in first] == alert_ids[:2]
    assert [item.alert_id for item in second] == alert_ids[2:]
    assert third == []
    assert first[0].claim is not None and {item.claim for item in first} == {first[0].claim}
    assert second[0].claim not in (None, first[0].claim)
    # A claimed item is not due for a plain reader either, and still pending.
    assert await store.due_deliveries(now=BASE_TIME, limit=10) == []
    assert await store.pending_delivery_count() == 5


async def test_a_lapsed_lease_is_claimed_again(store: Store) -> None:
    [alert_id] = await _posts_due(store, 1)
    [held] = await store.claim_deliveries(now=BASE_TIME, limit=10, lease=LEASE, worker="a")

    assert await store.claim_deliveries(now=BASE_TIME + LEASE / 2, limit=10, lease=LEASE, worker="b") == []
    [again] = await store.claim_deliveries(now=BASE_TIME + LEASE, limit=10, lease=LEASE, worker="b")

    assert (again.item_id, again.alert_id, again.attempts) == (held.item_id, alert_id, 0)
    assert again.next_attempt_at == BASE_TIME, "a lease is not a failed attempt: the schedule is unchanged"
    assert again.claim != held.claim


async def test_a_stale_claim_does_not_clobber_the_new_holders_work(store: Store) -> None:
    [alert_id] = await _posts_due(store, 1)
    [stale] = await store.claim_deliveries(now=BASE_TIME, limit=10, lease=LEASE, worker="a")
    [held] = await store.claim_deliveries(now=BASE_TIME + LEASE, limit=10, lease=LEASE, worker="b")

    # The first worker comes back after its lease ran out: neither its failure nor its success is written.
    assert not await store.fail_delivery(
        stale.item_id, error="late", next_attempt_at=BASE_TIME, claim=stale.claim
    )
    assert not await store.complete_delivery(
        stale.item_id, alert_id=alert_id, revision=1, ref="chan/stale", claim=stale.claim
    )
    alert = await store.get_alert(alert_id)
    assert alert is not None and alert.delivery_ref is None
    assert await store.pending_delivery_count() == 1
    later = BASE_TIME + LEASE + timedelta(seconds=1)
    assert await store.claim_deliveries(now=later, limit=10, lease=LEASE, worker="c") == []

    assert await store.complete_delivery(
        held.item_id, alert_id=alert_id, revision=1, ref="chan/new", claim=held.claim
    )
    alert = await store.get_alert(alert_id)
    assert alert is not None and alert.delivery_ref == "chan/new"
    assert await store.pending_delivery_count() == 0
    assert not await store.complete_delivery(
        stale.item_id, alert_id=alert_id, revision=1, ref="chan/stale", claim=stale.claim
    )


async def test_a_holder_whose_lease_lapsed_unclaimed_may_still_finish(store: Store) -> None:
    [alert_id] = await _posts_due(store, 1)
    [held] = await store.claim_deliveries(now=BASE_TIME, limit=10, lease=LEASE, worker="a")

    assert await store.complete_delivery(
        held.item_id, alert_id=alert_id, revision=1, ref="chan/1", claim=held.claim
    )
    assert await store.pending_delivery_count() == 0


async def test_extending_a_claim_moves_the_lease_end_of_its_items_only(store: Store) -> None:
    alert_ids = await _posts_due(store, 3)
    mine = await store.claim_deliveries(now=BASE_TIME, limit=2, lease=LEASE, worker="a")
    [theirs] = await store.claim_deliveries(now=BASE_TIME, limit=10, lease=LEASE, worker="b")
    assert mine[0].claim is not None

    assert await store.extend_claim(claim=mine[0].claim, until=BASE_TIME + 2 * LEASE) == 2

    # The other claim lapses at its own end; the extended items stay held until the new one.
    [taken] = await store.claim_deliveries(now=BASE_TIME + LEASE, limit=10, lease=3 * LEASE, worker="c")
    assert taken.alert_id == theirs.alert_id == alert_ids[2]
    just_before = BASE_TIME + 2 * LEASE - timedelta(seconds=1)
    assert await store.claim_deliveries(now=just_before, limit=10, lease=LEASE, worker="d") == []
    assert await store.due_deliveries(now=just_before, limit=10) == []
    again = await store.claim_deliveries(now=BASE_TIME + 2 * LEASE, limit=10, lease=LEASE, worker="d")
    assert [item.alert_id for item in again] == alert_ids[:2]
    assert (again[0].attempts, again[0].next_attempt_at) == (0, BASE_TIME), "an extension is not an attempt"


async def test_extending_a_claim_skips_items_taken_over_and_keeps_lapsed_unclaimed_ones(store: Store) -> None:
    alert_ids = await _posts_due(store, 2)
    mine = await store.claim_deliveries(now=BASE_TIME, limit=10, lease=LEASE, worker="a")
    # Both lapse; another worker takes the first over, the second is still (only) this claim's.
    [theirs] = await store.claim_deliveries(now=BASE_TIME + LEASE, limit=1, lease=LEASE, worker="b")
    assert theirs.alert_id == alert_ids[0] and mine[0].claim is not None

    assert await store.extend_claim(claim=mine[0].claim, until=BASE_TIME + 3 * LEASE) == 1

    # The item taken over keeps its new holder's claim and lease end; the other is held until the new end.
    [taken] = await store.claim_deliveries(now=BASE_TIME + 2 * LEASE, limit=10, lease=LEASE, worker="c")
    assert taken.alert_id == alert_ids[0]
    assert await store.claim_deliveries(now=BASE_TIME + 2 * LEASE, limit=10, lease=LEASE, worker="d") == []
    assert await store.complete_delivery(
        mine[1].item_id, alert_id=alert_ids[1], revision=1, ref="chan/1", claim=mine[1].claim
    )


async def test_extending_a_claim_taken_over_changes_nothing(store: Store) -> None:
    [alert_id] = await _posts_due(store, 1)
    [stale] = await store.claim_deliveries(now=BASE_TIME, limit=10, lease=LEASE, worker="a")
    [held] = await store.claim_deliveries(now=BASE_TIME + LEASE, limit=10, lease=LEASE, worker="b")
    assert stale.claim is not None

    assert await store.extend_claim(claim=stale.claim, until=BASE_TIME + 10 * LEASE) == 0

    # The new holder's lease ends when it did: the old token moved nothing.
    [again] = await store.claim_deliveries(now=BASE_TIME + 2 * LEASE, limit=10, lease=LEASE, worker="c")
    assert again.alert_id == alert_id and again.claim not in (stale.claim, held.claim)
    assert await store.extend_claim(claim="nobody-0", until=BASE_TIME + 10 * LEASE) == 0


async def test_a_failed_claimed_item_is_rescheduled_and_released(store: Store) -> None:
    [alert_id] = await _posts_due(store, 1)
    [held] = await store.claim_deliveries(now=BASE_TIME, limit=10, lease=LEASE, worker="a")
    retry_at = BASE_TIME + timedelta(seconds=30)

    assert await store.fail_delivery(
        held.item_id, error="rate limited", next_attempt_at=retry_at, claim=held.claim
    )

    assert (
        await store.claim_deliveries(now=retry_at - timedelta(seconds=1), limit=10, lease=LEASE, worker="b")
        == []
    )
    [retry] = await store.claim_deliveries(now=retry_at, limit=10, lease=LEASE, worker="b")
    assert (retry.alert_id, retry.attempts, retry.last_error) == (alert_id, 1, "rate limited")


async def test_an_alert_is_claimed_by_one_worker_at_a_time(store: Store) -> None:
    [alert_id] = await _posts_due(store, 1)
    [post] = await store.claim_deliveries(now=BASE_TIME, limit=10, lease=LEASE, worker="a")
    # The alert changes while its post is on its way: the update waits for the post, not for another worker.
    await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.UPDATE, revision=2, now=BASE_TIME)
    assert await store.claim_deliveries(now=BASE_TIME, limit=10, lease=LEASE, worker="b") == []

    assert await store.complete_delivery(
        post.item_id, alert_id=alert_id, revision=1, ref="chan/1", claim=post.claim
    )

    [update] = await store.claim_deliveries(now=BASE_TIME, limit=10, lease=LEASE, worker="b")
    assert (update.alert_id, update.kind, update.revision) == (alert_id, OutboxKind.UPDATE, 2)


async def test_a_revision_enqueued_during_a_claimed_update_keeps_the_claim_then_is_released(
    store: Store,
) -> None:
    alert_id = await _saved_alert_id(store)
    await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.UPDATE, revision=2, now=BASE_TIME)
    [held] = await store.claim_deliveries(now=BASE_TIME, limit=10, lease=LEASE, worker="a")

    await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.UPDATE, revision=3, now=BASE_TIME)
    # Enqueueing again must not hand the item to a second worker while the first is updating the post.
    assert await store.claim_deliveries(now=BASE_TIME, limit=10, lease=LEASE, worker="b") == []

    assert await store.complete_delivery(
        held.item_id, alert_id=alert_id, revision=2, ref=None, claim=held.claim
    )

    # Revision 3 is still to be shown, and due at once for any worker.
    [newer] = await store.claim_deliveries(now=BASE_TIME, limit=10, lease=LEASE, worker="b")
    assert (newer.item_id, newer.revision) == (held.item_id, 3)


async def test_a_restarted_worker_takes_back_its_own_claims_only(store: Store) -> None:
    alert_ids = await _posts_due(store, 3)
    mine = await store.claim_deliveries(now=BASE_TIME, limit=2, lease=LEASE, worker="host-1")
    [theirs] = await store.claim_deliveries(now=BASE_TIME, limit=2, lease=LEASE, worker="host-10")

    # "host-1" died mid-delivery and starts again: its items are due at once; "host-10"'s claim stays.
    assert await store.release_claims(worker="host-1") == 2
    again = await store.claim_deliveries(now=BASE_TIME, limit=10, lease=LEASE, worker="host-1")

    assert [item.alert_id for item in again] == [item.alert_id for item in mine] == alert_ids[:2]
    assert (again[0].attempts, again[0].next_attempt_at) == (0, BASE_TIME)
    assert theirs.alert_id == alert_ids[2]
    assert await store.release_claims(worker="nobody") == 0


async def _posts_due_on(store: Store, *platforms: str) -> dict[str, int]:
    """A due post for one alert of each platform, oldest first in the order given: platform -> alert id."""
    alert_ids: dict[str, int] = {}
    for index, platform in enumerate(platforms):
        key = make_pair_key("u1", "u2", platform=platform)
        await store.save_pair(make_pair_state(key))
        alert_id = (await store.create_alert(make_alert(key))).alert_id
        due_at = BASE_TIME + timedelta(seconds=index)
        await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.POST, revision=1, now=due_at)
        alert_ids[platform] = alert_id
    return alert_ids


def _scope(*platforms: str, but: tuple[str, ...] = ()) -> DeliveryScope:
    return DeliveryScope(platforms=frozenset(platforms), except_platforms=frozenset(but))


async def test_a_scope_naming_platforms_claims_only_their_alerts(store: Store) -> None:
    alert_ids = await _posts_due_on(store, "discord", "slack", "forum", "http")
    later = BASE_TIME + timedelta(minutes=1)

    assert await store.claim_deliveries(now=later, limit=10, lease=LEASE, worker="none", scope=_scope()) == []
    # The limit counts claimable items only: older items of other platforms do not use it up.
    [forum] = await store.claim_deliveries(now=later, limit=1, lease=LEASE, worker="a", scope=_scope("forum"))
    assert forum.alert_id == alert_ids["forum"]
    both = await store.claim_deliveries(
        now=later, limit=10, lease=LEASE, worker="b", scope=_scope("http", "discord", "forum")
    )
    assert [item.alert_id for item in both] == [alert_ids["discord"], alert_ids["http"]]
    assert [item.alert_id for item in await store.due_deliveries(now=later, limit=10)] == [alert_ids["slack"]]


async def test_except_platforms_leaves_those_alerts_due_for_a_worker_that_covers_them(store: Store) -> None:
    alert_ids = await _posts_due_on(store, "discord", "forum", "slack", "http")
    later = BASE_TIME + timedelta(minutes=1)
    webhook = DeliveryScope(except_platforms=frozenset({"discord", "slack"}))

    claimed = await store.claim_deliveries(now=later, limit=10, lease=LEASE, worker="deliver", scope=webhook)
    assert [item.alert_id for item in claimed] == [alert_ids["forum"], alert_ids["http"]]
    assert await store.claim_deliveries(now=later, limit=10, lease=LEASE, worker="more", scope=webhook) == []

    # What the webhook's workers left is due at once, untouched, for the workers with those sinks.
    left = await store.due_deliveries(now=later, limit=10)
    assert [(item.alert_id, item.attempts) for item in left] == [
        (alert_ids["discord"], 0),
        (alert_ids["slack"], 0),
    ]
    [discord] = await store.claim_deliveries(
        now=later, limit=10, lease=LEASE, worker="gateway", scope=_scope("discord", "slack", but=("slack",))
    )
    assert discord.alert_id == alert_ids["discord"]
    [slack] = await store.claim_deliveries(now=later, limit=10, lease=LEASE, worker="any", scope=ANY_PLATFORM)
    assert slack.alert_id == alert_ids["slack"]


async def test_a_lapsed_lease_is_claimed_again_by_a_worker_whose_scope_covers_it(store: Store) -> None:
    alert_ids = await _posts_due_on(store, "slack")
    [held] = await store.claim_deliveries(
        now=BASE_TIME, limit=10, lease=LEASE, worker="a", scope=_scope("slack")
    )

    after = BASE_TIME + LEASE
    assert await store.claim_deliveries(now=after, limit=10, lease=LEASE, worker="b", scope=_scope("x")) == []
    [again] = await store.claim_deliveries(
        now=after, limit=10, lease=LEASE, worker="c", scope=_scope("slack")
    )
    assert (again.item_id, again.alert_id) == (held.item_id, alert_ids["slack"])


async def test_an_alert_is_claimed_as_a_whole_under_a_scope(store: Store) -> None:
    [forum_id] = (await _posts_due_on(store, "forum")).values()
    discord_id = await _saved_alert_id(store, "u3")
    gateway = _scope("discord")
    now = BASE_TIME + timedelta(minutes=1)
    # An update of an alert never posted (it was in shadow mode), then a post queued while it is claimed:
    # the post is not behind a pending post, only behind its alert's claim.
    await store.enqueue_delivery(alert_id=discord_id, kind=OutboxKind.UPDATE, revision=2, now=BASE_TIME)
    [update] = await store.claim_deliveries(now=now, limit=10, lease=LEASE, worker="a", scope=gateway)
    await store.enqueue_delivery(alert_id=discord_id, kind=OutboxKind.POST, revision=3, now=BASE_TIME)

    assert await store.claim_deliveries(now=now, limit=10, lease=LEASE, worker="b", scope=gateway) == []
    [forum] = await store.claim_deliveries(now=now, limit=10, lease=LEASE, worker="c")
    assert forum.alert_id == forum_id, "another alert is not held up"

    assert await store.fail_delivery(update.item_id, error="down", next_attempt_at=now, claim=update.claim)
    [post] = await store.claim_deliveries(now=now, limit=10, lease=LEASE, worker="b", scope=gateway)
    assert (post.alert_id, post.kind, post.revision) == (discord_id, OutboxKind.POST, 3)


async def test_claim_arguments_are_checked(store: Store) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.claim_deliveries(now=BASE_TIME, limit=-1, lease=LEASE, worker="a")
    with pytest.raises(ValueError, match="lease"):
        await store.claim_deliveries(now=BASE_TIME, limit=1, lease=timedelta(0), worker="a")


async def test_update_alert_without_a_ref_keeps_the_delivered_one(store: Store) -> None:
    alert_id = await _saved_alert_id(store)
    stale_copy = await store.get_alert(alert_id)
    assert stale_copy is not None and stale_copy.delivery_ref is None
    await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.POST, revision=1, now=BASE_TIME)
    [post] = await store.due_deliveries(now=BASE_TIME, limit=1)
    await store.complete_delivery(post.item_id, alert_id=alert_id, revision=post.revision, ref="chan/7")

    await store.update_alert(dataclasses.replace(stale_copy, risk=0.99, revision=2))

    stored = await store.get_alert(alert_id)
    assert stored is not None
    assert (stored.risk, stored.revision, stored.delivery_ref) == (0.99, 2, "chan/7")


# ---------------------------------------------------------------------- space settings


async def test_space_settings_round_trip(store: Store) -> None:
    assert await store.get_space_settings(platform="discord", space_id="guild-1") is None
    settings = SpaceSettings(
        platform="discord",
        space_id="guild-1",
        threshold=0.75,
        alert_channel_id="c-mod",
        moderator_role_id="r-mod",
        child_safety_role_id="r-cs",
        ignored_channel_ids=frozenset({"c-9", "c-3"}),
        shadow_mode=False,
    )

    await store.put_space_settings(settings)
    assert await store.get_space_settings(platform="discord", space_id="guild-1") == settings
    assert await store.get_space_settings(platform="discord", space_id="guild-2") is None

    defaults = SpaceSettings(platform="discord", space_id="guild-1")
    await store.put_space_settings(defaults)
    assert await store.get_space_settings(platform="discord", space_id="guild-1") == defaults

    shadowed = SpaceSettings(platform="discord", space_id="guild-1", shadow_mode=True)
    await store.put_space_settings(shadowed)
    assert await store.get_space_settings(platform="discord", space_id="guild-1") == shadowed


async def test_completing_a_delivery_keeps_a_newer_revision_enqueued_meanwhile(store: Store) -> None:
    alert_id = await _saved_alert_id(store)
    await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.UPDATE, revision=3, now=BASE_TIME)
    (in_flight,) = await store.due_deliveries(now=BASE_TIME, limit=10)
    # While revision 3 is being delivered, the monitor enqueues revision 4.
    await store.enqueue_delivery(alert_id=alert_id, kind=OutboxKind.UPDATE, revision=4, now=BASE_TIME)
    await store.complete_delivery(in_flight.item_id, alert_id=alert_id, revision=3, ref=None)
    (pending,) = await store.due_deliveries(now=BASE_TIME, limit=10)
    assert pending.kind is OutboxKind.UPDATE and pending.revision == 4
    await store.complete_delivery(pending.item_id, alert_id=alert_id, revision=4, ref=None)
    assert await store.pending_delivery_count() == 0


async def test_forget_message_removes_a_deleted_message_and_its_edits_unless_a_case_protects_the_pair(
    store: Store,
) -> None:
    key = make_pair_key(platform="p", space_id="s")
    await store.save_pair(make_pair_state(key))
    for index, message_id in enumerate(("m_1", "m_1:edit:5", "m%1", "m_2")):
        message = dataclasses.replace(make_window_message(index), message_id=message_id)
        await store.append_window(key, message, keep=10)
    removed = await store.forget_message(platform="p", space_id="s", message_id="m_1", now=BASE_TIME)
    assert removed == 2
    # LIKE wildcards in ids are matched literally: "m%1" is not an edit of "m_1".
    assert [m.message_id for m in await store.load_window(key)] == ["m%1", "m_2"]
    assert await store.forget_message(platform="p", space_id="other", message_id="m_2", now=BASE_TIME) == 0

    await store.create_alert(make_alert(key))
    assert await store.forget_message(platform="p", space_id="s", message_id="m_2", now=BASE_TIME) == 0
    assert [m.message_id for m in await store.load_window(key)] == ["m%1", "m_2"]


async def test_forget_message_takes_any_id_the_platform_sent_however_long(store: Store) -> None:
    # SQLite's LIKE refuses patterns over 50,000 bytes: a fuzzed Slack deletion once failed here.
    key = make_pair_key(platform="p", space_id="s")
    await store.save_pair(make_pair_state(key))
    huge = "x" * 60_000
    for index, message_id in enumerate((huge, huge + ":edit:5", "m-2")):
        message = dataclasses.replace(make_window_message(index), message_id=message_id)
        await store.append_window(key, message, keep=10)
    assert await store.forget_message(platform="p", space_id="s", message_id=huge, now=BASE_TIME) == 2
    assert [m.message_id for m in await store.load_window(key)] == ["m-2"]


def turns(location: tuple[str, str, str, str | None], *authors: str, at: datetime) -> TurnMemory:
    """A location's memory as the resolver writes it: one turn per author, the last at ``at``."""
    resolver = PairResolver()
    start = at - timedelta(seconds=len(authors) - 1)
    platform, space_id, channel_id, thread_id = location
    for index, author in enumerate(authors):
        resolver.resolve(
            ChatMessage(
                platform=platform,
                space_id=space_id,
                channel_id=channel_id,
                thread_id=thread_id,
                message_id=f"{channel_id}-{index}",
                author_id=author,
                text="hi",
                timestamp=start + timedelta(seconds=index),
            )
        )
    memory = resolver.memory_of(location)
    assert memory is not None
    return memory


async def test_turn_memory_is_one_row_per_location_newest_first(store: Store) -> None:
    general = ("discord", "guild-1", "general", None)
    thread = ("discord", "guild-1", "general", "thread-1")
    await store.save_turn_memory(turns(general, "a", "b", at=BASE_TIME), saved_at=BASE_TIME)
    await store.save_turn_memory(turns(thread, "c", at=BASE_TIME + timedelta(minutes=2)), saved_at=BASE_TIME)
    newer = turns(general, "a", "b", "a", at=BASE_TIME + timedelta(minutes=5))
    await store.save_turn_memory(newer, saved_at=BASE_TIME)  # replaces the channel's row
    loaded = await store.load_turn_memory(limit=10)
    assert [m.location for m in loaded] == [general, thread]
    assert loaded[0] == newer
    assert await store.load_turn_memory(limit=1) == [newer]


async def test_old_turn_memory_is_purged_and_an_erasure_takes_every_row_that_remembers_the_user(
    store: Store,
) -> None:
    old = BASE_TIME - timedelta(days=900)
    # Messages 900 days old, saved now: retention goes by the saving time.
    await store.save_turn_memory(turns(("discord", "g", "old", None), "a", "b", at=old), saved_at=BASE_TIME)
    # Messages 900 days old, saved now: retention goes by the saving time.
    await store.save_turn_memory(
        turns(("discord", "g", "kid-here", None), "kid", "b", at=old), saved_at=BASE_TIME
    )
    # Messages 900 days old, saved now: retention goes by the saving time.
    await store.save_turn_memory(
        turns(("discord", "g", "others", None), "kiddo", "b", at=old), saved_at=BASE_TIME
    )
    # Messages 900 days old, saved now: retention goes by the saving time.
    await store.save_turn_memory(
        turns(("slack", "T", "kid-there", None), "kid", "b", at=old), saved_at=BASE_TIME
    )
    assert await store.purge_turn_memory(saved_before=BASE_TIME, limit=10) == 0
    await store.erase_user(platform="discord", user_id="kid", now=BASE_TIME)
    left = await store.load_turn_memory(limit=10)
    assert sorted(m.location[2] for m in left) == ["kid-there", "old", "others"]
    later = BASE_TIME + timedelta(seconds=1)
    assert await store.purge_turn_memory(saved_before=later, limit=10, dry_run=True) == 3
    assert await store.purge_turn_memory(saved_before=later, limit=10) == 3
    assert await store.load_turn_memory(limit=10) == []
