"""POST /v1/messages, the case endpoints and the unauthenticated ones, over real TCP."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from tests.http.conftest import SECRET, START, Api, start_api, wire_message
from tests.support.fuzz import FUZZ_CASES, cases
from vigil.bots.app import App
from vigil.bots.core.cases import CaseState
from vigil.bots.core.models import ADAPTER_PLATFORMS, ChatMessage
from vigil.bots.core.monitor import HandleResult, Monitor
from vigil.bots.discord.translate import PLATFORM as DISCORD
from vigil.bots.http.schema import openapi_document, openapi_json
from vigil.bots.http.server import BackpressureError
from vigil.bots.http.signing import signed_headers, signed_request_headers
from vigil.bots.slack.translate import PLATFORM as SLACK
from vigil.config.settings import HttpSettings

REPO = Path(__file__).resolve().parents[2]


def grooming_batch(start: int = 0, count: int = 3) -> list[dict[str, object]]:
    return [wire_message(start + i, text="secret groom secret groom") for i in range(count)]


# ------------------------------------------------------------------ authentication


async def test_a_signed_batch_is_accepted(api: Api) -> None:
    status, body, headers = await api.send(
        [wire_message(1), wire_message(2, author_id="kid", recipient_ids=["adult"])]
    )
    assert status == 200, body
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted"]  # type: ignore[index]
    assert body["counts"] == {"accepted": 2, "duplicate": 0, "skipped": 0, "error": 0}
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_unsigned_requests_are_refused(api: Api) -> None:
    body = json.dumps({"messages": [wire_message(1)]}).encode()
    status, payload, _ = await api.request("POST", "/v1/messages", body=body, sign=False)
    assert status == 401 and payload["error"] == "unauthorized"
    assert "missing" in str(payload["detail"])
    status, _, _ = await api.request("GET", "/v1/cases", params={"space_id": "tenant-1"}, sign=False)
    assert status == 401
    # Nothing was processed.
    assert await api.store.claim_message(
        platform="http", space_id="tenant-1", message_id="m-1", seen_at=START
    )


async def test_a_wrong_secret_or_tampered_body_is_refused(api: Api) -> None:
    body = json.dumps({"messages": [wire_message(1)]}).encode()
    status, payload, _ = await api.request(
        "POST", "/v1/messages", body=body, secret="another-secret-0123456789"
    )
    assert status == 401 and "does not match" in str(payload["detail"])
    headers = signed_headers(body, secret=SECRET)
    tampered = body.replace(b"hello", b"HELLO")
    status, _, _ = await api.request("POST", "/v1/messages", body=tampered, sign=False, headers=headers)
    assert status == 401


@pytest.mark.parametrize(("offset", "word"), [(-301.0, "old"), (+301.0, "future")])
async def test_stale_and_future_timestamps_are_refused(api: Api, offset: float, word: str) -> None:
    body = json.dumps({"messages": [wire_message(1)]}).encode()
    status, payload, _ = await api.request("POST", "/v1/messages", body=body, now=time.time() + offset)
    assert status == 401 and word in str(payload["detail"])
    # Inside the tolerance it is fine.
    status, _, _ = await api.request("POST", "/v1/messages", body=body, now=time.time() - 250)
    assert status == 200


async def test_a_malformed_signature_header_is_refused(api: Api) -> None:
    body = json.dumps({"messages": []}).encode()
    headers = {"X-Vigil-Timestamp": str(int(time.time())), "X-Vigil-Signature": "sha256=abc"}
    status, payload, _ = await api.request("POST", "/v1/messages", body=body, sign=False, headers=headers)
    assert status == 401 and "v1=" in str(payload["detail"])
    headers = {"X-Vigil-Timestamp": "yesterday", "X-Vigil-Signature": "v1=" + "0" * 64}
    status, payload, _ = await api.request("POST", "/v1/messages", body=body, sign=False, headers=headers)
    assert status == 401 and "Unix time" in str(payload["detail"])


# ------------------------------------------------------------------ request shape


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", None),
        (b"", None),
        (b"\xff\xfe", None),
        (b"[1, 2]", None),
        (b'{"messages": {}}', "messages"),
        (b'{"message": []}', "message"),
        (b"{}", "messages"),
        (b'{"messages": [], "NaN": NaN}', None),
    ],
)
async def test_malformed_bodies_are_400_naming_the_field(api: Api, body: bytes, field: str | None) -> None:
    status, payload, _ = await api.request("POST", "/v1/messages", body=body)
    assert status == 400, payload
    assert payload["error"] == "bad_request"
    assert payload.get("field") == field


async def test_a_batch_mixing_good_and_bad_messages_processes_the_good_ones(api: Api) -> None:
    missing_author = wire_message(2)
    del missing_author["author_id"]
    batch = [
        wire_message(1),
        missing_author,
        wire_message(3, timestamp="yesterday"),
        wire_message(4, is_dm="yes"),
        wire_message(5, colour="red"),
        "not an object",
        wire_message(6, mentioned_user_ids=["ok", 7]),
        wire_message(7, author_id="kid", recipient_ids=["adult"]),
    ]
    status, body, _ = await api.send(batch)
    assert status == 200, body
    results = body["results"]
    assert isinstance(results, list)
    assert [r["index"] for r in results] == list(range(8))
    assert [r["status"] for r in results] == [
        "accepted",
        "error",
        "error",
        "error",
        "error",
        "error",
        "error",
        "accepted",
    ]
    reasons = [r.get("reason", "") for r in results]
    assert "messages[1].author_id" in reasons[1] and "required" in reasons[1]
    assert "messages[2].timestamp" in reasons[2]
    assert "messages[3].is_dm" in reasons[3]
    assert "messages[4].colour" in reasons[4]
    assert results[5]["message_id"] is None and "messages[5]" in reasons[5]
    assert "messages[6].mentioned_user_ids[1]" in reasons[6]
    assert results[2]["message_id"] == "m-3"
    # Reasons name fields, never echo message text.
    assert all("hello" not in r for r in reasons)


async def test_a_text_cut_inside_an_emoji_refuses_only_its_own_message(api: Api) -> None:
    # JSON escapes for half an emoji (a client that cut the text short): one message's error, not the batch's.
    batch = [
        wire_message(1, text="see you \ud83d"),
        wire_message(2, **{"note\ud800": 1}),
        wire_message(3, message_id="m-3\udc00"),
        wire_message(4, text="see you \U0001f600"),
    ]
    status, body, _ = await api.send(batch)
    assert status == 200, body
    results = body["results"]
    assert isinstance(results, list)
    assert [(r["status"], r["message_id"]) for r in results] == [
        ("error", "m-1"),
        ("error", "m-2"),
        ("error", None),
        ("accepted", "m-4"),
    ]
    assert results[0]["reason"] == "messages[0].text: contains an unpaired surrogate (\\ud800-\\udfff)"
    assert results[1]["reason"] == "messages[1].note\\ud800: is not a known field"


async def test_a_duplicate_message_id_is_reported_as_duplicate(api: Api) -> None:
    status, body, _ = await api.send([wire_message(1), wire_message(1)])
    assert status == 200
    assert [r["status"] for r in body["results"]] == ["accepted", "duplicate"]  # type: ignore[index]
    status, body, _ = await api.send([wire_message(1)])
    assert [r["status"] for r in body["results"]] == ["duplicate"]  # type: ignore[index]


async def test_skipped_messages_say_why(api: Api) -> None:
    status, body, _ = await api.send(
        [
            wire_message(1, author_is_bot=True),
            wire_message(2, text="   "),
            wire_message(3, is_dm=False, recipient_ids=[]),
        ]
    )
    assert status == 200
    assert [(r["status"], r.get("reason")) for r in body["results"]] == [  # type: ignore[union-attr]
        ("skipped", "bot"),
        ("skipped", "no_text"),
        ("skipped", "no_pair"),
    ]


async def test_an_alert_is_reported_with_its_case_number(api: Api) -> None:
    status, body, _ = await api.send(grooming_batch())
    assert status == 200
    alerts = [r.get("alerts") for r in body["results"]]  # type: ignore[union-attr]
    assert [1] in alerts
    stored = await api.store.alerts_for_space(platform="http", space_id="tenant-1", limit=5)
    assert len(stored) == 1 and stored[0].suspect_id == "adult"


async def test_timestamps_with_an_offset_are_converted_to_utc(api: Api) -> None:
    status, _, _ = await api.send(
        [wire_message(1, timestamp="2026-03-01T19:00:00+01:00", text="secret groom")]
        + [wire_message(i, text="secret groom") for i in range(2, 4)]
    )
    assert status == 200
    stored = await api.store.alerts_for_space(platform="http", space_id="tenant-1", limit=5)
    assert stored and all(m.timestamp.utcoffset() is not None for m in stored[0].evidence)
    first = min(m.timestamp for m in stored[0].evidence)
    assert first.isoformat() == "2026-03-01T18:00:00+00:00"


# ------------------------------------------------------------------ limits


async def test_a_10_mb_body_is_413_without_being_read(api: Api) -> None:
    body = b'{"messages": ["' + b"x" * (10 * 1024 * 1024) + b'"]}'
    status, payload, _ = await api.request("POST", "/v1/messages", body=body)
    assert status == 413 and payload["error"] == "payload_too_large"


async def test_a_chunked_body_over_the_limit_is_413(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 65536

    # Headers that pass the checks made before the body is read (the HMAC itself needs the body).
    headers = signed_request_headers(method="POST", target="/v1/messages", body=b"", secret=SECRET)
    async with api.session.post(api.base_url + "/v1/messages", data=chunks(), headers=headers) as response:
        assert response.status == 413


async def test_headers_are_refused_before_the_body_is_read(api: Api) -> None:
    sent = 0
    answered = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(400):
            if answered.is_set():
                return
            sent += 1
            yield b"x" * 65536

    stale = signed_request_headers(
        method="POST", target="/v1/messages", body=b"", secret=SECRET, now=time.time() - 3600
    )
    async with api.session.post(api.base_url + "/v1/messages", data=chunks(), headers=stale) as response:
        answered.set()
        assert response.status == 401
        assert (await response.json())["detail"] == "timestamp is too old"
    assert sent < 400, "the whole 26 MB body was sent: the server read it before refusing the headers"


async def test_a_batch_over_the_limit_is_413(app: App, monitor: Monitor) -> None:
    settings = HttpSettings(host="127.0.0.1", port=0, max_batch_messages=3)
    async for api in start_api(app=app, handler=monitor, settings=settings):
        status, body, _ = await api.send([wire_message(i) for i in range(4)])
        assert status == 413 and body["field"] == "messages"
        status, _, _ = await api.send([wire_message(i) for i in range(3)])
        assert status == 200


# ------------------------------------------------------------------ backpressure and failures


class _Overloaded(Exception):
    """Shaped like bots.core.ingest.Overloaded: the API only looks at ``retry_after``."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("overloaded")
        self.retry_after = retry_after


