from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_type_hints

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.config import (
    EXAMPLE_CONFIG_PATH,
    ConfigError,
    Secret,
    Secrets,
    Settings,
    check_settings,
    format_shard_ids,
    load_settings,
    parse_shard_ids,
    resolve_secrets,
    settings_from_mapping,
)

SECRET_VALUE = "xoxb-0000-do-not-leak-this-value"


def schema_keys() -> list[tuple[str, str]]:
    """Every (section, key) in the schema, found by walking the dataclasses."""
    keys: list[tuple[str, str]] = []
    for section, section_type in get_type_hints(Settings).items():
        assert dataclasses.is_dataclass(section_type)
        keys.extend((section, f.name) for f in dataclasses.fields(section_type))
    return keys


def as_mapping(settings_value: Settings) -> dict[str, dict[str, object]]:
    """What a TOML file spelling out ``settings_value`` parses to (TOML has no null: None is left out)."""
    return {
        section: {key: value for key, value in values.items() if value is not None}
        for section, values in dataclasses.asdict(settings_value).items()
    }


def write_config(tmp_path: Path, text: str, *, name: str = "vigil.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(data: Mapping[str, object]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping(data)
    return raised.value.problems


# --- defaults and the example file ------------------------------------------------------------------------


def test_no_file_gives_the_defaults() -> None:
    loaded = load_settings(None)

    assert loaded == Settings()
    assert loaded.storage.database == "vigil.sqlite3"
    assert loaded.logging.level == "INFO"
    assert loaded.detector.max_batch == 256
    assert loaded.policy.threshold is None
    assert loaded.policy.sustain_messages is None
    assert loaded.policy.hysteresis == 0.15
    assert loaded.policy.cooldown_minutes == 360
    assert loaded.outbox.retry_max_s == 900.0
    assert loaded.retention.preservation_hold_days == 365
    assert loaded.discord.token_env == "VIGIL_DISCORD_TOKEN"
    assert loaded.slack.mode == "socket"
    assert loaded.slack.http_port == 3000
    assert loaded.slack.shared_file_hours == 24
    assert not (loaded.discord.enabled or loaded.slack.enabled or loaded.console.enabled)


def test_empty_mapping_gives_the_defaults() -> None:
    assert settings_from_mapping({}) == Settings()


def test_example_file_loads_to_the_defaults() -> None:
    loaded = load_settings(EXAMPLE_CONFIG_PATH)

    expected_database = str(EXAMPLE_CONFIG_PATH.absolute().parent / "vigil.sqlite3")
    assert loaded == dataclasses.replace(
        Settings(), storage=dataclasses.replace(Settings().storage, database=expected_database)
    )


def example_lines_by_section() -> dict[str, list[str]]:
    lines_by_section: dict[str, list[str]] = {}
    section = ""
    for line in EXAMPLE_CONFIG_PATH.read_text(encoding="utf-8").splitlines():
        header = re.fullmatch(r"\[(\w+)\]", line.strip())
        if header:
            section = header.group(1)
        lines_by_section.setdefault(section, []).append(line)
    return lines_by_section


@pytest.mark.parametrize(("section", "key"), schema_keys())
def test_example_file_documents_every_key(section: str, key: str) -> None:
    lines = example_lines_by_section().get(section, [])
    # Optional keys without a default (threshold, sustain_messages) appear commented out.
    key_line = re.compile(rf"#?\s*{key}\s*=")
    positions = [i for i, line in enumerate(lines) if key_line.match(line.strip())]
    assert positions, f"[{section}] {key} is missing from {EXAMPLE_CONFIG_PATH.name}"
    # Each key is explained by a comment above it (keys in a group share one).
    above = lines[: positions[0]]
    while above and re.match(r"\w+\s*=", above[-1].strip()):
        above.pop()
    assert above and above[-1].startswith("#"), f"[{section}] {key} has no comment explaining it"


def test_example_file_has_no_keys_outside_the_schema() -> None:
    parsed = tomllib.loads(EXAMPLE_CONFIG_PATH.read_text(encoding="utf-8"))
    known = set(schema_keys())
    assert {(section, key) for section, table in parsed.items() for key in table} <= known


def test_every_value_in_the_schema_is_read_back() -> None:
    non_defaults = Settings(
        storage=dataclasses.replace(Settings().storage, database="/var/lib/vigil/db.sqlite3"),
        policy=dataclasses.replace(Settings().policy, threshold=0.7, sustain_messages=4, shadow_mode=True),
        logging=dataclasses.replace(Settings().logging, level="DEBUG", json=True),
        slack=dataclasses.replace(
            Settings().slack, enabled=True, mode="http", http_port=8080, shared_file_hours=2
        ),
    )

    assert settings_from_mapping(as_mapping(non_defaults)) == non_defaults
    assert settings_from_mapping(as_mapping(Settings())) == Settings()


def test_accept_runtime_drift_is_off_by_default_and_checked_like_every_flag() -> None:
    assert Settings().detector.accept_runtime_drift is False
    loaded = settings_from_mapping({"detector": {"accept_runtime_drift": True}})
    assert loaded.detector.accept_runtime_drift is True
    assert problems_of({"detector": {"accept_runtime_drift": "yes"}}) == (
        "detector.accept_runtime_drift: expected true or false, got 'yes'",
    )
    assert problems_of({"detector": {"accept_runtime_drfit": True}}) == (
        "unknown key 'detector.accept_runtime_drfit' (did you mean 'accept_runtime_drift'?)",
    )
    assert problems_of({"policy": {"accept_runtime_drift": True}}) == (
        "unknown key 'policy.accept_runtime_drift' (it belongs in [detector])",
    )


# --- unknown keys -----------------------------------------------------------------------------------------


def test_unknown_key_names_its_dotted_path_and_suggests_the_closest() -> None:
    problems = problems_of({"policy": {"treshold": 0.5}})

    assert problems == ("unknown key 'policy.treshold' (did you mean 'threshold'?)",)


def test_unknown_section_suggests_the_closest() -> None:
    assert problems_of({"polcy": {"threshold": 0.5}}) == ("unknown section [polcy] (did you mean [policy]?)",)


def test_key_in_the_wrong_section_says_where_it_belongs() -> None:
    assert problems_of({"threshold": 0.5}) == ("unknown key 'threshold' (it belongs in [policy])",)
    assert problems_of({"detector": {"cooldown_minutes": 5}}) == (
        "unknown key 'detector.cooldown_minutes' (it belongs in [policy])",
    )


def test_misspelt_environment_variable_setting_is_a_typo_not_a_secret() -> None:
    assert problems_of({"discord": {"token_evn": "MY_TOKEN"}}) == (
        "unknown key 'discord.token_evn' (did you mean 'token_env'?)",
    )


def test_unknown_key_with_nothing_close_lists_the_known_keys() -> None:
    (problem,) = problems_of({"console": {"colour": True}})

    assert problem.startswith("unknown key 'console.colour'")
    assert "enabled" in problem


# --- wrong types and ranges -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # bool is not an int, nor a number
        (
            {"detector": {"max_batch": True}},
            "detector.max_batch: expected an integer between 1 and 4096, got true",
        ),
        ({"outbox": {"poll_interval_s": False}}, "outbox.poll_interval_s: expected a number greater than 0"),
        (
            {"policy": {"window_messages": 2.5}},
            "policy.window_messages: expected an integer between 1 and 10000, got 2.5",
        ),
        (
            {"policy": {"threshold": "high"}},
            "policy.threshold: expected a number greater than 0 and less than 1, got 'high'",
        ),
        ({"discord": {"enabled": "yes"}}, "discord.enabled: expected true or false, got 'yes'"),
        ({"discord": {"enabled": 1}}, "discord.enabled: expected true or false, got 1"),
        ({"storage": {"database": 5}}, "storage.database: expected a non-empty string, got 5"),
        ({"policy": {"cooldown_minutes": {"hours": 6}}}, "policy.cooldown_minutes: expected an integer"),
        (
            {"slack": {"http_port": [3000]}},
            "slack.http_port: expected an integer between 1 and 65535, got an array",
        ),
        (
            {"logging": {"level": "info"}},
            "logging.level: expected one of 'DEBUG', 'INFO', 'WARNING' or 'ERROR'",
        ),
        ({"slack": {"mode": "websocket"}}, "slack.mode: expected one of 'socket' or 'http', got 'websocket'"),
        ({"discord": True}, "[discord]: expected a table, got true"),
        ({"policy": 0.8}, "[policy]: expected a table, got 0.8"),
        ({"retention": {"message_days": datetime.date(2024, 1, 1)}}, "got a date"),
    ],
)
def test_wrong_type_is_reported_with_path_and_expectation(data: dict[str, object], expected: str) -> None:
    (problem,) = problems_of(data)

    assert problem.startswith(expected) or expected in problem


