"""Vigil's settings: frozen dataclasses with defaults in code, read from TOML; secrets from the environment.

One generic loader walks the dataclass fields, so adding a setting means adding a field (with its rule) and a
commented line in ``vigil.example.toml``; no per-section parsing code. Every problem in a file is collected
and reported together in one ``ConfigError``.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import hmac
import logging
import math
import re
import tomllib
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import (
    Any,
    Literal,
    Protocol,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    runtime_checkable,
)

from vigil.bots.core.retention import RetentionSchedule

__all__ = [
    "EXAMPLE_CONFIG_PATH",
    "MAX_SHARD_COUNT",
    "BrokerSettings",
    "ConfigError",
    "ConsoleSettings",
    "DetectorSettings",
    "DiscordSettings",
    "LogLevel",
    "LoggingSettings",
    "OutboxSettings",
    "PolicySettings",
    "RetentionSettings",
    "Secret",
    "Secrets",
    "Settings",
    "SlackMode",
    "SlackSettings",
    "StorageBackend",
    "StorageSettings",
    "check_settings",
    "format_shard_ids",
    "load_settings",
    "parse_shard_ids",
    "resolve_secrets",
    "settings_from_mapping",
]

logger = logging.getLogger(__name__)

# Shipped as package data; documents every key and loads cleanly.
EXAMPLE_CONFIG_PATH = Path(str(files("vigil.config").joinpath("vigil.example.toml")))

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
SlackMode = Literal["socket", "http"]

_T = TypeVar("_T")
_RULE_KEY = "vigil.rule"
_ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Unknown keys whose names contain these are treated as secrets pasted into the file.
_SECRET_WORDS = ("token", "secret", "password")
_MAX_SHOWN_CHARS = 60
# Upper bounds keep durations within what timedelta and SQLite integers can hold.
_MINUTES_PER_YEAR = 366 * 24 * 60
_SECONDS_PER_DAY = 24 * 60 * 60.0
_DAYS_PER_CENTURY = 36_525
# Discord documents no largest shard count; a bound keeps a typo like "0-99999999" from listing millions.
MAX_SHARD_COUNT = 100_000
_SHARD_ITEM = re.compile(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?")
_NEGATIVE_SHARD = re.compile(r"\s*-\s*[0-9]+\s*(?:-.*)?")


class ConfigError(Exception):
    """The configuration is unusable. ``problems`` lists every problem found, each naming its dotted path."""

    def __init__(self, problems: Sequence[str], *, source: Path | None = None) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"configuration file {self.source}" if self.source is not None else "configuration"
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        return "\n  - ".join([f"{where} has {count} {noun}:", *self.problems])

    def __str__(self) -> str:
        return self._render()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Rule:
    """What a setting's value must satisfy beyond its type."""

    at_least: float | None = None
    greater_than: float | None = None
    at_most: float | None = None
    less_than: float | None = None
    non_empty: bool = False
    # The value names an environment variable; it is never echoed, in case someone pasted the secret there.
    env_var_name: bool = False

    def admits(self, value: object) -> bool:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return (
                (self.at_least is None or value >= self.at_least)
                and (self.greater_than is None or value > self.greater_than)
                and (self.at_most is None or value <= self.at_most)
                and (self.less_than is None or value < self.less_than)
            )
        if isinstance(value, str):
            if self.env_var_name:
                return _ENV_VAR_NAME.fullmatch(value) is not None
            return not (self.non_empty and value == "")
        if isinstance(value, tuple):
            return not (self.non_empty and not value)
        return True

    def describe_bounds(self) -> str:
        if self.at_least is not None and self.at_most is not None:
            return f" between {_number(self.at_least)} and {_number(self.at_most)}"
        parts: list[str] = []
        if self.at_least is not None:
            parts.append(f"at least {_number(self.at_least)}")
        if self.greater_than is not None:
            parts.append(f"greater than {_number(self.greater_than)}")
        if self.at_most is not None:
            parts.append(f"at most {_number(self.at_most)}")
        if self.less_than is not None:
            parts.append(f"less than {_number(self.less_than)}")
        return "".join(f" {part}" if i == 0 else f" and {part}" for i, part in enumerate(parts))