class _QueueLike:
    """A handler without handle_batch that refuses after ``capacity`` messages, like a full queue."""

    def __init__(self, monitor: Monitor, *, capacity: int, error: Exception) -> None:
        self._monitor = monitor
        self._capacity = capacity
        self._error = error
        self.calls: list[tuple[str, bool]] = []

    async def handle(self, message: ChatMessage, *, may_shed: bool = True) -> HandleResult:
        self.calls.append((message.message_id, may_shed))
        if len(self.calls) > self._capacity:
            raise self._error
        return await self._monitor.handle(message)


@pytest.mark.parametrize("error", [_Overloaded(2.2), BackpressureError(2.2)])
async def test_backpressure_is_429_with_retry_after(app: App, monitor: Monitor, error: Exception) -> None:
    handler = _QueueLike(monitor, capacity=1, error=error)
    async for api in start_api(app=app, handler=handler):
        status, body, headers = await api.send([wire_message(1), wire_message(2), wire_message(3)])
        assert status == 429, body
        assert headers["Retry-After"] == "3"
        assert body["error"] == "overloaded" and body["retry_after"] == 3
        # What was handled before the refusal is reported; the channel stopped at the refusal, in order.
        assert [r["message_id"] for r in body["results"]] == ["m-1"]  # type: ignore[index]
        assert [call[0] for call in handler.calls] == ["m-1", "m-2"]
        # The API asks a queue never to shed its messages: its client can retry.
        assert all(may_shed is False for _, may_shed in handler.calls)


