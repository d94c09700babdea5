"""Which partition a message belongs to, and which live worker owns which partition.

Scale-out splits the message stream into a fixed number of partitions by *space* (a Discord server, a Slack
workspace, an HTTP tenant): every pair lives in one space, so all the messages that update a pair sit in one
partition, in order. One scoring worker at a time owns a partition.

Ownership follows rendezvous (highest random weight) hashing over the live workers, capped at a fair share
each: every worker computes the same owners from the same list of names, with no coordinator; no worker
holds more than ``ceil(partitions / workers)`` (three workers on 16 partitions: 6, 6 and 4), and when a
worker joins or leaves mostly the partitions it gains or loses move.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["assignment", "partition_of", "preferred_partitions"]


def _hash64(*parts: str) -> int:
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def partition_of(*, platform: str, space_id: str, partitions: int) -> int:
    """The partition of a space: stable across processes, machines and Python versions (unlike ``hash``)."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions!r}")
    return _hash64("space", platform, space_id) % partitions


def assignment(*, workers: Iterable[str], partitions: int) -> dict[int, str]:
    """Which of ``workers`` should own each partition: each partition goes to the worker that ranks it
    highest, unless that worker already has its fair share (``ceil(partitions / workers)``), then to the
    next. Every worker computes the same answer from the same names. Empty without workers."""
    live = sorted(set(workers))
    if not live:
        return {}
    share = -(-partitions // len(live))
    counts = dict.fromkeys(live, 0)
    owners: dict[int, str] = {}
    for partition in range(partitions):
        ranked = sorted(
            live, key=lambda worker: (_hash64("owner", str(partition), worker), worker), reverse=True
        )
        owner = next(worker for worker in ranked if counts[worker] < share)
        counts[owner] += 1
        owners[partition] = owner
    return owners


def preferred_partitions(worker: str, *, workers: Iterable[str], partitions: int) -> frozenset[int]:
    """The partitions ``worker`` should own while ``workers`` (which includes it) are alive."""
    owners = assignment(workers={*workers, worker}, partitions=partitions)
    return frozenset(p for p, owner in owners.items() if owner == worker)
