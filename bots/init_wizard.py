"""``vigil init``: a guided setup that writes a config, checks the token with the platform, tests an alert.

It asks only what matters (the platform, the names of the environment variables holding the secrets, the
database), and every question has a flag so that it also runs unattended. Secrets are read from the
environment and never printed, logged or written: the config names the variable. Before anything is written
the token is checked where it is used (Discord ``GET /users/@me`` and ``/oauth2/applications/@me``, Slack
``auth.test``, the HTTP secret's length rule); the config is then written with only the settings that differ
from the defaults, each with the example config's comment, and loaded back through the real loader. On
Discord and Slack a test alert goes to the alert channel the admin names, rendered as Vigil's own, and that
channel is stored in the database as the server's or workspace's alert channel, so ``vigil run`` uses it.

Platform libraries are imported only when their platform is chosen: importing them costs every other
``vigil`` command about half a second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import shlex
import sys
import tomllib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, TextIO, get_args

import aiohttp
from yarl import URL

from vigil.bots.core.files import make_private_dirs, replace_private_file, write_private_file
from vigil.bots.core.models import SpaceSettings
from vigil.bots.core.ports import StoreError
from vigil.bots.http.signing import MIN_SECRET_CHARS
from vigil.config.settings import (
    EXAMPLE_CONFIG_PATH,
    ConfigError,
    Secret,
    Settings,
    check_settings,
    load_settings,
    settings_from_mapping,
)
from vigil.storage.crypto import TextCipher
from vigil.storage.sqlite import SqliteStore

if TYPE_CHECKING:
    import discord
    from slack_sdk.web.async_client import AsyncWebClient

__all__ = [
    "INIT_EXAMPLES",
    "INIT_SUMMARY",
    "Answers",
    "Asker",
    "Platform",
    "add_init_arguments",
    "answers_from_args",
    "init_command",
    "missing_slack_scopes",
    "run_init",
]

logger = logging.getLogger(__name__)

Platform = Literal["discord", "slack", "http"]
SlackMode = Literal["socket", "http"]
# (question, default) -> the answer as typed; an empty answer takes the default.
Asker = Callable[[str, "str | None"], str]

INIT_SUMMARY = "guided setup: write a config, check the token with the platform, post a test alert"
INIT_EXAMPLES = (
    "vigil init                        # asks a few questions, writes vigil.toml",
    "vigil init my-vigil.toml --platform discord --alert-channel 123456789012345678 --no-input",
    "vigil init --platform slack --slack-mode http --force",
)
DEFAULT_CONFIG_NAME = "vigil.toml"

_PLATFORMS: tuple[Platform, ...] = get_args(Platform)
_SLACK_MODES: tuple[SlackMode, ...] = get_args(SlackMode)
# Stricter than the loader's rule on purpose: a conventional name is safe to echo, while a lower-case "name"
# may be a pasted hex secret (``openssl rand -hex``), which must never be printed.
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
_DISCORD_ID = re.compile(r"<#(\d{15,21})>|(\d{15,21})")
_SLACK_CHANNEL = re.compile(r"<#([CG][A-Z0-9]{2,})(?:\|[^>]*)?>|([CG][A-Z0-9]{2,})")
_ATTEMPTS = 3
_EXIT_PROBLEM = 1
# A pasted value shorter than this could collide with an ordinary word; longer ones are compared.
_MIN_COMPARED_SECRET = 8
_SLACK_DEFAULT_API = "https://slack.com/api/"
# Discord's application flags for the Message Content intent: verified bots, and bots in under 100 servers.
_MESSAGE_CONTENT_FLAGS = (1 << 18) | (1 << 19)
_HEADER_LINES = (
    "# Vigil configuration, written by `vigil init`. Only the settings that differ from the defaults are",
    "# here; `vigil show example-config` prints every setting with its default and what it does.",
    "# Secrets never go in this file: each platform section names the environment variable that holds its",
    "# secret, and Vigil reads the secret from there.",
)


class _Stop(Exception):
    """The wizard cannot go on; the message says what to do. Never carries a secret."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Answers:
    """Answers given ahead, from flags; ``None``: ask (or, unattended, take the default)."""

    platform: str | None = None
    slack_mode: str | None = None
    discord_token_env: str | None = None
    slack_bot_token_env: str | None = None
    slack_app_token_env: str | None = None
    slack_signing_secret_env: str | None = None
    http_secret_env: str | None = None
    # "" means no webhook (the platform polls GET /v1/cases).
    webhook_url: str | None = None
    webhook_secret_env: str | None = None
    database: str | None = None
    # Never asked: the model's own threshold is the calibrated one. Only a flag sets it.
    threshold: float | None = None
    # "" means skip the test alert.
    alert_channel: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _EnvVar:
    """A secret's environment variable: its name, the config key naming it, and what it should hold."""

    name: str
    section: str
    key: str
    holds: str
    # How to set it, for people who have not yet: a shell line that never puts the value in the history.
    how: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Setting:
    section: str
    key: str
    value: str | bool | float


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    """What the answers come to: the platform, its secrets and the settings that differ from the defaults."""

    platform: Platform
    slack_mode: SlackMode
    secrets: tuple[_EnvVar, ...]
    settings: tuple[_Setting, ...]
    webhook_host: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Posted:
    """A test alert that arrived: where, and the space whose alert channel it is."""

    space_id: str
    channel_id: str
    where: str


