"""The HTTP ingest API: self-hosted platforms send messages and act on cases over signed HTTP requests.

Every request under ``/v1`` (except the OpenAPI document) is authenticated by an HMAC-SHA256 signature over
the timestamp and the raw body (``bots.http.signing``). The holder of the shared secret is trusted as a
moderator of every space it names: case and pair endpoints act with the ``MODERATOR`` role. Child-safety
operations (transcripts, releasing evidence holds) are not offered over HTTP.

Bodies are bounded twice: by ``Content-Length`` before reading and while reading (chunked bodies), so a large
or endless body costs at most ``max_body_bytes`` of memory.

Slow clients are bounded in time: a request's line and headers must arrive within ``HEADER_TIMEOUT_S`` and at
most ``_MAX_CONNECTIONS`` connections are open at once (``bots.http.guard``); a body must arrive within
``_BODY_TIMEOUT_S`` (else 408); at most ``_MAX_IN_FLIGHT`` signed requests are handled at once (else 503).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, Protocol, cast, runtime_checkable

import msgspec
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from msgspec import UNSET

from vigil.bots.core.cases import Actor, CaseError, CaseResult, Cases, Role
from vigil.bots.core.charts import SVG_MEDIA_TYPE, risk_chart_svg
from vigil.bots.core.clock import Clock, utc_now
from vigil.bots.core.models import ADAPTER_PLATFORMS, ChatMessage
from vigil.bots.core.moderation import Denied, ModeratorService, PairHistory
from vigil.bots.core.monitor import HandleResult, SkipReason
from vigil.bots.core.ports import MessageHandler, ServiceGaugeStore, StoreError
from vigil.bots.http.guard import (
    HEADER_TIMEOUT_S,
    KEEPALIVE_TIMEOUT_S,
    ConnectionGuard,
    payload_free_logger,
)
from vigil.bots.http.schema import (
    DEFAULT_PLATFORM,
    DEFAULT_VIEWER,
    MAX_CASE_LIST,
    MAX_CASE_NUMBER,
    BatchResult,
    BatchTooLargeError,
    Case,
    CaseList,
    CaseSummary,
    Error,
    Health,
    MessageError,
    MessageResult,
    MessageStatus,
    Pair,
    RequestError,
    RetryLater,
    decode_json,
    openapi_json,
    parse_action,
    parse_batch,
    parse_message,
    parse_query_id,
    parse_query_int,
)
from vigil.bots.http.signing import (
    MIN_SECRET_CHARS,
    NONCE_HEADER,
    REQUEST_SCHEME,
    SCHEME,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ReplayCache,
    Verdict,
    check_request_headers,
    check_request_signature,
    check_signature,
    request_scheme,
)
from vigil.config.settings import HttpSettings, Secret

logger = logging.getLogger(__name__)

_READ_CHUNK = 64 * 1024
_LINGERING_S = 1.0
# A body trickled in slower than this is refused, so slow senders cannot hold connections and memory.
_BODY_TIMEOUT_S = 30.0
# Signed requests handled at once (most of them reading their bodies); more get 503 with Retry-After.
_MAX_IN_FLIGHT = 256
# Open connections (idle keep-alive ones included); more are answered 503 and closed at once. Above
# _MAX_IN_FLIGHT, so that requests held by slow bodies leave room for others to be told 503 and for /healthz.
_MAX_CONNECTIONS = 512
# ``HandleResult.skipped`` of a message a queue shed (``bots.core.ingest.SHED_SKIP_VALUE``).
_SHED = "shed"
# Retry-After sent with a 503 when a message could not be processed (the detector failed, say).
_UNAVAILABLE_RETRY_S = 5
_CASE_ERROR_STATUS: Mapping[CaseError, int] = MappingProxyType(
    {
        CaseError.NOT_FOUND: 404,
        CaseError.FORBIDDEN: 403,
        CaseError.INVALID_TRANSITION: 409,
        CaseError.INVALID_INPUT: 400,
    }
)
# The chart is an image: it may load and run nothing, nor be framed.
_SVG_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
# A user id in the chart's title is cut to this many characters (ids may be 256), so the title fits.
_CHART_ID_CHARS = 24


@runtime_checkable
class Backpressure(Protocol):
    """What the API recognises as "overloaded, retry later": any exception with a numeric ``retry_after``.

    The load-shedding queue in front of the monitor (``bots.core.ingest``) raises one when it is full; the API
    answers 429 with ``Retry-After``. Matching by attribute keeps this package free of that module.
    """

    retry_after: float


class _BatchHandler(Protocol):
    async def handle_batch(self, messages: Sequence[ChatMessage]) -> list[HandleResult]: ...


class _PinnableHandler(Protocol):
    """A queue (``bots.core.ingest.IngestQueue``) that can be told not to shed: it raises ``Overloaded``."""

    async def handle(self, message: ChatMessage, *, may_shed: bool) -> HandleResult: ...


class BackpressureError(Exception):
    """A ready-made ``Backpressure`` exception for handlers that have none of their own."""

    def __init__(self, retry_after: float, message: str = "overloaded") -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_of(error: BaseException) -> float | None:
    """Seconds to wait if ``error`` signals backpressure (has a finite numeric ``retry_after``), else None."""
    value = getattr(error, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return max(0.0, float(value))


_ACCESS_LOGGER = "vigil.bots.http.access"
_SERVER_LOGGER = "vigil.bots.http.aiohttp"


class PathOnlyAccessLogger(AbstractAccessLogger):
    """One access line per request: method, path without its query (which carries ids), status, time."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %d %.3fs", request.method, request.rel_url.raw_path, response.status, time)


