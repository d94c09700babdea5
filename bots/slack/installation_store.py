"""bolt's OAuth installation and state stores, kept in Vigil's own database (the store's key-value records).

Namespaces (values are JSON, as slack_sdk's own file store writes them):

* ``slack.bot``: key ``"<enterprise_id or ->:<team_id or ->"`` → the workspace's latest bot installation;
* ``slack.installation``: the same key → the latest installation, and ``"<e>:<t>:<user_id>"`` → the latest
  installation by that installer;
* ``slack.oauth_state``: key = the OAuth ``state`` value → when it was issued (POSIX seconds).

Bot tokens are secrets: they are stored here (the app cannot work without them) and never logged.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import timedelta
from typing import Any

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from vigil.bots.core.clock import Clock, utc_now
from vigil.bots.core.ports import RecordStore

__all__ = [
    "BOT_NAMESPACE",
    "INSTALLATION_NAMESPACE",
    "STATE_NAMESPACE",
    "VigilInstallationStore",
    "VigilOAuthStateStore",
]

logger = logging.getLogger(__name__)

BOT_NAMESPACE = "slack.bot"
INSTALLATION_NAMESPACE = "slack.installation"
STATE_NAMESPACE = "slack.oauth_state"
_NONE = "-"


def _workspace_key(
    enterprise_id: str | None, team_id: str | None, *, is_enterprise_install: bool | None
) -> str:
    team = _NONE if is_enterprise_install else (team_id or _NONE)
    return f"{enterprise_id or _NONE}:{team}"


def _loads(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        logger.error("an unreadable Slack installation record was ignored")
        return None
    return data if isinstance(data, dict) else None


class VigilInstallationStore(AsyncInstallationStore):
    """Slack installations (bot tokens per workspace) in Vigil's store."""

    def __init__(self, *, records: RecordStore) -> None:
        self._records = records

    @property
    def logger(self) -> logging.Logger:
        return logger

    async def async_save(self, installation: Installation) -> None:
        key = _workspace_key(
            installation.enterprise_id,
            installation.team_id,
            is_enterprise_install=installation.is_enterprise_install,
        )
        value = json.dumps(installation.__dict__)
        await self._records.put_record(INSTALLATION_NAMESPACE, key, value)
        if installation.user_id:
            await self._records.put_record(INSTALLATION_NAMESPACE, f"{key}:{installation.user_id}", value)
        await self.async_save_bot(installation.to_bot())
        logger.info(
            "Slack installation saved for workspace %s", installation.team_id or installation.enterprise_id
        )

    async def async_save_bot(self, bot: Bot) -> None:
        if not bot.bot_token:
            return
        key = _workspace_key(bot.enterprise_id, bot.team_id, is_enterprise_install=bot.is_enterprise_install)
        await self._records.put_record(BOT_NAMESPACE, key, json.dumps(bot.__dict__))

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        key = _workspace_key(enterprise_id, team_id, is_enterprise_install=is_enterprise_install)
        data = _loads(await self._records.get_record(BOT_NAMESPACE, key))
        if data is None and enterprise_id is not None and not is_enterprise_install:
            # Events from an Enterprise Grid workspace may name the enterprise; installs stored without it.
            data = _loads(
                await self._records.get_record(
                    BOT_NAMESPACE, _workspace_key(None, team_id, is_enterprise_install=False)
                )
            )
        return Bot(**data) if data is not None else None

    async def bots(self) -> list[Bot]:
        """Every workspace's latest bot installation (what catch-up reads back at start)."""
        found: list[Bot] = []
        for raw in (await self._records.list_records(BOT_NAMESPACE)).values():
            data = _loads(raw)
            if data is None:
                continue
            try:
                found.append(Bot(**data))
            except (TypeError, ValueError):
                logger.error("an unreadable Slack installation record was ignored")
        return found

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        key = _workspace_key(enterprise_id, team_id, is_enterprise_install=is_enterprise_install)
        if user_id is not None:
            key = f"{key}:{user_id}"
        data = _loads(await self._records.get_record(INSTALLATION_NAMESPACE, key))
        if data is None:
            return None
        installation = Installation(**data)
        # An installer's record may hold an older bot token than the workspace's latest one.
        bot = await self.async_find_bot(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install
        )
        if bot is not None and bot.bot_token != installation.bot_token:
            installation.bot_id = bot.bot_id
            installation.bot_user_id = bot.bot_user_id
            installation.bot_token = bot.bot_token
            installation.bot_scopes = bot.bot_scopes
            installation.bot_refresh_token = bot.bot_refresh_token
            installation.bot_token_expires_at = bot.bot_token_expires_at
        return installation

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._records.delete_record(
            BOT_NAMESPACE, _workspace_key(enterprise_id, team_id, is_enterprise_install=False)
        )

    async def async_delete_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
    ) -> None:
        key = _workspace_key(enterprise_id, team_id, is_enterprise_install=False)
        if user_id is not None:
            await self._records.delete_record(INSTALLATION_NAMESPACE, f"{key}:{user_id}")
            return
        for stored_key in await self._records.list_records(INSTALLATION_NAMESPACE):
            if stored_key == key or stored_key.startswith(f"{key}:"):
                await self._records.delete_record(INSTALLATION_NAMESPACE, stored_key)

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)
        await self.async_delete_installation(enterprise_id=enterprise_id, team_id=team_id)
        logger.info("Slack installation removed for workspace %s", team_id or enterprise_id)


class VigilOAuthStateStore(AsyncOAuthStateStore):
    """One-time OAuth ``state`` values in Vigil's store; expired ones are swept when new ones are issued."""

    def __init__(
        self, *, records: RecordStore, expiration: timedelta = timedelta(minutes=10), clock: Clock = utc_now
    ) -> None:
        self._records = records
        self._expiration = expiration
        self._clock = clock

    @property
    def logger(self) -> logging.Logger:
        return logger

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        now = self._clock().timestamp()
        for state, issued in (await self._records.list_records(STATE_NAMESPACE)).items():
            if not self._fresh(issued, now=now):
                await self._records.delete_record(STATE_NAMESPACE, state)
        state = secrets.token_urlsafe(24)
        await self._records.put_record(STATE_NAMESPACE, state, repr(now))
        return state

    async def async_consume(self, state: str) -> bool:
        if not state:
            return False
        issued = await self._records.get_record(STATE_NAMESPACE, state)
        if issued is None:
            logger.warning("an OAuth callback came with an unknown or already used state")
            return False
        await self._records.delete_record(STATE_NAMESPACE, state)
        fresh = self._fresh(issued, now=self._clock().timestamp())
        if not fresh:
            logger.warning("an OAuth callback came with an expired state")
        return fresh

    def _fresh(self, issued: str, *, now: float) -> bool:
        try:
            return now - float(issued) < self._expiration.total_seconds()
        except ValueError:
            return False