def test_integer_is_accepted_where_a_number_is_expected() -> None:
    loaded = settings_from_mapping({"outbox": {"retry_initial_s": 2, "retry_max_s": 60}})

    assert loaded.outbox.retry_initial_s == 2.0
    assert isinstance(loaded.outbox.retry_initial_s, float)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"policy": {"threshold": 0}},
            "policy.threshold: expected a number greater than 0 and less than 1, got 0",
        ),
        (
            {"policy": {"threshold": 1.0}},
            "policy.threshold: expected a number greater than 0 and less than 1, got 1",
        ),
        (
            {"policy": {"sustain_messages": 0}},
            "policy.sustain_messages: expected an integer between 1 and 1000, got 0",
        ),
        (
            {"policy": {"cooldown_minutes": -1}},
            "policy.cooldown_minutes: expected an integer between 0 and 527040, got -1",
        ),
        (
            {"outbox": {"poll_interval_s": 0.0}},
            "outbox.poll_interval_s: expected a number greater than 0 and at most 3600, got 0",
        ),
        (
            {"outbox": {"retry_max_s": math.inf}},
            "outbox.retry_max_s: expected a number greater than 0 and at most 86400, got inf",
        ),
        (
            {"outbox": {"retry_max_s": math.nan}},
            "outbox.retry_max_s: expected a number greater than 0 and at most 86400, got nan",
        ),
        (
            {"slack": {"http_port": 70000}},
            "slack.http_port: expected an integer between 1 and 65535, got 70000",
        ),
        (
            {"slack": {"shared_file_hours": 0}},
            "slack.shared_file_hours: expected an integer between 1 and 720, got 0",
        ),
        (
            {"slack": {"shared_file_hours": 721}},
            "slack.shared_file_hours: expected an integer between 1 and 720, got 721",
        ),
        ({"storage": {"database": ""}}, "storage.database: expected a non-empty string, got ''"),
        (
            {"detector": {"queue_size": 10**400}},
            "detector.queue_size: expected an integer between 1 and 1000000, got a very large integer",
        ),
        (
            {"policy": {"cooldown_minutes": 10**9}},
            "policy.cooldown_minutes: expected an integer between 0 and 527040, got 1000000000",
        ),
    ],
)
def test_out_of_range_is_reported(data: dict[str, object], expected: str) -> None:
    (problem,) = problems_of(data)

    assert problem.startswith(expected)