_NO_RULE = _Rule()


def _setting(
    default: _T,
    *,
    at_least: float | None = None,
    greater_than: float | None = None,
    at_most: float | None = None,
    less_than: float | None = None,
    non_empty: bool = False,
    env_var_name: bool = False,
) -> _T:
    """A dataclass field with a default and the rule the loader checks its value against."""
    rule = _Rule(
        at_least=at_least,
        greater_than=greater_than,
        at_most=at_most,
        less_than=less_than,
        non_empty=non_empty,
        env_var_name=env_var_name,
    )
    return field(default=default, metadata={_RULE_KEY: rule})


@runtime_checkable
class _SelfChecking(Protocol):
    """A section whose fields constrain each other; the loader asks it once its fields are valid."""

    def consistency_problems(self, *, path: str) -> list[str]: ...


StorageBackend = Literal["sqlite", "postgres"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageSettings:
    # "sqlite": one file, one process (the default). "postgres": a PostgreSQL server (docs/scale.md).
    backend: StorageBackend = "sqlite"
    # SQLite only. Relative paths are relative to the config file's folder; ":memory:" keeps nothing on disk.
    database: str = _setting("vigil.sqlite3", non_empty=True)
    # Postgres only: the NAME of the environment variable holding the DSN (it may hold a password).
    postgres_dsn_env: str = _setting("VIGIL_POSTGRES_DSN", env_var_name=True)
    # Postgres only: the most connections one Vigil process opens.
    postgres_max_connections: int = _setting(4, at_least=1, at_most=100)


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerSettings:
    """Scale-out (docs/scale.md): gateways publish messages to NATS JetStream, workers score them."""

    # false: one process scores what it receives (``vigil run``); true: ``vigil gateway`` + ``vigil worker``.
    enabled: bool = False
    # The NAME of the environment variable holding the NATS server URL(s), comma-separated (may hold a
    # password or token, so never in this file).
    url_env: str = _setting("VIGIL_NATS_URL", env_var_name=True)
    # The JetStream stream and key-value bucket Vigil creates; change them to run two Vigils on one server.
    stream: str = _setting("VIGIL_MESSAGES", non_empty=True)
    # Spaces are spread over this many partitions, each scored in order by one worker at a time. Fixed for
    # the life of the stream: the most workers that can share the work.
    partitions: int = _setting(32, at_least=1, at_most=1024)
    # A worker that stops renewing its partitions for this long is taken over by the others.
    lease_s: float = _setting(10.0, at_least=2.0, at_most=300.0)
    # A message nobody scored within this many hours is dropped by the broker (privacy: text does not wait
    # forever on a broker's disk while no worker runs).
    max_age_hours: int = _setting(24, at_least=1, at_most=24 * 14)

    def consistency_problems(self, *, path: str) -> list[str]:
        # JetStream names: no dots, spaces, wildcards or path characters; the bucket adds a suffix.
        if len(self.stream) > 48 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in self.stream):
            return [f"{path}.stream: expected at most 48 letters, digits, '-' or '_', got {self.stream!r}"]
        return []


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingSettings:
    level: LogLevel = "INFO"
    json: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorSettings:
    # Empty means the model shipped with Vigil.
    model_dir: str = ""
    intra_op_threads: int = _setting(2, at_least=1, at_most=1024)
    inter_op_threads: int = _setting(1, at_least=1, at_most=1024)
    max_batch: int = _setting(256, at_least=1, at_most=4096)
    queue_size: int = _setting(4096, at_least=1, at_most=1_000_000)
    # true: start even when this onnxruntime scores the model's golden inputs beyond their tolerance.
    accept_runtime_drift: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySettings:
    # None: use the model's own default_threshold / policy defaults.
    threshold: float | None = _setting(None, greater_than=0.0, less_than=1.0)
    sustain_messages: int | None = _setting(None, at_least=1, at_most=1000)
    hysteresis: float = _setting(0.15, at_least=0.0, less_than=1.0)
    cooldown_minutes: int = _setting(360, at_least=0, at_most=_MINUTES_PER_YEAR)
    update_min_delta: float = _setting(0.05, at_least=0.0, less_than=1.0)
    max_alerts_per_hour: int = _setting(10, at_least=1, at_most=3600)
    shadow_mode: bool = False
    window_messages: int = _setting(50, at_least=1, at_most=10_000)
    evidence_messages: int = _setting(5, at_least=1, at_most=100)

    def consistency_problems(self, *, path: str) -> list[str]:
        problems: list[str] = []
        if self.threshold is not None and self.hysteresis >= self.threshold:
            problems.append(
                f"{path}.hysteresis: expected less than {path}.threshold ({_number(self.threshold)}), "
                f"got {_number(self.hysteresis)}; an open alert would never close"
            )
        if self.evidence_messages > self.window_messages:
            problems.append(
                f"{path}.evidence_messages: expected at most {path}.window_messages "
                f"({self.window_messages}), got {self.evidence_messages}; evidence is taken from the window"
            )
        return problems


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxSettings:
    retry_initial_s: float = _setting(5.0, greater_than=0.0, at_most=_SECONDS_PER_DAY)
    retry_max_s: float = _setting(900.0, greater_than=0.0, at_most=_SECONDS_PER_DAY)
    poll_interval_s: float = _setting(1.0, greater_than=0.0, at_most=3600.0)

    def consistency_problems(self, *, path: str) -> list[str]:
        if self.retry_initial_s > self.retry_max_s:
            return [
                f"{path}.retry_initial_s: expected at most {path}.retry_max_s ({_number(self.retry_max_s)}), "
                f"got {_number(self.retry_initial_s)}"
            ]
        return []


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionSettings:
    message_days: int = _setting(14, at_least=1, at_most=_DAYS_PER_CENTURY)
    pair_idle_days: int = _setting(30, at_least=1, at_most=_DAYS_PER_CENTURY)
    dismissed_case_text_days: int = _setting(30, at_least=1, at_most=_DAYS_PER_CENTURY)
    preservation_hold_days: int = _setting(365, at_least=1, at_most=_DAYS_PER_CENTURY)

    def schedule(self) -> RetentionSchedule:
        """The core's retention schedule these settings describe."""
        return RetentionSchedule(
            message_days=self.message_days,
            pair_idle_days=self.pair_idle_days,
            dismissed_case_text_days=self.dismissed_case_text_days,
            preservation_hold_days=self.preservation_hold_days,
        )


