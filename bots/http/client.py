"""A small Python client for platforms: send messages to Vigil, act on cases, verify alert webhooks.

async with VigilClient("http://127.0.0.1:8787", secret) as vigil:
    results = await vigil.send_messages([message, ...])

# in your webhook receiver, with the raw body bytes:
if not verify_webhook(body, timestamp=headers["X-Vigil-Timestamp"],
                      signature=headers["X-Vigil-Signature"], secret=webhook_secret):
    return 401
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import aiohttp

from vigil.bots.core.models import ChatMessage
from vigil.bots.http.signing import DEFAULT_TOLERANCE_S, Verdict, check_signature, signed_request_headers
from vigil.config.settings import Secret

logger = logging.getLogger(__name__)


class VigilApiError(Exception):
    """Vigil answered with an error status. ``retry_after`` is set for 429 and 503 (resend the batch)."""

    def __init__(self, status: int, body: Mapping[str, object], *, retry_after: float | None = None) -> None:
        detail = body.get("detail") or body.get("error") or "error"
        super().__init__(f"Vigil answered HTTP {status}: {detail}")
        self.status = status
        self.body = dict(body)
        self.retry_after = retry_after


def verify_webhook(
    body: bytes,
    *,
    timestamp: str,
    signature: str,
    secret: str,
    now: datetime | float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """True when ``body`` (the raw bytes received) was signed with ``secret`` within the tolerance."""
    return (
        check_signature(
            body, timestamp=timestamp, signature=signature, secret=secret, now=now, tolerance_s=tolerance_s
        )
        is Verdict.OK
    )


def message_to_dict(message: ChatMessage) -> dict[str, object]:
    """A ``ChatMessage`` in the API's wire format (``timestamp`` as RFC 3339 UTC)."""
    payload: dict[str, object] = {
        "platform": message.platform,
        "space_id": message.space_id,
        "channel_id": message.channel_id,
        "message_id": message.message_id,
        "author_id": message.author_id,
        "text": message.text,
        "timestamp": message.timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "is_dm": message.is_dm,
        "author_is_bot": message.author_is_bot,
        "mentioned_user_ids": list(message.mentioned_user_ids),
        "recipient_ids": list(message.recipient_ids),
    }
    optional = {
        "thread_id": message.thread_id,
        "reply_to_message_id": message.reply_to_message_id,
        "reply_to_author_id": message.reply_to_author_id,
        "author_display_name": message.author_display_name,
    }
    payload.update({key: value for key, value in optional.items() if value is not None})
    return payload


class VigilClient:
    """Signs every request with the shared secret. Use as an async context manager, or call ``aclose``."""

    def __init__(
        self,
        base_url: str,
        secret: str | Secret,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._secret = secret.reveal() if isinstance(secret, Secret) else secret
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    async def send_messages(
        self, messages: Sequence[ChatMessage | Mapping[str, object]]
    ) -> list[dict[str, object]]:
        """POST a batch; returns one result per message. Raises ``VigilApiError`` (429/503: resend later)."""
        batch = [message_to_dict(m) if isinstance(m, ChatMessage) else dict(m) for m in messages]
        body = await self._request("POST", "/v1/messages", payload={"messages": batch})
        results = body.get("results")
        if not isinstance(results, list):
            raise VigilApiError(200, {"detail": "response has no results"})
        return [dict(r) for r in results if isinstance(r, dict)]

    async def list_cases(
        self, *, space_id: str, platform: str = "http", user_id: str | None = None, limit: int = 20
    ) -> list[dict[str, object]]:
        params = {"space_id": space_id, "platform": platform, "limit": str(limit)}
        if user_id is not None:
            params["user_id"] = user_id
        body = await self._request("GET", "/v1/cases", params=params)
        cases = body.get("cases")
        return [dict(c) for c in cases if isinstance(c, dict)] if isinstance(cases, list) else []

    async def get_case(self, case_number: int, *, space_id: str, platform: str = "http") -> dict[str, object]:
        params = {"space_id": space_id, "platform": platform}
        return await self._request("GET", f"/v1/cases/{case_number}", params=params)

    async def get_pair(
        self, *, space_id: str, first: str, second: str, platform: str = "http"
    ) -> dict[str, object]:
        """What Vigil knows about two members' conversation (``known`` is false for a pair it has not seen).
        The chart is ``GET /v1/pairs/chart.svg`` with the same query."""
        params = {"space_id": space_id, "platform": platform, "first": first, "second": second}
        return await self._request("GET", "/v1/pairs", params=params)

    async def act(
        self,
        case_number: int,
        *,
        space_id: str,
        action: str,
        actor_id: str,
        reason: str | None = None,
        platform: str = "http",
        snooze_for_s: float | None = None,
    ) -> dict[str, object]:
        payload: dict[str, object] = {"action": action, "actor_id": actor_id}
        if reason is not None:
            payload["reason"] = reason
        if snooze_for_s is not None:
            payload["snooze_for_s"] = snooze_for_s
        params = {"space_id": space_id, "platform": platform}
        return await self._request("POST", f"/v1/cases/{case_number}/actions", payload=payload, params=params)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        payload: object = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, object]:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        # v2 signs the request target as sent: the query is built (and percent-encoded) here, in a form
        # aiohttp sends unchanged.
        target = path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = signed_request_headers(method=method, target=target, body=body, secret=self._secret)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._owns_session = True
        async with self._session.request(
            method, self._base_url + target, data=body or None, headers=headers
        ) as response:
            try:
                decoded = await response.json(content_type=None)
            except (ValueError, aiohttp.ContentTypeError):
                decoded = {"detail": f"non-JSON response (HTTP {response.status})"}
            answer = dict(decoded) if isinstance(decoded, dict) else {"detail": "unexpected response"}
            if response.status != 200:
                retry = response.headers.get("Retry-After")
                retry_after = float(retry) if retry is not None and retry.isdigit() else None
                raise VigilApiError(response.status, answer, retry_after=retry_after)
            return answer
