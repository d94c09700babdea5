"""``vigil init`` end to end: the real wizard, discord.py and slack_sdk against the local fakes, the real
settings loader and SqliteStore. No network beyond 127.0.0.1; no secret may show in what is printed or logged.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import discord
import pytest
from aiohttp import web

from tests.discord.fake_discord import FakeDiscord, RestCall
from tests.slack.fake_slack import FakeSlack
from vigil.bots.init_wizard import (
    Answers,
    add_init_arguments,
    answers_from_args,
    missing_slack_scopes,
    run_init,
)
from vigil.bots.slack.app import BOT_SCOPES
from vigil.config.settings import EncryptionSettings, load_settings
from vigil.storage.crypto import TextCipher
from vigil.storage.sqlite import SqliteStore

HTTP_SECRET = "h" * 40
WEBHOOK_SECRET = "w" * 40
SLACK_ALERTS = "CALERTS01"
SLACK_PUBLIC = "CPUBLIC01"
# Discord's number for View Channel + Send Messages + Embed Links + Read Message History (docs/discord.md).
DISCORD_PERMISSIONS = 84992
MESSAGE_CONTENT_LIMITED = 1 << 19


class ChannelFakeDiscord(FakeDiscord):
    """The fake Discord, also answering ``GET /channels/{id}`` (the wizard asks a channel for its server) and
    with the Message Content intent switched on in the application's flags, as the portal does."""

    def __init__(self, *, app_flags: int = MESSAGE_CONTENT_LIMITED) -> None:
        super().__init__()
        self.app_flags = app_flags

    def _route(self, call: RestCall) -> web.Response:
        if call.authorized and call.method == "GET":
            if match := re.fullmatch(r"/channels/(\d+)", call.path):
                if match.group(1) in (self.alerts, self.general):
                    return _json(self.channel_payload(match.group(1), "vigil-alerts"))
                return _json({"message": "Unknown Channel", "code": 10003}, status=404)
            if call.path == "/oauth2/applications/@me":
                response = super()._route(call)
                assert isinstance(response.body, bytes)
                return _json({**json.loads(response.body), "flags": self.app_flags})
        return super()._route(call)


def _json(payload: object, *, status: int = 200) -> web.Response:
    # Exactly this content type, or discord.py reads the body as text (tests/discord/fake_discord.py).
    return web.Response(
        body=json.dumps(payload).encode(), status=status, headers={"Content-Type": "application/json"}
    )


class ScopedFakeSlack(FakeSlack):
    """The fake Slack, with the ``x-oauth-scopes`` header Slack puts on auth.test's answer."""

    granted: str | None = None

    async def _api(self, request: web.Request) -> web.Response:
        response = await super()._api(request)
        if request.match_info["method"] == "auth.test" and self.granted is not None:
            response.headers["x-oauth-scopes"] = self.granted
        return response


@dataclass
class Script:
    """Types the answers in order, remembering each question asked."""

    answers: list[str]
    asked: list[tuple[str, str | None]] = field(default_factory=list)

    def __call__(self, question: str, default: str | None) -> str:
        self.asked.append((question, default))
        if not self.answers:
            raise EOFError
        return self.answers.pop(0)


@dataclass
class Run:
    code: int
    output: str


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG, logger="vigil")
    yield
    text = "\n".join(record.getMessage() for record in caplog.get_records("call"))
    for secret in ("test-token.abc.def", "xoxb-test-token", "xapp-test-token", HTTP_SECRET, WEBHOOK_SECRET):
        assert secret not in text, "a log line carries a secret"


@pytest.fixture
async def fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ChannelFakeDiscord]:
    server = ChannelFakeDiscord()
    await server.start()
    # The same switch the Discord suite uses: discord.py's REST base URL.
    monkeypatch.setattr(discord.http.Route, "BASE", server.api_base)
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def fake_slack() -> AsyncIterator[ScopedFakeSlack]:
    server = ScopedFakeSlack()
    server.channels.update(
        {
            SLACK_ALERTS: {"is_private": True, "is_member": True},
            SLACK_PUBLIC: {"is_private": False, "is_member": True},
        }
    )
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def init(
    config: Path,
    *,
    environ: dict[str, str],
    answers: Answers | None = None,
    ask: Script | None = None,
    force: bool = False,
    slack_api: str | None = None,
) -> Run:
    out = io.StringIO()
    code = await run_init(
        answers=answers or Answers(),
        ask=ask,
        out=out,
        environ=environ,
        config_path=config,
        force=force,
        slack_api=slack_api,
    )
    output = out.getvalue()
    for value in environ.values():
        assert value not in output, "a secret was printed"
    return Run(code=code, output=output)


