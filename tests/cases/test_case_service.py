"""CaseService end to end: real SQLite file, the real monitor with the keyword model, the real outbox."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import timedelta

import pytest

from tests.cases.helpers import CHILD_SAFETY, MEMBER, MODERATOR, PLATFORM, SPACE, Harness, actor
from vigil.bots.core.case_service import MEMBER_REPORT_MODEL, CaseService
from vigil.bots.core.cases import (
    CaseAction,
    CaseError,
    Cases,
    CaseSource,
    CaseState,
    Role,
    whole_case,
)
from vigil.bots.core.models import AlertStatus, ChatMessage, OutboxKind
from vigil.storage.sqlite import SqliteStore


def test_case_service_is_a_cases(sqlite_store: SqliteStore) -> None:
    cases: Cases = CaseService(store=sqlite_store)
    assert cases is not None


async def pending_update_revision(harness: Harness, alert_id: int) -> int | None:
    """The revision of the alert's pending outbox UPDATE, if one is due."""
    due = await harness.store.due_deliveries(now=harness.clock.now + timedelta(days=1), limit=100)
    updates = [item.revision for item in due if item.alert_id == alert_id and item.kind is OutboxKind.UPDATE]
    return updates[0] if updates else None


async def test_lifecycle_claim_confirm_escalate_release_re_renders_after_each_action(
    harness: Harness,
) -> None:
    alert = await harness.raise_alert()
    assert await harness.deliver() == 1  # the POST
    number = alert.case_number
    steps = [
        (MODERATOR, CaseAction.CLAIM, CaseState.CLAIMED),
        (MODERATOR, CaseAction.NOTE, CaseState.CLAIMED),
        (MODERATOR, CaseAction.CONFIRM, CaseState.CONFIRMED),
        (MODERATOR, CaseAction.ESCALATE, CaseState.ESCALATED),
        (CHILD_SAFETY, CaseAction.RELEASE_HOLD, CaseState.ESCALATED),
    ]
    for index, (who, action, state) in enumerate(steps, start=1):
        harness.clock.advance(timedelta(minutes=1))
        result = await harness.service.act(actor=who, case_number=number, action=action, reason="because")

        assert result.ok, result.message
        assert result.case is not None and result.case.state is state
        assert result.case.alert.revision == alert.revision + index
        assert await pending_update_revision(harness, alert.alert_id) == alert.revision + index
        assert len(harness.notified) == index
        assert await harness.deliver() == 1
        rendered, ref = harness.sink.updated[-1]
        assert ref == f"ref-{alert.alert_id}" and rendered.revision == alert.revision + index
        assert (await harness.service.view(rendered)).state is state

    view = (await harness.service.get(actor=MODERATOR, case_number=number)).case
    assert view is not None
    assert view.claimed_by == "mod-1" and view.hold_until is None and view.source is CaseSource.ALERT
    assert [(e.action, e.before, e.after) for e in view.audit] == [
        ("claim", "open", "claimed"),
        ("note", "claimed", "claimed"),
        ("confirm", "claimed", "confirmed"),
        ("escalate", "confirmed", "escalated"),
        ("release_hold", "escalated", "escalated"),
    ]
    assert view.audit[1].detail == "because" and view.audit[-1].actor_id == "cs-1"


async def test_escalate_preserves_the_window_and_alert_evidence_under_a_hold(harness: Harness) -> None:
    alert = await harness.raise_alert()
    window = await harness.store.load_window(alert.key)

    result = await harness.service.act(
        actor=MODERATOR, case_number=alert.case_number, action=CaseAction.ESCALATE
    )

    assert result.case is not None
    assert result.case.hold_until == harness.clock.now + timedelta(days=365)
    preserved = await harness.store.load_evidence(alert.alert_id)
    assert {m.message_id for m in preserved} == {m.message_id for m in window} | {
        m.message_id for m in alert.evidence
    }
    # The preserved copy stays whole however the window moves on.
    await harness.talk("adult", "kid", risky=False, turns=15)
    assert await harness.store.load_evidence(alert.alert_id) == preserved
    transcript = await harness.service.transcript(actor=CHILD_SAFETY, case_number=alert.case_number)
    # The transcript is the preserved copy and what the pair said since, each message once.
    later = await harness.store.load_window(alert.key)
    assert transcript.ok and list(transcript.messages) == whole_case(preserved=preserved, window=later)
    assert set(preserved) <= set(transcript.messages) and later[-1] == transcript.messages[-1]


