"""The README's first command: ``vigil demo`` on the shipped model flags the grooming conversation only."""

from __future__ import annotations

import re

import pytest

from vigil.bots.cli import main


def test_demo_flags_the_grooming_conversation_and_none_of_the_ordinary_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "flagged: demo-0005." in out
    assert out.count("no alert: nothing here for moderators") == 4
    assert "Likely groomer: u-demo-adult" in out
    assert "Likely groomer: u-demo-kid" not in out
    # The alert explains itself: what the messages show, not only a number.
    assert "proposes meeting in person" in out and "asks the other person's age" in out
    # Each revision of the alert is shown once (a post and an update due together are one delivery).
    revisions = re.findall(r"case #1 · (?:NEW|UPDATED) \(revision (\d+)\)", out)
    assert revisions and len(revisions) == len(set(revisions))
    assert out.count("case #1 · NEW") == 1
