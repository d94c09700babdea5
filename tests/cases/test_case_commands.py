"""The case subcommands, run as the operator would: a config file, a database, the parsed arguments."""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.cases.helpers import MODERATOR, PLATFORM, SPACE, make_harness, vigil
from vigil.bots.case_commands import (
    CaseCommandError,
    discord_message_link,
    parse_case_target,
)
from vigil.bots.core.cases import CaseAction
from vigil.bots.core.models import WindowMessage
from vigil.bots.core.ports import StoreError
from vigil.bots.discord.translate import DM_SPACE, edit_message_id
from vigil.config.settings import ConfigError
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.crypto import TextCipher
from vigil.storage.sqlite import SqliteStore


@pytest.fixture
async def config(tmp_path: Path, keyword_detector: OnnxDetector, keyword_model_dir: Path) -> Path:
    """A config whose database holds two cases in guild-1: #1 claimed, #2 open."""
    path = tmp_path / "vigil.toml"
    path.write_text(
        f'[storage]\ndatabase = "data/vigil.sqlite3"\n[detector]\nmodel_dir = "{keyword_model_dir}"\n',
        encoding="utf-8",
    )
    (tmp_path / "data").mkdir()
    async with SqliteStore(tmp_path / "data" / "vigil.sqlite3") as store:
        harness = make_harness(store, keyword_detector)
        first = await harness.raise_alert("adult", "kid")
        await harness.raise_alert("someone", "other")
        await harness.service.act(actor=MODERATOR, case_number=first.case_number, action=CaseAction.CLAIM)
    return path