async def test_resending_after_429_processes_each_message_once(app: App, monitor: Monitor) -> None:
    handler = _QueueLike(monitor, capacity=1, error=_Overloaded(1))
    async for api in start_api(app=app, handler=handler):
        batch = [wire_message(1), wire_message(2)]
        status, _, _ = await api.send(batch)
        assert status == 429
        handler._capacity = 100
        status, body, _ = await api.send(batch)
        assert status == 200
        assert [r["status"] for r in body["results"]] == ["duplicate", "accepted"]  # type: ignore[index]


class _Broken:
    async def handle(self, message: ChatMessage) -> HandleResult:
        raise RuntimeError("detector is gone")


async def test_a_processing_failure_is_503_not_a_per_message_error(app: App) -> None:
    async for api in start_api(app=app, handler=_Broken()):
        status, body, headers = await api.send([wire_message(1)])
        assert status == 503 and body["error"] == "unavailable"
        assert int(headers["Retry-After"]) >= 1
        assert "detector" not in json.dumps(body)


# ------------------------------------------------------------------ cases


async def test_case_actions_through_the_api_are_reflected_in_the_store(api: Api) -> None:
    await api.send(grooming_batch())
    space = {"space_id": "tenant-1"}
    status, listing, _ = await api.request("GET", "/v1/cases", params=space)
    assert status == 200, listing
    cases = listing["cases"]
    assert isinstance(cases, list) and [c["case_number"] for c in cases] == [1]
    assert cases[0]["state"] == "open" and cases[0]["suspect_id"] == "adult"

    status, case, _ = await api.request("GET", "/v1/cases/1", params=space)
    assert status == 200, case
    alert = case["alert"]
    assert isinstance(alert, dict) and alert["suspect_id"] == "adult" and alert["evidence"]

    claim = json.dumps({"action": "claim", "actor_id": "mod-7"}).encode()
    status, case, _ = await api.request("POST", "/v1/cases/1/actions", body=claim, params=space)
    assert status == 200, case
    assert case["state"] == "claimed" and case["claimed_by"] == "mod-7"

    again = await api.request("POST", "/v1/cases/1/actions", body=claim, params=space)
    assert again[0] == 409 and again[1]["error"] == "invalid_transition"

    dismiss = json.dumps({"action": "dismiss", "actor_id": "mod-7", "reason": "siblings"}).encode()
    status, case, _ = await api.request("POST", "/v1/cases/1/actions", body=dismiss, params=space)
    assert status == 200 and case["state"] == "dismissed" and case["dismiss_reason"] == "siblings"

    record = await api.store.get_case(platform="http", space_id="tenant-1", case_number=1)
    assert record is not None and record.state is CaseState.DISMISSED and record.claimed_by == "mod-7"
    audit = case["audit"]
    assert isinstance(audit, list)
    assert [(e["action"], e["actor_id"]) for e in audit][-2:] == [("claim", "mod-7"), ("dismiss", "mod-7")]


