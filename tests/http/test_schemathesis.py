"""Property-based API testing: schemathesis generates requests from the served OpenAPI document.

Valid (positive) and invalid (negative) requests for every operation go to the real server (real pipeline,
real CaseService) running in its own thread; most are signed correctly so they reach the handlers, the rest
carry whatever headers schemathesis made up. Whatever arrives, the server must never answer 5xx, and every
answer must have a status code, content type and body the document declares.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.http.conftest import SECRET, make_app, wire_message
from vigil.bots.core.models import ChatMessage
from vigil.bots.http.schema import openapi_document, parse_message
from vigil.bots.http.server import HttpApi
from vigil.bots.http.signing import signed_request_headers
from vigil.config.settings import HttpSettings, Secret
from vigil.detector.onnx_detector import OnnxDetector
from vigil.storage.sqlite import SqliteStore

SCHEMA = schemathesis.openapi.from_dict(openapi_document())
OPERATIONS = [
    ("/v1/messages", "POST"),
    ("/v1/cases", "GET"),
    ("/v1/cases/{case_number}", "GET"),
    ("/v1/cases/{case_number}/actions", "POST"),
    ("/v1/pairs", "GET"),
    ("/v1/pairs/chart.svg", "GET"),
    ("/healthz", "GET"),
    ("/v1/openapi.json", "GET"),
]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _serve(
    model_dir: Path, database: Path, ports: queue.Queue[int | BaseException]
) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
    """Start the real server on its own event loop in this thread; returns the loop and its stop event."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        detector = await OnnxDetector.load(model_dir, intra_op_threads=1, max_batch=32)
        store = SqliteStore(database)
        await store.open()
        app = make_app(store, detector)
        monitor = app.monitor
        api = HttpApi(
            settings=HttpSettings(host="127.0.0.1", port=0, max_batch_messages=50, max_body_bytes=200_000),
            secret=Secret(SECRET),
            handler=monitor,
            cases=app.cases,
            store=store,
            moderation=app.moderator_service,
            signal_labels=app.signal_labels,
        )
        try:
            ports.put(await api.start())
            # A case to act on, so that positive case requests reach more than "not found" (and a known pair).
            for index in range(3):
                message = wire_message(index, text="secret groom secret groom", space_id="0")
                await monitor.handle_batch([_parsed(message)])
            await stop.wait()
        except BaseException as error:
            ports.put(error)
            raise
        finally:
            await api.aclose()
            await store.close()
            await detector.aclose()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())
        loop.close()

    threading.Thread(target=run, name="vigil-http-under-test", daemon=True).start()
    return loop, stop


def _parsed(raw: dict[str, object]) -> ChatMessage:
    message = parse_message(raw, index=0)
    assert isinstance(message, ChatMessage)
    return message


@pytest.fixture(scope="module")
def live_server(keyword_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ports: queue.Queue[int | BaseException] = queue.Queue()
    loop, stop = _serve(keyword_model_dir, tmp_path_factory.mktemp("fuzz") / "vigil.sqlite3", ports)
    started = ports.get(timeout=60)
    if isinstance(started, BaseException):
        raise started
    try:
        yield f"http://127.0.0.1:{started}"
    finally:
        loop.call_soon_threadsafe(stop.set)


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_no_request_makes_the_server_fail(live_server: str, path: str, method: str) -> None:
    operation = SCHEMA[path][method]
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    if "{case_number}" in path:
        # Case 1 of space "0" exists: aim a share of valid requests at it, so they get past "not found".
        strategies.append(
            operation.as_strategy(
                GenerationMode.POSITIVE, path_parameters={"case_number": 1}, query={"space_id": "0"}
            )
        )
    if path.startswith("/v1/pairs"):
        # The pair of that case: a share of valid requests gets its history, signals and chart.
        strategies.append(
            operation.as_strategy(
                GenerationMode.POSITIVE, query={"space_id": "0", "first": "adult", "second": "kid"}
            )
        )
    cases = st.one_of(strategies)

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=cases, sign=st.sampled_from([True, True, True, False]))
    def check(case: schemathesis.Case, sign: bool) -> None:
        kwargs = case.as_transport_kwargs(base_url=live_server)
        headers = {str(k): str(v) for k, v in kwargs.get("headers", {}).items()}
        body = b""
        if "json" in kwargs:
            body = json.dumps(kwargs["json"]).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif kwargs.get("data") is not None:
            data = kwargs["data"]
            body = data if isinstance(data, bytes) else str(data).encode("utf-8")
        # The query is encoded here, as signed: requests sends an already-encoded query unchanged.
        params = kwargs.get("params") or {}
        path = urllib.parse.urlsplit(kwargs["url"]).path
        target = path + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
        if sign:
            headers.update(
                signed_request_headers(method=kwargs["method"], target=target, body=body, secret=SECRET)
            )
        response = requests.request(
            kwargs["method"], live_server + target, headers=headers, data=body, timeout=30
        )
        case.validate_response(response, checks=CHECKS)

    check()