# ------------------------------------------------------------------------------------------------ arguments


def add_init_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``vigil init``: one per question, so that it runs unattended."""
    parser.add_argument(
        "path",
        nargs="?",
        help=f"the config file to write (same as --config; default: {DEFAULT_CONFIG_NAME} in this folder)",
    )
    parser.add_argument("--platform", choices=_PLATFORMS, help="where Vigil reads chat")
    parser.add_argument(
        "--slack-mode",
        choices=_SLACK_MODES,
        help="socket: Socket Mode, no public URL (default); http: Slack sends events to Vigil",
    )
    names = (
        ("--discord-token-env", "the Discord bot token", "VIGIL_DISCORD_TOKEN"),
        ("--slack-bot-token-env", "the Slack bot token (xoxb-...)", "VIGIL_SLACK_BOT_TOKEN"),
        (
            "--slack-app-token-env",
            "the Slack app-level token (xapp-..., socket mode)",
            "VIGIL_SLACK_APP_TOKEN",
        ),
        (
            "--slack-signing-secret-env",
            "the Slack signing secret (http mode)",
            "VIGIL_SLACK_SIGNING_SECRET",
        ),
        ("--http-secret-env", "the HTTP API's shared secret", "VIGIL_HTTP_SECRET"),
        ("--webhook-secret-env", "the alert webhook's signing secret", "VIGIL_WEBHOOK_SECRET"),
    )
    for flag, holds, default in names:
        parser.add_argument(
            flag,
            metavar="NAME",
            help=f"the NAME of the environment variable holding {holds}, not the secret (default {default})",
        )
    parser.add_argument(
        "--webhook-url",
        metavar="URL",
        help="HTTP API: where to POST signed alerts; empty: none, the platform reads GET /v1/cases",
    )
    parser.add_argument(
        "--database",
        metavar="PATH",
        help="the SQLite file, relative to the config file's folder (default vigil.sqlite3)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        help="alert threshold between 0 and 1; leave it out to use the model's calibrated default",
    )
    parser.add_argument(
        "--alert-channel",
        metavar="ID",
        help="Discord channel id or Slack channel id (C...) for a test alert, stored as the alert channel; "
        "empty: skip",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace the config file if it exists (after the token check)"
    )
    parser.add_argument(
        "--no-input", action="store_true", help="ask nothing: flags or defaults for every answer"
    )


def answers_from_args(args: argparse.Namespace) -> Answers:
    """The answers the flags gave."""
    return Answers(
        platform=args.platform,
        slack_mode=args.slack_mode,
        discord_token_env=args.discord_token_env,
        slack_bot_token_env=args.slack_bot_token_env,
        slack_app_token_env=args.slack_app_token_env,
        slack_signing_secret_env=args.slack_signing_secret_env,
        http_secret_env=args.http_secret_env,
        webhook_url=args.webhook_url,
        webhook_secret_env=args.webhook_secret_env,
        database=args.database,
        threshold=args.threshold,
        alert_channel=args.alert_channel,
    )


def _terminal_ask(question: str, default: str | None) -> str:
    return input(f"{question} [{default}]: " if default else f"{question}: ")


async def init_command(args: argparse.Namespace) -> int:
    """``vigil init`` as the CLI runs it: the terminal, the process environment, the flags."""
    config = getattr(args, "config", None) or getattr(args, "path", None) or DEFAULT_CONFIG_NAME
    return await run_init(
        answers=answers_from_args(args),
        ask=None if args.no_input else _terminal_ask,
        out=sys.stdout,
        environ=os.environ,
        config_path=Path(config),
        force=args.force,
    )


# ------------------------------------------------------------------------------------------------ the wizard


async def run_init(
    *,
    answers: Answers,
    ask: Asker | None,
    out: TextIO,
    environ: Mapping[str, str],
    config_path: Path,
    force: bool,
    slack_api: str | None = None,
) -> int:
    """Run the guided setup; 0 when the config is written (and the test alert, if asked for, arrived).

    ``ask`` is None to ask nothing (unattended: flags or defaults). ``slack_api`` is the Slack Web API's base
    URL (tests point it at a fake); Discord's is discord.py's ``Route.BASE``. Returns 1, having said why and
    what to do, when something stops it; no config is written unless the token was accepted.
    """
    wizard = _Wizard(answers=answers, ask=ask, out=out, environ=environ, slack_api=slack_api)
    try:
        return await wizard.run(config_path=config_path, force=force)
    except _Stop as stop:
        out.write(f"\nvigil init stopped: {stop}\n")
        return _EXIT_PROBLEM
    except EOFError:
        out.write(
            "\nvigil init stopped: no more input. Give the answers as flags (`vigil init --help`), "
            "with --no-input to take the defaults for the rest.\n"
        )
        return _EXIT_PROBLEM


class _Wizard:
    def __init__(
        self,
        *,
        answers: Answers,
        ask: Asker | None,
        out: TextIO,
        environ: Mapping[str, str],
        slack_api: str | None,
    ) -> None:
        self._answers = answers
        self._ask = ask
        self._out = out
        self._environ = environ
        self._slack_api = slack_api or _SLACK_DEFAULT_API
        self._names_explained = False

    def _say(self, text: str = "") -> None:
        self._out.write(text + "\n")
        self._out.flush()

    async def run(self, *, config_path: Path, force: bool) -> int:
        state = await asyncio.to_thread(_path_state, config_path)
        if state == "folder":
            raise _Stop(
                f"{config_path} is a folder; name the config file to write, e.g. {DEFAULT_CONFIG_NAME}"
            )
        if state == "file" and not force:
            raise _Stop(
                f"{config_path} already exists and was left as it is. Name another file "
                f"(`vigil init other.toml`), or add --force to replace it."
            )
        self._say(f"Vigil setup: writes {config_path}. Secrets stay in environment variables; none is shown.")
        plan = self._plan()
        self._require_secrets(plan.secrets)
        async with _connect(plan, environ=self._environ, slack_api=self._slack_api) as platform:
            await platform.check(self._say)
            settings = await self._write(plan, config_path=config_path, force=force)
            platform.advise(self._say)
            posted = await self._test_alert(plan, platform, settings)
        self._summary(plan, config_path=config_path, settings=settings, posted=posted)
        return 0

    # -------------------------------------------------------------------------------------------- questions

    def _value(
        self,
        given: str | None,
        *,
        question: str,
        default: str | None,
        check: Callable[[str], str | None],
        explain: str = "",
    ) -> str:
        """A flag's answer, else the person's (asked again, at most three times, when it is unusable)."""
        if given is not None:
            problem = check(given)
            if problem is not None:
                raise _Stop(problem)
            return given
        if self._ask is None:
            if default is None:
                raise _Stop(f"no answer to “{question}”; give it as a flag (see `vigil init --help`)")
            return default
        if explain:
            self._say(explain)
        for _ in range(_ATTEMPTS):
            # A plain call, not a thread: the event loop has nothing else to do while someone types.
            answer = self._ask(question, default).strip() or (default or "")
            problem = check(answer)
            if problem is None:
                return answer
            self._say(f"  {problem}")
        raise _Stop(f"no usable answer to “{question}”")

    def _env_name(self, given: str | None, *, default: str, holds: str) -> str:
        explain = ""
        if given is None and not self._names_explained:
            self._names_explained = True
            explain = (
                "Secrets stay in environment variables: give the NAME of each variable (Enter keeps the "
                "default), never the secret itself."
            )
        return self._value(
            given,
            question=f"Environment variable holding {holds}",
            default=default,
            check=lambda answer: _env_name_problem(answer, environ=self._environ),
            explain=explain,
        )

    def _plan(self) -> _Plan:
        a = self._answers
        platform = self._value(
            a.platform,
            question="Platform (discord, slack or http)",
            default=None,
            check=lambda answer: None if answer.lower() in _PLATFORMS else "answer discord, slack or http",
            explain="Where does Vigil read chat? discord, slack, or http (your own platform sends messages "
            "to Vigil's HTTP API).",
        ).lower()
        settings: list[_Setting] = []
        secrets: list[_EnvVar] = []
        slack_mode: SlackMode = "socket"
        webhook_host: str | None = None
        if platform == "discord":
            settings.append(_Setting(section="discord", key="enabled", value=True))
            name = self._env_name(a.discord_token_env, default="VIGIL_DISCORD_TOKEN", holds="the bot token")
            secrets.append(
                _token_var(name, section="discord", key="token_env", holds="the Discord bot token")
            )
        elif platform == "slack":
            settings.append(_Setting(section="slack", key="enabled", value=True))
            mode = self._value(
                a.slack_mode,
                question="Connection (socket or http)",
                default="socket",
                check=lambda answer: None if answer.lower() in _SLACK_MODES else "answer socket or http",
                explain="How does Slack reach Vigil? socket: Socket Mode, Vigil connects out, no public URL "
                "needed; http: Slack sends HTTPS requests to Vigil behind your reverse proxy.",
            ).lower()
            slack_mode = "http" if mode == "http" else "socket"
            if slack_mode == "http":
                settings.append(_Setting(section="slack", key="mode", value="http"))
            bot = self._env_name(
                a.slack_bot_token_env, default="VIGIL_SLACK_BOT_TOKEN", holds="the bot token"
            )
            secrets.append(
                _token_var(bot, section="slack", key="bot_token_env", holds="the Slack bot token, xoxb-...")
            )
            if slack_mode == "socket":
                app = self._env_name(
                    a.slack_app_token_env, default="VIGIL_SLACK_APP_TOKEN", holds="the app-level token"
                )
                secrets.append(
                    _token_var(
                        app, section="slack", key="app_token_env", holds="the Slack app-level token, xapp-..."
                    )
                )
            else:
                signing = self._env_name(
                    a.slack_signing_secret_env,
                    default="VIGIL_SLACK_SIGNING_SECRET",
                    holds="the signing secret",
                )
                secrets.append(
                    _token_var(
                        signing, section="slack", key="signing_secret_env", holds="the Slack signing secret"
                    )
                )
        else:
            settings.append(_Setting(section="http", key="enabled", value=True))
            name = self._env_name(a.http_secret_env, default="VIGIL_HTTP_SECRET", holds="the shared secret")
            secrets.append(
                _generated_var(name, section="http", key="secret_env", holds="the HTTP API's secret")
            )
            url = self._value(
                a.webhook_url,
                question="Alert webhook URL (empty: none)",
                default="",
                check=_webhook_url_problem,
                explain="Vigil can POST each alert, signed, to a URL of your platform. Without one, your "
                "platform reads alerts with GET /v1/cases.",
            )
            if url:
                webhook_host = URL(url).host
                settings.append(_Setting(section="http", key="webhook_url", value=url))
                hook = self._env_name(
                    a.webhook_secret_env, default="VIGIL_WEBHOOK_SECRET", holds="the webhook's secret"
                )
                secrets.append(
                    _generated_var(hook, section="http", key="webhook_secret_env", holds="the webhook secret")
                )
        database = self._value(
            a.database,
            question="Database file (relative to the config file's folder)",
            default="vigil.sqlite3",
            check=lambda answer: None if answer else "name a file",
        )
        if database != "vigil.sqlite3":
            settings.append(_Setting(section="storage", key="database", value=database))
        if a.threshold is not None:
            if not 0.0 < a.threshold < 1.0:
                raise _Stop(f"--threshold must be between 0 and 1 (exclusive), got {a.threshold:g}")
            settings.append(_Setting(section="policy", key="threshold", value=float(a.threshold)))
        for secret in secrets:
            if secret.name != _DEFAULTS[(secret.section, secret.key)]:
                settings.append(_Setting(section=secret.section, key=secret.key, value=secret.name))
        return _Plan(
            platform="discord" if platform == "discord" else "slack" if platform == "slack" else "http",
            slack_mode=slack_mode,
            secrets=tuple(secrets),
            settings=tuple(settings),
            webhook_host=webhook_host,
        )

    def _require_secrets(self, secrets: Sequence[_EnvVar]) -> None:
        missing = [s for s in secrets if not self._environ.get(s.name, "").strip()]
        if not missing:
            return
        for secret in missing:
            state = "is empty" if secret.name in self._environ else "is not set"
            self._say(f"The environment variable {secret.name} {state}: it should hold {secret.holds}.")
        self._say("Set it in this shell (the value is not shown, nor kept in your shell history):")
        for secret in missing:
            self._say(f"    {secret.how}")
        self._say(
            "then run `vigil init` again. For `vigil run` later, give the service the same variables "
            "(a systemd EnvironmentFile or a container's env file, readable only by Vigil: docs/deploy.md)."
        )
        names = ", ".join(s.name for s in missing)
        raise _Stop(f"{names} must be set before the token can be checked; nothing was written")

    # -------------------------------------------------------------------------------------------- the config

    async def _write(self, plan: _Plan, *, config_path: Path, force: bool) -> Settings:
        text = _render_config(plan.settings)
        # Checked before the file exists, so a mistake here never leaves an unusable config behind.
        try:
            config_dir = await asyncio.to_thread(lambda: config_path.absolute().parent)
            settings_from_mapping(tomllib.loads(text), config_dir=config_dir)
        except (tomllib.TOMLDecodeError, ConfigError) as error:
            raise _Stop(f"the config Vigil made is invalid (a bug, please report it): {error}") from None
        try:
            if force:
                await asyncio.to_thread(replace_private_file, config_path, text.encode())
            else:
                await asyncio.to_thread(write_private_file, config_path, text.encode())
        except FileExistsError:
            raise _Stop(f"{config_path} appeared meanwhile; add --force to replace it") from None
        except OSError as error:
            raise _Stop(f"cannot write {config_path}: {error.strerror or error}") from None
        # The real loader, as `vigil run` and `vigil check-config` read it.
        try:
            settings = await asyncio.to_thread(load_settings, config_path)
        except ConfigError as error:
            raise _Stop(f"the written config does not load (a bug, please report it): {error}") from None
        problems = [p for p in check_settings(settings, self._environ) if not p.startswith("note:")]
        if problems:
            raise _Stop("the written config cannot start Vigil: " + "; ".join(problems))
        logger.info("vigil init wrote %s (%s)", config_path, plan.platform)
        self._say(f"Wrote {config_path} and loaded it back: it is valid.")
        folder = Path(settings.storage.database).parent
        if settings.storage.database != ":memory:" and not await asyncio.to_thread(folder.is_dir):
            self._say(
                f"Note: the database's folder {folder} does not exist yet; create it before `vigil run`."
            )
        return settings

    # -------------------------------------------------------------------------------------------- test alert

    async def _test_alert(self, plan: _Plan, platform: _Platform, settings: Settings) -> _Posted | None:
        if plan.platform == "http":
            return None
        where = "Discord channel ID" if plan.platform == "discord" else "Slack channel ID"
        hint = (
            "add Vigil to the server with the link above first. The channel's ID: right-click it → Copy "
            "Channel ID (turn on Developer Mode under Settings → Advanced)"
            if plan.platform == "discord"
            else "invite Vigil there first with /invite @Vigil. The channel's ID: its name → About → Channel "
            "ID at the bottom (C...)"
        )
        answer = self._value(
            self._answers.alert_channel,
            question=f"Alert channel for a test alert ({where}, empty: skip)",
            default="",
            check=lambda text: (
                None if not text or _channel_id(plan.platform, text) else f"expected a {where}"
            ),
            explain="\nA private moderator channel for alerts: Vigil posts a test alert there and remembers "
            f"it as the alert channel; {hint}.",
        )
        channel_id = _channel_id(plan.platform, answer) if answer else None
        if channel_id is None:
            return None
        space_id = await platform.space_of(channel_id)
        database = settings.storage.database
        if database == ":memory:":
            self._say(
                "Note: the database is :memory:, so the alert channel cannot be remembered for `vigil run`."
            )
        try:
            cipher = TextCipher.from_environment(settings.encryption, self._environ)
        except ConfigError as error:
            raise _Stop("; ".join(error.problems)) from None
        try:
            if database != ":memory:":
                await asyncio.to_thread(make_private_dirs, Path(database).parent)
            # Opened before posting: a database Vigil cannot use should stop us before the chat sees anything.
            async with SqliteStore(database, cipher=cipher) as store:
                current = await store.get_space_settings(platform=plan.platform, space_id=space_id)
                chosen = (
                    dataclasses.replace(current, alert_channel_id=channel_id)
                    if current is not None
                    else SpaceSettings(platform=plan.platform, space_id=space_id, alert_channel_id=channel_id)
                )
                refused = await platform.post_test(chosen, self._say)
                if refused is not None:
                    raise _Stop(
                        f"the test alert could not be posted: {refused}. The config is written; fix this, "
                        "then run `vigil init --force` again, or `/vigil setup` and `/vigil test` once Vigil "
                        "runs"
                    )
                await store.put_space_settings(chosen)
        except (StoreError, OSError) as error:
            raise _Stop(f"the database {database} cannot be used: {error}") from None
        posted = _Posted(space_id=space_id, channel_id=channel_id, where=platform.space_name(space_id))
        self._say(f"Posted a test alert in channel {channel_id}.")
        if database != ":memory:":
            self._say(f"Stored it in {database} as the alert channel of {posted.where}.")
        return posted

    # -------------------------------------------------------------------------------------------- summary

    def _summary(self, plan: _Plan, *, config_path: Path, settings: Settings, posted: _Posted | None) -> None:
        quoted = shlex.quote(str(config_path))
        self._say("")
        self._say("Done.")
        self._say(
            f"  config:   {config_path} ({plan.platform} enabled; `vigil check-config {quoted}` checks it)"
        )
        # Owner-only, as the webhook URL may hold a token; a service running as another user needs access.
        self._say(
            "            readable by you only: if Vigil runs as another user, see docs/deploy.md (0640)"
        )
        self._say(f"  secrets:  read from {', '.join(s.name for s in plan.secrets)} (not in the file)")
        stored = (
            f"; alert channel {posted.channel_id} stored for {posted.where}" if posted is not None else ""
        )
        self._say(f"  database: {settings.storage.database}{stored}")
        encrypted = bool(self._environ.get(settings.encryption.key_env, "").strip())
        if not encrypted:
            self._say(
                f"  encryption at rest is off: set {settings.encryption.key_env} before the first run to "
                "turn it on (docs/privacy.md)"
            )
        if plan.webhook_host is not None:
            self._say(f"  alerts:   POSTed, signed, to the webhook on {plan.webhook_host}")
        self._say("")
        self._say("Next, with the same environment variables set:")
        self._say(f"    vigil run --config {quoted}")
        if plan.platform == "discord":
            # /vigil setup always names the channel too; the role decides who sees alerts and acts on them.
            channel = "#vigil-alerts" if posted is None else "#the-channel-above"
            self._say(
                f"then in your server: /vigil setup alert_channel:{channel} moderator_role:@Moderators, "
                "and /vigil test"
            )
        elif plan.platform == "slack":
            if posted is None:
                self._say("then in Slack: /vigil setup #vigil-alerts @moderators, and /vigil test")
            else:
                self._say(
                    "then in Slack: /vigil setup moderators @your-moderator-group (who sees and acts on "
                    "alerts), and /vigil test"
                )
        else:
            self._say(
                f"then check it: curl http://{settings.http.host}:{settings.http.port}/healthz, and send "
                "signed messages to POST /v1/messages (docs/http-api.md)"
            )


# ------------------------------------------------------------------------------------------------ answers


def _path_state(path: Path) -> Literal["missing", "file", "folder"]:
    if path.is_dir():
        return "folder"
    return "file" if path.exists() else "missing"


def _env_name_problem(answer: str, *, environ: Mapping[str, str]) -> str | None:
    # Never echo the answer: someone may have pasted the secret where its variable's name belongs.
    if any(
        answer == value.strip() for value in environ.values() if len(value.strip()) >= _MIN_COMPARED_SECRET
    ):
        return "that is a secret's value (not shown); give the NAME of the variable that holds it"
    if _ENV_NAME.fullmatch(answer) is None:
        return (
            "expected the NAME of an environment variable: capital letters, digits and underscores, such as "
            "VIGIL_DISCORD_TOKEN (what you typed is not shown, in case it was the secret itself)"
        )
    return None


def _webhook_url_problem(answer: str) -> str | None:
    if not answer:
        return None
    try:
        parsed = URL(answer)
    except ValueError:
        parsed = URL()
    # The URL may carry a token, so it is never echoed.
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "expected an absolute https:// URL (or nothing)"
    return None


def _channel_id(platform: Platform, answer: str) -> str | None:
    pattern = _DISCORD_ID if platform == "discord" else _SLACK_CHANNEL
    match = pattern.fullmatch(answer.strip())
    if match is None:
        return None
    return match.group(1) or match.group(2)


def _token_var(name: str, *, section: str, key: str, holds: str) -> _EnvVar:
    return _EnvVar(
        name=name,
        section=section,
        key=key,
        holds=holds,
        how=f"read -rs {name} && export {name}    # paste it, then press Enter",
    )


def _generated_var(name: str, *, section: str, key: str, holds: str) -> _EnvVar:
    return _EnvVar(
        name=name,
        section=section,
        key=key,
        holds=f"{holds} (at least {MIN_SECRET_CHARS} characters; your platform needs the same value)",
        how=f'export {name}="$(openssl rand -hex 32)"',
    )


def missing_slack_scopes(granted_header: str | None, *, needed: Sequence[str]) -> tuple[str, ...] | None:
    """The bot scopes in ``needed`` that an ``x-oauth-scopes`` header lacks; None when there is no header."""
    if granted_header is None:
        return None
    granted = {scope.strip() for scope in granted_header.split(",") if scope.strip()}
    return tuple(scope for scope in needed if scope not in granted)


# ------------------------------------------------------------------------------------------------ the file


def _example_comments() -> dict[tuple[str, str], tuple[str, ...]]:
    """Each setting's comment in the example config, by (section, key): one wording for both files.

    A key without a comment right above it shares the previous key's (the example explains the Slack
    variables' names in one comment).
    """
    comments: dict[tuple[str, str], tuple[str, ...]] = {}
    section = ""
    block: list[str] = []
    previous: tuple[str, ...] = ()
    key_line = re.compile(r"#? ?([a-z_]+) = .*")
    for raw in EXAMPLE_CONFIG_PATH.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if heading := re.fullmatch(r"\[([a-z_]+)\]", line):
            section, block, previous = heading.group(1), [], ()
        elif (found := key_line.fullmatch(line)) and section:
            previous = tuple(block) or previous
            comments[(section, found.group(1))] = previous
            block = []
        elif line.startswith("#"):
            block.append(line)
        else:
            block = []
    return comments


def _defaults() -> Mapping[tuple[str, str], object]:
    defaults = Settings()
    return MappingProxyType(
        {
            (section.name, item.name): getattr(getattr(defaults, section.name), item.name)
            for section in dataclasses.fields(defaults)
            for item in dataclasses.fields(getattr(defaults, section.name))
        }
    )


# Read-only: the loader's defaults, so the file holds only what differs from them.
_DEFAULTS = _defaults()


def _toml_value(value: str | bool | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    # A TOML basic string: JSON's escapes are TOML's, except that DEL must be escaped and a character beyond
    # the BMP must stay itself (TOML refuses JSON's surrogate pairs).
    escaped = json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    return escaped


def _render_config(settings: Sequence[_Setting]) -> str:
    """The config text: the header, then each section's settings with the example config's comments."""
    comments = _example_comments()
    lines = list(_HEADER_LINES)
    order = [item.name for item in dataclasses.fields(Settings)]
    for section in sorted({s.section for s in settings}, key=order.index):
        lines.append("")
        lines.append(f"[{section}]")
        shown: tuple[str, ...] = ()
        for setting in (s for s in settings if s.section == section):
            comment = comments.get((section, setting.key), ())
            if comment != shown:
                lines.extend(comment)
                shown = comment
            lines.append(f"{setting.key} = {_toml_value(setting.value)}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ platforms


class _Platform:
    """A platform's checks: the token, advice after the config is written, and the test alert."""

    async def check(self, say: Callable[[str], None]) -> None:
        return None

    def advise(self, say: Callable[[str], None]) -> None:
        return None

    async def space_of(self, channel_id: str) -> str:
        raise _Stop("this platform has no alert channel")

    def space_name(self, space_id: str) -> str:
        return space_id

    async def post_test(self, settings: SpaceSettings, say: Callable[[str], None]) -> str | None:
        """None when the test alert arrived, else why not (never a secret)."""
        return "this platform has no alert channel"

    async def aclose(self) -> None:
        return None