async def test_case_errors_map_to_statuses(api: Api) -> None:
    await api.send(grooming_batch())
    status, body, _ = await api.request("GET", "/v1/cases/99", params={"space_id": "tenant-1"})
    assert status == 404 and body["error"] == "not_found"
    # Another space (or platform) never sees this space's case.
    status, _, _ = await api.request("GET", "/v1/cases/1", params={"space_id": "tenant-2"})
    assert status == 404
    status, _, _ = await api.request("GET", "/v1/cases/1", params={"space_id": "tenant-1", "platform": "x"})
    assert status == 404
    status, body, _ = await api.request("GET", "/v1/cases/abc", params={"space_id": "tenant-1"})
    assert status == 400 and body["field"] == "case_number"
    status, body, _ = await api.request("GET", "/v1/cases/1")
    assert status == 400 and body["field"] == "space_id"
    note = json.dumps({"action": "note", "actor_id": "mod-1"}).encode()
    status, body, _ = await api.request(
        "POST", "/v1/cases/1/actions", body=note, params={"space_id": "tenant-1"}
    )
    assert status == 400 and body["error"] == "invalid_input"
    bad = json.dumps({"action": "release_hold", "actor_id": "mod-1"}).encode()
    status, body, _ = await api.request(
        "POST", "/v1/cases/1/actions", body=bad, params={"space_id": "tenant-1"}
    )
    assert status == 400 and body["field"] == "action"
    status, body, _ = await api.request("GET", "/v1/cases", params={"space_id": "tenant-1", "limit": "1000"})
    assert status == 400 and body["field"] == "limit"


async def test_a_case_action_enqueues_a_re_render_of_the_alert(api: Api) -> None:
    await api.send(grooming_batch())
    pending = await api.store.pending_delivery_count()
    confirm = json.dumps({"action": "confirm", "actor_id": "mod-1"}).encode()
    status, _, _ = await api.request(
        "POST", "/v1/cases/1/actions", body=confirm, params={"space_id": "tenant-1"}
    )
    assert status == 200
    assert await api.store.pending_delivery_count() >= pending


# ------------------------------------------------------------------ pairs

PAIR = {"space_id": "tenant-1", "first": "kid", "second": "adult"}
SVG_NS = "{http://www.w3.org/2000/svg}"