def test_huge_integer_for_a_number_is_a_problem_not_a_crash() -> None:
    (problem,) = problems_of({"outbox": {"retry_max_s": 10**400}})

    assert (
        problem
        == "outbox.retry_max_s: expected a number greater than 0 and at most 86400, got a very large integer"
    )


def test_settings_that_contradict_each_other_are_reported() -> None:
    problems = problems_of(
        {
            "policy": {"threshold": 0.1, "hysteresis": 0.2, "window_messages": 3, "evidence_messages": 5},
            "outbox": {"retry_initial_s": 60, "retry_max_s": 10},
        }
    )

    assert problems == (
        "policy.hysteresis: expected less than policy.threshold (0.1), got 0.2; "
        "an open alert would never close",
        "policy.evidence_messages: expected at most policy.window_messages (3), got 5; "
        "evidence is taken from the window",
        "outbox.retry_initial_s: expected at most outbox.retry_max_s (10), got 60",
    )


# --- Discord shards ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0-3", (0, 1, 2, 3)),
        ("0,2,5-7", (0, 2, 5, 6, 7)),
        ("7", (7,)),
        (" 5 - 6 , 0 ", (0, 5, 6)),
        ("3-3", (3,)),
    ],
)
def test_shard_ids_are_single_ids_and_ranges(text: str, expected: tuple[int, ...]) -> None:
    assert parse_shard_ids(text, shard_count=8) == expected
    assert parse_shard_ids(format_shard_ids(expected), shard_count=8) == expected