def parse_shard_ids(text: str, *, shard_count: int | None = None) -> tuple[int, ...]:
    """The shard ids written in ``text`` ("0-3", "0,2,5-7"), sorted; each at most once, none negative.

    With ``shard_count``, every id must be below it. Raises ``ValueError`` saying what is wrong (the item
    is quoted, cut short when long), never anything else.
    """
    if not text.strip():
        raise ValueError('no shard ids given; write them like "0-3" or "0,2,5-7"')
    if shard_count is not None and shard_count < 1:
        raise ValueError(f"the number of shards must be greater than 0, got {shard_count}")
    limit = shard_count if shard_count is not None else MAX_SHARD_COUNT
    found: set[int] = set()
    for item in text.split(","):
        match = _SHARD_ITEM.fullmatch(item)
        if match is None:
            raise ValueError(_bad_shard_item(item))
        first_digits, last_digits = match.group(1), match.group(2) or match.group(1)
        for digits in (first_digits, last_digits):
            # Compared as text first: int() refuses strings of more than 4,300 digits.
            if len(digits.lstrip("0")) > len(str(limit)) or int(digits) >= limit:
                raise ValueError(_shard_out_of_range(digits, shard_count=shard_count))
        first, last = int(first_digits), int(last_digits)
        if first > last:
            raise ValueError(f"the range {first}-{last} runs backwards (write {last}-{first})")
        ids = set(range(first, last + 1))
        if repeated := ids & found:
            raise ValueError(f"shard {min(repeated)} is listed twice")
        found |= ids
    return tuple(sorted(found))