async def test_a_pair_that_alerted_names_its_case_signals_and_history(api: Api) -> None:
    await api.send(grooming_batch())

    status, pair, headers = await api.request("GET", "/v1/pairs", params=PAIR)

    assert status == 200, pair
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert pair["platform"] == "http" and pair["space_id"] == "tenant-1"
    assert pair["user_ids"] == ["adult", "kid"] and pair["known"] is True
    assert pair["suspect_id"] == "adult" and pair["open_case"] == 1 and pair["outlook"] is None
    assert pair["message_count"] == 3 and pair["channel_ids"] == ["dm-1"]
    assert pair["first_seen"] == "2026-03-01T18:00:00+00:00"
    assert pair["last_seen"] == "2026-03-01T18:00:02+00:00"
    assert isinstance(pair["risk"], float) and pair["risk"] >= pair["threshold"] == 0.7
    assert pair["signals"] == [{"name": "secrecy", "label": "asks to keep the conversation secret"}]
    history = pair["history"]
    assert isinstance(history, list) and history
    assert history[0] == {"at": "2026-03-01T18:00:00+00:00", "risk": 0.5, "suspect_id": "adult"}
    assert history[-1]["risk"] == pair["risk"]
    # Ids and scores only: the conversation itself stays in the case.
    assert "groom" not in json.dumps(pair)


async def test_a_pair_without_an_alert_yet_says_why(api: Api) -> None:
    await api.send([wire_message(0, text="secret groom secret groom")])

    status, pair, _ = await api.request("GET", "/v1/pairs", params=PAIR)

    assert status == 200, pair
    assert pair["known"] is True and pair["open_case"] is None and pair["risk"] == 0.5
    outlook = str(pair["outlook"])
    assert "below the alert threshold (0.70)" in outlook and "2 messages in a row" in outlook
    assert [s["name"] for s in pair["signals"]] == ["secrecy"]  # type: ignore[union-attr]


async def test_an_unknown_pair_is_answered_not_404(api: Api) -> None:
    status, pair, _ = await api.request("GET", "/v1/pairs", params=PAIR)

    assert status == 200, pair
    assert pair["known"] is False and pair["user_ids"] == ["adult", "kid"]
    assert (pair["risk"], pair["suspect_id"], pair["open_case"], pair["outlook"]) == (None, None, None, None)
    assert (pair["message_count"], pair["first_seen"], pair["last_seen"]) == (0, None, None)
    assert (pair["signals"], pair["history"], pair["channel_ids"]) == ([], [], [])
    assert pair["threshold"] == 0.7


@pytest.mark.parametrize("path", ["/v1/pairs", "/v1/pairs/chart.svg"])
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"space_id": "tenant-1", "second": "adult"}, "first"),
        ({"space_id": "tenant-1", "first": "kid"}, "second"),
        ({"first": "kid", "second": "adult"}, "space_id"),
        ({**PAIR, "first": "   "}, "first"),
        ({**PAIR, "second": "adult\u202e"}, "second"),
        ({**PAIR, "first": "adult"}, "second"),
        ({**PAIR, "platform": "discord"}, "platform"),
        ({**PAIR, "actor_id": "x" * 300}, "actor_id"),
    ],
    ids=[
        "no-first",
        "no-second",
        "no-space",
        "blank",
        "bidi",
        "same-person",
        "closed-platform",
        "long-actor",
    ],
)
async def test_bad_pair_requests_are_400_naming_the_field(
    api: Api, path: str, params: dict[str, str], field: str
) -> None:
    status, body, _ = await api.request("GET", path, params=params)
    assert status == 400, body
    assert body["error"] == "bad_request" and body["field"] == field


@pytest.mark.parametrize("path", ["/v1/pairs", "/v1/pairs/chart.svg"])
async def test_unsigned_pair_requests_are_refused(api: Api, path: str) -> None:
    await api.send(grooming_batch())
    status, body, _ = await api.request("GET", path, params=PAIR, sign=False)
    assert status == 401 and body["error"] == "unauthorized"
    status, body, _ = await api.request("GET", path, params=PAIR, secret="another-secret-0123456789")
    assert status == 401


async def test_the_pair_chart_is_an_svg_that_runs_and_loads_nothing(api: Api) -> None:
    await api.send(grooming_batch())
    _, pair, _ = await api.request("GET", "/v1/pairs", params=PAIR)

    status, raw, headers = await api.fetch("GET", "/v1/pairs/chart.svg", params=PAIR)

    assert status == 200, raw
    assert headers["Content-Type"].startswith("image/svg+xml")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    root = ElementTree.fromstring(raw)
    assert root.tag == f"{SVG_NS}svg"
    assert len(list(root.iter(f"{SVG_NS}circle"))) == len(pair["history"])  # type: ignore[arg-type]
    shown = [t.text for t in root.iter(f"{SVG_NS}text")]
    assert "alert threshold 0.70" in shown and "Risk: adult and kid" in shown
    assert not list(root.iter(f"{SVG_NS}script"))


