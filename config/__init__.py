"""Settings schema (TOML + environment) and the example configuration."""

from __future__ import annotations

from config.settings import (
    EXAMPLE_CONFIG_PATH,
    ConfigError,
    ConsoleSettings,
    DetectorSettings,
    DiscordSettings,
    LoggingSettings,
    LogLevel,
    OutboxSettings,
    PolicySettings,
    RetentionSettings,
    Secret,
    Secrets,
    Settings,
    SlackMode,
    SlackSettings,
    StorageSettings,
    check_settings,
    load_settings,
    resolve_secrets,
    settings_from_mapping,
)

__all__ = [
    "EXAMPLE_CONFIG_PATH",
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
    "StorageSettings",
    "check_settings",
    "load_settings",
    "resolve_secrets",
    "settings_from_mapping",
]
