"""Erasure on request, and verdicts exported as labelled conversations."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

from tests.cases.helpers import CHILD_SAFETY, MODERATOR, PLATFORM, SPACE, Harness, actor
from vigil.bots.core.cases import CaseAction
from vigil.bots.core.labels import LABELS_SOURCE, export_labels, scrub_text
from vigil.bots.core.replay import ConversationRecord, iter_records
from vigil.bots.core.retention import ALL_SPACES, RetentionSchedule, forget, purge

OPERATOR = actor(user_id="cli:admin")


async def test_forget_a_known_member_everywhere_except_under_a_hold(harness: Harness) -> None:
    await harness.talk("kid", "friend", risky=False)
    await harness.talk("kid", "classmate", risky=False, space_id="guild-2")
    held = await harness.raise_alert("groomer", "kid", space_id="guild-3")
    escalator = actor(*CHILD_SAFETY.roles, space_id="guild-3")
    await harness.service.act(actor=escalator, case_number=held.case_number, action=CaseAction.ESCALATE)
    await harness.talk("friend", "classmate", risky=False)

    report = await forget(
        harness.store, platform=PLATFORM, user_id="kid", actor=OPERATOR, now=harness.clock.now
    )

    assert report.found and report.pairs == 2 and report.window_messages == 12
    assert report.held_pairs == 1 and report.held_cases == 1
    assert await harness.store.pairs_for_user(platform=PLATFORM, space_id=SPACE, user_id="kid") == []
    assert await harness.store.pairs_for_user(platform=PLATFORM, space_id="guild-2", user_id="kid") == []
    assert len(await harness.store.pairs_for_user(platform=PLATFORM, space_id="guild-3", user_id="kid")) == 1
    assert len(await harness.store.load_evidence(held.alert_id)) == 6
    assert len(await harness.store.pairs_for_user(platform=PLATFORM, space_id=SPACE, user_id="friend")) == 1
    audit = await harness.store.audit_events(platform=PLATFORM, space_id=ALL_SPACES, case_number=None)
    assert [(e.action, e.actor_id) for e in audit] == [("forget", "cli:admin")]
    raw_detail = audit[0].detail or ""
    detail = json.loads(raw_detail)
    assert detail["pairs"] == 2 and detail["member"].startswith("u-") and "kid" not in raw_detail
    # Once the hold ends, retention removes the rest.
    harness.clock.advance(timedelta(days=400))
    await purge(harness.store, schedule=RetentionSchedule(), now=harness.clock.now, dry_run=False)
    assert await harness.store.load_evidence(held.alert_id) == []


async def test_forget_an_unknown_member_reports_nothing_found(harness: Harness) -> None:
    await harness.talk("a", "b", risky=False)

    report = await forget(
        harness.store, platform=PLATFORM, user_id="ghost", actor=OPERATOR, now=harness.clock.now
    )

    assert not report.found and report.lines() == ["nothing found for this member"]
    assert await harness.store.count_pairs() == 1
    audit = await harness.store.audit_events(platform=PLATFORM, space_id=ALL_SPACES, case_number=None)
    assert [e.action for e in audit] == ["forget"]


async def test_forget_blanks_the_member_s_words_in_an_open_case(harness: Harness) -> None:
    alert = await harness.raise_alert("adult", "kid")

    report = await forget(
        harness.store, platform=PLATFORM, user_id="adult", actor=OPERATOR, now=harness.clock.now
    )

    case = await harness.store.case_for_alert(alert.alert_id)
    assert case is not None and report.case_evidence_texts == len(alert.evidence)
    assert all(m.text == "" for m in case.alert.evidence)
    assert await harness.store.load_pair(alert.key) is None
    # The case's own audit trail says its evidence changed, without naming the member.
    assert report.cases_changed == ((SPACE, alert.case_number),)
    trail = await harness.store.audit_events(platform=PLATFORM, space_id=SPACE, case_number=alert.case_number)
    forgets = [e for e in trail if e.action == "forget"]
    assert [e.actor_id for e in forgets] == ["cli:admin"] and "adult" not in (forgets[0].detail or "")
    assert any(f"{PLATFORM}/{SPACE}/{alert.case_number}" in line for line in report.lines())


async def test_a_dry_run_counts_the_erasure_and_changes_nothing(harness: Harness) -> None:
    alert = await harness.raise_alert("adult", "kid")
    await harness.talk("adult", "friend", risky=False)

    dry = await forget(
        harness.store, platform=PLATFORM, user_id="adult", actor=OPERATOR, now=harness.clock.now, dry_run=True
    )

    assert dry.found and dry.dry_run and dry.pairs == 2 and dry.cases_changed == ((SPACE, alert.case_number),)
    assert all("would" in line for line in dry.lines()[:5])
    assert len(await harness.store.pairs_for_user(platform=PLATFORM, space_id=SPACE, user_id="adult")) == 2
    case = await harness.store.case_for_alert(alert.alert_id)
    assert case is not None and all(m.text for m in case.alert.evidence)
    assert await harness.store.audit_events(platform=PLATFORM, space_id=ALL_SPACES, case_number=None) == []
    real = await forget(
        harness.store, platform=PLATFORM, user_id="adult", actor=OPERATOR, now=harness.clock.now
    )
    assert dataclasses.replace(dry, dry_run=False) == real


async def test_export_labels_is_readable_by_the_replay_reader(harness: Harness, tmp_path: Path) -> None:
    confirmed = await harness.raise_alert("adult-1", "kid-1")
    escalated = await harness.raise_alert("adult-2", "kid-2")
    dismissed = await harness.raise_alert("friend-1", "friend-2")
    await harness.raise_alert("adult-3", "kid-3")  # still open: no verdict, not exported
    purged = await harness.raise_alert("friend-3", "friend-4")
    await harness.monitor.handle(
        harness.message("adult-1", "add me <@123456> at https://snap.example or me@example.com", to="kid-1")
    )
    for alert, action in (
        (confirmed, CaseAction.CONFIRM),
        (escalated, CaseAction.ESCALATE),
        (dismissed, CaseAction.DISMISS),
        (purged, CaseAction.DISMISS),
    ):
        await harness.service.act(actor=MODERATOR, case_number=alert.case_number, action=action)
    # Retention already took this one's text: it is not exported.
    gone = await harness.store.case_for_alert(purged.alert_id)
    assert gone is not None
    await harness.store.update_case(dataclasses.replace(gone, text_purged_at=harness.clock.now))
    out = tmp_path / "labels" / "verdicts.jsonl"

    count = await export_labels(harness.store, out=out, platform=PLATFORM)
    again = tmp_path / "again.jsonl"
    await export_labels(harness.store, out=again, platform=None)

    records = [record for record in iter_records(out) if isinstance(record, ConversationRecord)]
    assert count == 3 and len(records) == 3  # every line is a valid conversation
    assert [record.label for record in records] == [1, 1, 0]
    positive, _, negative = records
    assert positive.source == LABELS_SOURCE and positive.setting == "dm" and positive.interleaved
    assert len(positive.suspects) == 1 and positive.suspects[0].startswith("u-")
    assert positive.suspects[0] in {m.author for m in positive.messages}
    assert negative.suspects == ()
    text = out.read_text(encoding="utf-8")
    for identifying in ("adult-1", "kid-1", SPACE, "123456", "snap.example", "me@example.com"):
        assert identifying not in text
    assert "<user>" in text and "<url>" in text and "<email>" in text
    # Pseudonyms are stable across exports (the salt is kept in the store).
    assert again.read_text(encoding="utf-8") == text


def test_scrub_text() -> None:
    assert scrub_text("hi <@U123ABC|sam> see www.x.com") == "hi <user> see <url>"


async def test_export_labels_with_nothing_decided_writes_an_empty_file(
    harness: Harness, tmp_path: Path
) -> None:
    await harness.raise_alert()
    out = tmp_path / "labels.jsonl"

    assert await export_labels(harness.store, out=out, platform=None) == 0
    assert out.read_text(encoding="utf-8") == ""
