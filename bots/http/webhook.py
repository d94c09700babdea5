"""An ``AlertSink`` that POSTs each alert (and every later revision of it) to a webhook, signed.

The body is ``alert_to_dict(...)`` plus ``"updated": false`` for the first delivery and ``true`` for every
later one, and ``"case": {state, claimed_by}``. It is signed exactly like
an API request (``bots.http.signing``), so receivers verify it with ``bots.http.client.verify_webhook``.

Outcomes are results, never exceptions: 2xx is delivered; 429 carries ``Retry-After``; 408, 5xx, timeouts
and connection errors are transient; any other status (a wrong secret, a moved URL) is permanent, which the
outbox keeps retrying slowly and loudly. Redirects are not followed: a signed alert goes only where it was
configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from ipaddress import ip_address

import aiohttp
from yarl import URL

from vigil.bots.core.clock import Clock, utc_now
from vigil.bots.core.models import DeliveryResult
from vigil.bots.core.ports import Delivery
from vigil.bots.core.sinks import alert_to_dict
from vigil.bots.http.signing import MIN_SECRET_CHARS, signed_headers
from vigil.config.settings import Secret

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
USER_AGENT = "vigil-webhook/1"
EVENT_HEADER = "X-Vigil-Event"
DELIVERY_HEADER = "X-Vigil-Delivery"


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; None when absent or garbage."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value) if len(value) <= 9 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    seconds = (when - now).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class WebhookSink:
    """Delivers alerts to one URL. Share an ``aiohttp.ClientSession`` via ``session`` or let it make one."""

    def __init__(
        self,
        url: str,
        secret: Secret,
        *,
        session: aiohttp.ClientSession | None = None,
        signal_labels: Mapping[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        clock: Clock = utc_now,
    ) -> None:
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("the webhook URL must be an absolute http:// or https:// URL")
        if len(secret.reveal()) < MIN_SECRET_CHARS:
            raise ValueError(f"the webhook secret must be at least {MIN_SECRET_CHARS} characters long")
        if parsed.scheme == "http" and not _is_loopback(parsed.host):
            # The URL itself may hold a token, so only its host is ever logged.
            logger.warning(
                "the alert webhook to %s is plain http: alert excerpts cross the network unencrypted",
                parsed.host,
            )
        self._url = url
        self._host = parsed.host
        self._secret = secret
        self._session = session
        self._owns_session = session is None
        self._signal_labels = dict(signal_labels or {})
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock

    async def post(self, delivery: Delivery) -> DeliveryResult:
        return await self._send(delivery, updated=False)

    async def update(self, delivery: Delivery, *, ref: str) -> DeliveryResult:
        return await self._send(delivery, updated=True)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    def _payload(self, delivery: Delivery, *, updated: bool) -> dict[str, object]:
        view = delivery.case
        return alert_to_dict(view.alert, signal_labels=self._signal_labels) | {
            "updated": updated,
            "case": {"state": str(view.state), "claimed_by": view.claimed_by},
        }

    async def _send(self, delivery: Delivery, *, updated: bool) -> DeliveryResult:
        alert = delivery.alert
        body = json.dumps(
            self._payload(delivery, updated=updated), ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: "alert.updated" if updated else "alert.created",
            DELIVERY_HEADER: f"{alert.alert_id}.{alert.revision}",
            **signed_headers(body, secret=self._secret.reveal(), now=self._clock()),
        }
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._owns_session = True
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, allow_redirects=False, timeout=self._timeout
            ) as response:
                status = response.status
                retry_after_header = response.headers.get("Retry-After")
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    await response.read()
        except TimeoutError:
            return DeliveryResult(ok=False, error=f"webhook to {self._host} timed out")
        except (aiohttp.ClientError, OSError) as exc:
            return DeliveryResult(ok=False, error=f"webhook to {self._host} failed: {type(exc).__name__}")
        if 200 <= status < 300:
            return DeliveryResult(ok=True, ref=f"webhook:{alert.alert_id}")
        error = f"webhook receiver at {self._host} answered HTTP {status}"
        if status == 429:
            retry_after = parse_retry_after(retry_after_header, now=self._clock())
            return DeliveryResult(ok=False, error=error, retry_after=retry_after)
        if status == 408 or status >= 500:
            return DeliveryResult(ok=False, error=error)
        if 300 <= status < 400:
            error += " (a redirect; configure the final URL, redirects are not followed)"
        return DeliveryResult(ok=False, error=error, permanent=True)


class PollingSink:
    """The sink for HTTP platforms when no webhook is configured: the API itself is where alerts are read.

    Every alert counts as delivered at once (``GET /v1/cases`` lists it, with its state), so the outbox does
    not retry forever for lack of somewhere to push to.
    """

    async def post(self, delivery: Delivery) -> DeliveryResult:
        alert = delivery.alert
        logger.info("case %d is ready at GET /v1/cases (no webhook configured)", alert.case_number)
        return DeliveryResult(ok=True, ref=f"api:{alert.alert_id}")

    async def update(self, delivery: Delivery, *, ref: str) -> DeliveryResult:
        return DeliveryResult(ok=True, ref=ref)