@pytest.mark.parametrize(
    ("text", "shard_count", "expected"),
    [
        ("3-1", 8, "the range 3-1 runs backwards (write 1-3)"),
        ("a", 8, "'a' is not a shard id or a range of them like \"0-3\""),
        ("0-x", 8, "'0-x' is not a shard id or a range of them like \"0-3\""),
        ("٣", 8, "'٣' is not a shard id or a range of them like \"0-3\""),
        ("1,1", 8, "shard 1 is listed twice"),
        ("0-3,2", 8, "shard 2 is listed twice"),
        ("", 8, 'no shard ids given; write them like "0-3" or "0,2,5-7"'),
        ("  ", 8, 'no shard ids given; write them like "0-3" or "0,2,5-7"'),
        ("0,,2", 8, 'an empty item between commas; write shard ids like "0-3" or "0,2,5-7"'),
        ("0,", 8, 'an empty item between commas; write shard ids like "0-3" or "0,2,5-7"'),
        ("-1", 8, "a shard id cannot be negative: '-1'"),
        ("0,-2-3", 8, "a shard id cannot be negative: '-2-3'"),
        ("8", 8, "shard 8 is out of range: with 8 shards the ids are 0 to 7"),
        ("2-9", 8, "shard 9 is out of range: with 8 shards the ids are 0 to 7"),
        ("1", 1, "shard 1 is out of range: with 1 shard the ids are 0 to 0"),
        ("100000", None, "shard 100000 is out of range: shard ids are below 100000"),
        ("0", 0, "the number of shards must be greater than 0, got 0"),
    ],
)
def test_bad_shard_ids_say_what_is_wrong(text: str, shard_count: int | None, expected: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_shard_ids(text, shard_count=shard_count)
    assert str(raised.value) == expected


def test_a_shard_id_of_thousands_of_digits_is_out_of_range_not_a_crash() -> None:
    with pytest.raises(ValueError, match=r"^shard 9{57}\.\.\. is out of range") as raised:
        parse_shard_ids("0-" + "9" * 5000, shard_count=4)
    assert len(str(raised.value)) < 200


@given(st.text(max_size=30), st.one_of(st.none(), st.integers(min_value=1, max_value=64)))
def test_any_shard_text_gives_ids_or_a_value_error(text: str, shard_count: int | None) -> None:
    try:
        ids = parse_shard_ids(text, shard_count=shard_count)
    except ValueError as error:
        assert str(error)
    else:
        assert ids and list(ids) == sorted(set(ids)) and ids[0] >= 0
        assert shard_count is None or ids[-1] < shard_count
        assert parse_shard_ids(format_shard_ids(ids), shard_count=shard_count) == ids


def test_shard_settings_are_read_and_imply_the_sharded_client() -> None:
    assert not Settings().discord.runs_sharded
    assert Settings().discord.shard_subset() is None and Settings().discord.shards_summary() is None
    subset = settings_from_mapping({"discord": {"shard_ids": "0-3,8", "shard_count": 16}}).discord
    assert subset.runs_sharded and not subset.sharded
    assert subset.shard_subset() == (0, 1, 2, 3, 8)
    assert subset.shards_summary() == "shards 0-3,8 of 16"
    one = settings_from_mapping({"discord": {"shard_ids": "5", "shard_count": 16}}).discord
    assert one.shards_summary() == "shard 5 of 16"
    # A fixed count alone: every shard in this process, none said to be a subset.
    whole = settings_from_mapping({"discord": {"shard_count": 4}}).discord
    assert whole.runs_sharded and whole.shard_subset() is None and whole.shards_summary() is None


@pytest.mark.parametrize(
    ("discord", "expected"),
    [
        (
            {"shard_ids": "0-3"},
            (
                "discord.shard_count: expected the bot's number of shards (greater than 0) when "
                "discord.shard_ids is set, got 0; every process of the bot must use the same count",
            ),
        ),
        (
            {"shard_ids": "0-3", "shard_count": 2},
            ("discord.shard_ids: shard 3 is out of range: with 2 shards the ids are 0 to 1",),
        ),
        (
            {"shard_ids": "3-1", "shard_count": 4},
            ("discord.shard_ids: the range 3-1 runs backwards (write 1-3)",),
        ),
        ({"shard_ids": "1,1", "shard_count": 4}, ("discord.shard_ids: shard 1 is listed twice",)),
        (
            {"shard_ids": "-1", "shard_count": 4},
            ("discord.shard_ids: a shard id cannot be negative: '-1'",),
        ),
        (
            {"shard_ids": "a", "shard_count": 0},
            (
                "discord.shard_count: expected the bot's number of shards (greater than 0) when "
                "discord.shard_ids is set, got 0; every process of the bot must use the same count",
                "discord.shard_ids: 'a' is not a shard id or a range of them like \"0-3\"",
            ),
        ),
        ({"shard_ids": 3, "shard_count": 4}, ("discord.shard_ids: expected a string, got 3",)),
        (
            {"shard_count": -1},
            ("discord.shard_count: expected an integer between 0 and 100000, got -1",),
        ),
        (
            {"shard_count": 100_001},
            ("discord.shard_count: expected an integer between 0 and 100000, got 100001",),
        ),
        ({"shard_id": "0-3"}, ("unknown key 'discord.shard_id' (did you mean 'shard_ids'?)",)),
    ],
)
def test_bad_shard_settings_are_reported(discord: dict[str, object], expected: tuple[str, ...]) -> None:
    assert problems_of({"discord": discord}) == expected


# --- reporting ------------------------------------------------------------------------------------------


def test_all_problems_in_a_file_are_reported_together(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """
[policy]
treshold = 0.5
hysteresis = true

[detector]
max_batch = 0

[slack]
mode = "ws"

[loging]
level = "DEBUG"
""",
    )

    with pytest.raises(ConfigError) as raised:
        load_settings(path)

    error = raised.value
    assert error.source == path
    assert error.problems == (
        "unknown key 'policy.treshold' (did you mean 'threshold'?)",
        "policy.hysteresis: expected a number at least 0 and less than 1, got true",
        "detector.max_batch: expected an integer between 1 and 4096, got 0",
        "slack.mode: expected one of 'socket' or 'http', got 'ws'",
        "unknown section [loging] (did you mean [logging]?)",
    )
    message = str(error)
    assert message.startswith(f"configuration file {path} has 5 problems:")
    assert all(f"\n  - {problem}" in message for problem in error.problems)


def test_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[policy]\nthreshold = 0.5\nhysteresis 0.1\n")

    with pytest.raises(ConfigError) as raised:
        load_settings(path)

    (problem,) = raised.value.problems
    assert problem.startswith(f"{path}: invalid TOML: ")
    assert "line 3" in problem


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"

    with pytest.raises(ConfigError) as raised:
        load_settings(path)

    assert raised.value.problems == (f"{path}: no such file",)
    assert str(path) in str(raised.value)


def test_directory_and_non_utf8_file_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_settings(tmp_path)

    path = tmp_path / "latin1.toml"
    path.write_bytes('[storage]\ndatabase = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(path)


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="expected a table at the top level"):
        settings_from_mapping(["policy"])  # type: ignore[arg-type]


# --- secrets --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"discord": {"token": SECRET_VALUE}},
            "discord.token: secrets are not read from the config file; put it in the environment variable "
            "named by discord.token_env (default VIGIL_DISCORD_TOKEN)",
        ),
        (
            {"slack": {"bot_token": SECRET_VALUE}},
            "named by slack.bot_token_env (default VIGIL_SLACK_BOT_TOKEN)",
        ),
        ({"slack": {"signing_secret": SECRET_VALUE}}, "named by slack.signing_secret_env"),
        ({"slack": {"token": SECRET_VALUE}}, "named by one of slack.bot_token_env, slack.app_token_env"),
        ({"discord_token": SECRET_VALUE}, "discord_token: secrets are not read from the config file"),
    ],
)
def test_secret_in_the_file_is_rejected_without_echoing_it(data: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping(data)

    (problem,) = raised.value.problems
    assert expected in problem
    assert SECRET_VALUE not in str(raised.value)


def test_secret_pasted_as_an_environment_variable_name_is_rejected_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"slack": {"bot_token_env": SECRET_VALUE}})

    (problem,) = raised.value.problems
    assert problem.startswith("slack.bot_token_env: expected the NAME of an environment variable")
    assert SECRET_VALUE not in str(raised.value)