def _bad_shard_item(item: str) -> str:
    if not item.strip():
        return 'an empty item between commas; write shard ids like "0-3" or "0,2,5-7"'
    if _NEGATIVE_SHARD.fullmatch(item):
        return f"a shard id cannot be negative: {_describe_value(item.strip())}"
    return f'{_describe_value(item.strip())} is not a shard id or a range of them like "0-3"'


def _shard_out_of_range(digits: str, *, shard_count: int | None) -> str:
    shown = digits if len(digits) <= _MAX_SHOWN_CHARS else digits[: _MAX_SHOWN_CHARS - 3] + "..."
    if shard_count is None:
        return f"shard {shown} is out of range: shard ids are below {MAX_SHARD_COUNT}"
    count = "1 shard" if shard_count == 1 else f"{shard_count} shards"
    return f"shard {shown} is out of range: with {count} the ids are 0 to {shard_count - 1}"


def format_shard_ids(shard_ids: Sequence[int]) -> str:
    """Shard ids written as ``parse_shard_ids`` reads them, runs as ranges: (0, 1, 2, 3, 5) -> "0-3,5"."""
    runs: list[list[int]] = []
    for shard in sorted(set(shard_ids)):
        if runs and shard == runs[-1][1] + 1:
            runs[-1][1] = shard
        else:
            runs.append([shard, shard])
    return ",".join(str(first) if first == last else f"{first}-{last}" for first, last in runs)


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscordSettings:
    enabled: bool = False
    # The NAME of the environment variable holding the token, never the token itself.
    token_env: str = _setting("VIGIL_DISCORD_TOKEN", env_var_name=True)
    sharded: bool = False
    # Only these shards in this process ("0-3", "0,2,5-7"; parse_shard_ids); empty: all. Implies sharded.
    shard_ids: str = ""
    # The bot's number of shards, the same in all its processes; 0: as Discord recommends. Implies sharded.
    shard_count: int = _setting(0, at_least=0, at_most=MAX_SHARD_COUNT)
    # After a restart or a new gateway session, read channel history for the messages sent while Vigil was
    # away, up to this many hours back; 0: never (what was missed is lost).
    catch_up_hours: int = _setting(24, at_least=0, at_most=24 * 14)

    @property
    def runs_sharded(self) -> bool:
        """Whether discord.py's sharded client runs: asked for, or implied by a shard setting."""
        return self.sharded or bool(self.shard_ids.strip()) or self.shard_count > 0

    def shard_subset(self) -> tuple[int, ...] | None:
        """The shards this process runs when ``shard_ids`` names some (None: all of them).

        Raises ``ValueError`` for ids the loader would have refused (settings built in code)."""
        if not self.shard_ids.strip():
            return None
        return parse_shard_ids(self.shard_ids, shard_count=self.shard_count or None)

    def shards_summary(self) -> str | None:
        """What this process runs, such as "shards 0-3 of 16", when it runs only some shards (None: all)."""
        subset = self.shard_subset()
        if subset is None:
            return None
        noun = "shard" if len(subset) == 1 else "shards"
        return f"{noun} {format_shard_ids(subset)} of {self.shard_count}"

    def consistency_problems(self, *, path: str) -> list[str]:
        if not self.shard_ids.strip():
            return []
        problems: list[str] = []
        if self.shard_count == 0:
            problems.append(
                f"{path}.shard_count: expected the bot's number of shards (greater than 0) when "
                f"{path}.shard_ids is set, got 0; every process of the bot must use the same count"
            )
        try:
            parse_shard_ids(self.shard_ids, shard_count=self.shard_count or None)
        except ValueError as error:
            problems.append(f"{path}.shard_ids: {error}")
        return problems


