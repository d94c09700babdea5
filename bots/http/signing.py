"""HMAC-SHA256 signatures: requests into Vigil (v2, and the deprecated v1) and webhooks out of it (v1).

**v2 (requests to the HTTP API).** The signed bytes are, joined by newlines (``\\n``)::

    v2
    <timestamp>                   the X-Vigil-Timestamp header: Unix time in whole seconds
    <nonce>                       the X-Vigil-Nonce header: 16-128 of A-Z a-z 0-9 _ -, new for each request
    <METHOD>                      upper case
    <path and query, as sent>     the request target exactly as on the wire, e.g. /v1/cases?space_id=t1
    <body>                        the raw body (empty for GET), after the last newline

and ``X-Vigil-Signature`` carries ``v2=<lowercase hex HMAC-SHA256>``. A request whose signature is right is
still refused when its timestamp is further than the tolerance from the receiver's clock, or when its nonce
was already used within that window (the server remembers them): a captured request cannot be replayed,
neither to the same place nor to another method, path, case or space.

**v1 (webhooks; requests until the next release).** The signed string is ``"v1:" + timestamp + ":" + body``;
the header carries ``v1=<hex>``. It does not cover the method, path or query (see docs/http-api.md).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from datetime import datetime

TIMESTAMP_HEADER = "X-Vigil-Timestamp"
SIGNATURE_HEADER = "X-Vigil-Signature"
NONCE_HEADER = "X-Vigil-Nonce"
SCHEME = "v1"
REQUEST_SCHEME = "v2"
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")
DEFAULT_TOLERANCE_S = 300
# Fewer characters than this is not a secret worth the name.
MIN_SECRET_CHARS = 16
# Unix time fits in 10 digits until 2286; more digits is garbage, not a timestamp.
_MAX_TIMESTAMP_DIGITS = 12


class Verdict(enum.StrEnum):
    """Why a signature was (not) accepted. The reason is safe to return to the caller."""

    OK = "ok"
    MISSING = "missing signature or timestamp header"
    MALFORMED_TIMESTAMP = "timestamp header is not Unix time in whole seconds"
    STALE = "timestamp is too old"
    FUTURE = "timestamp is too far in the future"
    MALFORMED_SIGNATURE = "signature header is not 'v1=<hex>'"
    MALFORMED_REQUEST_SIGNATURE = "signature header is not 'v2=<hex>' (or the deprecated 'v1=<hex>')"
    MALFORMED_NONCE = "nonce header is missing or not 16 to 128 characters of A-Z a-z 0-9 _ -"
    MISMATCH = "signature does not match"
    REPLAYED = "this nonce was already used: sign every request with a new one"


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def compute_signature(body: bytes, *, timestamp: str, secret: str | bytes) -> str:
    """The ``X-Vigil-Signature`` header value for ``body`` sent at ``timestamp``."""
    message = f"{SCHEME}:{timestamp}:".encode("ascii") + body
    return f"{SCHEME}=" + hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def _unix_now(now: datetime | float | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now.timestamp()
    return float(now)


def signed_headers(
    body: bytes, *, secret: str | bytes, now: datetime | float | None = None
) -> dict[str, str]:
    """Both headers for a request (or webhook) carrying ``body``, signed at ``now`` (default: the clock)."""
    timestamp = str(int(_unix_now(now)))
    return {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: compute_signature(body, timestamp=timestamp, secret=secret),
    }


def check_signature(
    body: bytes,
    *,
    timestamp: str | None,
    signature: str | None,
    secret: str | bytes,
    now: datetime | float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> Verdict:
    """Verify a signed body; the comparison is constant-time. Never raises for bad input."""
    fresh = _check_fresh(timestamp, signature, now=now, tolerance_s=tolerance_s)
    if fresh is not Verdict.OK:
        return fresh
    assert timestamp is not None and signature is not None  # _check_fresh said so
    digest = _hex_digest(signature, scheme=SCHEME)
    if digest is None:
        return Verdict.MALFORMED_SIGNATURE
    expected = compute_signature(body, timestamp=timestamp, secret=secret)
    if hmac.compare_digest(expected.encode("ascii"), f"{SCHEME}={digest}".encode("ascii")):
        return Verdict.OK
    return Verdict.MISMATCH


# ---------------------------------------------------------------------------------------------- v2 requests


def compute_request_signature(
    *, method: str, target: str, body: bytes, timestamp: str, nonce: str, secret: str | bytes
) -> str:
    """The v2 ``X-Vigil-Signature`` value of a request; ``target`` is its path and query as sent."""
    head = f"{REQUEST_SCHEME}\n{timestamp}\n{nonce}\n{method.upper()}\n{target}\n".encode()
    return f"{REQUEST_SCHEME}=" + hmac.new(_key(secret), head + body, hashlib.sha256).hexdigest()


def signed_request_headers(
    *,
    method: str,
    target: str,
    body: bytes,
    secret: str | bytes,
    now: datetime | float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The three v2 headers for a request (a fresh nonce unless one is given)."""
    timestamp = str(int(_unix_now(now)))
    nonce = nonce or secrets.token_urlsafe(18)
    return {
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: compute_request_signature(
            method=method, target=target, body=body, timestamp=timestamp, nonce=nonce, secret=secret
        ),
    }