async def test_dismiss_closes_the_alert_and_snoozes_the_pair(harness: Harness) -> None:
    alert = await harness.raise_alert()

    result = await harness.service.act(
        actor=MODERATOR, case_number=alert.case_number, action=CaseAction.DISMISS, reason="cousins joking"
    )

    assert result.ok and result.case is not None
    assert result.case.state is CaseState.DISMISSED and result.case.dismiss_reason == "cousins joking"
    assert result.case.alert.status is AlertStatus.CLOSED
    pair = await harness.store.load_pair(alert.key)
    assert pair is not None and pair.snoozed_until == harness.clock.now + timedelta(hours=6)
    assert await harness.store.open_alert_for_pair(alert.key) is None
    # Snoozed: the same talk raises nothing; after the snooze it raises a new case, which shows the old one.
    assert await harness.talk("adult", "kid", risky=True) == []
    harness.clock.advance(timedelta(hours=7))
    again = await harness.talk("adult", "kid", risky=True)
    assert [a.case_number for a in again] == [alert.case_number + 1]
    view = await harness.service.view(again[0])
    assert [(c.case_number, c.state) for c in view.earlier_cases] == [
        (alert.case_number, CaseState.DISMISSED)
    ]


async def test_earlier_cases_name_the_suspect_as_suspect_or_pair_member(harness: Harness) -> None:
    first = await harness.raise_alert("adult", "kid-1")
    await harness.raise_alert("someone", "other")
    # "adult" is the other member here: still an earlier case of theirs.
    third = await harness.raise_alert("groomer", "adult")
    fourth = await harness.raise_alert("adult", "kid-2")

    view = await harness.service.view(fourth)
    third_view = await harness.service.view(third)

    assert [c.case_number for c in view.earlier_cases] == [third.case_number, first.case_number]
    assert third_view.earlier_cases == ()


async def test_snooze_default_bounds_and_custom(harness: Harness) -> None:
    alert = await harness.raise_alert()
    number = alert.case_number

    default = await harness.service.act(actor=MODERATOR, case_number=number, action=CaseAction.SNOOZE)
    pair = await harness.store.load_pair(alert.key)
    assert default.ok and pair is not None and pair.snoozed_until == harness.clock.now + timedelta(days=7)
    for bad in (timedelta(minutes=59), timedelta(days=91)):
        refused = await harness.service.act(
            actor=MODERATOR, case_number=number, action=CaseAction.SNOOZE, snooze_for=bad
        )
        assert refused.error is CaseError.INVALID_INPUT
    harness.clock.advance(timedelta(days=1))
    longer = await harness.service.act(
        actor=MODERATOR, case_number=number, action=CaseAction.SNOOZE, snooze_for=timedelta(days=30)
    )
    pair = await harness.store.load_pair(alert.key)
    assert longer.ok and pair is not None and pair.snoozed_until == harness.clock.now + timedelta(days=30)
    view = longer.case
    assert view is not None and [e.action for e in view.audit] == ["snooze", "snooze"]


async def test_a_note_needs_text(harness: Harness) -> None:
    alert = await harness.raise_alert()
    for empty in (None, "", "   "):
        result = await harness.service.act(
            actor=MODERATOR, case_number=alert.case_number, action=CaseAction.NOTE, reason=empty
        )
        assert result.error is CaseError.INVALID_INPUT