@dataclass(frozen=True, slots=True, kw_only=True)
class SlackSettings:
    enabled: bool = False
    mode: SlackMode = "socket"
    bot_token_env: str = _setting("VIGIL_SLACK_BOT_TOKEN", env_var_name=True)
    app_token_env: str = _setting("VIGIL_SLACK_APP_TOKEN", env_var_name=True)
    signing_secret_env: str = _setting("VIGIL_SLACK_SIGNING_SECRET", env_var_name=True)
    http_host: str = _setting("127.0.0.1", non_empty=True)
    http_port: int = _setting(3000, at_least=1, at_most=65535)
    # Multi-workspace distribution with the OAuth install flow (HTTP mode); off: one workspace, one token.
    oauth: bool = False
    client_id_env: str = _setting("VIGIL_SLACK_CLIENT_ID", env_var_name=True)
    client_secret_env: str = _setting("VIGIL_SLACK_CLIENT_SECRET", env_var_name=True)
    # At start, read conversation history for the messages sent while Vigil was away (Slack stops resending
    # an event after about five minutes), up to this many hours back; 0: never (what was missed is lost).
    catch_up_hours: int = _setting(24, at_least=0, at_most=24 * 14)
    # Files Vigil sends to a moderator's DM (a pair's chart, a case transcript) stay there until someone
    # deletes them: Vigil deletes each this many hours after sending it (docs/privacy.md).
    shared_file_hours: int = _setting(24, at_least=1, at_most=24 * 30)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpSettings:
    """The HTTP ingest API for self-hosted platforms."""

    enabled: bool = False
    host: str = _setting("127.0.0.1", non_empty=True)
    port: int = _setting(8787, at_least=1, at_most=65535)
    secret_env: str = _setting("VIGIL_HTTP_SECRET", env_var_name=True)
    timestamp_tolerance_s: int = _setting(300, at_least=1, at_most=3600)
    max_batch_messages: int = _setting(500, at_least=1, at_most=100_000)
    max_body_bytes: int = _setting(1_000_000, at_least=1024, at_most=100_000_000)
    # Empty: no webhook; alerts are still readable through GET /v1/cases.
    webhook_url: str = ""
    webhook_secret_env: str = _setting("VIGIL_WEBHOOK_SECRET", env_var_name=True)
    # The platforms whose messages the HTTP secret may send and whose cases it may read and act on; empty:
    # any name but "discord" and "slack" (Vigil reads those itself, and a message sent in their name would
    # be an alert posted there by whoever holds the HTTP secret).
    platforms: tuple[str, ...] = ()
    # v1 request signatures do not cover the method, path or query; accepted (with a warning) for one release.
    accept_v1_signatures: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings:
    """A Prometheus text endpoint; bound to localhost unless you say otherwise."""

    enabled: bool = False
    host: str = _setting("127.0.0.1", non_empty=True)
    port: int = _setting(9464, at_least=1, at_most=65535)