def test_secret_hides_its_value() -> None:
    secret = Secret(SECRET_VALUE)

    assert secret.reveal() == SECRET_VALUE
    assert repr(secret) == "***"
    assert str(secret) == "***"
    assert f"{secret} {secret!r}" == "*** ***"
    assert "%s %r" % (secret, secret) == "*** ***"  # noqa: UP031 - logging formats this way
    assert secret == Secret(SECRET_VALUE)
    assert secret != Secret("something else")


def environ_with_everything() -> dict[str, str]:
    return {
        "VIGIL_DISCORD_TOKEN": SECRET_VALUE,
        "VIGIL_SLACK_BOT_TOKEN": SECRET_VALUE,
        "VIGIL_SLACK_APP_TOKEN": SECRET_VALUE,
        "VIGIL_SLACK_SIGNING_SECRET": SECRET_VALUE,
    }


def test_resolve_secrets_reads_the_named_variables() -> None:
    loaded = settings_from_mapping({"discord": {"token_env": "MY_DISCORD"}})
    environ = {
        "MY_DISCORD": " discord-token\n",
        "VIGIL_SLACK_BOT_TOKEN": "xoxb-1",
        "VIGIL_SLACK_APP_TOKEN": "",
    }

    secrets = resolve_secrets(loaded, environ)

    assert secrets.discord_token is not None
    assert secrets.discord_token.reveal() == "discord-token"
    assert secrets.slack_bot_token == Secret("xoxb-1")
    assert secrets.slack_app_token is None  # empty counts as unset
    assert secrets.slack_signing_secret is None


