"""The README's first command: ``vigil demo`` on the shipped model flags the grooming conversation only."""

from __future__ import annotations

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