def _json(
    answer: msgspec.Struct,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An answer, encoded from the Struct its schema is generated from."""
    return web.Response(
        body=msgspec.json.encode(answer),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


def _overloaded(request: web.Request) -> _ApiError:
    detail = f"more than {_MAX_IN_FLIGHT} requests are in progress; retry after 1 second"
    # The batch endpoint's 503 has the RetryLater shape.
    batch = request.path == "/v1/messages"
    answer = RetryLater(error="overloaded", detail=detail, retry_after=1, results=[]) if batch else None
    return _ApiError(503, "overloaded", detail, headers={"Retry-After": "1"}, answer=answer)


class _ApiError(Exception):
    """Raised inside a request handler; the middleware turns it into a JSON error response."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
        answer: RetryLater | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.headers = dict(headers or {})
        # ``answer``: the shape of an endpoint whose errors have another (the batch endpoint's 503).
        self.answer = answer or Error(error=code, detail=detail, field=field if field is not None else UNSET)

    def response(self) -> web.Response:
        return _json(self.answer, status=self.status, headers=self.headers)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Outcome:
    """One message's processing outcome inside a batch."""

    result: MessageResult | None = None
    retry_after: float | None = None
    failed: bool = False


def _message_result(index: int, result: HandleResult) -> MessageResult:
    # Shadow alerts are recorded, not announced: they stay out of the platform's view too.
    cases = list(dict.fromkeys(e.alert.case_number for e in result.alerts if not e.alert.shadow))
    if result.queued:
        status, reason = MessageStatus.QUEUED, None
    elif result.skipped is SkipReason.DUPLICATE:
        status, reason = MessageStatus.DUPLICATE, None
    elif result.skipped is not None:
        status, reason = MessageStatus.SKIPPED, str(result.skipped)
    else:
        status, reason = MessageStatus.ACCEPTED, None
    return MessageResult(
        index=index,
        message_id=result.message_id,
        status=status,
        reason=reason if reason is not None else UNSET,
        alerts=cases or UNSET,
    )


def _shortened(user_id: str) -> str:
    return user_id if len(user_id) <= _CHART_ID_CHARS else user_id[: _CHART_ID_CHARS - 1] + "…"


def _error_result(error: MessageError) -> MessageResult:
    return MessageResult(
        index=error.index, message_id=error.message_id, status=MessageStatus.ERROR, reason=error.reason
    )


class HttpApi:
    """The aiohttp application and its lifecycle: ``start`` (returns the bound port), ``run``, ``aclose``."""

    def __init__(
        self,
        *,
        settings: HttpSettings,
        secret: Secret,
        handler: MessageHandler,
        cases: Cases,
        store: ServiceGaugeStore,
        moderation: Callable[[str], ModeratorService],
        clock: Clock = utc_now,
        signal_labels: Mapping[str, str] | None = None,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        max_connections: int = _MAX_CONNECTIONS,
    ) -> None:
        if len(secret.reveal()) < MIN_SECRET_CHARS:
            raise ValueError(f"the HTTP API secret must be at least {MIN_SECRET_CHARS} characters long")
        self._settings = settings
        self._secret = secret
        self._handler = handler
        self._pinnable = "may_shed" in inspect.signature(handler.handle).parameters
        self._cases = cases
        self._store = store
        # The platform a request names picks its moderator service (pair histories, by that platform's rules).
        self._moderation = moderation
        self._clock = clock
        self._replays = ReplayCache(window_s=settings.timestamp_tolerance_s)
        self._in_flight = 0
        self._warned_v1 = False
        self._signal_labels = dict(signal_labels or {})
        self._openapi = openapi_json().encode("utf-8")
        self._runner: web.AppRunner | None = None
        self._guard = ConnectionGuard(
            name="HTTP API", header_timeout_s=header_timeout_s, max_connections=max_connections
        )
        # The guard's first: it must see every request aiohttp hands over, refused ones too.
        self._app = web.Application(
            middlewares=[self._guard.middleware, self._middleware], client_max_size=settings.max_body_bytes
        )
        self._app.router.add_post("/v1/messages", self._post_messages)
        self._app.router.add_get("/v1/cases", self._list_cases)
        self._app.router.add_get("/v1/cases/{case_number}", self._get_case)
        self._app.router.add_post("/v1/cases/{case_number}/actions", self._act)
        self._app.router.add_get("/v1/pairs", self._get_pair)
        self._app.router.add_get("/v1/pairs/chart.svg", self._get_pair_chart)
        self._app.router.add_get("/healthz", self._health)
        self._app.router.add_get("/v1/openapi.json", self._openapi_document)

    @property
    def app(self) -> web.Application:
        return self._app

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> int:
        """Listen on ``settings.host``/``settings.port`` (0: any free port); returns the bound port."""
        if self._runner is not None:
            raise RuntimeError("the HTTP API is already started")
        # After an early refusal aiohttp reads and drops the rest of the body so the client sees the answer;
        # one second of that, not its default ten, so nobody holds a connection open with a body never read.
        runner = web.AppRunner(
            self._app,
            shutdown_timeout=5.0,
            lingering_time=_LINGERING_S,
            keepalive_timeout=KEEPALIVE_TIMEOUT_S,
            # Our access log and parser-error log: neither query strings (ids) nor raw bytes (message text).
            access_log_class=PathOnlyAccessLogger,
            access_log=logging.getLogger(_ACCESS_LOGGER),
            logger=payload_free_logger(_SERVER_LOGGER),
        )
        await runner.setup()
        try:
            # The guard listens (not a web.TCPSite): header deadline and connection cap.
            port = await self._guard.listen(runner, host=self._settings.host, port=self._settings.port)
        except BaseException:
            self._guard.close()
            await runner.cleanup()
            raise
        self._runner = runner
        logger.info("HTTP API listening on %s:%d", self._settings.host, port)
        return port

    async def run(self) -> None:
        """Serve until cancelled, then close."""
        if self._runner is None:
            await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            self._guard.close()
            await runner.cleanup()
            logger.info("HTTP API stopped")

    # ------------------------------------------------------------------ plumbing

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        capped = request.path.startswith("/v1/") and request.path != "/v1/openapi.json"
        try:
            if capped and self._in_flight >= _MAX_IN_FLIGHT:
                # Slow or many clients cannot hold every connection: the rest are told to come back.
                raise _overloaded(request)
            self._in_flight += capped
            try:
                response = await handler(request)
            finally:
                self._in_flight -= capped
        except _ApiError as error:
            response = error.response()
        except web.HTTPException as error:
            # Router answers (404, 405) and aiohttp's own limits, as JSON like every other error.
            response = _json(
                Error(error=error.reason.lower().replace(" ", "_"), detail=error.reason),
                status=error.status,
                headers={k: v for k, v in error.headers.items() if k.lower() == "allow"},
            )
        except StoreError as error:
            logger.error(
                "HTTP API: storage failed during %s %s: %s", request.method, request.rel_url.raw_path, error
            )
            response = _json(
                Error(error="unavailable", detail="storage is unavailable; retry later"),
                status=503,
                headers={"Retry-After": str(_UNAVAILABLE_RETRY_S)},
            )
        except Exception:
            logger.exception("HTTP API request failed: %s %s", request.method, request.rel_url.raw_path)
            response = _json(Error(error="internal", detail="internal error"), status=500)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        response.headers["Server"] = "vigil"
        if not request.content.at_eof() and response.status >= 400:
            # Refused before its body was read (bad headers, too large): no keep-alive on that connection.
            response.force_close()
        return response

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self._settings.max_body_bytes
        too_large = _ApiError(413, "payload_too_large", f"request body is larger than {limit} bytes")
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(_BODY_TIMEOUT_S):
                async for chunk in request.content.iter_chunked(_READ_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise too_large
                    chunks.append(chunk)
        except TimeoutError:
            raise _ApiError(
                408, "request_timeout", f"the body did not arrive within {_BODY_TIMEOUT_S:.0f} seconds"
            ) from None
        return b"".join(chunks)

    async def _authenticated_body(self, request: web.Request) -> bytes:
        """The body of a correctly signed, fresh, first-seen request; headers checked before reading it."""
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        signature = request.headers.get(SIGNATURE_HEADER)
        nonce = request.headers.get(NONCE_HEADER)
        now = self._clock()
        tolerance_s = self._settings.timestamp_tolerance_s
        verdict = check_request_headers(
            timestamp=timestamp, signature=signature, nonce=nonce, now=now, tolerance_s=tolerance_s
        )
        scheme = request_scheme(signature)
        if verdict is Verdict.OK and scheme == SCHEME and not self._settings.accept_v1_signatures:
            verdict = Verdict.MALFORMED_REQUEST_SIGNATURE
        if verdict is not Verdict.OK:
            raise self._refused(request, verdict)
        assert timestamp is not None and signature is not None  # check_request_headers said so
        body = await self._read_body(request)
        secret = self._secret.reveal()
        if scheme == REQUEST_SCHEME:
            assert nonce is not None
            verdict = check_request_signature(
                method=request.method,
                target=request.rel_url.raw_path_qs,
                body=body,
                timestamp=timestamp,
                signature=signature,
                nonce=nonce,
                secret=secret,
            )
            replay_key = f"{REQUEST_SCHEME}:{nonce}"
        else:
            verdict = check_signature(
                body,
                timestamp=timestamp,
                signature=signature,
                secret=secret,
                now=now,
                tolerance_s=tolerance_s,
            )
            replay_key = f"{SCHEME}:{signature.strip().lower()}"
            if verdict is Verdict.OK and not self._warned_v1:
                self._warned_v1 = True
                logger.warning(
                    "HTTP API: a client signs with v1, which does not cover the method, path or query and "
                    "will be refused from the next release; sign with v2 (docs/http-api.md)"
                )
        # Recorded only once the signature is right, so nobody can use up another client's nonces.
        if verdict is Verdict.OK and not self._replays.first_use(replay_key, now=now.timestamp()):
            verdict = Verdict.REPLAYED
        if verdict is not Verdict.OK:
            raise self._refused(request, verdict)
        return body

    @staticmethod
    def _refused(request: web.Request, verdict: Verdict) -> _ApiError:
        # The raw (still percent-encoded) path: nothing a caller sends can forge a log line.
        logger.warning("HTTP API refused %s %s: %s", request.method, request.rel_url.raw_path, verdict.value)
        return _ApiError(401, "unauthorized", verdict.value)

    def _open_to(self, platform: str) -> bool:
        listed = self._settings.platforms
        return platform in listed if listed else platform not in ADAPTER_PLATFORMS

    def _closed_platform(self, platform: str) -> str:
        # The name is an id that passed the schema's checks: safe to echo to the caller.
        listed = self._settings.platforms
        if listed:
            shown = ", ".join(listed)
            return f"platform {platform!r} is not open to the HTTP API ([http] platforms lists {shown})"
        return (
            f"platform {platform!r} is not open to the HTTP API: Vigil reads it itself "
            "(list it in [http] platforms only if this secret may speak for it)"
        )

    @staticmethod
    def _bad_request(error: RequestError) -> _ApiError:
        return _ApiError(400, "bad_request", error.problem, field=error.field)

    def _actor(self, request: web.Request, *, actor_id: str, display_name: str | None = None) -> Actor:
        query = request.query
        try:
            platform = parse_query_id(query, "platform", default=DEFAULT_PLATFORM)
            space_id = parse_query_id(query, "space_id")
        except RequestError as error:
            raise self._bad_request(error) from None
        if not self._open_to(platform):
            raise _ApiError(400, "bad_request", self._closed_platform(platform), field="platform")
        return Actor(
            platform=platform,
            space_id=space_id,
            user_id=actor_id,
            roles=frozenset({Role.MODERATOR}),
            display_name=display_name,
        )

    def _viewer(self, request: web.Request) -> Actor:
        try:
            actor_id = parse_query_id(request.query, "actor_id", default=DEFAULT_VIEWER)
        except RequestError as error:
            raise self._bad_request(error) from None
        return self._actor(request, actor_id=actor_id)

    @staticmethod
    def _case_number(request: web.Request) -> int:
        raw = request.match_info["case_number"]
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or not 1 <= int(raw) <= MAX_CASE_NUMBER:
            raise _ApiError(
                400, "bad_request", f"must be an integer from 1 to {MAX_CASE_NUMBER}", field="case_number"
            )
        return int(raw)

    def _case_response(self, result: CaseResult) -> web.Response:
        if result.error is not None or result.case is None:
            status = _CASE_ERROR_STATUS.get(result.error, 400) if result.error is not None else 404
            code = str(result.error) if result.error is not None else "not_found"
            raise _ApiError(status, code, result.message or code.replace("_", " "))
        return _json(Case.of(result.case, signal_labels=self._signal_labels))

    # ------------------------------------------------------------------ messages

    async def _post_messages(self, request: web.Request) -> web.Response:
        body = await self._authenticated_body(request)
        try:
            entries = parse_batch(decode_json(body), max_messages=self._settings.max_batch_messages)
        except RequestError as error:
            raise self._bad_request(error) from None
        except BatchTooLargeError as error:
            raise _ApiError(413, "batch_too_large", str(error), field="messages") from None

        outcomes: list[_Outcome | None] = [None] * len(entries)
        valid: list[tuple[int, ChatMessage]] = []
        for index, entry in enumerate(entries):
            parsed = parse_message(entry, index=index)
            if not isinstance(parsed, MessageError) and not self._open_to(parsed.platform):
                parsed = MessageError(
                    index=index,
                    message_id=parsed.message_id,
                    field=f"messages[{index}].platform",
                    problem=self._closed_platform(parsed.platform),
                )
            if isinstance(parsed, MessageError):
                outcomes[index] = _Outcome(result=_error_result(parsed))
            else:
                valid.append((index, parsed))
        if valid:
            await self._handle(valid, outcomes)
        return self._batch_response(outcomes)

    async def _handle(
        self, items: Sequence[tuple[int, ChatMessage]], outcomes: list[_Outcome | None]
    ) -> None:
        handle_batch = getattr(self._handler, "handle_batch", None)
        if callable(handle_batch):
            # The monitor itself: one call keeps the batch's order, scores it together, commits it at once.
            batch = cast(_BatchHandler, self._handler)
            try:
                results = await batch.handle_batch([message for _, message in items])
                if len(results) != len(items):
                    raise RuntimeError(
                        f"the handler returned {len(results)} results for {len(items)} messages"
                    )
            except Exception as error:
                outcome = self._failure(error)
                for index, _ in items:
                    outcomes[index] = outcome
                return
            for (index, _), result in zip(items, results, strict=True):
                outcomes[index] = self._success(index, result)
            return
        # A queue in front of the monitor: each channel's messages in order, channels side by side.
        groups: dict[tuple[str, str, str], list[tuple[int, ChatMessage]]] = {}
        for index, message in items:
            groups.setdefault((message.platform, message.space_id, message.channel_id), []).append(
                (index, message)
            )
        async with asyncio.TaskGroup() as group:
            for members in groups.values():
                group.create_task(self._handle_in_order(members, outcomes))

    async def _handle_in_order(
        self, items: Sequence[tuple[int, ChatMessage]], outcomes: list[_Outcome | None]
    ) -> None:
        for index, message in items:
            try:
                if self._pinnable:
                    result = await cast(_PinnableHandler, self._handler).handle(message, may_shed=False)
                else:
                    result = await self._handler.handle(message)
            except Exception as error:
                outcomes[index] = self._failure(error)
                # The rest of this channel waits for the resend, so its order is kept.
                return
            outcome = self._success(index, result)
            outcomes[index] = outcome
            if outcome.retry_after is not None:
                return

    @staticmethod
    def _failure(error: Exception) -> _Outcome:
        retry_after = retry_after_of(error)
        if retry_after is not None:
            return _Outcome(retry_after=retry_after)
        logger.error("HTTP API: messages could not be processed (%s)", type(error).__name__, exc_info=error)
        return _Outcome(failed=True)

    @staticmethod
    def _success(index: int, result: HandleResult) -> _Outcome:
        if result.skipped is not None and str(result.skipped) == _SHED:
            # A queue that shed the message anyway: for an HTTP client that is "retry later".
            return _Outcome(retry_after=1.0)
        return _Outcome(result=_message_result(index, result))

    @staticmethod
    def _batch_response(outcomes: Sequence[_Outcome | None]) -> web.Response:
        results = [o.result for o in outcomes if o is not None and o.result is not None]
        waits = [o.retry_after for o in outcomes if o is not None and o.retry_after is not None]
        failed = any(o is not None and o.failed for o in outcomes)
        if waits or failed:
            retry_after = max(waits) if waits else float(_UNAVAILABLE_RETRY_S)
            seconds = max(1, math.ceil(retry_after))
            code: Literal["overloaded", "unavailable"]
            if waits:
                status, code, detail = 429, "overloaded", "Vigil is overloaded; resend the batch later"
            else:
                status, code = 503, "unavailable"
                detail = "some messages could not be processed; resend the batch later"
            return _json(
                RetryLater(error=code, detail=detail, retry_after=seconds, results=results),
                status=status,
                headers={"Retry-After": str(seconds)},
            )
        counts = Counter(r.status for r in results)
        # "queued" only where it can happen (vigil gateway): one process answers as it always has.
        shown = [s for s in MessageStatus if s is not MessageStatus.QUEUED or counts[s]]
        return _json(BatchResult(results=results, counts={str(s): counts[s] for s in shown}))

    # ------------------------------------------------------------------ cases

    async def _list_cases(self, request: web.Request) -> web.Response:
        await self._authenticated_body(request)
        actor = self._viewer(request)
        try:
            limit = parse_query_int(request.query, "limit", default=20, low=1, high=MAX_CASE_LIST)
            user_id = parse_query_id(request.query, "user_id") if "user_id" in request.query else None
        except RequestError as error:
            raise self._bad_request(error) from None
        result, summaries = await self._cases.list_cases(actor=actor, user_id=user_id, limit=limit)
        if not result.ok:
            self._case_response(result)
        return _json(
            CaseList(
                platform=actor.platform,
                space_id=actor.space_id,
                cases=[CaseSummary.of(s) for s in summaries],
            )
        )

    async def _get_case(self, request: web.Request) -> web.Response:
        await self._authenticated_body(request)
        case_number = self._case_number(request)
        actor = self._viewer(request)
        return self._case_response(await self._cases.get(actor=actor, case_number=case_number))

    async def _act(self, request: web.Request) -> web.Response:
        body = await self._authenticated_body(request)
        case_number = self._case_number(request)
        try:
            action = parse_action(decode_json(body))
        except RequestError as error:
            raise self._bad_request(error) from None
        actor = self._actor(request, actor_id=action.actor_id, display_name=action.actor_display_name)
        result = await self._cases.act(
            actor=actor,
            case_number=case_number,
            action=action.case_action,
            reason=action.reason,
            snooze_for=action.snooze_for,
        )
        if result.ok:
            logger.info("case %d: %s through the HTTP API", case_number, action.action)
        return self._case_response(result)

    # ------------------------------------------------------------------ pairs

    async def _pair_history(self, request: web.Request) -> PairHistory:
        await self._authenticated_body(request)
        actor = self._viewer(request)
        try:
            first = parse_query_id(request.query, "first")
            second = parse_query_id(request.query, "second")
        except RequestError as error:
            raise self._bad_request(error) from None
        answer = await self._moderation(actor.platform).pair_history(actor, first=first, second=second)
        if answer.value is not None:
            return answer.value
        if answer.denied is Denied.SAME_PERSON:
            raise _ApiError(400, "bad_request", "must not be the same user as first", field="second")
        # Not expected: the API's actor is a moderator.
        raise _ApiError(403, "forbidden", "pair histories are for moderators")

    async def _get_pair(self, request: web.Request) -> web.Response:
        history = await self._pair_history(request)
        return _json(Pair.of(history, signal_labels=self._signal_labels))

    async def _get_pair_chart(self, request: web.Request) -> web.Response:
        history = await self._pair_history(request)
        first, second = (_shortened(u) for u in (history.key.user_a, history.key.user_b))
        svg = risk_chart_svg(history.points, threshold=history.threshold, title=f"Risk: {first} and {second}")
        return web.Response(
            text=svg,
            content_type=SVG_MEDIA_TYPE,
            charset="utf-8",
            headers={"Content-Security-Policy": _SVG_CSP},
        )

    # ------------------------------------------------------------------ unauthenticated

    async def _health(self, request: web.Request) -> web.Response:
        try:
            await self._store.pending_delivery_count()
        except Exception:
            logger.exception("health check: the store is unavailable")
            return _json(Health(status="unavailable"), status=503)
        return _json(Health(status="ok"))

    async def _openapi_document(self, request: web.Request) -> web.Response:
        return web.Response(body=self._openapi, content_type="application/json")
