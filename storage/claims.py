"""Claim tokens for the outbox: what ``claim_deliveries`` hands a delivery worker with its items."""

from __future__ import annotations

import secrets

__all__ = ["claim_prefix", "new_claim_token"]

# The worker's name is for people reading the table; the random part makes every claim distinct, so a worker
# whose lease ran out cannot mistake a later claim (even its own) for the one it held.
_MAX_WORKER_CHARS = 64


def new_claim_token(worker: str) -> str:
    return f"{claim_prefix(worker)}{secrets.token_hex(8)}"


def claim_prefix(worker: str) -> str:
    """What every claim token of ``worker`` starts with (``release_claims`` matches on it)."""
    # "/" ends the name, so one worker's name is never the prefix of another's claims.
    return f"{worker[:_MAX_WORKER_CHARS].replace('/', '_')}/"
