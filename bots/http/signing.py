"""HMAC-SHA256 request and webhook signatures, one scheme both ways.

The signed string is ``"v1:" + timestamp + ":" + body`` where ``timestamp`` is the value of the
``X-Vigil-Timestamp`` header (Unix time in whole seconds, as decimal digits) and ``body`` the raw request body
(empty for GET). The ``X-Vigil-Signature`` header carries ``v1=<lowercase hex HMAC-SHA256>``. A timestamp
further than the tolerance from the receiver's clock (either way) is rejected, which bounds replays.

The signature covers the timestamp and body only, not the method, path or query string (see docs/http-api.md).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import time
from datetime import datetime

TIMESTAMP_HEADER = "X-Vigil-Timestamp"
SIGNATURE_HEADER = "X-Vigil-Signature"
SCHEME = "v1"
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
    MISMATCH = "signature does not match"


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
    if not timestamp or not signature:
        return Verdict.MISSING
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
        return Verdict.MALFORMED_TIMESTAMP
    age = _unix_now(now) - int(timestamp)
    if age > tolerance_s:
        return Verdict.STALE
    if age < -tolerance_s:
        return Verdict.FUTURE
    scheme, _, digest = signature.strip().partition("=")
    if scheme != SCHEME or len(digest) != 64 or not digest.isascii():
        return Verdict.MALFORMED_SIGNATURE
    expected = compute_signature(body, timestamp=timestamp, secret=secret)
    if hmac.compare_digest(expected.encode("ascii"), f"{SCHEME}={digest.lower()}".encode("ascii")):
        return Verdict.OK
    return Verdict.MISMATCH