class _Http(_Platform):
    def __init__(self, *, plan: _Plan, environ: Mapping[str, str]) -> None:
        self._plan = plan
        self._environ = environ

    async def check(self, say: Callable[[str], None]) -> None:
        values: list[str] = []
        for secret in self._plan.secrets:
            value = self._environ.get(secret.name, "").strip()
            if len(value) < MIN_SECRET_CHARS:
                raise _Stop(
                    f"{secret.name} holds {len(value)} characters; Vigil needs at least {MIN_SECRET_CHARS} "
                    f'(make one: export {secret.name}="$(openssl rand -hex 32)"); nothing was written'
                )
            values.append(value)
        if len(values) == 2 and values[0] == values[1]:
            say("Note: the request secret and the webhook secret are the same; use two different secrets.")
        names = " and ".join(s.name for s in self._plan.secrets)
        say(f"Checked {names}: long enough ({MIN_SECRET_CHARS} characters or more).")


class _Discord(_Platform):
    """discord.py's HTTP client, logged in without the gateway: REST calls only, at ``Route.BASE``."""

    def __init__(self, *, token: Secret, token_env: str) -> None:
        import discord  # noqa: PLC0415

        self._token = token
        self._token_env = token_env
        self._client: discord.Client = discord.Client(intents=discord.Intents.none())
        self._application_id: int | None = None
        self._flags = 0
        self._public = False

    async def check(self, say: Callable[[str], None]) -> None:
        import discord  # noqa: PLC0415

        token = self._token.reveal()
        if token.lower().startswith("bot "):
            raise _Stop(
                f"{self._token_env} starts with “Bot ”: put the token alone in it; nothing was written"
            )
        try:
            # GET /users/@me, then GET /oauth2/applications/@me.
            await self._client.login(token)
        except discord.LoginFailure:
            raise _Stop(
                f"Discord refused the token in {self._token_env} (401 Unauthorized). Copy it again from the "
                "developer portal → your application → Bot → Reset Token; nothing was written"
            ) from None
        except discord.HTTPException as error:
            raise _Stop(
                f"Discord answered HTTP {error.status} to the token check (try again later); nothing was "
                "written"
            ) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise _Stop(f"could not reach Discord ({type(error).__name__}); nothing was written") from None
        user = self._client.user
        application = self._client.application
        if user is None or application is None:
            raise _Stop("Discord did not describe the bot; try again")
        self._application_id = int(application.id)
        self._flags = int(application.flags.value)
        self._public = bool(application.bot_public)
        say(f"Discord accepted the token: bot {user.name} (id {user.id}), application {application.name}.")

    def advise(self, say: Callable[[str], None]) -> None:
        from vigil.bots.discord.sink import ALERT_CHANNEL_PERMISSIONS, invite_url  # noqa: PLC0415

        assert self._application_id is not None  # check() ran
        permissions = ", ".join(label for _, label in ALERT_CHANNEL_PERMISSIONS)
        say("")
        say(f"Add Vigil to your server with exactly the permissions it needs ({permissions}):")
        say(f"    {invite_url(self._application_id)}")
        if not self._flags & _MESSAGE_CONTENT_FLAGS:
            say(
                "Warning: the Message Content intent looks off. Turn it on (developer portal → Bot → "
                "Privileged Gateway Intents → Message Content Intent), or Vigil refuses to start."
            )
        if self._public:
            say("Note: the bot is public, so anyone with the link can add it; turn Public Bot off under Bot.")

    async def space_of(self, channel_id: str) -> str:
        import discord  # noqa: PLC0415

        try:
            data = await self._client.http.get_channel(int(channel_id))
        except discord.NotFound:
            raise _Stop(f"Discord knows no channel {channel_id} (404): copy its ID again") from None
        except discord.Forbidden:
            raise _Stop(
                f"Vigil cannot see channel {channel_id} (403): add Vigil to the server with the link above, "
                "and allow it View Channel there"
            ) from None
        except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as error:
            raise _Stop(f"could not look up channel {channel_id} ({type(error).__name__})") from None
        guild_id = data.get("guild_id")
        if not guild_id:
            raise _Stop(f"channel {channel_id} is not in a server; choose a server's private text channel")
        return str(guild_id)

    def space_name(self, space_id: str) -> str:
        return f"server {space_id}"

    async def post_test(self, settings: SpaceSettings, say: Callable[[str], None]) -> str | None:
        from vigil.bots.discord.sink import DiscordSink  # noqa: PLC0415

        # Vigil's own test alert, as `/vigil test` posts it (role ping, embed); logged in is connected here.
        sink = DiscordSink(client=self._client, signal_labels={}, is_connected=lambda: True)
        result = await sink.post_test(settings)
        return None if result.ok else (result.error or "unknown error")

    async def aclose(self) -> None:
        await self._client.close()


