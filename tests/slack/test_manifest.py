"""The shipped app manifest asks for exactly what the code uses.

Read with a few lines of plain parsing (the manifest is a simple YAML file of ours), so the test needs no YAML
library.
"""

from __future__ import annotations

import re

from vigil.bots.resources import packaged_path
from vigil.bots.slack.app import BOT_SCOPES
from vigil.bots.slack.blocks import REPORT_CALLBACK
from vigil.bots.slack.commands import COMMAND

MANIFEST = packaged_path("vigil.bots.slack", "manifest.yaml")


def active_lines() -> list[str]:
    return [
        line
        for line in MANIFEST.read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("#")
    ]


def list_under(key: str) -> list[str]:
    """The ``- item`` entries directly under ``key:``."""
    lines = active_lines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"{key}:")
    indent = len(lines[start]) - len(lines[start].lstrip())
    items: list[str] = []
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped:
            continue
        if len(line) - len(line.lstrip()) <= indent and not stripped.startswith("- "):
            break
        match = re.fullmatch(r"- ([\w:.]+)", stripped)
        if match is None:
            break
        items.append(match.group(1))
    return items


def value_of(key: str) -> str:
    line = next(line for line in active_lines() if line.strip().startswith(f"{key}:"))
    return line.split(":", 1)[1].strip()


def test_scopes_are_exactly_the_ones_the_code_requests() -> None:
    assert sorted(list_under("bot")) == sorted(BOT_SCOPES)


def test_events_command_shortcut_and_socket_mode() -> None:
    assert {"message.channels", "message.groups", "message.im", "message.mpim"} <= set(
        list_under("bot_events")
    )
    assert value_of("socket_mode_enabled") == "true"
    assert value_of("is_enabled") == "true"  # interactivity
    assert value_of("- command") == COMMAND
    assert value_of("should_escape") == "true"
    assert value_of("callback_id") == REPORT_CALLBACK
    assert value_of("- name") == "Report conversation to moderators"
    assert value_of("type") == "message"


def test_members_can_message_the_app() -> None:
    # docs/slack.md says Vigil reads "DMs people send to Vigil itself": only with a writable Messages tab.
    assert value_of("messages_tab_enabled") == "true"
    assert value_of("messages_tab_read_only_enabled") == "false"


def test_the_app_may_send_files_to_a_moderators_dm() -> None:
    # The pair chart and the transcript file go to the requester's DM (bots/slack/private_files.py).
    assert {"im:write", "files:write"} <= set(list_under("bot"))
