"""The store contract added with schema version 2: records, cases, audit, evidence, retention, erasure.

Runs against every backend in ``STORE_FACTORIES`` (and encrypted SQLite and Postgres stores), like the base
contract.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.storage.builders import (
    BASE_TIME,
    make_alert,
    make_pair_key,
    make_pair_state,
    make_risk_point,
    make_window_message,
)
from tests.storage.factories import STORE_FACTORIES, StoreFactory
from vigil.bots.core.cases import CaseSource, CaseState
from vigil.bots.core.models import AlertStatus, PairKey, WindowMessage
from vigil.bots.core.ports import CaseRecord, Store
from vigil.storage import SqliteStore
from vigil.storage.crypto import TextCipher
from vigil.storage.postgres import PostgresStore


async def _open_sqlite_encrypted(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    store = SqliteStore(tmp_path / "encrypted.sqlite3", cipher=TextCipher(key=secrets.token_bytes(32)))
    await store.open()
    return store


async def _open_postgres_encrypted(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    store = PostgresStore(
        request.getfixturevalue("postgres_dsn"),
        cipher=TextCipher(key=secrets.token_bytes(32)),
        max_connections=2,
    )
    await store.open()
    return store


FACTORIES: tuple[tuple[str, StoreFactory], ...] = (
    *STORE_FACTORIES,
    ("sqlite-encrypted", _open_sqlite_encrypted),
    ("postgres-encrypted", _open_postgres_encrypted),
)


@pytest.fixture(params=[factory for _, factory in FACTORIES], ids=[name for name, _ in FACTORIES])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    factory: StoreFactory = request.param
    opened = await factory(request, tmp_path)
    try:
        yield opened
    finally:
        await asyncio.wait_for(opened.close(), timeout=5)


NOW = BASE_TIME + timedelta(days=100)


async def new_case(
    store: Store, key: PairKey | None = None, *, status: AlertStatus | None = None, **changes: object
) -> CaseRecord:
    """An alert (with its pair) stored, then its case columns set to ``changes``.

    A dismissed case's alert is closed, as the case service does, unless ``status`` says otherwise.
    """
    key = key or make_pair_key()
    if await store.load_pair(key) is None:
        await store.save_pair(make_pair_state(key))
    alert = await store.create_alert(make_alert(key))
    case = await store.case_for_alert(alert.alert_id)
    assert case is not None
    if status is None:
        status = AlertStatus.CLOSED if changes.get("state") is CaseState.DISMISSED else AlertStatus.OPEN
    if changes or status is not AlertStatus.OPEN:
        case = dataclasses.replace(case, alert=dataclasses.replace(case.alert, status=status))
        case = dataclasses.replace(case, **changes)  # type: ignore[arg-type]
        await store.update_case(case)
    return case


def message(
    index: int, *, author: str = "u1", at: datetime | None = None, text: str | None = None
) -> WindowMessage:
    return dataclasses.replace(
        make_window_message(index),
        author_id=author,
        timestamp=at or BASE_TIME + timedelta(seconds=index),
        text=text if text is not None else f"message number {index} — with ünïcode",
    )


# ---------------------------------------------------------------------- records


async def test_records_put_get_replace_delete_and_list(store: Store) -> None:
    assert await store.get_record("slack.installations", "T1") is None
    await store.put_record("slack.installations", "T1", '{"bot_token": "xoxb-1"}')
    await store.put_record("slack.installations", "T0", "zero ✓")
    await store.put_record("slack.states", "T1", "state")
    assert await store.get_record("slack.installations", "T1") == '{"bot_token": "xoxb-1"}'

    await store.put_record("slack.installations", "T1", "replaced")

    assert await store.list_records("slack.installations") == {"T0": "zero ✓", "T1": "replaced"}
    assert list(await store.list_records("slack.installations")) == ["T0", "T1"]
    assert await store.delete_record("slack.installations", "T1") is True
    assert await store.delete_record("slack.installations", "T1") is False
    assert await store.get_record("slack.installations", "T1") is None
    assert await store.list_records("slack.states") == {"T1": "state"}
    assert await store.list_records("nothing") == {}
    await store.put_record("empty", "k", "")
    assert await store.get_record("empty", "k") == ""


async def test_records_roll_back_with_the_transaction(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction():
            await store.put_record("ns", "k", "v")
            raise RuntimeError("boom")
    assert await store.get_record("ns", "k") is None


async def test_every_stored_text_takes_any_character_even_nul(store: Store) -> None:
    # Chat platforms pass control characters through; one in a message must not stop a backend (PostgreSQL's
    # text type refuses NUL) from storing the window, the evidence or the moderators' notes.
    odd = "a\x00b\x01c \u2028 \ud7ff \U0001f600 end"
    case = await new_case(store)
    key = case.alert.key
    window_message = message(1, text=odd)
    await store.append_window(key, window_message, keep=5)
    assert await store.load_window(key) == [window_message]
    assert await store.preserve_evidence(alert_id=case.alert.alert_id, messages=[window_message]) == 1
    assert await store.load_evidence(case.alert.alert_id) == [window_message]
    changed = dataclasses.replace(
        case,
        alert=dataclasses.replace(case.alert, evidence=(window_message,)),
        state=CaseState.DISMISSED,
        dismiss_reason=odd,
        closed_at=BASE_TIME,
    )
    await store.update_case(changed)
    assert await store.case_for_alert(case.alert.alert_id) == changed
    await store.put_record("ns", "k", odd)
    assert await store.get_record("ns", "k") == odd
    assert await store.list_records("ns") == {"k": odd}
    event = await store.append_audit(
        platform=key.platform,
        space_id=key.space_id,
        case_number=case.alert.case_number,
        at=BASE_TIME,
        actor_id="mod-1",
        action="note",
        before=odd,
        after=odd,
        detail=odd,
    )
    stored = await store.audit_events(
        platform=key.platform, space_id=key.space_id, case_number=case.alert.case_number
    )
    assert stored == [event]
    assert (event.before, event.after, event.detail) == (odd, odd, odd)


# ---------------------------------------------------------------------- cases


async def test_a_new_alert_is_an_open_case_from_the_monitor(store: Store) -> None:
    case = await new_case(store)

    loaded = await store.get_case(platform="discord", space_id="guild-1", case_number=case.alert.case_number)

    assert loaded == case
    assert loaded.state is CaseState.OPEN and loaded.source is CaseSource.ALERT
    assert loaded.claimed_by is None and loaded.dismiss_reason is None and loaded.hold_until is None
    assert loaded.alert == await store.get_alert(case.alert.alert_id)


async def test_update_case_round_trips_every_field(store: Store) -> None:
    case = await new_case(store)
    changed = CaseRecord(
        alert=dataclasses.replace(
            case.alert,
            status=AlertStatus.CLOSED,
            revision=7,
            updated_at=BASE_TIME + timedelta(hours=1),
            evidence=(message(5, text="evidence ✓"),),
        ),
        state=CaseState.DISMISSED,
        source=CaseSource.MEMBER_REPORT,
        claimed_by="mod-1",
        dismiss_reason="friends from school — fine",
        hold_until=BASE_TIME + timedelta(days=365),
        closed_at=BASE_TIME + timedelta(hours=1),
        text_purged_at=BASE_TIME + timedelta(days=40),
    )

    await store.update_case(changed)

    assert await store.case_for_alert(case.alert.alert_id) == changed
    assert await store.get_alert(case.alert.alert_id) == changed.alert


async def test_case_numbers_are_per_space(store: Store) -> None:
    first = await new_case(store)
    other_space = await new_case(store, make_pair_key(space_id="guild-2"))

    assert first.alert.case_number == other_space.alert.case_number == 1
    assert await store.get_case(platform="discord", space_id="guild-2", case_number=1) == other_space
    assert await store.get_case(platform="discord", space_id="guild-1", case_number=2) is None
    assert await store.get_case(platform="slack", space_id="guild-1", case_number=1) is None
    assert await store.case_for_alert(999) is None


async def test_list_cases_newest_first_by_user_and_before_a_number(store: Store) -> None:
    ab = await new_case(store, make_pair_key("a", "b"))
    cd = await new_case(store, make_pair_key("c", "d"))
    ad = await new_case(store, make_pair_key("a", "d"))
    await new_case(store, make_pair_key("a", "b", space_id="guild-2"))

    def numbers(cases: list[CaseRecord]) -> list[int]:
        return [case.alert.case_number for case in cases]

    everything = await store.list_cases(platform="discord", space_id="guild-1", limit=10)
    assert numbers(everything) == [3, 2, 1]
    assert numbers(await store.list_cases(platform="discord", space_id="guild-1", limit=2)) == [3, 2]
    of_d = await store.list_cases(platform="discord", space_id="guild-1", limit=10, user_id="d")
    assert numbers(of_d) == [ad.alert.case_number, cd.alert.case_number]
    earlier_of_a = await store.list_cases(
        platform="discord", space_id="guild-1", limit=10, user_id="a", before_case_number=3
    )
    assert numbers(earlier_of_a) == [ab.alert.case_number]
    assert await store.list_cases(platform="discord", space_id="guild-1", limit=10, user_id="zed") == []


async def test_iter_cases_by_platform_in_batches(store: Store) -> None:
    for index in range(3):
        await new_case(store, make_pair_key("a", f"b{index}"))
    await new_case(store, make_pair_key("a", "b", platform="slack"))

    batches = [list(batch) async for batch in store.iter_cases(platform="discord", batch=2)]
    every = [case async for batch in store.iter_cases(platform=None, batch=10) for case in batch]

    assert [len(batch) for batch in batches] == [2, 1]
    assert {case.alert.key.platform for batch in batches for case in batch} == {"discord"}
    assert len(every) == 4


# ---------------------------------------------------------------------- audit trail


async def test_audit_events_are_appended_in_order_per_case(store: Store) -> None:
    case = await new_case(store)
    number = case.alert.case_number
    first = await store.append_audit(
        platform="discord",
        space_id="guild-1",
        case_number=number,
        at=BASE_TIME,
        actor_id="mod-1",
        action="claim",
        before="open",
        after="claimed",
    )
    await store.append_audit(
        platform="discord",
        space_id="guild-1",
        case_number=number,
        at=BASE_TIME + timedelta(minutes=1),
        actor_id="mod-2",
        action="note",
        before="claimed",
        after="claimed",
        detail="asked the member's parent — ünïcode",
    )
    await store.append_audit(
        platform="discord",
        space_id="*",
        case_number=None,
        at=BASE_TIME,
        actor_id="cli:root",
        action="forget",
        detail="{}",
    )

    events = await store.audit_events(platform="discord", space_id="guild-1", case_number=number)

    assert [event.action for event in events] == ["claim", "note"]
    assert events[0] == first
    assert events[1].detail == "asked the member's parent — ünïcode" and events[1].actor_id == "mod-2"
    assert events[0].event_id < events[1].event_id
    caseless = await store.audit_events(platform="discord", space_id="*", case_number=None)
    assert [event.action for event in caseless] == ["forget"]
    assert await store.audit_events(platform="discord", space_id="guild-2", case_number=number) == []


# ---------------------------------------------------------------------- preserved evidence


async def test_preserved_evidence_skips_duplicates_and_outlives_the_window(store: Store) -> None:
    case = await new_case(store)
    key = case.alert.key
    for index in range(1, 4):
        await store.append_window(key, message(index), keep=10)

    added = await store.preserve_evidence(alert_id=case.alert.alert_id, messages=await store.load_window(key))
    again = await store.preserve_evidence(
        alert_id=case.alert.alert_id, messages=[message(3), message(4, author="u2")]
    )
    for index in range(5, 9):
        await store.append_window(key, message(index), keep=2)

    assert (added, again) == (3, 1)
    assert await store.load_evidence(case.alert.alert_id) == [
        message(1),
        message(2),
        message(3),
        message(4, author="u2"),
    ]
    assert len(await store.load_window(key)) == 2
    assert await store.load_evidence(999) == []


# ---------------------------------------------------------------------- retention


async def test_window_purge_spares_pairs_with_an_open_case_or_a_hold(store: Store) -> None:
    old, recent = BASE_TIME, NOW - timedelta(days=1)
    plain, open_case, dismissed, held, escalated_over = (make_pair_key("a", f"b{i}") for i in range(5))
    for key in (plain, open_case, dismissed, held, escalated_over):
        await store.save_pair(make_pair_state(key))
        await store.append_window(key, message(1, at=old), keep=10)
        await store.append_window(key, message(2, at=recent), keep=10)
    await new_case(store, open_case)
    await new_case(store, dismissed, state=CaseState.DISMISSED)
    await new_case(store, held, state=CaseState.DISMISSED, hold_until=NOW + timedelta(days=1))
    await new_case(store, escalated_over, state=CaseState.ESCALATED, hold_until=NOW - timedelta(seconds=1))
    cutoff = NOW - timedelta(days=14)

    dry = await store.purge_window_messages(older_than=cutoff, now=NOW, limit=1, dry_run=True)
    assert dry == 3
    assert len(await store.load_window(plain)) == 2
    first = await store.purge_window_messages(older_than=cutoff, now=NOW, limit=2)
    rest = await store.purge_window_messages(older_than=cutoff, now=NOW, limit=2)
    again = await store.purge_window_messages(older_than=cutoff, now=NOW, limit=2)

    assert (first, rest, again) == (2, 1, 0)
    for key in (plain, dismissed, escalated_over):
        assert [m.message_id for m in await store.load_window(key)] == ["m-2"]
    for key in (open_case, held):
        assert len(await store.load_window(key)) == 2


async def test_idle_pairs_go_with_their_window_and_risk_unless_protected_or_snoozed(store: Store) -> None:
    idle, busy, snoozed, with_case = (make_pair_key("a", f"b{i}") for i in range(4))
    for key in (idle, busy, snoozed, with_case):
        state = make_pair_state(key)
        if key == busy:
            state = dataclasses.replace(state, last_seen=NOW)
        if key == snoozed:
            state = dataclasses.replace(state, snoozed_until=NOW + timedelta(days=3))
        await store.save_pair(state)
        await store.append_window(key, message(1), keep=10)
        await store.append_risk(make_risk_point(key, 1))
    await new_case(store, with_case)
    idle_since = NOW - timedelta(days=30)

    assert await store.purge_idle_pairs(idle_since=idle_since, now=NOW, limit=10, dry_run=True) == 1
    assert await store.count_pairs() == 4
    assert await store.purge_idle_pairs(idle_since=idle_since, now=NOW, limit=10) == 1
    assert await store.purge_idle_pairs(idle_since=idle_since, now=NOW, limit=10) == 0

    assert await store.load_pair(idle) is None
    assert await store.load_window(idle) == [] and await store.risk_history(idle, limit=10) == []
    for key in (busy, snoozed, with_case):
        assert await store.load_pair(key) is not None


async def test_case_text_purge_blanks_dismissed_and_released_cases_only(store: Store) -> None:
    long_ago = NOW - timedelta(days=31)
    dismissed_old = await new_case(
        store, make_pair_key("a", "b1"), state=CaseState.DISMISSED, closed_at=long_ago
    )
    dismissed_new = await new_case(
        store, make_pair_key("a", "b2"), state=CaseState.DISMISSED, closed_at=NOW - timedelta(days=1)
    )
    held = await new_case(
        store, make_pair_key("a", "b3"), state=CaseState.ESCALATED, hold_until=NOW + timedelta(days=1)
    )
    released = await new_case(store, make_pair_key("a", "b4"), state=CaseState.ESCALATED, hold_until=None)
    confirmed = await new_case(store, make_pair_key("a", "b5"), state=CaseState.CONFIRMED)
    for case in (held, released):
        await store.preserve_evidence(alert_id=case.alert.alert_id, messages=[message(1)])
    before = NOW - timedelta(days=30)

    assert await store.purge_case_texts(dismissed_before=before, now=NOW, limit=10, dry_run=True) == 2
    assert await store.purge_case_texts(dismissed_before=before, now=NOW, limit=1) == 1
    assert await store.purge_case_texts(dismissed_before=before, now=NOW, limit=1) == 1
    assert await store.purge_case_texts(dismissed_before=before, now=NOW, limit=1) == 0

    for case in (dismissed_old, released):
        purged = await store.case_for_alert(case.alert.alert_id)
        assert purged is not None and purged.text_purged_at == NOW
        assert [m.text for m in purged.alert.evidence] == ["", ""]
        assert [m.message_id for m in purged.alert.evidence] == [m.message_id for m in case.alert.evidence]
        assert await store.load_evidence(case.alert.alert_id) == []
    for case in (dismissed_new, held, confirmed):
        kept = await store.case_for_alert(case.alert.alert_id)
        assert kept is not None and kept.text_purged_at is None
        assert all(m.text for m in kept.alert.evidence)
    assert await store.load_evidence(held.alert.alert_id) == [message(1)]


async def test_seen_messages_and_risk_history_pruned_except_protected_pairs(store: Store) -> None:
    for index in range(3):
        await store.claim_message(
            platform="discord",
            space_id="g",
            message_id=f"m-{index}",
            seen_at=BASE_TIME + timedelta(days=index),
        )
    plain, held = make_pair_key("a", "b"), make_pair_key("a", "c")
    for key in (plain, held):
        await store.save_pair(make_pair_state(key))
        for index in range(3):
            await store.append_risk(
                dataclasses.replace(make_risk_point(key, index), timestamp=BASE_TIME + timedelta(days=index))
            )
    await new_case(store, held, state=CaseState.DISMISSED, hold_until=NOW)
    cutoff = BASE_TIME + timedelta(days=1, hours=12)

    assert await store.purge_seen_messages(older_than=cutoff, limit=10, dry_run=True) == 2
    assert await store.purge_seen_messages(older_than=cutoff, limit=10) == 2
    assert await store.purge_risk_history(older_than=cutoff, now=NOW - timedelta(days=1), limit=10) == 2

    assert await store.claim_message(platform="discord", space_id="g", message_id="m-0", seen_at=NOW) is True
    assert await store.claim_message(platform="discord", space_id="g", message_id="m-2", seen_at=NOW) is False
    assert len(await store.risk_history(plain, limit=10)) == 1
    assert len(await store.risk_history(held, limit=10)) == 3
    # Once the hold is over, the held pair's history is pruned like any other.
    assert await store.purge_risk_history(older_than=cutoff, now=NOW, limit=10) == 2


# ---------------------------------------------------------------------- erasure


async def test_erase_user_everywhere_on_the_platform_except_holds(store: Store) -> None:
    mine = make_pair_key("kid", "adult")
    mine_elsewhere = make_pair_key("kid", "other", space_id="guild-2")
    held = make_pair_key("kid", "groomer", space_id="guild-3")
    not_mine = make_pair_key("adult", "other")
    other_platform = make_pair_key("kid", "adult", platform="slack")
    for key in (mine, mine_elsewhere, held, not_mine, other_platform):
        await store.save_pair(make_pair_state(key))
        await store.append_window(key, message(1, author=key.user_a), keep=10)
        await store.append_window(key, message(2, author=key.user_b), keep=10)
        await store.append_risk(make_risk_point(key, 1))
    open_case = await new_case(store, mine)
    await store.update_case(
        dataclasses.replace(
            open_case,
            alert=dataclasses.replace(
                open_case.alert, evidence=(message(1, author="kid"), message(2, author="adult"))
            ),
        )
    )
    await store.preserve_evidence(
        alert_id=open_case.alert.alert_id, messages=[message(1, author="kid"), message(2, author="adult")]
    )
    held_case = await new_case(store, held, hold_until=NOW + timedelta(days=1))
    await store.preserve_evidence(alert_id=held_case.alert.alert_id, messages=[message(1, author="kid")])

    erased = await store.erase_user(platform="discord", user_id="kid", now=NOW)

    assert (erased.pairs, erased.window_messages, erased.risk_points) == (2, 4, 2)
    assert (erased.evidence_messages, erased.case_evidence_texts) == (1, 1)
    assert (erased.held_pairs, erased.held_cases) == (1, 1)
    assert await store.load_pair(mine) is None and await store.load_pair(mine_elsewhere) is None
    for key in (held, not_mine, other_platform):
        assert len(await store.load_window(key)) == 2
    kept = await store.case_for_alert(open_case.alert.alert_id)
    assert kept is not None
    assert [(m.author_id, bool(m.text)) for m in kept.alert.evidence] == [("kid", False), ("adult", True)]
    assert [m.author_id for m in await store.load_evidence(open_case.alert.alert_id)] == ["adult"]
    assert len(await store.load_evidence(held_case.alert.alert_id)) == 1
    nothing = await store.erase_user(platform="discord", user_id="nobody", now=NOW)
    assert nothing.pairs == nothing.held_pairs == nothing.held_cases == 0