class _Slack(_Platform):
    def __init__(self, *, plan: _Plan, environ: Mapping[str, str], base_url: str) -> None:
        from slack_sdk.web.async_client import AsyncWebClient  # noqa: PLC0415

        from vigil.bots.slack.web import quiet_sdk_logger  # noqa: PLC0415

        self._plan = plan
        self._environ = environ
        self._base_url = base_url
        bot = plan.secrets[0]
        self._bot_env = bot.name
        self._sdk_logger = quiet_sdk_logger()
        self._client: AsyncWebClient = AsyncWebClient(
            token=environ[bot.name].strip(), base_url=base_url, logger=self._sdk_logger
        )
        self._team_id = ""
        self._team = ""
        self._missing: tuple[str, ...] | None = None

    async def check(self, say: Callable[[str], None]) -> None:
        from slack_sdk.web.async_client import AsyncWebClient  # noqa: PLC0415

        from vigil.bots.slack.app import BOT_SCOPES  # noqa: PLC0415
        from vigil.bots.slack.web import WEB_API_ERRORS, classify_failure  # noqa: PLC0415

        if not self._environ[self._bot_env].strip().startswith("xoxb-"):
            raise _Stop(
                f"{self._bot_env} does not hold a bot token (they start with xoxb-): copy the Bot User OAuth "
                "Token from the app's OAuth & Permissions page; nothing was written"
            )
        try:
            identity = await self._client.auth_test()
        except WEB_API_ERRORS as error:
            failure = classify_failure(error)
            if failure.is_token_problem or failure.code == "not_allowed_token_type":
                raise _Stop(
                    f"Slack refused the bot token in {self._bot_env} ({failure.code}): copy the Bot User "
                    "OAuth Token (xoxb-...) again from the app's OAuth & Permissions page, after installing "
                    "the app to the workspace; nothing was written"
                ) from None
            raise _Stop(f"the token check failed: {failure.description}; nothing was written") from None
        self._team_id = str(identity.get("team_id") or "")
        self._team = str(identity.get("team") or self._team_id)
        if not self._team_id:
            raise _Stop("Slack's auth.test named no workspace; try again")
        say(
            f"Slack accepted the bot token: app user @{identity.get('user')} in workspace {self._team} "
            f"({self._team_id})."
        )
        self._missing = missing_slack_scopes(_header(identity.headers, "x-oauth-scopes"), needed=BOT_SCOPES)
        if self._plan.slack_mode != "socket":
            return
        app = self._plan.secrets[1]
        app_token = self._environ[app.name].strip()
        if not app_token.startswith("xapp-"):
            raise _Stop(
                f"{app.name} does not hold an app-level token (they start with xapp-): make one under Basic "
                "Information → App-Level Tokens, scope connections:write; nothing was written"
            )
        try:
            # Proves the app token and that Socket Mode is on; the URL it hands out is left unused.
            await AsyncWebClient(base_url=self._base_url, logger=self._sdk_logger).apps_connections_open(
                app_token=app_token
            )
        except WEB_API_ERRORS as error:
            failure = classify_failure(error)
            raise _Stop(
                f"Slack refused the app-level token in {app.name} ({failure.code}): it needs the scope "
                "connections:write, and the app needs Socket Mode on (the manifest's socket_mode_enabled); "
                "nothing was written"
            ) from None
        say(f"Slack accepted the app-level token in {app.name}: Socket Mode can connect.")

    def advise(self, say: Callable[[str], None]) -> None:
        if self._missing:
            say("")
            say(
                f"The app lacks scopes Vigil needs: {', '.join(self._missing)}. Update it from Vigil's "
                "manifest (`vigil show slack-manifest`; api.slack.com/apps → your app → App Manifest), then "
                "reinstall it to the workspace (Slack grants new scopes only then)."
            )
        if self._plan.slack_mode == "http":
            say("")
            say(
                "HTTP mode: in the manifest set socket_mode_enabled to false and the three request_url / url "
                "lines to https://YOUR-HOST/slack/events; your reverse proxy forwards them to Vigil "
                "(127.0.0.1:3000 by default)."
            )

    async def space_of(self, channel_id: str) -> str:
        return self._team_id

    def space_name(self, space_id: str) -> str:
        return f"workspace {self._team} ({space_id})" if self._team != space_id else f"workspace {space_id}"

    async def post_test(self, settings: SpaceSettings, say: Callable[[str], None]) -> str | None:
        from vigil.bots.slack.commands import post_test_alert  # noqa: PLC0415
        from vigil.bots.slack.web import WEB_API_ERRORS, classify_failure  # noqa: PLC0415

        channel = settings.alert_channel_id or ""
        try:
            info = await self._client.conversations_info(channel=channel)
        except WEB_API_ERRORS:
            info = None  # only for the warning below; posting says what is wrong
        try:
            # Exactly as `/vigil test` posts it, pinging the moderator group if one is set.
            await post_test_alert(
                self._client, channel_id=channel, moderator_group=settings.moderator_role_id
            )
        except WEB_API_ERRORS as error:
            return classify_failure(error).description
        if info is not None and not (info.get("channel") or {}).get("is_private", True):
            say(
                f"Warning: {channel} is a public channel, so everyone in the workspace can read the alerts "
                "(names, message excerpts). Use a private channel: pass its ID to `vigil init --force`, or "
                "run `/vigil setup` once Vigil runs."
            )
        return None

    async def aclose(self) -> None:
        return None


def _header(headers: object, name: str) -> str | None:
    if not isinstance(headers, Mapping):
        return None
    for key, value in headers.items():
        if str(key).lower() == name:
            return ",".join(value) if isinstance(value, list) else str(value)
    return None


@contextlib.asynccontextmanager
async def _connect(plan: _Plan, *, environ: Mapping[str, str], slack_api: str) -> AsyncIterator[_Platform]:
    """The chosen platform's checker, closed on the way out whatever happens."""
    platform: _Platform
    if plan.platform == "discord":
        token = plan.secrets[0]
        platform = _Discord(token=Secret(environ[token.name].strip()), token_env=token.name)
    elif plan.platform == "slack":
        platform = _Slack(plan=plan, environ=environ, base_url=slack_api)
    else:
        platform = _Http(plan=plan, environ=environ)
    try:
        yield platform
    finally:
        await platform.aclose()
