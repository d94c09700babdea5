"""The platform-side client and the signing scheme."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.http.conftest import SECRET, START, Api
from vigil.bots.core.models import ChatMessage
from vigil.bots.http.client import VigilApiError, VigilClient, message_to_dict, verify_webhook
from vigil.bots.http.schema import parse_message
from vigil.bots.http.signing import Verdict, check_signature, compute_signature, signed_headers


def dm(index: int, *, author: str = "adult", other: str = "kid", text: str = "hello there") -> ChatMessage:
    return ChatMessage(
        platform="http",
        space_id="tenant-1",
        channel_id="dm-1",
        message_id=f"c-{index}",
        author_id=author,
        text=text,
        timestamp=START,
        is_dm=True,
        recipient_ids=(other,),
        thread_id="t-1" if index % 2 else None,
    )


def test_the_signature_matches_openssl() -> None:
    # printf 'v1:1700000000:{}' | openssl dgst -sha256 -hmac test-secret-0123456789abcdef
    expected = "v1=2ca202a9b72ab6d1590b7c2c580309230dafa48081d89e7c1a02fc0c0ff273bb"
    assert compute_signature(b"{}", timestamp="1700000000", secret=SECRET) == expected


def test_verification_outcomes() -> None:
    body = b'{"a":1}'
    now = 1_700_000_000.0
    headers = signed_headers(body, secret=SECRET, now=now)
    ts, sig = headers["X-Vigil-Timestamp"], headers["X-Vigil-Signature"]

    def check(**overrides: object) -> Verdict:
        values: dict[str, object] = {"timestamp": ts, "signature": sig, "secret": SECRET, "now": now}
        values.update(overrides)
        return check_signature(body, **values)  # type: ignore[arg-type]

    assert check() is Verdict.OK
    assert check(signature=sig.upper().replace("V1=", "v1=")) is Verdict.OK
    assert check(now=now + 301) is Verdict.STALE
    assert check(now=now - 301) is Verdict.FUTURE
    assert check(timestamp=None) is Verdict.MISSING
    assert check(timestamp="-5") is Verdict.MALFORMED_TIMESTAMP
    assert check(timestamp="1" * 40) is Verdict.MALFORMED_TIMESTAMP
    assert check(signature="v2=" + "0" * 64) is Verdict.MALFORMED_SIGNATURE
    assert check(signature="v1=zz") is Verdict.MALFORMED_SIGNATURE
    assert check(signature="v1=" + "é" * 64) is Verdict.MALFORMED_SIGNATURE
    assert check(secret="another") is Verdict.MISMATCH
    assert check_signature(b"{}", timestamp=ts, signature=sig, secret=SECRET, now=now) is Verdict.MISMATCH
    aware = datetime.fromtimestamp(now, tz=UTC)
    assert verify_webhook(body, timestamp=ts, signature=sig, secret=SECRET, now=aware)
    assert not verify_webhook(body, timestamp=ts, signature=sig, secret=SECRET, now=now + 10, tolerance_s=5)


def test_message_to_dict_round_trips_through_the_parser() -> None:
    message = dm(1)
    parsed = parse_message(message_to_dict(message), index=0)
    assert parsed == message


async def test_the_client_sends_and_reads_cases(api: Api) -> None:
    async with VigilClient(api.base_url, SECRET) as client:
        results = await client.send_messages([dm(1), dm(2, author="kid", other="adult")])
        assert [r["status"] for r in results] == ["accepted", "accepted"]
        results = await client.send_messages([dm(i, text="secret groom secret groom") for i in range(3, 6)])
        assert any(r.get("alerts") == [1] for r in results)
        cases = await client.list_cases(space_id="tenant-1")
        assert [c["case_number"] for c in cases] == [1]
        case = await client.get_case(1, space_id="tenant-1")
        assert case["state"] == "open"
        pair = await client.get_pair(space_id="tenant-1", first="adult", second="kid")
        assert pair["known"] is True and pair["open_case"] == 1 and pair["suspect_id"] == "adult"
        acted = await client.act(1, space_id="tenant-1", action="note", actor_id="mod-1", reason="watching")
        assert acted["audit"]
        with pytest.raises(VigilApiError) as raised:
            await client.get_case(42, space_id="tenant-1")
        assert raised.value.status == 404


async def test_the_client_with_a_wrong_secret_gets_401(api: Api) -> None:
    async with VigilClient(api.base_url, "not-the-right-secret-000") as client:
        with pytest.raises(VigilApiError) as raised:
            await client.send_messages([dm(1)])
    assert raised.value.status == 401


def test_the_signing_clock_is_unix_seconds() -> None:
    headers = signed_headers(b"", secret=SECRET)
    assert abs(int(headers["X-Vigil-Timestamp"]) - time.time()) < 5