@dataclass(frozen=True, slots=True, kw_only=True)
class EncryptionSettings:
    """Encryption at rest of message text and evidence: on when the key variable is set."""

    key_env: str = _setting("VIGIL_ENCRYPTION_KEY", env_var_name=True)
    # Previous keys (comma-separated in this variable) still decrypt during a rotation.
    old_keys_env: str = _setting("VIGIL_ENCRYPTION_OLD_KEYS", env_var_name=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestSettings:
    """The bounded queue between the platforms and the monitor (backpressure and load shedding)."""

    # Messages waiting to be scored; beyond it, channel chatter is shed first (docs/operations.md).
    capacity: int = _setting(2048, at_least=16, at_most=1_000_000)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleSettings:
    enabled: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything read from the config file. Validation happens when loading, not on construction."""

    storage: StorageSettings = field(default_factory=StorageSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    discord: DiscordSettings = field(default_factory=DiscordSettings)
    slack: SlackSettings = field(default_factory=SlackSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    encryption: EncryptionSettings = field(default_factory=EncryptionSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)

    def resolved_database_path(self, config_dir: Path | None) -> str:
        """The database to open: relative paths resolved against ``config_dir``; ":memory:" as is.

        ``load_settings`` already does this, so calling it on loaded settings changes nothing.
        """
        return _resolve_path(self.storage.database, config_dir=config_dir)


# --- secrets ----------------------------------------------------------------------------------------------


class Secret:
    """A secret string that never shows itself in reprs, f-strings or logs; ``reveal()`` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Secrets:
    """Secrets read from the environment variables the settings name; None where unset or empty."""

    discord_token: Secret | None = None
    slack_bot_token: Secret | None = None
    slack_app_token: Secret | None = None
    slack_signing_secret: Secret | None = None
    http_secret: Secret | None = None
    webhook_secret: Secret | None = None
    nats_url: Secret | None = None


def _read_secret(environ: Mapping[str, str], name: str) -> Secret | None:
    # Surrounding whitespace is never part of a token; it comes from `$(cat file)` and .env editors.
    value = environ.get(name, "").strip()
    logger.debug("environment variable %s: %s", name, "set" if value else "not set")
    return Secret(value) if value else None


def resolve_secrets(settings: Settings, environ: Mapping[str, str]) -> Secrets:
    """Read every secret from the environment variable its setting names."""
    return Secrets(
        discord_token=_read_secret(environ, settings.discord.token_env),
        slack_bot_token=_read_secret(environ, settings.slack.bot_token_env),
        slack_app_token=_read_secret(environ, settings.slack.app_token_env),
        slack_signing_secret=_read_secret(environ, settings.slack.signing_secret_env),
        http_secret=_read_secret(environ, settings.http.secret_env),
        webhook_secret=_read_secret(environ, settings.http.webhook_secret_env),
        nats_url=_read_secret(environ, settings.broker.url_env),
    )


def _missing_env_problem(environ: Mapping[str, str], *, enabled: str, name: str, holds: str) -> str | None:
    if name not in environ:
        state = "is not set"
    elif not environ[name].strip():
        state = "is empty"
    else:
        return None
    return f"{enabled} but the environment variable {name} {state} (it should hold {holds})"


def check_settings(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """Problems that would stop the store or an enabled platform from starting; never a secret's value."""
    needed: list[tuple[str, str, str]] = []
    if settings.storage.backend == "postgres":
        needed.append(
            ('storage.backend is "postgres"', settings.storage.postgres_dsn_env, "the PostgreSQL DSN")
        )
    if settings.broker.enabled:
        needed.append(("broker is enabled", settings.broker.url_env, "the NATS server URL"))
    if settings.discord.enabled:
        needed.append(("discord is enabled", settings.discord.token_env, "the Discord bot token"))
    if settings.slack.enabled:
        slack = f"slack is enabled in {settings.slack.mode} mode"
        if settings.slack.oauth:
            # Distributed apps get each workspace's bot token from the OAuth install flow instead.
            slack += " with OAuth"
            needed.append((slack, settings.slack.client_id_env, "the Slack app's OAuth client id"))
            needed.append((slack, settings.slack.client_secret_env, "the Slack app's OAuth client secret"))
        else:
            needed.append((slack, settings.slack.bot_token_env, "the Slack bot token, xoxb-..."))
        if settings.slack.mode == "socket":
            needed.append((slack, settings.slack.app_token_env, "the Slack app-level token, xapp-..."))
        else:
            needed.append((slack, settings.slack.signing_secret_env, "the Slack app's signing secret"))
    if settings.http.enabled:
        needed.append(("http is enabled", settings.http.secret_env, "the shared HMAC secret for requests"))
        if settings.http.webhook_url:
            needed.append(
                ("http.webhook_url is set", settings.http.webhook_secret_env, "the webhook signing secret")
            )
    problems = [
        problem
        for enabled, name, holds in needed
        if (problem := _missing_env_problem(environ, enabled=enabled, name=name, holds=holds)) is not None
    ]
    if not (settings.discord.enabled or settings.slack.enabled or settings.http.enabled):
        problems.append("note: no platform is enabled; `vigil run` would only start the console sink")
    return problems


# --- loading ----------------------------------------------------------------------------------------------


def load_settings(path: Path | None) -> Settings:
    """Read settings from a TOML file (None: the defaults). Raises ``ConfigError`` listing every problem."""
    if path is None:
        logger.debug("no configuration file given; using the defaults")
        return Settings()
    path = Path(path)
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"], source=path) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, expected a TOML file"], source=path) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read it: {exc.strerror or exc}"], source=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"], source=path) from None
    except tomllib.TOMLDecodeError as exc:
        # The message ends with "(at line L, column C)".
        raise ConfigError([f"{path}: invalid TOML: {exc}"], source=path) from None
    try:
        settings = settings_from_mapping(data, config_dir=path.absolute().parent)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source=path) from None
    logger.info("loaded settings from %s", path)
    return settings