async def test_an_unknown_pairs_chart_says_no_risk_is_recorded(api: Api) -> None:
    status, raw, headers = await api.fetch("GET", "/v1/pairs/chart.svg", params=PAIR)
    assert status == 200 and headers["Content-Type"].startswith("image/svg+xml")
    root = ElementTree.fromstring(raw)
    assert "no risk recorded yet" in [t.text for t in root.iter(f"{SVG_NS}text")]


# ------------------------------------------------------------------ unauthenticated endpoints


async def test_healthz_needs_no_signature(api: Api) -> None:
    status, body, _ = await api.request("GET", "/healthz", sign=False)
    assert status == 200 and body == {"status": "ok"}


async def test_openapi_is_served_and_identical_to_the_committed_document(api: Api) -> None:
    async with api.session.get(api.base_url + "/v1/openapi.json") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        served = await response.text()
    assert json.loads(served) == openapi_document()
    committed = (REPO / "docs" / "openapi.json").read_text(encoding="utf-8")
    regenerate = (
        "python -c \"import bots.http.schema as s; print(s.openapi_json(), end='')\" > docs/openapi.json"
    )
    assert committed == openapi_json(), f"docs/openapi.json is stale; regenerate it: {regenerate}"


async def test_unknown_paths_and_methods_answer_json(api: Api) -> None:
    status, body, _ = await api.request("GET", "/nope", sign=False)
    assert status == 404 and body["error"] == "not_found"
    status, body, headers = await api.request("DELETE", "/v1/messages", sign=False)
    assert status == 405 and "POST" in headers.get("Allow", "")


async def test_concurrent_batches_are_all_answered(api: Api) -> None:
    batches = [
        [
            wire_message(i * 10 + j, channel_id=f"dm-{i}", author_id=f"a{i}", recipient_ids=[f"b{i}"])
            for j in range(5)
        ]
        for i in range(6)
    ]
    answers = await asyncio.gather(*(api.send(batch) for batch in batches))
    assert all(status == 200 for status, _, _ in answers)
    assert sum(len(body["results"]) for _, body, _ in answers) == 30  # type: ignore[arg-type]


async def test_a_closed_store_is_503_not_500(api: Api) -> None:
    await api.store.close()
    status, body, _ = await api.request("GET", "/healthz", sign=False)
    assert status == 503 and body == {"status": "unavailable"}
    status, body, headers = await api.request("GET", "/v1/cases", params={"space_id": "tenant-1"})
    assert status == 503 and body["error"] == "unavailable" and "Retry-After" in headers
    status, body, _ = await api.send([wire_message(1)])
    assert status == 503 and body["error"] == "unavailable"


# U+2028 and NEL break a log line in two; bidi overrides and zero-width characters hide or reorder text in
# audit trails and evidence packs; a tag character is a format character outside the BMP.
FORGING_CHARACTERS = ["\u2028", "\u2029", "\x85", "\u202e", "\u2066", "\u200b", "\ufeff", "\U000e0041", "\n"]


@pytest.mark.parametrize("character", FORGING_CHARACTERS, ids=[f"U+{ord(c):04X}" for c in FORGING_CHARACTERS])
async def test_ids_that_could_forge_a_log_line_or_hide_text_are_refused(api: Api, character: str) -> None:
    await api.send(grooming_batch())
    status, body, _ = await api.send([wire_message(1, author_id=f"kid{character}forged")])
    assert status == 200, body
    results = body["results"]
    assert isinstance(results, list) and results[0]["status"] == "error"
    assert "messages[0].author_id" in results[0]["reason"]
    action = json.dumps({"action": "claim", "actor_id": f"mod-7{character}INFO forged line"}).encode()
    status, body, _ = await api.request(
        "POST", "/v1/cases/1/actions", body=action, params={"space_id": "tenant-1"}
    )
    assert status == 400 and body["field"] == "actor_id"
    status, body, _ = await api.request("GET", "/v1/cases", params={"space_id": f"tenant-1{character}"})
    assert status == 400 and body["field"] == "space_id"
    record = await api.store.get_case(platform="http", space_id="tenant-1", case_number=1)
    assert record is not None and record.claimed_by is None