def request_scheme(signature: str | None) -> str | None:
    """``"v2"`` or ``"v1"`` by the signature header's prefix; None when it has neither."""
    scheme, separator, _ = (signature or "").strip().partition("=")
    return scheme if separator and scheme in (REQUEST_SCHEME, SCHEME) else None


def check_request_headers(
    *,
    timestamp: str | None,
    signature: str | None,
    nonce: str | None,
    now: datetime | float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> Verdict:
    """What can be refused before the body is read: missing or malformed headers, a stale timestamp."""
    fresh = _check_fresh(timestamp, signature, now=now, tolerance_s=tolerance_s)
    if fresh is not Verdict.OK:
        return fresh
    scheme = request_scheme(signature)
    if scheme is None:
        return Verdict.MALFORMED_REQUEST_SIGNATURE
    if scheme == REQUEST_SCHEME and (nonce is None or _NONCE.fullmatch(nonce) is None):
        return Verdict.MALFORMED_NONCE
    return Verdict.OK


def check_request_signature(
    *,
    method: str,
    target: str,
    body: bytes,
    timestamp: str,
    signature: str,
    nonce: str,
    secret: str | bytes,
) -> Verdict:
    """The v2 HMAC, in constant time; call after ``check_request_headers`` said OK."""
    digest = _hex_digest(signature, scheme=REQUEST_SCHEME)
    if digest is None:
        return Verdict.MALFORMED_REQUEST_SIGNATURE
    expected = compute_request_signature(
        method=method, target=target, body=body, timestamp=timestamp, nonce=nonce, secret=secret
    )
    if hmac.compare_digest(expected.encode("ascii"), f"{REQUEST_SCHEME}={digest}".encode("ascii")):
        return Verdict.OK
    return Verdict.MISMATCH


class ReplayCache:
    """Nonces (v2) or signatures (v1) seen within the tolerance window; bounded, oldest dropped first."""

    def __init__(self, *, window_s: float, max_entries: int = 100_000) -> None:
        self._window_s = window_s
        self._max_entries = max_entries
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def first_use(self, key: str, *, now: float) -> bool:
        """Record ``key``; False when it was already used and has not expired."""
        while self._expiry:
            oldest, expires = next(iter(self._expiry.items()))
            if expires > now and len(self._expiry) < self._max_entries:
                break
            del self._expiry[oldest]
        known = self._expiry.get(key)
        if known is not None and known > now:
            return False
        # Twice the window: a timestamp may be up to the tolerance in the future as well as in the past.
        self._expiry[key] = now + 2 * self._window_s
        self._expiry.move_to_end(key)
        return True


def _check_fresh(
    timestamp: str | None, signature: str | None, *, now: datetime | float | None, tolerance_s: float
) -> Verdict:
    """Both headers present and the timestamp within the tolerance, either way."""
    if not timestamp or not signature:
        return Verdict.MISSING
    return _check_timestamp(timestamp, now=now, tolerance_s=tolerance_s)


def _check_timestamp(timestamp: str, *, now: datetime | float | None, tolerance_s: float) -> Verdict:
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
        return Verdict.MALFORMED_TIMESTAMP
    age = _unix_now(now) - int(timestamp)
    if age > tolerance_s:
        return Verdict.STALE
    if age < -tolerance_s:
        return Verdict.FUTURE
    return Verdict.OK


def _hex_digest(signature: str, *, scheme: str) -> str | None:
    found, _, digest = signature.strip().partition("=")
    if found != scheme or len(digest) != 64 or not digest.isascii():
        return None
    return digest.lower()