# Every state a case can be in, every action: allowed or INVALID_TRANSITION (cases.py's table).
ALLOWED: dict[CaseState, set[CaseAction]] = {
    CaseState.OPEN: {
        CaseAction.CLAIM,
        CaseAction.DISMISS,
        CaseAction.CONFIRM,
        CaseAction.ESCALATE,
        CaseAction.SNOOZE,
        CaseAction.NOTE,
    },
    CaseState.CLAIMED: {
        CaseAction.DISMISS,
        CaseAction.CONFIRM,
        CaseAction.ESCALATE,
        CaseAction.SNOOZE,
        CaseAction.NOTE,
    },
    CaseState.CONFIRMED: {CaseAction.ESCALATE, CaseAction.SNOOZE, CaseAction.NOTE},
    CaseState.ESCALATED: {CaseAction.SNOOZE, CaseAction.NOTE, CaseAction.RELEASE_HOLD},
    CaseState.DISMISSED: set(),
}
REACH: dict[CaseState, CaseAction | None] = {
    CaseState.OPEN: None,
    CaseState.CLAIMED: CaseAction.CLAIM,
    CaseState.CONFIRMED: CaseAction.CONFIRM,
    CaseState.ESCALATED: CaseAction.ESCALATE,
    CaseState.DISMISSED: CaseAction.DISMISS,
}
AFTER: dict[CaseAction, CaseState | None] = {
    CaseAction.CLAIM: CaseState.CLAIMED,
    CaseAction.DISMISS: CaseState.DISMISSED,
    CaseAction.CONFIRM: CaseState.CONFIRMED,
    CaseAction.ESCALATE: CaseState.ESCALATED,
}


@pytest.mark.parametrize("start", list(CaseState))
@pytest.mark.parametrize("action", list(CaseAction))
async def test_every_transition(harness: Harness, start: CaseState, action: CaseAction) -> None:
    alert = await harness.raise_alert()
    number = alert.case_number
    reach = REACH[start]
    if reach is not None:
        assert (await harness.service.act(actor=CHILD_SAFETY, case_number=number, action=reach)).ok
    before = await harness.store.get_case(platform=PLATFORM, space_id=SPACE, case_number=number)
    assert before is not None and before.state is start

    result = await harness.service.act(actor=CHILD_SAFETY, case_number=number, action=action, reason="why")

    after = await harness.store.get_case(platform=PLATFORM, space_id=SPACE, case_number=number)
    assert after is not None
    if action in ALLOWED[start]:
        assert result.ok, result.message
        assert after.state is (AFTER.get(action) or start)
        assert after.alert.revision == before.alert.revision + 1
        assert await pending_update_revision(harness, alert.alert_id) is None  # the POST is still pending
        assert (await harness.store.pending_delivery_count()) == 2
    else:
        assert result.error is CaseError.INVALID_TRANSITION, result.message
        assert result.message and f"#{number}" in result.message
        assert after == before
        audit = await harness.store.audit_events(platform=PLATFORM, space_id=SPACE, case_number=number)
        assert len(audit) == (0 if reach is None else 1)


async def test_claiming_a_claimed_case_names_who_has_it(harness: Harness) -> None:
    alert = await harness.raise_alert()
    await harness.service.act(actor=MODERATOR, case_number=alert.case_number, action=CaseAction.CLAIM)
    other = actor(Role.MODERATOR, user_id="mod-2")

    result = await harness.service.act(actor=other, case_number=alert.case_number, action=CaseAction.CLAIM)

    assert result.error is CaseError.INVALID_TRANSITION and "mod-1" in result.message


async def test_releasing_twice_is_invalid(harness: Harness) -> None:
    alert = await harness.raise_alert()
    number = alert.case_number
    await harness.service.act(actor=MODERATOR, case_number=number, action=CaseAction.ESCALATE)
    assert (
        await harness.service.act(actor=CHILD_SAFETY, case_number=number, action=CaseAction.RELEASE_HOLD)
    ).ok

    again = await harness.service.act(actor=CHILD_SAFETY, case_number=number, action=CaseAction.RELEASE_HOLD)

    assert again.error is CaseError.INVALID_TRANSITION