async def space_settings(database: Path, *, platform: str, space_id: str, key: str | None = None) -> object:
    cipher = TextCipher.from_environment(EncryptionSettings(), {"VIGIL_ENCRYPTION_KEY": key} if key else {})
    async with SqliteStore(database, cipher=cipher) as store:
        return await store.get_space_settings(platform=platform, space_id=space_id)


# ------------------------------------------------------------------------------------------------ Discord


async def test_discord_interactive_setup_writes_config_prints_invite_and_posts_test_alert(
    fake_discord: ChannelFakeDiscord, tmp_path: Path
) -> None:
    config = tmp_path / "vigil.toml"
    script = Script(["discord", "", "", fake_discord.alerts])
    run = await init(config, environ={"VIGIL_DISCORD_TOKEN": fake_discord.token}, ask=script)

    assert run.code == 0, run.output
    assert [q for q, _ in script.asked] == [
        "Platform (discord, slack or http)",
        "Environment variable holding the bot token",
        "Database file (relative to the config file's folder)",
        "Alert channel for a test alert (Discord channel ID, empty: skip)",
    ]
    # The token was checked where Vigil uses it, with the token from the environment.
    checked = [c for c in fake_discord.calls if c.method == "GET" and c.path.endswith("/@me")]
    assert [c.path for c in checked] == ["/users/@me", "/oauth2/applications/@me"]
    assert all(c.authorized for c in checked)
    # Only what differs from the defaults, and the real loader reads it.
    text = config.read_text(encoding="utf-8")
    assert "[discord]\n# true: connect to Discord.\nenabled = true\n" in text
    assert "token_env" not in text and fake_discord.token not in text
    settings = load_settings(config)
    assert settings.discord.enabled and settings.discord.token_env == "VIGIL_DISCORD_TOKEN"
    assert settings.storage.database == str(tmp_path / "vigil.sqlite3")
    # The invite link with exactly Vigil's permissions.
    invite = re.search(r"https://discord\.com/oauth2/authorize\S+", run.output)
    assert invite is not None, run.output
    assert f"client_id={fake_discord.app_id}" in invite.group(0)
    assert f"permissions={DISCORD_PERMISSIONS}" in invite.group(0)
    assert "applications.commands" in invite.group(0)
    assert "Message Content intent" not in run.output
    # Vigil's real test alert, in the fake channel.
    [posted] = fake_discord.bot_messages(fake_discord.alerts)
    assert posted["content"] == "Vigil test alert"
    assert posted["embeds"][0]["title"] == "Vigil · test alert"
    stored = await space_settings(
        tmp_path / "vigil.sqlite3", platform="discord", space_id=fake_discord.guild_id
    )
    assert getattr(stored, "alert_channel_id", None) == fake_discord.alerts
    assert f"vigil run --config {config}" in run.output


async def test_discord_unattended_with_flags_writes_the_names_and_skips_the_test_alert(
    fake_discord: ChannelFakeDiscord, tmp_path: Path
) -> None:
    fake_discord.app_flags = 0
    config = tmp_path / "bot.toml"
    answers = Answers(
        platform="discord", discord_token_env="MY_BOT_TOKEN", database="data/vigil.sqlite3", threshold=0.9
    )
    run = await init(config, environ={"MY_BOT_TOKEN": fake_discord.token}, answers=answers)

    assert run.code == 0, run.output
    text = config.read_text(encoding="utf-8")
    # Each key with the example config's comment saying what it is.
    assert (
        "# The NAME of the environment variable holding the Discord bot token (not the token itself).\n"
        'token_env = "MY_BOT_TOKEN"\n'
    ) in text
    assert "[storage]\n# sqlite: the database file." in text and 'database = "data/vigil.sqlite3"' in text
    assert "[policy]\n# Risk (greater than 0, less than 1)" in text and "threshold = 0.9\n" in text
    settings = load_settings(config)
    assert settings.discord.token_env == "MY_BOT_TOKEN"
    assert settings.policy.threshold == 0.9
    assert settings.storage.database == str(tmp_path / "data" / "vigil.sqlite3")
    assert "does not exist yet" in run.output
    # The intent switch is off in this application: said before `vigil run` would refuse to start.
    assert "Message Content intent looks off" in run.output
    assert fake_discord.bot_messages() == []
    assert "/vigil setup alert_channel:#vigil-alerts" in run.output
    assert f"vigil run --config {config}" in run.output


async def test_discord_refused_token_writes_nothing(fake_discord: ChannelFakeDiscord, tmp_path: Path) -> None:
    config = tmp_path / "vigil.toml"
    wrong = "wrong-token.abc.def"
    run = await init(config, environ={"VIGIL_DISCORD_TOKEN": wrong}, answers=Answers(platform="discord"))

    assert run.code != 0
    assert "Discord refused the token in VIGIL_DISCORD_TOKEN (401 Unauthorized)" in run.output
    assert "nothing was written" in run.output
    assert not config.exists()
    assert fake_discord.bot_messages() == []


