"""Who may do what on Slack: workspace admins, the moderator user group and the child-safety user group.

Roles are resolved from Slack itself (``users.info`` for admins and owners, ``usergroups.users.list`` for the
user groups chosen with ``/vigil setup``, or ``conversations.members`` when a workspace on Slack's free plan,
which has no user groups, chose a private channel instead) and cached briefly, so a busy alert channel does
not hit Slack's rate limits; a person removed from a group loses access within ``cache_s`` seconds. The
case service does the permission checks for cases; settings commands are checked here (``Role.ADMIN``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from vigil.bots.core.cases import Actor, Role
from vigil.bots.core.models import SpaceSettings
from vigil.bots.slack.translate import PLATFORM
from vigil.bots.slack.web import WEB_API_ERRORS, ApiFailure, classify_failure

__all__ = ["Access", "RoleResolver"]

logger = logging.getLogger(__name__)

_MAX_CACHED = 10_000
# A moderator "group" given as a channel: at most this many pages of 200 members are read.
_MAX_MEMBER_PAGES = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Access:
    """An actor with the roles found, and the first Slack failure met while looking (None if none)."""

    actor: Actor
    failure: ApiFailure | None = None

    def has(self, role: Role) -> bool:
        return role in self.actor.roles


@dataclass(frozen=True, slots=True)
class _Cached:
    expires_at: float
    value: Any


class RoleResolver:
    def __init__(self, *, cache_s: float = 30.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._cache_s = cache_s
        self._monotonic = monotonic
        self._cache: dict[tuple[str, str, str], _Cached] = {}

    def forget(self) -> None:
        self._cache.clear()

    async def access(
        self,
        client: AsyncWebClient,
        *,
        team_id: str,
        user_id: str,
        settings: SpaceSettings | None,
    ) -> Access:
        roles: set[Role] = set()
        failures: list[ApiFailure] = []
        admin = await self._is_admin(client, team_id=team_id, user_id=user_id, failures=failures)
        if admin:
            roles.add(Role.ADMIN)
        if settings is not None and settings.moderator_role_id:
            members = await self._group(
                client, team_id=team_id, group_id=settings.moderator_role_id, failures=failures
            )
            if user_id in members:
                roles.add(Role.MODERATOR)
        if settings is not None and settings.child_safety_role_id:
            members = await self._group(
                client, team_id=team_id, group_id=settings.child_safety_role_id, failures=failures
            )
            if user_id in members:
                roles.add(Role.CHILD_SAFETY)
        actor = Actor(platform=PLATFORM, space_id=team_id, user_id=user_id, roles=frozenset(roles))
        return Access(actor=actor, failure=failures[0] if failures else None)

    def _get(self, key: tuple[str, str, str]) -> Any:
        cached = self._cache.get(key)
        if cached is None or cached.expires_at <= self._monotonic():
            return None
        return cached.value

    def _put(self, key: tuple[str, str, str], value: Any) -> None:
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key] = _Cached(expires_at=self._monotonic() + self._cache_s, value=value)

    async def _is_admin(
        self, client: AsyncWebClient, *, team_id: str, user_id: str, failures: list[ApiFailure]
    ) -> bool:
        key = (team_id, "admin", user_id)
        cached = self._get(key)
        if isinstance(cached, bool):
            return cached
        try:
            response = await client.users_info(user=user_id)
        except WEB_API_ERRORS as error:
            failure = classify_failure(error)
            logger.warning("could not look up a Slack user's admin status (%s)", failure.code)
            failures.append(failure)
            return False
        user = response.get("user")
        admin = (
            isinstance(user, dict)
            and not user.get("deleted")
            and any(bool(user.get(flag)) for flag in ("is_admin", "is_owner", "is_primary_owner"))
        )
        self._put(key, admin)
        return admin

    async def _group(
        self, client: AsyncWebClient, *, team_id: str, group_id: str, failures: list[ApiFailure]
    ) -> frozenset[str]:
        """Members of a user group (``S...``), or of a channel (``C...``/``G...``) on plans without groups."""
        key = (team_id, "group", group_id)
        cached = self._get(key)
        if isinstance(cached, frozenset):
            return cached
        try:
            if group_id.startswith(("C", "G")):
                members = await self._channel_members(client, channel_id=group_id)
            else:
                response = await client.usergroups_users_list(usergroup=group_id)
                users = response.get("users")
                members = (
                    frozenset(u for u in users if isinstance(u, str))
                    if isinstance(users, list)
                    else frozenset()
                )
        except WEB_API_ERRORS as error:
            failure = classify_failure(error)
            logger.warning("could not list the members of Slack group %s (%s)", group_id, failure.code)
            failures.append(failure)
            return frozenset()
        self._put(key, members)
        return members

    async def _channel_members(self, client: AsyncWebClient, *, channel_id: str) -> frozenset[str]:
        members: set[str] = set()
        cursor: str | None = None
        for _ in range(_MAX_MEMBER_PAGES):
            response = await client.conversations_members(channel=channel_id, limit=200, cursor=cursor)
            users = response.get("members")
            if isinstance(users, list):
                members.update(u for u in users if isinstance(u, str))
            metadata = response.get("response_metadata")
            cursor = metadata.get("next_cursor") if isinstance(metadata, dict) else None
            if not cursor:
                break
        else:
            logger.warning("channel %s has too many members to use as a Vigil group", channel_id)
        return frozenset(members)