async def test_roles_are_checked_before_anything_is_looked_up(harness: Harness) -> None:
    alert = await harness.raise_alert()
    number = alert.case_number
    nobody = actor(user_id="member-2")
    admin_only = actor(Role.ADMIN, user_id="admin-1")
    for who in (nobody, admin_only):
        for case_number in (number, 999):
            assert (
                await harness.service.get(actor=who, case_number=case_number)
            ).error is CaseError.FORBIDDEN
            result = await harness.service.act(actor=who, case_number=case_number, action=CaseAction.CLAIM)
            assert result.error is CaseError.FORBIDDEN
        listed, summaries = await harness.service.list_cases(actor=who)
        assert listed.error is CaseError.FORBIDDEN and summaries == ()
    # The moderator role acts, but transcripts and releasing holds need the child-safety role.
    for case_number in (number, 999):
        transcript = await harness.service.transcript(actor=MODERATOR, case_number=case_number)
        assert transcript.error is CaseError.FORBIDDEN and transcript.messages == ()
        release = await harness.service.act(
            actor=MODERATOR, case_number=case_number, action=CaseAction.RELEASE_HOLD
        )
        assert release.error is CaseError.FORBIDDEN
    case = await harness.store.get_case(platform=PLATFORM, space_id=SPACE, case_number=number)
    assert case is not None and case.alert.revision == alert.revision
    assert await harness.store.audit_events(platform=PLATFORM, space_id=SPACE, case_number=number) == []


async def test_a_case_number_from_another_space_is_not_found(harness: Harness) -> None:
    alert = await harness.raise_alert()
    number = alert.case_number
    elsewhere = actor(Role.MODERATOR, Role.CHILD_SAFETY, space_id="guild-2")
    other_platform = actor(Role.MODERATOR, Role.CHILD_SAFETY, platform="slack")
    for who in (elsewhere, other_platform):
        assert (await harness.service.get(actor=who, case_number=number)).error is CaseError.NOT_FOUND
        acted = await harness.service.act(actor=who, case_number=number, action=CaseAction.DISMISS)
        assert acted.error is CaseError.NOT_FOUND and "No such case" in acted.message
        assert (await harness.service.transcript(actor=who, case_number=number)).error is CaseError.NOT_FOUND
        _, summaries = await harness.service.list_cases(actor=who)
        assert summaries == ()
    case = await harness.store.get_case(platform=PLATFORM, space_id=SPACE, case_number=number)
    assert case is not None and case.state is CaseState.OPEN


async def test_list_cases_by_user(harness: Harness) -> None:
    first = await harness.raise_alert("adult", "kid-1")
    await harness.raise_alert("someone", "kid-2")

    listed, summaries = await harness.service.list_cases(actor=MODERATOR, user_id="kid-1")
    _, everything = await harness.service.list_cases(actor=MODERATOR)
    bad, _ = await harness.service.list_cases(actor=MODERATOR, limit=0)

    assert listed.ok and [s.case_number for s in summaries] == [first.case_number]
    assert [s.case_number for s in everything] == [2, 1]
    assert bad.error is CaseError.INVALID_INPUT


async def test_transcript_is_the_window_until_escalation_and_its_reading_is_audited(harness: Harness) -> None:
    alert = await harness.raise_alert()

    transcript = await harness.service.transcript(actor=CHILD_SAFETY, case_number=alert.case_number)

    assert transcript.ok and list(transcript.messages) == await harness.store.load_window(alert.key)
    audit = await harness.store.audit_events(platform=PLATFORM, space_id=SPACE, case_number=alert.case_number)
    assert [(e.action, e.actor_id) for e in audit] == [("transcript_viewed", "cs-1")]


