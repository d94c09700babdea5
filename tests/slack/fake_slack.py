"""A local fake of Slack's Web API (and of Socket Mode's WebSocket) that records every call.

The real ``AsyncWebClient`` talks to it through ``base_url`` (``http://127.0.0.1:PORT/api/``, trailing slash
needed). It answers the methods Vigil uses from small in-memory tables the tests fill in (users, user groups,
channels, history, OAuth codes), keeps the alert messages it was asked to post so tests can read their current
blocks, and can be told to fail a method (rate limited with Retry-After, server error, or a Slack error code).
Interaction ``response_url``s point at it too (``/respond/<id>``), as does the Socket Mode URL that
``apps.connections.open`` hands out. File uploads follow Slack's external upload flow as ``files_upload_v2``
drives it: ``files.getUploadURLExternal`` hands out ``/upload/<file id>``, the SDK POSTs the raw bytes there
(recorded as a call to ``upload``, so it can be made to fail too), and ``files.completeUploadExternal`` shares
the uploaded files into a conversation (``shared_files``); ``conversations.open`` opens the app's DMs;
``files.delete`` deletes a shared file (``deleted_files``; ``file_not_found`` for ids it never shared or a
member deleted, see ``delete_as_member``, and ``file_deleted`` the second time).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    args: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class Failure:
    status: int = 200
    error: str = "internal_error"
    retry_after: float | None = None
    # More fields of the error answer, as Slack sends them (``missing_scope`` comes with ``needed``).
    extra: Mapping[str, Any] = field(default_factory=dict)
    # No answer at all: the connection is dropped (the client sees a network error).
    disconnect: bool = False


@dataclass(slots=True)
class Upload:
    """A file announced by ``files.getUploadURLExternal``; ``data`` once its bytes arrived."""

    filename: str
    length: int
    alt_txt: str | None
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class SharedFile:
    """A file ``files.completeUploadExternal`` shared into a conversation."""

    file_id: str
    channel_id: str
    filename: str
    title: str | None
    alt_txt: str | None
    initial_comment: str | None
    data: bytes


@dataclass(slots=True)
class TokenInfo:
    team_id: str
    user_id: str
    bot_id: str


@dataclass(slots=True)
class FakeSlack:
    """Start with ``await fake.start()``; ``base_url`` is what the web client needs."""

    team_id: str = "T1"
    bot_token: str = "xoxb-test-token"
    app_token: str = "xapp-test-token"
    calls: list[Call] = field(default_factory=list)
    responses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Channel id -> messages, oldest first (as Slack stores them).
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Messages the app posted: (channel, ts) -> the last text/blocks sent.
    posted: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, TokenInfo] = field(default_factory=dict)
    revoked_tokens: set[str] = field(default_factory=set)
    oauth_codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    socket_acks: list[dict[str, Any]] = field(default_factory=list)
    socket_connections: int = 0
    # conversations.open: user id -> the app's DM with them.
    dms: dict[str, str] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    shared_files: list[SharedFile] = field(default_factory=list)
    # files.delete: the ids the app deleted, in order; files a member deleted themselves.
    deleted_files: list[str] = field(default_factory=list)
    deleted_by_members: set[str] = field(default_factory=set)
    _failures: dict[str, deque[Failure]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _port: int = 0
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.tokens.setdefault(self.bot_token, TokenInfo(team_id=self.team_id, user_id="UBOT", bot_id="BBOT"))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/respond/{name}", self._respond)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        address = self._runner.addresses[0]
        self._port = int(address[1])

    async def close(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/api/"

    def response_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._port}/respond/{name}"

    # ------------------------------------------------------------------ test controls

    def fail(self, method: str, failure: Failure, *, times: int = 1) -> None:
        self._failures.setdefault(method, deque()).extend([failure] * times)

    def delete_as_member(self, file_id: str) -> None:
        """A member deleted the file in Slack: it is gone for the app too."""
        self.deleted_by_members.add(file_id)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def responses_to(self, name: str) -> list[dict[str, Any]]:
        return [payload for n, payload in self.responses if n == name]

    async def wait_for(
        self,
        check: Callable[[], Any],
        *,
        within: float = 5.0,
        what: str = "the expected Slack calls",
    ) -> Any:
        """Poll ``check`` until it returns something truthy (listeners run after the ack)."""
        deadline = time.monotonic() + within
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what}; calls so far: {[c.method for c in self.calls]}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=0.05)

    async def wait_for_calls(self, method: str, *, count: int = 1, within: float = 5.0) -> list[Call]:
        result: list[Call] = await self.wait_for(
            lambda: len(self.calls_to(method)) >= count and self.calls_to(method),
            within=within,
            what=f"{count} call(s) to {method}",
        )
        return result

    async def wait_for_response(self, name: str, *, within: float = 5.0) -> dict[str, Any]:
        found: list[dict[str, Any]] = await self.wait_for(
            lambda: self.responses_to(name), within=within, what=f"a response on {name}"
        )
        return found[-1]

    async def socket_send(self, envelope: Mapping[str, Any]) -> None:
        await self.wait_for(lambda: self._sockets, what="a Socket Mode connection")
        await self._sockets[-1].send_str(json.dumps(envelope))

    # ------------------------------------------------------------------ HTTP handlers

    def _record(self) -> None:
        self._changed.set()

    async def _respond(self, request: web.Request) -> web.Response:
        self.responses.append((request.match_info["name"], await request.json()))
        self._record()
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connections += 1
        await ws.send_str(
            json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"}})
        )
        self._record()
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.socket_acks.append(json.loads(message.data))
                self._record()
        self._sockets.remove(ws)
        return ws

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                args.update(body)
        elif request.can_read_body:
            args.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else args.get("token")
        self.calls.append(Call(method=method, args=args, token=token))
        self._record()
        queued = self._failures.get(method)
        if queued:
            failure = queued.popleft()
            if failure.disconnect:
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            headers = {"Retry-After": f"{failure.retry_after:g}"} if failure.retry_after is not None else {}
            return web.json_response(
                {"ok": False, "error": failure.error, **failure.extra}, status=failure.status, headers=headers
            )
        if token in self.revoked_tokens:
            return web.json_response({"ok": False, "error": "token_revoked"})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result: dict[str, Any] = handler(args, token)
        return web.json_response(result)

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL: Slack's file server takes the raw bytes (no token), answers ``OK - <length>``."""
        file_id = request.match_info["file_id"]
        data = await request.read()
        header = request.headers.get("Authorization", "")
        self.calls.append(
            Call(method="upload", args={"file_id": file_id, "length": len(data)}, token=header or None)
        )
        self._record()
        queued = self._failures.get("upload")
        if queued:
            failure = queued.popleft()
            return web.Response(status=failure.status, text=failure.error)
        upload = self.uploads.get(file_id)
        if upload is None or upload.data is not None:
            return web.Response(status=404, text="unknown upload")
        if len(data) != upload.length:
            return web.Response(status=400, text="length mismatch")
        upload.data = data
        return web.Response(text=f"OK - {len(data)}")

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    # ------------------------------------------------------------------ Web API methods

    def _m_auth_test(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        info = self.tokens.get(token or "")
        if info is None:
            return {"ok": False, "error": "invalid_auth"}
        return {
            "ok": True,
            "url": "https://fake.slack.test/",
            "team": "Fake",
            "user": "vigil",
            "team_id": info.team_id,
            "user_id": info.user_id,
            "bot_id": info.bot_id,
        }

    def _m_apps_connections_open(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        if token != self.app_token:
            return {"ok": False, "error": "invalid_auth"}
        return {"ok": True, "url": f"ws://127.0.0.1:{self._port}/socket"}

    def _m_chat_postMessage(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel = str(args.get("channel"))
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        if not self.channels[channel].get("is_member", True):
            return {"ok": False, "error": "not_in_channel"}
        ts = self._next_ts()
        self.posted[(channel, ts)] = {"text": args.get("text"), "blocks": _blocks(args), "token": token}
        return {"ok": True, "channel": channel, "ts": ts, "message": {"ts": ts, "text": args.get("text")}}

    def _m_chat_update(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("ts")))
        if key not in self.posted:
            return {"ok": False, "error": "message_not_found"}
        self.posted[key] = {"text": args.get("text"), "blocks": _blocks(args), "token": token}
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def _m_chat_getPermalink(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel, ts = str(args.get("channel")), str(args.get("message_ts"))
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://fake.slack.test/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _m_chat_postEphemeral(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        return {"ok": True, "message_ts": self._next_ts()}

    def _m_views_open(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        return {"ok": True, "view": {"id": "V1"}}

    def _m_views_update(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        if args.get("view_id") != "V1":
            return {"ok": False, "error": "not_found"}
        return {"ok": True, "view": {"id": "V1"}}

    def _m_users_info(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        user = self.users.get(str(args.get("user")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": {"id": args.get("user"), **user}}

    def _m_usergroups_users_list(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        members = self.usergroups.get(str(args.get("usergroup")))
        if members is None:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(members)}

    def _m_conversations_info(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel = self.channels.get(str(args.get("channel")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": {"id": args.get("channel"), **channel}}

    def _m_conversations_members(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel = self.channels.get(str(args.get("channel")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        members = list(channel.get("members", []))
        start = int(args.get("cursor") or 0)
        limit = int(args.get("limit") or 100)
        page = members[start : start + limit]
        following = str(start + limit) if start + limit < len(members) else ""
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": following}}

    def _history_of(self, channel: str) -> list[dict[str, Any]] | None:
        # A conversation Vigil is in has a history, empty unless a test filled it.
        if channel in self.history:
            return self.history[channel]
        return [] if self.channels.get(channel, {}).get("is_member", False) else None

    def _m_users_conversations(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        """The conversations the bot is a member of, of the ``types`` asked for, paginated by ``cursor``."""
        types = set(str(args.get("types") or "public_channel").split(","))
        archived_too = str(args.get("exclude_archived", "")).lower() not in ("1", "true")
        chosen = [
            {"id": channel_id, **_conversation_flags(channel)}
            for channel_id, channel in self.channels.items()
            if channel.get("is_member", True)
            and _conversation_type(channel) in types
            and (archived_too or not channel.get("is_archived"))
        ]
        return _page(chosen, args, key="channels")

    def _m_conversations_history(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        """Top-level messages between ``oldest`` and ``latest`` (``inclusive`` or not), newest first, a page
        of ``limit`` at a time (``cursor``), parents with ``reply_count`` / ``latest_reply`` as Slack adds
        them. With ``oldest`` alone, the ``limit`` messages just after it (Slack's older behaviour)."""
        messages = self._history_of(str(args.get("channel")))
        if messages is None:
            return {"ok": False, "error": "channel_not_found"}
        top_level = [
            _with_replies(m, messages) for m in messages if m.get("thread_ts") in (None, m.get("ts"))
        ]
        chosen = _between(top_level, args)
        newest_first = "latest" in args or "oldest" not in args
        ordered = list(reversed(chosen)) if newest_first else chosen
        page = _page(ordered, args, key="messages")
        if not newest_first:
            page["messages"] = list(reversed(page["messages"]))
        return page

    def _m_conversations_replies(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        """A thread: its parent first (always, as Slack does), then its replies between ``oldest`` and
        ``latest``, oldest first, paginated."""
        messages = self._history_of(str(args.get("channel")))
        if messages is None:
            return {"ok": False, "error": "channel_not_found"}
        thread = str(args.get("ts"))
        parent = [_with_replies(m, messages) for m in messages if m.get("ts") == thread]
        replies = [m for m in messages if m.get("thread_ts") == thread and m.get("ts") != thread]
        page = _page(_between(replies, args), args, key="messages", default_limit=1000)
        if not args.get("cursor"):
            page["messages"] = parent + page["messages"]
        return page

    def _m_conversations_open(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if len(users) != 1:
            # Vigil only ever opens a DM with one person; group DMs are not faked.
            return {"ok": False, "error": "invalid_arguments"}
        user = users[0]
        if user not in self.users:
            return {"ok": False, "error": "user_not_found"}
        already = user in self.dms
        channel = self.dms.setdefault(user, f"D{user[1:]}")
        return {"ok": True, "no_op": already, "already_open": already, "channel": {"id": channel}}

    def _m_files_getUploadURLExternal(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        filename, length = args.get("filename"), str(args.get("length") or "")
        if not filename or not length.isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._ids):08d}"
        alt_txt = args.get("alt_txt")
        self.uploads[file_id] = Upload(
            filename=str(filename), length=int(length), alt_txt=str(alt_txt) if alt_txt else None
        )
        return {
            "ok": True,
            "file_id": file_id,
            "upload_url": f"http://127.0.0.1:{self._port}/upload/{file_id}",
        }

    def _m_files_completeUploadExternal(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        try:
            files = json.loads(str(args.get("files")))
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        channel = args.get("channel_id")
        if channel is not None and channel not in self.channels and channel not in self.dms.values():
            return {"ok": False, "error": "channel_not_found"}
        done: list[dict[str, Any]] = []
        for entry in files:
            upload = self.uploads.get(str(entry.get("id")))
            if upload is None or upload.data is None:
                return {"ok": False, "error": "file_not_found"}
            title = entry.get("title")
            if channel is not None:
                self.shared_files.append(
                    SharedFile(
                        file_id=str(entry["id"]),
                        channel_id=str(channel),
                        filename=upload.filename,
                        title=title,
                        alt_txt=upload.alt_txt,
                        initial_comment=args.get("initial_comment"),
                        data=upload.data,
                    )
                )
            done.append({"id": entry["id"], "title": title or upload.filename})
        return {"ok": True, "files": done}

    def _m_files_delete(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        file_id = str(args.get("file") or "")
        if file_id in self.deleted_files:
            return {"ok": False, "error": "file_deleted"}
        shared = any(f.file_id == file_id for f in self.shared_files)
        if not shared or file_id in self.deleted_by_members:
            return {"ok": False, "error": "file_not_found"}
        self.deleted_files.append(file_id)
        return {"ok": True}

    def _m_oauth_v2_access(self, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        response = self.oauth_codes.pop(str(args.get("code")), None)
        if response is None:
            return {"ok": False, "error": "invalid_code"}
        return {"ok": True, **response}


def _blocks(args: Mapping[str, Any]) -> list[dict[str, Any]]:
    blocks = args.get("blocks")
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    return list(blocks or [])


def _conversation_type(channel: Mapping[str, Any]) -> str:
    if channel.get("is_im"):
        return "im"
    if channel.get("is_mpim"):
        return "mpim"
    return "private_channel" if channel.get("is_private") else "public_channel"


def _conversation_flags(channel: Mapping[str, Any]) -> dict[str, Any]:
    kind = _conversation_type(channel)
    return {
        "is_channel": kind == "public_channel",
        "is_group": kind == "private_channel",
        "is_im": kind == "im",
        "is_mpim": kind == "mpim",
        "is_private": kind != "public_channel",
        "is_archived": bool(channel.get("is_archived")),
        "is_member": True,
    }


def _between(messages: list[dict[str, Any]], args: Mapping[str, Any]) -> list[dict[str, Any]]:
    latest = float(args.get("latest") or "inf")
    oldest = float(args.get("oldest") or 0)
    inclusive = str(args.get("inclusive", "")).lower() in ("1", "true")

    def inside(ts: float) -> bool:
        return oldest <= ts <= latest if inclusive else oldest < ts < latest

    return [m for m in messages if inside(float(m["ts"]))]


def _with_replies(message: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    replies = [m for m in messages if m.get("thread_ts") == message["ts"] and m["ts"] != message["ts"]]
    if not replies:
        return message
    return {
        **message,
        "thread_ts": message["ts"],
        "reply_count": len(replies),
        "latest_reply": max((r["ts"] for r in replies), key=float),
    }


def _page(
    items: list[dict[str, Any]], args: Mapping[str, Any], *, key: str, default_limit: int = 100
) -> dict[str, Any]:
    start = int(args.get("cursor") or 0)
    limit = int(args.get("limit") or default_limit)
    following = start + limit if start + limit < len(items) else None
    return {
        "ok": True,
        key: items[start : start + limit],
        "has_more": following is not None,
        "response_metadata": {"next_cursor": "" if following is None else str(following)},
    }