async def test_cases_and_case(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await vigil(config, "cases") == 0
    everything = capsys.readouterr().out
    assert await vigil(config, "cases", "--platform", PLATFORM, "--space", SPACE, "--user", "kid") == 0
    of_kid = capsys.readouterr().out
    assert await vigil(config, "case", "1", "--platform", PLATFORM, "--space", SPACE) == 0
    shown = capsys.readouterr().out

    assert f"{PLATFORM}/{SPACE}/1 " in everything and f"{PLATFORM}/{SPACE}/2 " in everything
    assert "claimed" in everything
    assert "#1" in of_kid and "#2" not in of_kid
    assert "Case #1" in shown and "claimed by mod-1" in shown and "secret groom" in shown
    assert "mod-1  claim" in shown
    # Signals in the model's plain words, as alerts show them.
    assert "asks to keep the conversation secret" in shown and "secrecy" not in shown.split("Messages")[0]


async def test_case_takes_the_address_that_cases_prints(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await vigil(config, "cases") == 0
    address = next(
        line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith(f"{PLATFORM}/")
    )
    for target in (
        [address],
        [f"{PLATFORM}/{SPACE} #2"],
        [f"{PLATFORM}/{SPACE}", "#2"],
        [f"{PLATFORM}/{SPACE}", "2"],
    ):
        assert await vigil(config, "case", *target) == 0, target
        assert "Case #" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("words", "platform", "space", "expected"),
    [
        (["discord/1234/3"], None, None, ("discord", "1234", 3)),
        (["http/tenant/a/12"], None, None, ("http", "tenant/a", 12)),
        (["slack/T01 #4"], None, None, ("slack", "T01", 4)),
        (["#5"], "slack", "T01", ("slack", "T01", 5)),
        (["5"], "slack", "T01", ("slack", "T01", 5)),
        (["slack/T01/5"], "slack", None, ("slack", "T01", 5)),
    ],
)
def test_case_targets(
    words: list[str], platform: str | None, space: str | None, expected: tuple[str, str, int]
) -> None:
    assert parse_case_target(words, platform=platform, space=space) == expected


@pytest.mark.parametrize(
    ("words", "platform", "message"),
    [
        (["5"], None, "which community"),
        (["slack/T01"], None, "unquoted #N"),
        (["slack/T01/5"], "discord", "--platform discord does not match"),
        (["five"], None, "not a case"),
    ],
)
def test_case_target_errors(words: list[str], platform: str | None, message: str) -> None:
    with pytest.raises(CaseCommandError, match=message):
        parse_case_target(words, platform=platform, space=None)


async def test_a_missing_case_is_a_clear_error(config: Path) -> None:
    with pytest.raises(CaseCommandError, match="No such case"):
        await vigil(config, "case", "7", "--platform", PLATFORM, "--space", SPACE)
    with pytest.raises(CaseCommandError, match="--space needs --platform"):
        await vigil(config, "cases", "--space", SPACE)


async def test_export_case(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "packs"

    assert (
        await vigil(config, "export-case", "1", "--platform", PLATFORM, "--space", SPACE, "--out", str(out))
        == 0
    )

    folder = out / f"case-{SPACE}-1"
    assert str(folder) in capsys.readouterr().out
    document = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    assert document["generated_by"].startswith("cli:")
    scores = document["scores"]
    assert (
        "asks to keep the conversation secret" in scores["signals_in_words"]
        and "secrecy" in scores["signals"]
    )
    assert "asks to keep the conversation secret" in (folder / "transcript.html").read_text(encoding="utf-8")
    assert [e["action"] for e in document["audit"]] == ["claim"]


async def test_export_case_for_discord_links_messages(tmp_path: Path, keyword_detector: OnnxDetector) -> None:
    config = tmp_path / "vigil.toml"
    config.write_text('[storage]\ndatabase = "vigil.sqlite3"\n', encoding="utf-8")
    async with SqliteStore(tmp_path / "vigil.sqlite3") as store:
        await make_harness(store, keyword_detector).raise_alert()
    # Move the case to a Discord guild, as the Discord adapter would have stored it.
    with sqlite3.connect(tmp_path / "vigil.sqlite3") as connection:
        connection.execute("UPDATE alerts SET platform = 'discord', space_id = '42'")
        connection.execute("UPDATE pairs SET platform = 'discord', space_id = '42'")

    await vigil(
        config, "export-case", "1", "--platform", "discord", "--space", "42", "--out", str(tmp_path / "o")
    )

    document = json.loads((tmp_path / "o" / "case-42-1" / "case.json").read_text(encoding="utf-8"))
    link = document["messages"][0]["link"]
    assert link.startswith("https://discord.com/channels/42/")


def test_export_links_follow_the_discord_adapter_s_rule_for_edits_dms_and_threads() -> None:
    """An edited message's Vigil id names the edit; the link must name the message. DMs live under @me."""

    def window(message_id: str, *, thread_id: str | None = None) -> WindowMessage:
        return WindowMessage(
            message_id=message_id,
            channel_id="700",
            thread_id=thread_id,
            author_id="1",
            text="x",
            timestamp=datetime(2026, 1, 1, tzinfo=UTC),
            risk=0.1,
        )

    edited = edit_message_id(900, datetime(2026, 1, 1, 12, tzinfo=UTC))
    assert discord_message_link(window(edited), guild_id="42") == "https://discord.com/channels/42/700/900"
    assert (
        discord_message_link(window("901"), guild_id=DM_SPACE) == "https://discord.com/channels/@me/700/901"
    )
    assert discord_message_link(window("902", thread_id="800"), guild_id="42") == (
        "https://discord.com/channels/42/800/902"
    )


async def test_purge_forget_and_export_labels(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await vigil(config, "purge", "--dry-run") == 0
    dry = capsys.readouterr().out
    assert await vigil(config, "forget", "--platform", PLATFORM, "--user", "ghost") == 0
    ghost = capsys.readouterr().out
    assert await vigil(config, "forget", "--platform", PLATFORM, "--user", "other", "--dry-run") == 0
    would = capsys.readouterr().out
    with pytest.raises(CaseCommandError, match="add --yes"):
        await vigil(config, "forget", "--platform", PLATFORM, "--user", "other")
    capsys.readouterr()
    assert await vigil(config, "forget", "--platform", PLATFORM, "--user", "other", "--yes") == 0
    other = capsys.readouterr().out
    out = tmp_path / "labels.jsonl"
    assert await vigil(config, "export-labels", "--out", str(out)) == 0
    labels = capsys.readouterr().out

    assert dry.startswith("Dry run") and "would remove" in dry
    assert "nothing found" in ghost
    assert "pairs would be removed: 1" in would and "pairs removed: 1" in other
    assert "0 labelled conversations" in labels and out.exists()


@pytest.mark.parametrize(("answer", "erased"), [("yes", True), ("n", False)])
async def test_forget_at_a_terminal_asks_first(
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answer: str,
    erased: bool,
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: answer)

    code = await vigil(config, "forget", "--platform", PLATFORM, "--user", "other")

    out = capsys.readouterr().out
    assert "pairs would be removed: 1" in out
    assert (code, "pairs removed: 1" in out, "nothing erased" in out) == (
        (0, True, False) if erased else (1, False, True)
    )


async def test_a_missing_database_or_bad_config_or_key_is_a_clear_error(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "other.toml"
    elsewhere.write_text('[storage]\ndatabase = "missing.sqlite3"\n', encoding="utf-8")
    with pytest.raises(CaseCommandError, match="no database at"):
        await vigil(elsewhere, "cases")
    broken = tmp_path / "broken.toml"
    broken.write_text("[storage]\ndatabse = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="databse"):
        await vigil(broken, "cases")
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    monkeypatch.setenv("VIGIL_ENCRYPTION_KEY", key)
    with pytest.raises(StoreError, match="created without encryption"):
        await vigil(config, "cases")


async def test_rekey_rewrites_every_value_under_the_new_key_and_resumes(
    tmp_path: Path,
    keyword_detector: OnnxDetector,
    keyword_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old_key, new_key = secrets.token_bytes(32), secrets.token_bytes(32)
    path = tmp_path / "vigil.toml"
    path.write_text(
        f'[storage]\ndatabase = "vigil.sqlite3"\n[detector]\nmodel_dir = "{keyword_model_dir}"\n',
        encoding="utf-8",
    )
    database = tmp_path / "vigil.sqlite3"
    async with SqliteStore(database, cipher=TextCipher(key=old_key)) as store:
        harness = make_harness(store, keyword_detector)
        alert = await harness.raise_alert("adult", "kid")
        await harness.service.act(
            actor=MODERATOR, case_number=alert.case_number, action=CaseAction.NOTE, reason="a note"
        )
        await harness.service.act(
            actor=MODERATOR, case_number=alert.case_number, action=CaseAction.DISMISS, reason="siblings"
        )
        await store.put_record("slack.installations", "T1", "xoxb-token")
        window = await store.load_window(alert.key)
    # One value as 2026.11 wrote it (bound to its column only), as an older database holds.
    with sqlite3.connect(database) as connection:
        nonce = bytes(12)
        sealed = AESGCM(old_key).encrypt(nonce, b"legacy text", b"window_messages.text")
        legacy = f"v1:{TextCipher(key=old_key).key_id}:" + base64.urlsafe_b64encode(
            nonce + sealed
        ).decode().rstrip("=")
        connection.execute(
            "UPDATE window_messages SET text = ? WHERE seq = (SELECT MIN(seq) FROM window_messages)",
            (legacy,),
        )

    def encoded(key: bytes) -> str:
        return base64.urlsafe_b64encode(key).decode()

    monkeypatch.setenv("VIGIL_ENCRYPTION_KEY", encoded(new_key))
    monkeypatch.setenv("VIGIL_ENCRYPTION_OLD_KEYS", encoded(old_key))
    # Interrupted after its first batch (a crash), then run again: it finishes the rest.
    rotated = TextCipher(key=new_key, old_keys=[old_key])
    async with SqliteStore(database, cipher=rotated) as store:

        def crash(count: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            await store.rekey(batch_rows=1, on_batch=crash)
    assert await vigil(path, "rekey") == 0
    assert "values re-encrypted under key id" in capsys.readouterr().out

    with sqlite3.connect(database) as connection:
        values = [
            *(row[0] for row in connection.execute("SELECT text FROM window_messages")),
            *(row[0] for row in connection.execute("SELECT text FROM case_evidence")),
            *(
                row[0]
                for row in connection.execute(
                    "SELECT dismiss_reason FROM alerts WHERE dismiss_reason IS NOT NULL"
                )
            ),
            *(row[0] for row in connection.execute("SELECT detail FROM case_audit WHERE detail IS NOT NULL")),
            *(row[0] for row in connection.execute("SELECT value FROM records")),
            *(
                item["text"]
                for row in connection.execute("SELECT evidence FROM alerts")
                for item in json.loads(row[0])
            ),
        ]
    assert values and all(rotated.is_current(value) for value in values), "a value escaped the rekey"
    # The old key can go: everything reads with the new key alone, the legacy value included.
    async with SqliteStore(database, cipher=TextCipher(key=new_key)) as store:
        reread = await store.load_window(alert.key)
        assert [m.text for m in reread][1:] == [m.text for m in window][1:] and reread[
            0
        ].text == "legacy text"
        assert await store.get_record("slack.installations", "T1") == "xoxb-token"
        case = await store.get_case(platform=PLATFORM, space_id=SPACE, case_number=alert.case_number)
        assert case is not None and case.dismiss_reason == "siblings"
        audit = await store.audit_events(platform="*", space_id="*", case_number=None)
        assert [event.action for event in audit] == ["rekey"]
        assert await vigil(path, "rekey") == 0  # nothing left to do
    assert "0 values re-encrypted" in capsys.readouterr().out


async def test_pair_explains_a_pair_and_draws_its_chart(
    config: Path, tmp_path: Path, keyword_detector: OnnxDetector, capsys: pytest.CaptureFixture[str]
) -> None:
    async with SqliteStore(tmp_path / "data" / "vigil.sqlite3") as store:
        # A pair that has talked without alerting (in another space: a new harness numbers its messages
        # from m-1 again, which guild-1 has seen): its outlook says why.
        await make_harness(store, keyword_detector).talk("quiet", "friend", risky=False, space_id="guild-2")
    capsys.readouterr()
    chart = tmp_path / "pair.svg"
    assert await vigil(config, "pair", f"{PLATFORM}/{SPACE}", "kid", "adult", "--svg", str(chart)) == 0
    shown = capsys.readouterr().out
    assert f"Pair {PLATFORM}/{SPACE}: adult and kid" in shown
    assert "likely groomer adult" in shown and "open case: #1" in shown
    assert "signals so far: " in shown and "signals so far: none" not in shown
    assert "risk over its last" in shown and "chart written to" in shown
    svg = chart.read_text(encoding="utf-8")
    assert svg.startswith("<svg") and "alert threshold" in svg

    assert await vigil(config, "pair", f"{PLATFORM}/guild-2", "quiet", "friend") == 0
    assert "no alert: the risk" in capsys.readouterr().out

    assert await vigil(config, "pair", f"{PLATFORM}/{SPACE}", "nobody", "else") == 0
    assert "has not seen these two talking" in capsys.readouterr().out
    with pytest.raises(CaseCommandError, match="same member"):
        await vigil(config, "pair", f"{PLATFORM}/{SPACE}", "kid", "kid")
    with pytest.raises(CaseCommandError, match="PLATFORM/SPACE"):
        await vigil(config, "pair", SPACE, "kid", "adult")