async def test_missing_secret_says_how_to_set_it_and_asks_nothing_of_the_platform(
    fake_discord: ChannelFakeDiscord, tmp_path: Path
) -> None:
    config = tmp_path / "vigil.toml"
    run = await init(config, environ={}, answers=Answers(platform="discord"))

    assert run.code != 0
    assert (
        "The environment variable VIGIL_DISCORD_TOKEN is not set: it should hold the Discord bot token"
        in (run.output)
    )
    assert "read -rs VIGIL_DISCORD_TOKEN && export VIGIL_DISCORD_TOKEN" in run.output
    assert "nothing was written" in run.output
    assert not config.exists()
    assert fake_discord.calls == []


async def test_an_existing_config_is_kept_unless_forced(
    fake_discord: ChannelFakeDiscord, tmp_path: Path
) -> None:
    config = tmp_path / "vigil.toml"
    config.write_text("# mine\n", encoding="utf-8")
    environ = {"VIGIL_DISCORD_TOKEN": fake_discord.token}

    refused = await init(config, environ=environ, answers=Answers(platform="discord"))
    assert refused.code != 0
    assert "already exists" in refused.output and "--force" in refused.output
    assert config.read_text(encoding="utf-8") == "# mine\n"
    assert fake_discord.calls == []

    forced = await init(config, environ=environ, answers=Answers(platform="discord"), force=True)
    assert forced.code == 0, forced.output
    assert load_settings(config).discord.enabled
    assert config.stat().st_mode & 0o077 == 0


async def test_a_pasted_token_in_place_of_a_name_is_refused_without_echoing_it(
    fake_discord: ChannelFakeDiscord, tmp_path: Path
) -> None:
    token = fake_discord.token
    script = Script(["discord", token, token, token])
    run = await init(tmp_path / "vigil.toml", environ={"VIGIL_DISCORD_TOKEN": token}, ask=script)

    assert run.code != 0
    assert "that is a secret's value (not shown)" in run.output
    assert not (tmp_path / "vigil.toml").exists()


async def test_discord_test_alert_in_a_channel_vigil_cannot_see(
    fake_discord: ChannelFakeDiscord, tmp_path: Path
) -> None:
    fake_discord.fail_next(
        "GET", r"/channels/\d+", status=403, body={"message": "Missing Access", "code": 50001}
    )
    answers = Answers(platform="discord", alert_channel=fake_discord.alerts)
    run = await init(
        tmp_path / "vigil.toml", environ={"VIGIL_DISCORD_TOKEN": fake_discord.token}, answers=answers
    )

    assert run.code != 0
    assert f"Vigil cannot see channel {fake_discord.alerts} (403)" in run.output
    # The token was good, so the config stands; nothing reached the chat.
    assert load_settings(tmp_path / "vigil.toml").discord.enabled
    assert fake_discord.bot_messages() == []


# ------------------------------------------------------------------------------------------------ Slack


async def test_slack_socket_mode_checks_both_tokens_posts_test_alert_and_stores_channel(
    fake_slack: ScopedFakeSlack, tmp_path: Path
) -> None:
    fake_slack.granted = ",".join(BOT_SCOPES)
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    environ = {
        "VIGIL_SLACK_BOT_TOKEN": fake_slack.bot_token,
        "VIGIL_SLACK_APP_TOKEN": fake_slack.app_token,
        "VIGIL_ENCRYPTION_KEY": key,
    }
    answers = Answers(platform="slack", alert_channel=SLACK_ALERTS)
    run = await init(tmp_path / "vigil.toml", environ=environ, answers=answers, slack_api=fake_slack.base_url)

    assert run.code == 0, run.output
    assert [c.token for c in fake_slack.calls_to("auth.test")] == [fake_slack.bot_token]
    assert [c.token for c in fake_slack.calls_to("apps.connections.open")] == [fake_slack.app_token]
    settings = load_settings(tmp_path / "vigil.toml")
    assert settings.slack.enabled and settings.slack.mode == "socket"
    [(channel, _)] = fake_slack.posted
    assert channel == SLACK_ALERTS
    assert next(iter(fake_slack.posted.values()))["text"].startswith("Vigil test alert")
    # Stored through the configured encryption: the database opens with the key.
    stored = await space_settings(tmp_path / "vigil.sqlite3", platform="slack", space_id="T1", key=key)
    assert getattr(stored, "alert_channel_id", None) == SLACK_ALERTS
    assert "lacks scopes" not in run.output and "public channel" not in run.output
    assert "encryption at rest is off" not in run.output