def test_secrets_never_reach_reprs_or_logs(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    path = write_config(tmp_path, "[discord]\nenabled = true\n[slack]\nenabled = true\n")
    environ = environ_with_everything()

    loaded = load_settings(path)
    secrets = resolve_secrets(loaded, environ)
    problems = check_settings(loaded, environ)
    logging.getLogger("test").info("settings %s %r; secrets %s %r", loaded, loaded, secrets, secrets)
    logging.getLogger("test").info("token %s", secrets.discord_token)

    assert problems == []
    for text in (repr(loaded), str(loaded), repr(secrets), str(secrets), caplog.text):
        assert SECRET_VALUE not in text
    assert "***" in repr(secrets)
    assert "VIGIL_DISCORD_TOKEN" in caplog.text  # the logs do say which variables were read


# --- check_settings ---------------------------------------------------------------------------------------


SLACK_SOCKET = "slack is enabled in socket mode"
SLACK_HTTP = "slack is enabled in http mode"


def enabled(**sections: dict[str, object]) -> Settings:
    return settings_from_mapping(sections)


@pytest.mark.parametrize(
    ("loaded", "environ", "expected"),
    [
        (
            enabled(discord={"enabled": True}),
            {},
            ["discord is enabled but the environment variable VIGIL_DISCORD_TOKEN is not set"],
        ),
        (
            enabled(discord={"enabled": True, "token_env": "BOT_TOKEN"}),
            {"BOT_TOKEN": "  "},
            ["discord is enabled but the environment variable BOT_TOKEN is empty"],
        ),
        (
            enabled(slack={"enabled": True}),
            {"VIGIL_SLACK_SIGNING_SECRET": SECRET_VALUE},
            [
                f"{SLACK_SOCKET} but the environment variable VIGIL_SLACK_BOT_TOKEN is not set",
                f"{SLACK_SOCKET} but the environment variable VIGIL_SLACK_APP_TOKEN is not set",
            ],
        ),
        (
            enabled(slack={"enabled": True}),
            {"VIGIL_SLACK_BOT_TOKEN": SECRET_VALUE},
            [f"{SLACK_SOCKET} but the environment variable VIGIL_SLACK_APP_TOKEN is not set"],
        ),
        (
            enabled(slack={"enabled": True, "mode": "http"}),
            {"VIGIL_SLACK_APP_TOKEN": SECRET_VALUE},
            [
                f"{SLACK_HTTP} but the environment variable VIGIL_SLACK_BOT_TOKEN is not set",
                f"{SLACK_HTTP} but the environment variable VIGIL_SLACK_SIGNING_SECRET is not set",
            ],
        ),
        (enabled(slack={"enabled": True, "mode": "http"}), environ_with_everything(), []),
        (enabled(discord={"enabled": True}, slack={"enabled": True}), environ_with_everything(), []),
        (
            Settings(),
            environ_with_everything(),
            ["note: no platform is enabled; `vigil run` would only start the console sink"],
        ),
        (
            enabled(console={"enabled": True}),
            {},
            ["note: no platform is enabled; `vigil run` would only start the console sink"],
        ),
    ],
)
def test_check_settings_reports_what_each_enabled_platform_lacks(
    loaded: Settings, environ: dict[str, str], expected: list[str]
) -> None:
    problems = check_settings(loaded, environ)

    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start)
        assert SECRET_VALUE not in problem