@pytest.mark.parametrize("platform", ["discord", "slack"])
async def test_the_http_secret_cannot_speak_for_discord_or_slack_unless_configured(
    api: Api, platform: str
) -> None:
    # The report's reproduction: a made-up Discord conversation raised a case Vigil would post in the guild.
    batch = [{**message, "platform": platform} for message in grooming_batch()]
    status, body, _ = await api.send(batch)
    assert status == 200, body
    results = body["results"]
    assert isinstance(results, list) and {r["status"] for r in results} == {"error"}
    assert all(f"messages[{r['index']}].platform" in r["reason"] for r in results)
    assert await api.store.get_case(platform=platform, space_id="tenant-1", case_number=1) is None
    status, body, _ = await api.request(
        "GET", "/v1/cases", params={"space_id": "tenant-1", "platform": platform}
    )
    assert status == 400 and body["field"] == "platform"


def test_the_adapter_platforms_are_the_adapters_own_names() -> None:
    assert {DISCORD, SLACK} == ADAPTER_PLATFORMS


async def test_platforms_listed_in_the_settings_are_open(app: App, monitor: Monitor) -> None:
    settings = HttpSettings(host="127.0.0.1", port=0, platforms=("http", "forum"))
    async for api in start_api(app=app, handler=monitor, settings=settings):
        batch = [{**message, "platform": "forum"} for message in grooming_batch()]
        status, body, _ = await api.send(batch)
        assert status == 200 and {r["status"] for r in body["results"]} == {"accepted"}  # type: ignore[union-attr]
        status, listing, _ = await api.request(
            "GET", "/v1/cases", params={"space_id": "tenant-1", "platform": "forum"}
        )
        assert status == 200 and [c["case_number"] for c in listing["cases"]] == [1]  # type: ignore[union-attr]
        status, body, _ = await api.send([{**wire_message(1), "platform": "chatapp"}])
        assert body["results"][0]["status"] == "error"  # type: ignore[index]


# ------------------------------------------------------------------ v2 signatures: replays


async def test_a_captured_request_cannot_be_replayed_anywhere(api: Api) -> None:
    await api.send(grooming_batch())
    dismiss = json.dumps({"action": "dismiss", "actor_id": "mod-7", "reason": "siblings"}).encode()
    target = "/v1/cases/1/actions?space_id=tenant-1"
    captured = signed_request_headers(method="POST", target=target, body=dismiss, secret=SECRET)

    async def post(to: str, method: str = "POST") -> tuple[int, dict[str, object]]:
        async with api.session.request(method, api.base_url + to, data=dismiss, headers=captured) as response:
            return response.status, await response.json()

    # The report's reproduction: the same signed dismiss sent to another space, case or method.
    for elsewhere in ("/v1/cases/1/actions?space_id=tenant-2", "/v1/cases/2/actions?space_id=tenant-1"):
        status, body = await post(elsewhere)
        assert (status, body["detail"]) == (401, "signature does not match"), elsewhere
    status, body = await post(target)
    assert status == 200 and body["state"] == "dismissed"
    # And to the very same place: the nonce was used.
    status, body = await post(target)
    assert status == 401 and "nonce was already used" in str(body["detail"])


async def test_every_request_needs_a_well_formed_nonce(api: Api) -> None:
    body = json.dumps({"messages": [wire_message(1)]}).encode()
    headers = signed_request_headers(
        method="POST", target="/v1/messages", body=body, secret=SECRET, nonce="x" * 16
    )
    for nonce in (None, "short", "has spaces in it!!", "n" * 129):
        sent = {k: v for k, v in headers.items() if k != "X-Vigil-Nonce"}
        if nonce is not None:
            sent["X-Vigil-Nonce"] = nonce
        async with api.session.post(api.base_url + "/v1/messages", data=body, headers=sent) as response:
            assert response.status == 401 and "nonce" in (await response.json())["detail"]


async def test_v1_signatures_still_work_until_turned_off(
    app: App, monitor: Monitor, caplog: pytest.LogCaptureFixture
) -> None:
    async for api in start_api(app=app, handler=monitor):
        for index in range(2):
            status, body, _ = await api.send([wire_message(index)], scheme="v1")
            assert status == 200, body
        warnings = [r for r in caplog.records if "signs with v1" in r.getMessage()]
        assert len(warnings) == 1, "one deprecation warning per process, not one per request"
        # A v1 signature is good once too: the same bytes in the same second are a replay.
        body_bytes = json.dumps({"messages": [wire_message(5)]}).encode()
        headers = signed_headers(body_bytes, secret=SECRET)
        statuses = []
        for _ in range(2):
            async with api.session.post(api.base_url + "/v1/messages", data=body_bytes, headers=headers) as r:
                statuses.append(r.status)
        assert statuses == [200, 401]
    settings = HttpSettings(host="127.0.0.1", port=0, accept_v1_signatures=False)
    async for api in start_api(app=app, handler=monitor, settings=settings):
        status, body, _ = await api.send([wire_message(9)], scheme="v1")
        assert status == 401 and "v2=" in str(body["detail"])
        status, body, _ = await api.send([wire_message(9)])
        assert status == 200, body