async def test_slack_missing_scopes_point_at_the_manifest(
    fake_slack: ScopedFakeSlack, tmp_path: Path
) -> None:
    fake_slack.granted = "chat:write,commands,channels:history"
    environ = {"VIGIL_SLACK_BOT_TOKEN": fake_slack.bot_token, "VIGIL_SLACK_APP_TOKEN": fake_slack.app_token}
    answers = Answers(platform="slack", alert_channel=SLACK_PUBLIC)
    run = await init(tmp_path / "vigil.toml", environ=environ, answers=answers, slack_api=fake_slack.base_url)

    assert run.code == 0, run.output
    assert "The app lacks scopes Vigil needs: groups:history, im:history" in run.output
    assert "vigil show slack-manifest" in run.output
    assert f"Warning: {SLACK_PUBLIC} is a public channel" in run.output


async def test_slack_http_mode_refused_bot_token_writes_nothing(
    fake_slack: ScopedFakeSlack, tmp_path: Path
) -> None:
    environ = {"VIGIL_SLACK_BOT_TOKEN": "xoxb-not-a-real-one", "VIGIL_SLACK_SIGNING_SECRET": "s" * 32}
    answers = Answers(platform="slack", slack_mode="http")
    run = await init(tmp_path / "vigil.toml", environ=environ, answers=answers, slack_api=fake_slack.base_url)

    assert run.code != 0
    assert "Slack refused the bot token in VIGIL_SLACK_BOT_TOKEN (invalid_auth)" in run.output
    assert not (tmp_path / "vigil.toml").exists()


async def test_slack_http_mode_writes_mode_and_no_app_token(
    fake_slack: ScopedFakeSlack, tmp_path: Path
) -> None:
    environ = {"VIGIL_SLACK_BOT_TOKEN": fake_slack.bot_token, "VIGIL_SLACK_SIGNING_SECRET": "s" * 32}
    script = Script(["slack", "http", "", "", "", ""])
    run = await init(tmp_path / "vigil.toml", environ=environ, ask=script, slack_api=fake_slack.base_url)

    assert run.code == 0, run.output
    settings = load_settings(tmp_path / "vigil.toml")
    assert settings.slack.mode == "http"
    assert fake_slack.calls_to("apps.connections.open") == []
    assert "socket_mode_enabled to false" in run.output
    assert "/vigil setup #vigil-alerts @moderators" in run.output


# ------------------------------------------------------------------------------------------------ HTTP API


async def test_http_secret_too_short_is_refused(tmp_path: Path) -> None:
    run = await init(
        tmp_path / "vigil.toml", environ={"VIGIL_HTTP_SECRET": "Qz7-kP"}, answers=Answers(platform="http")
    )

    assert run.code != 0
    assert "VIGIL_HTTP_SECRET holds 6 characters; Vigil needs at least 16" in run.output
    assert not (tmp_path / "vigil.toml").exists()


async def test_http_with_a_webhook_writes_the_url_and_shows_only_its_host(tmp_path: Path) -> None:
    url = "https://chat.example.org/hooks/vigil?token=abc123"
    environ = {"VIGIL_HTTP_SECRET": HTTP_SECRET, "VIGIL_WEBHOOK_SECRET": WEBHOOK_SECRET}
    run = await init(
        tmp_path / "vigil.toml", environ=environ, answers=Answers(platform="http", webhook_url=url)
    )

    assert run.code == 0, run.output
    settings = load_settings(tmp_path / "vigil.toml")
    assert settings.http.enabled and settings.http.webhook_url == url
    assert "abc123" not in run.output and "chat.example.org" in run.output
    assert "curl http://127.0.0.1:8787/healthz" in run.output


# ------------------------------------------------------------------------------------------------ pieces


def test_every_question_has_a_flag() -> None:
    parser = argparse.ArgumentParser()
    add_init_arguments(parser)
    args = parser.parse_args(
        [
            "out.toml",
            "--platform=slack",
            "--slack-mode=http",
            "--slack-bot-token-env=BOT",
            "--slack-signing-secret-env=SIGNING",
            "--database=/var/lib/vigil/vigil.sqlite3",
            "--threshold=0.8",
            "--alert-channel=C123",
            "--force",
            "--no-input",
        ]
    )
    assert args.path == "out.toml" and args.force and args.no_input
    assert answers_from_args(args) == Answers(
        platform="slack",
        slack_mode="http",
        slack_bot_token_env="BOT",
        slack_signing_secret_env="SIGNING",
        database="/var/lib/vigil/vigil.sqlite3",
        threshold=0.8,
        alert_channel="C123",
    )
    asked = {field for field in Answers.__dataclass_fields__ if field != "threshold"}
    flags = {action.dest for action in parser._actions}
    assert asked <= flags


def test_missing_slack_scopes() -> None:
    assert missing_slack_scopes(None, needed=BOT_SCOPES) is None
    assert missing_slack_scopes(",".join(BOT_SCOPES), needed=BOT_SCOPES) == ()
    assert missing_slack_scopes("chat:write, commands", needed=("chat:write", "users:read")) == (
        "users:read",
    )