def test_check_settings_ignores_disabled_platforms() -> None:
    loaded = enabled(discord={"enabled": True}, slack={"enabled": False})

    assert check_settings(loaded, {"VIGIL_DISCORD_TOKEN": "t"}) == []


# --- paths ----------------------------------------------------------------------------------------------


def test_relative_database_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[storage]\ndatabase = "data/vigil.sqlite3"\n', name="etc/vigil.toml")

    loaded = load_settings(path)

    assert loaded.storage.database == str(tmp_path / "etc" / "data" / "vigil.sqlite3")
    # Already resolved, so resolving again changes nothing.
    assert loaded.resolved_database_path(Path("/elsewhere")) == loaded.storage.database


def test_relative_model_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[detector]\nmodel_dir = "models/v2"\n')

    assert load_settings(path).detector.model_dir == str(tmp_path / "models" / "v2")


@pytest.mark.parametrize("database", [":memory:", "/var/lib/vigil/vigil.sqlite3", "file:vigil?mode=memory"])
def test_memory_absolute_and_uri_databases_are_kept(tmp_path: Path, database: str) -> None:
    path = write_config(tmp_path, f'[storage]\ndatabase = "{database}"\n')

    assert load_settings(path).storage.database == database


def test_resolved_database_path_of_unloaded_settings() -> None:
    assert Settings().resolved_database_path(Path("/etc/vigil")) == str(Path("/etc/vigil/vigil.sqlite3"))
    assert Settings().resolved_database_path(None) == "vigil.sqlite3"