# ------------------------------------------------------------------ logs


async def test_access_lines_carry_the_path_but_not_the_query(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await api.request(
        "GET", "/v1/cases", params={"space_id": "tenant-secret-space", "actor_id": "mod-hidden"}
    )
    access = [r.getMessage() for r in caplog.records if r.name == "vigil.bots.http.access"]
    assert access and access[-1].startswith("GET /v1/cases 200 ")
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "tenant-secret-space" not in logged and "mod-hidden" not in logged


async def test_a_request_aiohttp_cannot_parse_is_logged_without_its_bytes(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = int(api.base_url.rsplit(":", 1)[1])
    for raw in (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Text: secret groom \x01text\r\n\r\n",
        b"GET /v1/cases HTTP/1.1\r\nHost: x\r\nContent-Length: secret groom text\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz secret groom text\r\n",
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=5)
        # aiohttp echoes the bad bytes to their sender (who has them anyway), never to a log.
        assert answer.split(b" ", 2)[1] == b"400", answer[:40]
        writer.close()
    server_lines = [r for r in caplog.records if r.name == "vigil.bots.http.aiohttp"]
    assert server_lines, "aiohttp reported the bad requests"
    for record in caplog.records:
        assert "secret groom" not in record.getMessage()
        assert record.exc_info is None or "secret groom" not in str(record.exc_info[1])


async def test_a_body_trickled_in_too_slowly_is_refused(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vigil.bots.http.server._BODY_TIMEOUT_S", 0.3)

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" "
            await asyncio.sleep(0.1)

    headers = signed_request_headers(method="POST", target="/v1/messages", body=b"", secret=SECRET)
    started = time.monotonic()
    async with api.session.post(api.base_url + "/v1/messages", data=trickle(), headers=headers) as response:
        assert response.status == 408
        assert (await response.json())["error"] == "request_timeout"
    assert time.monotonic() - started < 1.9, "the server waited for the whole trickle"


async def test_slow_clients_cannot_hold_every_connection(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vigil.bots.http.server._MAX_IN_FLIGHT", 2)
    release = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"{"
        await release.wait()
        yield b"}"

    async def hold() -> int:
        headers = signed_request_headers(method="POST", target="/v1/messages", body=b"", secret=SECRET)
        async with api.session.post(api.base_url + "/v1/messages", data=slow(), headers=headers) as response:
            return response.status

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    await asyncio.sleep(0.3)
    status, body, headers = await api.send([wire_message(1)])
    assert status == 503 and body["error"] == "overloaded" and headers["Retry-After"] == "1"
    status, _, _ = await api.request("GET", "/healthz")
    assert status == 200, "health checks are never capped"
    release.set()
    assert await asyncio.gather(*holders) == [401, 401]  # their empty-body signatures do not match
    status, body, _ = await api.send([wire_message(1)])
    assert status == 200, body


async def test_fuzzed_bodies_and_ids_never_fail_the_server(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """FUZZ_CASES broken, correctly signed requests (message batches, case actions): never a 5xx but 503's
    retry, never an ERROR traceback, and the API still answers afterwards."""
    await api.send(grooming_batch())
    templates: list[Any] = [
        {"messages": [wire_message(1), wire_message(2, author_id="kid", recipient_ids=["adult"])]},
        {"messages": [wire_message(3, reply_to_message_id="m-1", mentioned_user_ids=["kid"])]},
        {"action": "dismiss", "actor_id": "mod-7", "reason": "siblings"},
        {"action": "snooze", "actor_id": "mod-7", "snooze_for_s": 3600},
    ]
    statuses: Counter[int] = Counter()
    for number, case in cases(templates, seed=14):
        body = json.dumps(case).encode()
        is_action = isinstance(case, dict) and "action" in case
        path = "/v1/cases/1/actions" if is_action else "/v1/messages"
        status, answer, _ = await api.request(
            "POST", path, body=body, params={"space_id": "tenant-1"} if is_action else None
        )
        statuses[status] += 1
        assert status < 500 or status == 503, (number, status, answer)
    # The cases reached the handlers: many accepted, many refused for a named field.
    assert statuses[200] > FUZZ_CASES // 5 and statuses[400] > FUZZ_CASES // 5, statuses
    tracebacks = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert not tracebacks, [r.getMessage() for r in tracebacks[:3]]
    status, _, _ = await api.send([wire_message(99)])
    assert status == 200