async def test_the_audit_trail_is_append_only_in_the_database(harness: Harness) -> None:
    alert = await harness.raise_alert()
    await harness.service.act(actor=MODERATOR, case_number=alert.case_number, action=CaseAction.CLAIM)
    database = harness.store.database
    await harness.store.close()

    with sqlite3.connect(database) as connection:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            connection.execute("UPDATE case_audit SET actor_id = 'someone-else'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            connection.execute("DELETE FROM case_audit")
        # Only `vigil rekey`'s change gets through: an encrypted detail replaced by an encrypted one.
        for detail in ("a rewritten plain detail", "v2:abcd:AAAA"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                connection.execute("UPDATE case_audit SET detail = ?", (detail,))
        rows = connection.execute("SELECT actor_id, action FROM case_audit").fetchall()
    assert rows == [("mod-1", "claim")]
    await harness.store.open()


async def test_shadow_cases_are_audited_but_never_queued(harness: Harness) -> None:
    alert = await harness.raise_alert()
    await harness.deliver()
    case = await harness.store.case_for_alert(alert.alert_id)
    assert case is not None
    await harness.store.update_case(
        dataclasses.replace(case, alert=dataclasses.replace(case.alert, shadow=True))
    )

    result = await harness.service.act(
        actor=MODERATOR, case_number=alert.case_number, action=CaseAction.CLAIM
    )

    assert result.ok and await harness.store.pending_delivery_count() == 0 and harness.notified == []


# ---------------------------------------------------------------------- member reports


def dm(harness: Harness, *lines: tuple[str, str]) -> list[ChatMessage]:
    people = {author for author, _ in lines}
    return [
        harness.message(author, text, to=next(iter(people - {author}), "x"), channel_id="dm-report")
        for author, text in lines
    ]


async def test_a_member_reports_a_dm_sent_to_them(harness: Harness) -> None:
    messages = dm(
        harness, ("stranger", "how old are you"), ("member-1", "why"), ("stranger", "our secret ok")
    )

    result = await harness.service.report(
        reporter=MEMBER, reported_user_id="stranger", messages=messages, note="he keeps asking"
    )

    assert result.ok and result.case is not None
    view = result.case
    assert view.source is CaseSource.MEMBER_REPORT and view.state is CaseState.OPEN
    assert {view.alert.key.user_a, view.alert.key.user_b} == {"stranger", "member-1"}
    assert view.alert.suspect_id == "stranger" and view.alert.model_name == MEMBER_REPORT_MODEL
    assert [m.author_id for m in view.alert.evidence] == ["stranger", "stranger"]
    assert [e.action for e in view.audit] == ["member_report"]
    assert view.audit[0].detail is not None and "he keeps asking" in view.audit[0].detail
    assert [m.message_id for m in await harness.store.load_window(view.alert.key)] == [
        m.message_id for m in messages
    ]
    assert len(await harness.store.load_evidence(view.alert.alert_id)) == 3
    due = await harness.store.due_deliveries(now=harness.clock.now, limit=10)
    assert [(item.alert_id, item.kind) for item in due] == [(view.alert.alert_id, OutboxKind.POST)]
    assert harness.notified == [1]
    await harness.deliver()
    assert [alert.case_number for alert in harness.sink.posted] == [view.alert.case_number]


async def test_a_report_by_a_bystander_pairs_the_most_frequent_correspondent(harness: Harness) -> None:
    messages = [
        harness.message("stranger", "hi", to="kid", channel_id="general"),
        harness.message("kid", "hi", to="stranger", channel_id="general"),
        harness.message("other", "lol", to="stranger", channel_id="general"),
        harness.message("kid", "what", to="stranger", channel_id="general"),
    ]

    result = await harness.service.report(reporter=MEMBER, reported_user_id="stranger", messages=messages)

    assert result.case is not None
    key = result.case.alert.key
    assert {key.user_a, key.user_b} == {"stranger", "kid"}
    # Only the pair's own messages are kept.
    assert {m.author_id for m in await harness.store.load_window(key)} == {"stranger", "kid"}


async def test_a_report_on_a_pair_with_an_open_case_adds_to_that_case(harness: Harness) -> None:
    alert = await harness.raise_alert("adult", "kid")
    await harness.deliver()
    window_before = await harness.store.load_window(alert.key)
    kid = actor(user_id="kid")
    reported = [
        window_before[0],
    ]
    messages = [
        harness.message("adult", "meet me tonight", to="kid"),
        harness.message("kid", "ok", to="adult"),
    ]

    result = await harness.service.report(reporter=kid, reported_user_id="adult", messages=messages)

    assert result.ok and result.case is not None
    assert result.case.alert.case_number == alert.case_number
    assert result.case.alert.revision == alert.revision + 1
    assert [e.action for e in result.case.audit] == ["member_report"]
    window = await harness.store.load_window(alert.key)
    assert [m.message_id for m in window] == [*(m.message_id for m in window_before), "m-7", "m-8"]
    assert reported[0] in window
    assert await pending_update_revision(harness, alert.alert_id) == alert.revision + 1
    assert len(await harness.store.alerts_for_space(platform=PLATFORM, space_id=SPACE, limit=10)) == 1


async def test_bad_reports_are_refused(harness: Harness) -> None:
    good = [
        harness.message("stranger", "hi", to="member-1"),
        harness.message("member-1", "hi", to="stranger"),
    ]
    elsewhere = [harness.message("stranger", "hi", to="member-1", space_id="guild-2")]
    alone = [harness.message("stranger", "hi", to="member-1")]
    cases: list[tuple[str, list[ChatMessage]]] = [
        ("stranger", []),
        ("member-1", good),
        ("nobody", good),
        ("stranger", elsewhere),
        ("", good),
    ]
    for reported, messages in cases:
        result = await harness.service.report(reporter=MEMBER, reported_user_id=reported, messages=messages)
        assert result.error is CaseError.INVALID_INPUT, (reported, result.message)
    bystander = actor(user_id="bystander")
    no_recipient = [dataclasses.replace(alone[0], recipient_ids=())]
    lonely = await harness.service.report(
        reporter=bystander, reported_user_id="stranger", messages=no_recipient
    )
    assert lonely.error is CaseError.INVALID_INPUT
    assert await harness.store.alerts_for_space(platform=PLATFORM, space_id=SPACE, limit=10) == []
    assert await harness.store.count_pairs() == 0


async def test_a_long_report_keeps_its_newest_messages(harness: Harness) -> None:
    messages = [
        harness.message(
            "stranger" if index % 2 else "member-1",
            f"hello {index}",
            to="x",
            channel_id="dm-long",
            at=harness.clock.now + timedelta(seconds=index),
        )
        for index in range(601)
    ]

    result = await harness.service.report(reporter=MEMBER, reported_user_id="stranger", messages=messages)

    assert result.ok and result.case is not None
    preserved = await harness.store.load_evidence(result.case.alert.alert_id)
    assert [m.message_id for m in preserved] == [m.message_id for m in messages[-500:]]


async def test_a_reported_dm_addressed_to_the_reporter_pairs_them_with_the_sender(harness: Harness) -> None:
    # The platform says the DM is addressed to the reporter, though the reporter wrote nothing in it.
    only_theirs = [harness.message("stranger", "don't tell your mum, ok?", to="member-1")]

    result = await harness.service.report(reporter=MEMBER, reported_user_id="stranger", messages=only_theirs)

    assert result.ok and result.case is not None
    assert (result.case.alert.suspect_id, result.case.alert.other_id) == ("stranger", "member-1")
    bystander = actor(user_id="bystander")
    other = await harness.service.report(
        reporter=bystander,
        reported_user_id="stranger",
        messages=[harness.message("stranger", "hi again", to="kid-9")],
    )
    assert other.ok and other.case is not None and other.case.alert.other_id == "kid-9"