# --- the loader never crashes -----------------------------------------------------------------------------

KNOWN_NAMES = sorted({name for pair in schema_keys() for name in pair})

toml_scalars = st.one_of(
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 1, 65536]),
    # Built lazily: hypothesis cannot print a 5000-digit literal in its strategy repr.
    st.sampled_from([20, 400, 5000]).map(lambda digits: 10**digits),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["INFO", "http", "socket", "", ":memory:", "VIGIL_X"]),
    st.datetimes(),
    st.dates(),
    st.times(),
    st.none(),
)
junk_keys = st.one_of(st.sampled_from(KNOWN_NAMES), st.text(max_size=15))
junk_values = st.recursive(
    toml_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(junk_keys, children, max_size=4),
    ),
    max_leaves=15,
)
junk_documents = st.dictionaries(
    junk_keys,
    st.one_of(junk_values, st.dictionaries(junk_keys, toml_scalars, max_size=6)),
    max_size=6,
)


@settings(max_examples=400, deadline=None)
@given(junk_documents)
def test_any_mapping_gives_settings_or_a_config_error(data: dict[str, Any]) -> None:
    try:
        loaded = settings_from_mapping(data)
    except ConfigError as error:
        assert error.problems
        assert all(isinstance(problem, str) and problem for problem in error.problems)
        str(error)
    else:
        assert isinstance(loaded, Settings)


def test_secrets_dataclass_defaults_to_nothing() -> None:
    assert Secrets() == Secrets(
        discord_token=None, slack_bot_token=None, slack_app_token=None, slack_signing_secret=None
    )


def test_check_settings_for_http_and_slack_oauth() -> None:
    settings = settings_from_mapping(
        {
            "http": {"enabled": True, "webhook_url": "https://example.invalid/hook"},
            "slack": {"enabled": True, "mode": "http", "oauth": True},
        }
    )
    problems = check_settings(settings, {"VIGIL_SLACK_SIGNING_SECRET": "s"})
    named = " ".join(problems)
    for variable in (
        "VIGIL_HTTP_SECRET",
        "VIGIL_WEBHOOK_SECRET",
        "VIGIL_SLACK_CLIENT_ID",
        "VIGIL_SLACK_CLIENT_SECRET",
    ):
        assert variable in named
    # With OAuth, each workspace's bot token comes from its installation, not the environment.
    assert "VIGIL_SLACK_BOT_TOKEN" not in named
    secrets = resolve_secrets(settings, {"VIGIL_HTTP_SECRET": " h-secret ", "VIGIL_WEBHOOK_SECRET": "w"})
    assert secrets.http_secret is not None and secrets.http_secret.reveal() == "h-secret"
    assert "h-secret" not in repr(secrets)


# --- storage backend ------------------------------------------------------------------------------------


def test_the_storage_backend_is_sqlite_or_postgres_and_the_dsn_only_comes_from_the_environment(
    tmp_path: Path,
) -> None:
    assert load_settings(None).storage.backend == "sqlite"
    chosen = load_settings(write_config(tmp_path, '[storage]\nbackend = "postgres"\n'))
    assert chosen.storage.backend == "postgres"
    assert chosen.storage.postgres_dsn_env == "VIGIL_POSTGRES_DSN"

    with pytest.raises(ConfigError, match=r"storage\.backend"):
        load_settings(write_config(tmp_path, '[storage]\nbackend = "mysql"\n'))
    pasted = "postgresql://vigil:hunter2@db/vigil"
    with pytest.raises(ConfigError, match=r"storage\.postgres_dsn_env") as raised:
        load_settings(write_config(tmp_path, f'[storage]\npostgres_dsn_env = "{pasted}"\n'))
    assert "hunter2" not in str(raised.value)