def settings_from_mapping(data: Mapping[str, object], *, config_dir: Path | None = None) -> Settings:
    """Build settings from a parsed TOML document (or any equivalent mapping).

    Relative paths are resolved against ``config_dir`` when given. Raises ``ConfigError`` listing every
    problem; never any other exception, whatever ``data`` holds.
    """
    if not isinstance(data, Mapping):
        raise ConfigError([f"expected a table at the top level, got {_describe_value(data)}"])
    problems: list[str] = []
    settings = _read_table(Settings, data, path="", problems=problems)
    if settings is None:
        raise ConfigError(problems)
    return dataclasses.replace(
        settings,
        storage=dataclasses.replace(
            settings.storage, database=_resolve_path(settings.storage.database, config_dir=config_dir)
        ),
        detector=dataclasses.replace(
            settings.detector, model_dir=_resolve_path(settings.detector.model_dir, config_dir=config_dir)
        ),
    )


def _resolve_path(value: str, *, config_dir: Path | None) -> str:
    # ":memory:" and "file:" URIs are SQLite names, not paths; "" means "the default" (the shipped model).
    if value in ("", ":memory:") or value.startswith("file:"):
        return value
    path = Path(value).expanduser()
    if path.is_absolute() or config_dir is None:
        return str(path)
    return str(config_dir / path)


def _read_table(cls: type[_T], table: Mapping[Any, object], *, path: str, problems: list[str]) -> _T | None:
    """Read one dataclass from a table, appending problems; None if any of its values were unusable."""
    hints = get_type_hints(cls)
    fields_by_name = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, object] = {}
    problems_before = len(problems)
    for key, value in table.items():
        if not isinstance(key, str) or key not in fields_by_name:
            problems.append(_unknown_key_problem(key, value=value, path=path, cls=cls))
            continue
        key_path = f"{path}.{key}" if path else key
        hint = hints[key]
        if _is_section(hint):
            if not isinstance(value, Mapping):
                problems.append(f"[{key_path}]: expected a table, got {_describe_value(value)}")
                continue
            section = _read_table(hint, value, path=key_path, problems=problems)
            if section is not None:
                values[key] = section
            continue
        rule = fields_by_name[key].metadata.get(_RULE_KEY, _NO_RULE)
        converted = _convert(value, hint=_without_none(hint), rule=rule)
        if converted is None:
            expected = _describe_expected(_without_none(hint), rule)
            shown = "a value that is not shown here" if rule.env_var_name else _describe_value(value)
            problems.append(f"{key_path}: expected {expected}, got {shown}")
            continue
        values[key] = converted[0]
    if len(problems) > problems_before:
        return None
    instance = cls(**values)
    if isinstance(instance, _SelfChecking):
        consistency = instance.consistency_problems(path=path)
        if consistency:
            problems.extend(consistency)
            return None
    return instance


def _is_section(hint: object) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _without_none(hint: object) -> object:
    # `float | None` means "may be left out"; a present value must be a float.
    if get_origin(hint) in (Union, types.UnionType):
        rest = [arg for arg in get_args(hint) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint


def _convert(value: object, *, hint: object, rule: _Rule) -> tuple[object] | None:
    """The value as the hint's type, boxed so a legitimate value is never confused with failure."""
    converted: object
    if hint is bool:
        if not isinstance(value, bool):
            return None
        converted = value
    elif hint is int:
        # bool is an int in Python, but `true` is never a count.
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        converted = value
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        try:
            converted = float(value)
        except OverflowError:
            return None
        if not math.isfinite(converted):
            return None
    elif hint is str:
        if not isinstance(value, str):
            return None
        converted = value
    elif get_origin(hint) is Literal:
        if not isinstance(value, str) or value not in get_args(hint):
            return None
        converted = value
    elif hint == tuple[str, ...]:
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) and item for item in value):
            return None
        converted = tuple(value)
    else:
        raise TypeError(f"settings schema uses an unsupported type: {hint!r}")
    return (converted,) if rule.admits(converted) else None


