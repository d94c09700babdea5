"""The HTTP ingest API for self-hosted platforms, its alert webhook sink and a small Python client."""

from __future__ import annotations

from vigil.bots.http.client import VigilApiError, VigilClient, message_to_dict, verify_webhook
from vigil.bots.http.server import Backpressure, BackpressureError, HttpApi, retry_after_of
from vigil.bots.http.signing import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Verdict,
    check_signature,
    compute_request_signature,
    compute_signature,
    signed_headers,
    signed_request_headers,
)
from vigil.bots.http.webhook import PollingSink, WebhookSink

__all__ = [
    "NONCE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Backpressure",
    "BackpressureError",
    "HttpApi",
    "PollingSink",
    "Verdict",
    "VigilApiError",
    "VigilClient",
    "WebhookSink",
    "check_signature",
    "compute_request_signature",
    "compute_signature",
    "message_to_dict",
    "retry_after_of",
    "signed_headers",
    "signed_request_headers",
    "verify_webhook",
]
