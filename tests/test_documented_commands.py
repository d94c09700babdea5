"""Every ``vigil`` command shown in README.md and docs/ is one the CLI accepts, as written.

A documented step that fails with "unrecognized arguments" is the first thing a new admin meets (it happened:
``vigil run --config my-vigil.toml`` in docs/discord.md). Commands in code blocks are parsed as written;
synopses (``vigil case N --platform P --space S``, ``[--dry-run | --yes]``) in code blocks and inline code are
parsed with their optional parts included, the first of each alternative, and a sample for each placeholder.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from vigil.bots.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_INLINE = re.compile(r"(?<!`)`((?:\S+/)?vigil [^`]+)`(?!`)")
_PROGRAM = re.compile(r"(?:\S+/)?vigil\s")
# Sample values for a synopsis's placeholders.
_SAMPLES = {
    "P/S/N": "discord/123/12",
    "P/S": "discord/123",
    "N": "12",
    "P": "discord",
    "S": "123",
    "ID": "5678",
    "USER": "5678",
    "OTHER": "6789",
    "FILE": "conversations.jsonl",
    "OUT": "out.json",
    "DIR": "evidence",
    "PATH": "my-vigil.toml",
    "PREFIX": "scan",
    "IDS": "0-3",
    "NAME": "worker-a",
    "PORT": "9465",
}
_PLACEHOLDER = re.compile(r"^(?:[A-Z]+(?:/[A-Z]+)*)$")


def _as_run(synopsis: str) -> list[str]:
    """A synopsis as one command line: optional parts in, the first alternative, samples for placeholders."""
    line = re.sub(r"(\S+)\s*\\?\|\s*\S+", r"\1", synopsis).replace("[", "").replace("]", "")
    words = shlex.split(line.replace("...", ""))
    unknown = [word for word in words if _PLACEHOLDER.match(word) and word not in _SAMPLES]
    assert not unknown, f"no sample for the placeholders {unknown} in {synopsis!r}: add one"
    return [_SAMPLES.get(word, word) for word in words]


def _command_lines() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for document in DOCUMENTS:
        for block in _FENCE.findall(document.read_text(encoding="utf-8")):
            for line in block.splitlines():
                # A trailing comment explains the command; `&&` chains two.
                code = re.split(r"\s#\s", line, maxsplit=1)[0].strip()
                for part in code.split("&&"):
                    if _PROGRAM.match(part.strip().removeprefix("$ ")):
                        found.append((f"{document.name}: {part.strip()}", part.strip()))
    return list(dict.fromkeys(found))


def _inline_mentions() -> list[tuple[str, str]]:
    found = [
        (f"{document.name}: {inline}", inline)
        for document in DOCUMENTS
        for inline in _INLINE.findall(document.read_text(encoding="utf-8"))
    ]
    return list(dict.fromkeys(found))


COMMAND_LINES = _command_lines()
INLINE_MENTIONS = _inline_mentions()


def test_the_documents_show_commands_at_all() -> None:
    # The extraction must keep working as the documents change: a handful per setup guide at least.
    names = {where.split(":")[0] for where, _ in COMMAND_LINES}
    assert {"README.md", "discord.md", "slack.md", "http-api.md"} <= names, names
    assert len(COMMAND_LINES) >= 20 and len(INLINE_MENTIONS) >= 40


@pytest.mark.parametrize(("where", "line"), COMMAND_LINES, ids=[where for where, _ in COMMAND_LINES])
def test_documented_command_is_accepted(where: str, line: str, capsys: pytest.CaptureFixture[str]) -> None:
    words = _as_run(line.removeprefix("$ "))[1:]
    # `--help` and `--version` print and exit 0: accepted.
    try:
        build_parser().parse_args(words)
    except SystemExit as exit_:
        assert exit_.code == 0, f"{where}: {capsys.readouterr().err.strip()}"


@pytest.mark.parametrize(("where", "mention"), INLINE_MENTIONS, ids=[where for where, _ in INLINE_MENTIONS])
def test_command_named_in_the_text_exists_with_its_options(where: str, mention: str) -> None:
    """Prose names a command and some of its options (`vigil scan --db`): both must exist."""
    words = _as_run(mention)[1:]
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    # The command is the first word that is neither a global option nor its value.
    rest = list(words)
    while rest and rest[0] in {"--config", "-c", "--log-level"}:
        del rest[:2]
    command = rest[0] if rest else None
    if command is None or command.startswith("-"):
        return
    assert command in commands, f"{where}: no command {command!r}"
    known = {option for action in commands[command]._actions for option in action.option_strings}
    known |= {option for action in parser._actions for option in action.option_strings}
    named = {word.split("=")[0] for word in words if word.startswith("-")}
    assert named <= known, f"{where}: {sorted(named - known)} not options of `vigil {command}`"
