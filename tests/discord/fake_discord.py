"""A local fake of Discord (REST API and gateway) that the real discord.py talks to. No network.

One aiohttp server on 127.0.0.1 (port 0) serves ``/api/v10/...`` (REST: every call is recorded with method,
path, query and JSON body) and ``/gateway`` + ``/resume-gateway`` (websocket). Point discord.py at it by
setting ``discord.http.Route.BASE`` and ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (the
``fake_discord`` fixture does). Facts it relies on, measured with discord.py 2.7.1:

* JSON responses must carry exactly ``Content-Type: application/json`` (not aiohttp's ``; charset=utf-8``),
  or discord.py reads the body as text;
* a 429 needs a ``Via`` header, or discord.py takes it for a Cloudflare ban;
* gateway frames are sent as text, so no zlib/zstd is needed even though the URL asks for ``compress``;
* RECONNECT (op 7) makes discord.py RESUME at READY's ``resume_gateway_url``; missed events are replayed;
* interaction callbacks and followups carry no Authorization header; INTERACTION_CREATE needs
  ``application_id``, ``token``, ``version`` and ``attachment_size_limit``.

The fake keeps one server ("guild") with roles, channels (one thread) and members, and the messages it has
dispatched or that the bot posted, so history reads and component clicks refer to real message payloads.
As on Discord, a session identified as a shard (IDENTIFY's ``shard``: ``[shard_id, shard_count]``) gets the
guild only when the guild is on that shard (``(guild_id >> 22) % shard_count``); ``move_guild_to_shard``
picks the shard. Every event goes to the guild's session (also DMs, which Discord sends on shard 0).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1420070400000

# Permission bits (https://discord.com/developers/docs/topics/permissions).
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
READ_MESSAGE_HISTORY = 1 << 16
MANAGE_GUILD = 1 << 5
ADMINISTRATOR = 1 << 3
MEMBER_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | READ_MESSAGE_HISTORY

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RestCall:
    method: str
    path: str  # without /api/v10
    query: Mapping[str, str]
    json: Any
    authorized: bool
    # Uploaded attachments (multipart requests): file name -> bytes.
    files: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(slots=True)
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: Json
    headers: Mapping[str, str]
    times: int


@dataclass(slots=True)
class _Session:
    session_id: str
    seq: int = 0
    events: list[tuple[int, Json]] = field(default_factory=list)
    socket: web.WebSocketResponse | None = None
    shard: list[int] | None = None


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    bot: bool = False

    def payload(self) -> Json:
        return {
            "id": self.id,
            "username": self.name,
            "global_name": self.name.title(),
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }


class FakeDiscord:
    """The fake server. Ids are real-looking snowflakes; the guild layout is fixed (see ``__init__``)."""

    def __init__(self, *, token: str = "test-token.abc.def", reject_intents: bool = False) -> None:
        self.token = token
        self.reject_intents = reject_intents
        self._ids = itertools.count(1)
        self.bot = User(self.snowflake(), "vigil", bot=True)
        self.app_id = self.snowflake()
        self.guild_id = self.snowflake()
        self.owner = User(self.snowflake(), "owner")
        self.mod = User(self.snowflake(), "mod")
        self.safety = User(self.snowflake(), "safety")
        self.adult = User(self.snowflake(), "adult")
        self.kid = User(self.snowflake(), "kid")
        self.member = User(self.snowflake(), "member")
        self.other_bot = User(self.snowflake(), "otherbot", bot=True)
        self.mod_role = self.snowflake()
        self.safety_role = self.snowflake()
        self.bot_role = self.snowflake()
        self.general = self.snowflake()
        self.alerts = self.snowflake()
        self.locked = self.snowflake()
        self.public = self.snowflake()
        self.noisy = self.snowflake()
        self.thread = self.snowflake()
        self.dm_channel = self.snowflake()
        self.member_roles: dict[str, list[str]] = {
            self.owner.id: [],
            self.mod.id: [self.mod_role],
            self.safety.id: [self.mod_role, self.safety_role],
            self.adult.id: [],
            self.kid.id: [],
            self.member.id: [],
        }
        # When everyone (the bot included) joined the server: fixed, as on Discord.
        self.joined_at = datetime.now(UTC)
        self.extra_users: list[User] = []
        self.extra_channels: dict[str, str] = {}  # id -> name: plain text channels added by a test
        self.calls: list[RestCall] = []
        self.messages: dict[str, Json] = {}  # every message the fake knows, by id
        self.identifies: list[Json] = []
        self.resumes: list[Json] = []
        self.gateway_paths: list[str] = []
        self.replay_overlap = 0  # on RESUME, also re-send this many events the client already saw
        self._failures: list[_Failure] = []
        self._sessions: dict[str, _Session] = {}
        self._current: _Session | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------------------------------- ids

    def snowflake(self, at: datetime | None = None) -> str:
        moment = at or datetime.now(UTC)
        ms = int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS
        return str((ms << 22) | (next(self._ids) & 0x3FFFFF))

    def guild_shard(self, shard_count: int) -> int:
        """The shard Discord sends the guild's events on (its id's timestamp modulo the count)."""
        return (int(self.guild_id) >> 22) % shard_count

    def move_guild_to_shard(self, shard_id: int, shard_count: int) -> None:
        """Give the guild a new id on ``shard_id`` of ``shard_count`` (its time at most ``shard_count`` ms
        back). Call it before the bot connects; payloads take the guild's id when they are built."""
        ms = int(datetime.now(UTC).timestamp() * 1000) - DISCORD_EPOCH_MS
        ms -= (ms - shard_id) % shard_count
        self.guild_id = str((ms << 22) | (next(self._ids) & 0x3FFFFF))

    # ------------------------------------------------------------------------------------------- server

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/resume-gateway", self._gateway)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def close(self) -> None:
        for session in self._sessions.values():
            if session.socket is not None and not session.socket.closed:
                await session.socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------------------------------- waiting

    async def wait_until(
        self, condition: Callable[[], bool], *, within_s: float = 5.0, what: str = ""
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while not condition():
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what or condition}")
            await asyncio.sleep(0.005)

    async def wait_for_call(
        self, predicate: Callable[[RestCall], bool], *, after: int = 0, within_s: float = 5.0, what: str = ""
    ) -> RestCall:
        """The first recorded call (from index ``after``) matching ``predicate``."""
        found: list[RestCall] = []

        def check() -> bool:
            found.extend(c for c in self.calls[after:] if predicate(c))
            return bool(found)

        await self.wait_until(check, within_s=within_s, what=what or "a REST call")
        return found[0]

    def calls_to(self, method: str, pattern: str) -> list[RestCall]:
        compiled = re.compile(pattern)
        return [c for c in self.calls if c.method == method and compiled.fullmatch(c.path)]

    def fail_next(
        self,
        method: str,
        pattern: str,
        *,
        status: int,
        body: Json | None = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        self._failures.append(
            _Failure(
                method=method,
                pattern=re.compile(pattern),
                status=status,
                body=body or {"message": f"fake error {status}", "code": 0},
                headers=dict(headers or {}),
                times=times,
            )
        )

    def rate_limit_next(self, method: str, pattern: str, *, retry_after: float) -> None:
        self.fail_next(
            method,
            pattern,
            status=429,
            body={"message": "You are being rate limited.", "retry_after": retry_after, "global": False},
            headers={"Via": "1.1 google", "Retry-After": str(int(retry_after))},
        )

    # ------------------------------------------------------------------------------------------- payloads

    def role_payload(self, role_id: str, name: str, permissions: int, position: int) -> Json:
        return {
            "id": role_id,
            "name": name,
            "permissions": str(permissions),
            "position": position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": False,
            "mentionable": True,
            "flags": 0,
            "icon": None,
            "unicode_emoji": None,
        }

    def channel_payload(self, channel_id: str, name: str, *, overwrites: Sequence[Json] = ()) -> Json:
        return {
            "id": channel_id,
            "type": 0,
            "guild_id": self.guild_id,
            "name": name,
            "position": 0,
            "permission_overwrites": list(overwrites),
            "parent_id": None,
            "nsfw": False,
            "topic": None,
            "last_message_id": self.last_message_id(channel_id),
            "rate_limit_per_user": 0,
            "flags": 0,
        }

    def add_user(self, name: str) -> User:
        user = User(self.snowflake(), name)
        self.extra_users.append(user)
        self.member_roles[user.id] = []
        return user

    def add_channel(self, name: str) -> str:
        """A text channel every member can read, part of the guild from the next GUILD_CREATE on."""
        channel_id = self.snowflake()
        self.extra_channels[channel_id] = name
        return channel_id

    def last_message_id(self, channel_id: str) -> str | None:
        ids = [int(m["id"]) for m in self.messages.values() if m["channel_id"] == channel_id]
        return str(max(ids)) if ids else None

    def thread_payload(self) -> Json:
        return {
            "id": self.thread,
            "type": 11,
            "guild_id": self.guild_id,
            "parent_id": self.general,
            "owner_id": self.adult.id,
            "name": "thread",
            "last_message_id": self.last_message_id(self.thread),
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 2,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": _iso(datetime.now(UTC)),
                "locked": False,
            },
        }

    def guild_payload(self) -> Json:
        private = [
            {"id": self.guild_id, "type": 0, "allow": "0", "deny": str(VIEW_CHANNEL)},
            {"id": self.mod_role, "type": 0, "allow": str(VIEW_CHANNEL), "deny": "0"},
            {"id": self.bot_role, "type": 0, "allow": str(VIEW_CHANNEL), "deny": "0"},
        ]
        locked = [
            {"id": self.guild_id, "type": 0, "allow": "0", "deny": str(VIEW_CHANNEL)},
            {
                "id": self.bot_role,
                "type": 0,
                "allow": str(VIEW_CHANNEL),
                "deny": str(SEND_MESSAGES | EMBED_LINKS),
            },
        ]
        return {
            "id": self.guild_id,
            "name": "Fake Server",
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": self.owner.id,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [
                self.role_payload(self.guild_id, "@everyone", MEMBER_PERMISSIONS, 0),
                self.role_payload(self.mod_role, "Moderators", MEMBER_PERMISSIONS, 2),
                self.role_payload(self.safety_role, "Child safety", MEMBER_PERMISSIONS, 3),
                self.role_payload(self.bot_role, "Vigil", MEMBER_PERMISSIONS, 1),
            ],
            "channels": [
                self.channel_payload(self.general, "general"),
                self.channel_payload(self.alerts, "vigil-alerts", overwrites=private),
                self.channel_payload(self.locked, "locked", overwrites=locked),
                self.channel_payload(self.public, "public-alerts"),
                self.channel_payload(self.noisy, "noisy"),
                *(self.channel_payload(cid, name) for cid, name in self.extra_channels.items()),
            ],
            "threads": [self.thread_payload()],
            "members": [
                {**self.member_payload(self.bot.id), "user": self.bot.payload(), "roles": [self.bot_role]}
            ],
            "member_count": 8,
            "large": False,
            "unavailable": False,
            "joined_at": _iso(self.joined_at),
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "max_members": 500000,
            "max_video_channel_users": 25,
            "application_id": None,
        }

    def user(self, user_id: str) -> User:
        for candidate in (
            self.owner,
            self.mod,
            self.safety,
            self.adult,
            self.kid,
            self.member,
            self.other_bot,
            self.bot,
            *self.extra_users,
        ):
            if candidate.id == user_id:
                return candidate
        raise KeyError(user_id)

    def member_payload(self, user_id: str) -> Json:
        return {
            "roles": list(self.member_roles.get(user_id, [])),
            "joined_at": _iso(self.joined_at),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
            "avatar": None,
            "premium_since": None,
            "pending": False,
            "communication_disabled_until": None,
        }

    def permissions_of(self, user_id: str) -> int:
        if user_id == self.owner.id:
            return MEMBER_PERMISSIONS | MANAGE_GUILD | ADMINISTRATOR
        return MEMBER_PERMISSIONS

    def message_payload(
        self,
        *,
        author: User,
        content: str,
        channel_id: str | None = None,
        reply_to: Json | None = None,
        mentions: Sequence[User] = (),
        dm: bool = False,
        message_type: int | None = None,
        webhook: bool = False,
    ) -> Json:
        now = datetime.now(UTC)
        payload: Json = {
            "id": self.snowflake(now),
            "channel_id": channel_id or (self.dm_channel if dm else self.general),
            "author": author.payload(),
            "content": content,
            "timestamp": _iso(now),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [
                {**u.payload(), "member": self.member_payload(u.id)} if not dm else u.payload()
                for u in mentions
            ],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": message_type if message_type is not None else (19 if reply_to else 0),
            "flags": 0,
            "components": [],
        }
        if not dm:
            payload["guild_id"] = self.guild_id
            payload["member"] = self.member_payload(author.id)
        if webhook:
            payload["webhook_id"] = self.snowflake()
        if reply_to is not None:
            payload["message_reference"] = {
                "type": 0,
                "message_id": reply_to["id"],
                "channel_id": reply_to["channel_id"],
                "guild_id": reply_to.get("guild_id"),
            }
            payload["referenced_message"] = reply_to
        return payload

    # ------------------------------------------------------------------------------------------- gateway

    @property
    def connected(self) -> bool:
        return (
            self._current is not None and self._current.socket is not None and not self._current.socket.closed
        )

    async def dispatch(self, event: str, data: Json) -> int:
        """Send a DISPATCH to the current session (buffered for RESUME when it is not connected)."""
        session = self._current
        assert session is not None, "no gateway session (of the guild's shard) yet"
        return await self._dispatch_to(session, event, data)

    async def _dispatch_to(self, session: _Session, event: str, data: Json) -> int:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.events.append((session.seq, frame))
        if session.socket is not None and not session.socket.closed:
            await session.socket.send_str(json.dumps(frame))
        return session.seq

    async def dispatch_raw(self, event: str, data: Any) -> int:
        """A DISPATCH whose ``d`` is anything (null, a list): what a changed or broken payload looks like."""
        session = self._current
        assert session is not None and session.socket is not None, "no connected gateway session"
        session.seq += 1
        await session.socket.send_str(json.dumps({"op": 0, "t": event, "s": session.seq, "d": data}))
        return session.seq

    async def send_frame(self, text: str) -> None:
        """A raw text frame on the current socket, e.g. one that is not JSON."""
        session = self._current
        assert session is not None and session.socket is not None, "no connected gateway session"
        await session.socket.send_str(text)

    async def send_message(self, payload: Json) -> Json:
        self.messages[payload["id"]] = payload
        await self.dispatch("MESSAGE_CREATE", payload)
        return payload

    async def edit_message(self, message_id: str, content: str) -> Json:
        payload = {
            **self.messages[message_id],
            "content": content,
            "edited_timestamp": _iso(datetime.now(UTC)),
        }
        self.messages[message_id] = payload
        await self.dispatch("MESSAGE_UPDATE", payload)
        return payload

    async def delete_message(self, message_id: str) -> None:
        payload = self.messages.pop(message_id)
        data = {"id": message_id, "channel_id": payload["channel_id"]}
        if "guild_id" in payload:
            data["guild_id"] = payload["guild_id"]
        await self.dispatch("MESSAGE_DELETE", data)

    async def reconnect(self) -> None:
        """Ask the client to reconnect (op 7); it closes this socket and RESUMEs on the resume URL."""
        session = self._current
        assert session is not None and session.socket is not None
        socket = session.socket
        await socket.send_str(json.dumps({"op": 7, "d": None}))
        await self.wait_until(
            lambda: socket.closed or session.socket is not socket, what="the client to hang up"
        )

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.gateway_paths.append(request.path_qs)
        session: _Session | None = None
        await socket.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        async for frame in socket:
            if frame.type is not WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            op = message.get("op")
            if op == 1:
                await socket.send_str(json.dumps({"op": 11}))
            elif op == 2:
                self.identifies.append(message["d"])
                if self.reject_intents:
                    await socket.close(code=4014, message=b"Disallowed intent(s).")
                    break
                if message["d"].get("token") != self.token:
                    await socket.close(code=4004, message=b"Authentication failed.")
                    break
                session = _Session(
                    session_id=secrets.token_hex(8), socket=socket, shard=message["d"].get("shard")
                )
                self._sessions[session.session_id] = session
                if self._has_guild(session):
                    self._current = session
                await self._ready(session)
            elif op == 6:
                self.resumes.append(message["d"])
                resumed = self._sessions.get(message["d"].get("session_id", ""))
                if resumed is None:
                    await socket.send_str(json.dumps({"op": 9, "d": False}))
                    continue
                session = resumed
                session.socket = socket
                if self._has_guild(session):
                    self._current = session
                last_seen = int(message["d"].get("seq") or 0) - self.replay_overlap
                for seq, event in list(session.events):
                    if seq > last_seen:
                        await socket.send_str(json.dumps(event))
                await self._dispatch_to(session, "RESUMED", {})
        if session is not None and session.socket is socket:
            session.socket = None
        return socket

    def _has_guild(self, session: _Session) -> bool:
        return session.shard is None or self.guild_shard(session.shard[1]) == session.shard[0]

    async def _ready(self, session: _Session) -> None:
        has_guild = self._has_guild(session)
        ready: Json = {
            "v": 10,
            "user": {**self.bot.payload(), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": self.guild_id, "unavailable": True}] if has_guild else [],
            "session_id": session.session_id,
            "resume_gateway_url": f"ws://127.0.0.1:{self.port}/resume-gateway",
            "application": {"id": self.app_id, "flags": 0},
            "private_channels": [],
            "relationships": [],
            "user_settings": {},
            "presences": [],
            "guild_join_requests": [],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        await self._dispatch_to(session, "READY", ready)
        if has_guild:
            await self._dispatch_to(session, "GUILD_CREATE", self.guild_payload())

    # ------------------------------------------------------------------------------------------- interactions

    def _interaction_base(self, *, user: User, itype: int, channel_id: str | None = None) -> Json:
        permissions = self.permissions_of(user.id)
        channel = channel_id or self.alerts
        return {
            "id": self.snowflake(),
            "application_id": self.app_id,
            "type": itype,
            "token": "itoken-" + secrets.token_hex(12),
            "version": 1,
            "guild_id": self.guild_id,
            "guild": {"id": self.guild_id, "locale": "en-US", "features": []},
            "channel_id": channel,
            "channel": {
                "id": channel,
                "type": 0,
                "guild_id": self.guild_id,
                "name": "x",
                "permissions": str(permissions),
            },
            "member": {
                **self.member_payload(user.id),
                "user": user.payload(),
                "permissions": str(permissions),
            },
            "app_permissions": str(MEMBER_PERMISSIONS),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": self.guild_id},
            "context": 0,
            "attachment_size_limit": 8 * 1024 * 1024,
        }

    async def click(self, *, user: User, message_id: str, custom_id: str) -> Json:
        """A button click on a message the bot posted."""
        message = self.messages[message_id]
        payload = self._interaction_base(user=user, itype=3, channel_id=message["channel_id"])
        payload["message"] = message
        payload["data"] = {"custom_id": custom_id, "component_type": 2}
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def submit_modal(self, *, user: User, custom_id: str, values: Mapping[str, str]) -> Json:
        payload = self._interaction_base(user=user, itype=5)
        payload["data"] = {
            "custom_id": custom_id,
            "components": [
                {"type": 1, "components": [{"type": 4, "custom_id": key, "value": value}]}
                for key, value in values.items()
            ],
        }
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def slash(
        self, *, user: User, subcommand: str, options: Sequence[Json] = (), resolved: Json | None = None
    ) -> Json:
        payload = self._interaction_base(user=user, itype=2)
        payload["data"] = {
            "id": self.snowflake(),
            "name": "vigil",
            "type": 1,
            "guild_id": self.guild_id,
            "options": [{"name": subcommand, "type": 1, "options": list(options)}],
            "resolved": resolved or {},
        }
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def context_menu(self, *, user: User, name: str, message_id: str) -> Json:
        message = self.messages[message_id]
        payload = self._interaction_base(user=user, itype=2, channel_id=message["channel_id"])
        payload["data"] = {
            "id": self.snowflake(),
            "name": name,
            "type": 3,
            "guild_id": self.guild_id,
            "target_id": message_id,
            "resolved": {"messages": {message_id: message}},
        }
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    def resolved_channel(self, channel_id: str, name: str = "channel") -> Json:
        return {
            "channels": {
                channel_id: {
                    "id": channel_id,
                    "name": name,
                    "type": 0,
                    "permissions": "0",
                    "guild_id": self.guild_id,
                }
            }
        }

    def resolved_role(self, role_id: str, name: str) -> Json:
        return {"roles": {role_id: self.role_payload(role_id, name, MEMBER_PERMISSIONS, 1)}}

    def resolved_users(self, *users: User) -> Json:
        return {
            "users": {u.id: u.payload() for u in users},
            "members": {u.id: self.member_payload(u.id) for u in users},
        }

    def replies_to(self, interaction: Json) -> list[RestCall]:
        """What the bot answered an interaction: callback and followups, in order."""
        token = interaction["token"]
        return [c for c in self.calls if f"/{token}" in c.path]

    async def wait_for_reply(
        self, interaction: Json, *, count: int = 1, within_s: float = 5.0
    ) -> list[RestCall]:
        """Wait until the bot has answered with ``count`` messages (a deferral does not count)."""

        def answered() -> list[RestCall]:
            return [
                c
                for c in self.replies_to(interaction)
                if not (c.path.endswith("/callback") and isinstance(c.json, dict) and c.json.get("type") == 5)
            ]

        await self.wait_until(
            lambda: len(answered()) >= count, within_s=within_s, what="an interaction reply"
        )
        return answered()

    # ------------------------------------------------------------------------------------------- REST

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body: Any = None
        files: dict[str, bytes] = {}
        if request.can_read_body and request.content_type == "multipart/form-data":
            # As Discord takes uploads: the JSON body in the part "payload_json", each file in its own part.
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                assert isinstance(part, aiohttp.BodyPartReader)
                if part.name == "payload_json":
                    body = json.loads(await part.read())
                else:
                    files[part.filename or part.name or "?"] = bytes(await part.read())
        elif request.can_read_body:
            raw = await request.read()
            if raw and request.content_type == "application/json":
                body = json.loads(raw)
        call = RestCall(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=body,
            authorized=request.headers.get("Authorization") == f"Bot {self.token}",
            files=files,
        )
        self.calls.append(call)
        for failure in self._failures:
            if failure.times > 0 and failure.method == call.method and failure.pattern.fullmatch(path):
                failure.times -= 1
                return _json(failure.body, status=failure.status, headers=failure.headers)
        return self._route(call)

    def _route(self, call: RestCall) -> web.Response:
        m, p = call.method, call.path
        if not call.authorized and not (p.startswith("/interactions/") or p.startswith("/webhooks/")):
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        if m == "GET" and p == "/users/@me":
            return _json({**self.bot.payload(), "verified": True, "mfa_enabled": False, "flags": 0})
        if m == "GET" and p == "/oauth2/applications/@me":
            return _json(
                {
                    "id": self.app_id,
                    "name": "Vigil",
                    "icon": None,
                    "description": "",
                    "bot_public": False,
                    "bot_require_code_grant": False,
                    "owner": self.owner.payload(),
                    "verify_key": "0" * 64,
                    "flags": 0,
                }
            )
        if m == "GET" and p == "/gateway/bot":
            return _json(
                {
                    "url": self.gateway_url,
                    "shards": 1,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 999,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            )
        if m == "PUT" and re.fullmatch(r"/applications/\d+/commands", p):
            commands = [
                {
                    "description": "",
                    **c,
                    "id": self.snowflake(),
                    "application_id": self.app_id,
                    "version": self.snowflake(),
                }
                for c in call.json or []
            ]
            return _json(commands)
        if m == "POST" and (match := re.fullmatch(r"/channels/(\d+)/messages", p)):
            return _json(self._store_bot_message(match.group(1), call.json or {}))
        if m == "PATCH" and (match := re.fullmatch(r"/channels/(\d+)/messages/(\d+)", p)):
            existing = self.messages.get(match.group(2))
            if existing is None:
                return _json({"message": "Unknown Message", "code": 10008}, status=404)
            updated = {
                **existing,
                **{k: v for k, v in (call.json or {}).items() if k in ("content", "embeds", "components")},
            }
            updated["edited_timestamp"] = _iso(datetime.now(UTC))
            self.messages[existing["id"]] = updated
            return _json(updated)
        if m == "GET" and (match := re.fullmatch(r"/channels/(\d+)/messages", p)):
            channel_id = match.group(1)
            before = int(call.query.get("before", "0") or 0) or None
            after = int(call.query.get("after", "0") or 0) or None
            limit = int(call.query.get("limit", "50"))
            found = sorted(
                (
                    msg
                    for msg in self.messages.values()
                    if msg["channel_id"] == channel_id
                    and (before is None or int(msg["id"]) < before)
                    and (after is None or int(msg["id"]) > after)
                ),
                key=lambda msg: int(msg["id"]),
                reverse=True,
            )
            # Like Discord: newest first; with `after`, the page just after it (the oldest ones).
            return _json(found[-limit:] if after is not None else found[:limit])
        if m == "POST" and (match := re.fullmatch(r"/interactions/(\d+)/([^/]+)/callback", p)):
            data = call.json or {}
            flags = (data.get("data") or {}).get("flags", 0) or 0
            return _json(
                {
                    "interaction": {
                        "id": match.group(1),
                        "type": 3,
                        "response_message_loading": data.get("type") == 5,
                        "response_message_ephemeral": bool(flags & 64),
                    }
                }
            )
        if match := re.fullmatch(r"/webhooks/(\d+)/([^/]+)(/messages/@original)?", p):
            payload = call.json or {}
            message = self._message_from(self.bot, self.alerts, payload)
            message["flags"] = payload.get("flags", 0)
            message["webhook_id"] = self.app_id
            return _json(message)
        return _json({"message": f"fake Discord has no route for {m} {p}", "code": 0}, status=404)

    def _message_from(self, author: User, channel_id: str, body: Json) -> Json:
        now = datetime.now(UTC)
        return {
            "id": self.snowflake(now),
            "channel_id": channel_id,
            "author": author.payload(),
            "content": body.get("content") or "",
            "timestamp": _iso(now),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "pinned": False,
            "type": 0,
            "flags": 0,
        }

    def _store_bot_message(self, channel_id: str, body: Json) -> Json:
        message = self._message_from(self.bot, channel_id, body)
        message["guild_id"] = self.guild_id
        self.messages[message["id"]] = message
        return message

    def bot_messages(self, channel_id: str | None = None) -> list[Json]:
        return [
            m
            for m in self.messages.values()
            if m["author"]["id"] == self.bot.id and (channel_id is None or m["channel_id"] == channel_id)
        ]


def _json(payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(payload).encode(),
        status=status,
        headers={"Content-Type": "application/json", **dict(headers or {})},
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat()