def _describe_expected(hint: object, rule: _Rule) -> str:
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer" + rule.describe_bounds()
    if hint is float:
        return "a number" + rule.describe_bounds()
    if get_origin(hint) is Literal:
        choices = [repr(choice) for choice in get_args(hint)]
        return "one of " + ", ".join(choices[:-1]) + " or " + choices[-1] if len(choices) > 1 else choices[0]
    if hint == tuple[str, ...]:
        return "an array of non-empty strings" + (" (at least one)" if rule.non_empty else "")
    if rule.env_var_name:
        return "the NAME of an environment variable (letters, digits and underscores), not the secret itself"
    return "a non-empty string" if rule.non_empty else "a string"


def _describe_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= _MAX_SHOWN_CHARS else value[: _MAX_SHOWN_CHARS - 3] + "..."
        return repr(shown)
    if isinstance(value, int):
        # Python refuses to print ints of more than 4300 digits; nobody wants to read 40 of them.
        return str(value) if abs(value) < 10**_MAX_SHOWN_CHARS else "a very large integer"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    if value is None:
        return "nothing"
    if isinstance(value, datetime.datetime):
        return "a date-time"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, datetime.time):
        return "a time"
    return f"a value of type {type(value).__name__}"


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _unknown_key_problem(key: object, *, value: object, path: str, cls: type[Any]) -> str:
    name = key if isinstance(key, str) else repr(key)
    dotted = f"{path}.{name}" if path else name
    known = [f.name for f in dataclasses.fields(cls)]
    looks_secret = any(word in name.lower() for word in _SECRET_WORDS)
    # "token_evn" is a typo for "token_env", but "token" next to "token_env" is a pasted secret.
    is_typo = bool(difflib.get_close_matches(name, known, n=1, cutoff=0.85))
    if f"{name}_env" in known or (looks_secret and not is_typo):
        return _secret_in_file_problem(name, dotted=dotted, path=path, cls=cls)
    close = difflib.get_close_matches(name, known, n=1)
    if not path and isinstance(value, Mapping):
        if close:
            return f"unknown section [{name}] (did you mean [{close[0]}]?)"
        return f"unknown section [{name}] (expected one of: {', '.join(f'[{k}]' for k in known)})"
    if close:
        return f"unknown key '{dotted}' (did you mean '{close[0]}'?)"
    elsewhere = _sections_with_key(name, outside=path)
    if elsewhere:
        sections = " or ".join(f"[{section}]" for section in elsewhere)
        return f"unknown key '{dotted}' (it belongs in {sections})"
    return f"unknown key '{dotted}' (expected one of: {', '.join(known)})"


def _secret_in_file_problem(name: str, *, dotted: str, path: str, cls: type[Any]) -> str:
    said = f"{dotted}: secrets are not read from the config file"
    env_fields = [f for f in dataclasses.fields(cls) if f.metadata.get(_RULE_KEY, _NO_RULE).env_var_name]
    matching = [f for f in env_fields if f.name == f"{name}_env"]
    if matching:
        return (
            f"{said}; put it in the environment variable named by {path}.{matching[0].name} "
            f"(default {matching[0].default}) and remove it from the file"
        )
    if env_fields:
        names = ", ".join(f"{path}.{f.name}" for f in env_fields)
        return f"{said}; put it in the environment variable named by one of {names} instead"
    return f"{said}; Vigil reads secrets only from environment variables"


def _sections_with_key(name: str, *, outside: str) -> list[str]:
    """Sections (other than ``outside``) with a key called ``name``: it was probably put in the wrong one."""
    return [
        section
        for section, hint in get_type_hints(Settings).items()
        if section != outside and _is_section(hint) and name in {f.name for f in dataclasses.fields(hint)}
    ]
