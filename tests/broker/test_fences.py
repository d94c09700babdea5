"""The partition fence (``PartitionFences``) on every store that scoring workers can share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from vigil.bots.core.ports import FenceToken
from vigil.storage.memory import InMemoryStore
from vigil.storage.postgres import PostgresStore


def lease(revision: int, *, epoch: int = 1) -> FenceToken:
    return FenceToken(epoch=epoch, revision=revision)


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[InMemoryStore | PostgresStore]:
    opened: InMemoryStore | PostgresStore
    if request.param == "memory":
        opened = InMemoryStore()
    else:
        opened = PostgresStore(request.getfixturevalue("postgres_dsn"))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_fence_only_moves_forward(store: InMemoryStore | PostgresStore) -> None:
    assert await store.advance_fence(stream="S", partition=3, token=lease(10))
    assert await store.advance_fence(stream="S", partition=3, token=lease(10))  # the same lease, again
    assert await store.advance_fence(stream="S", partition=3, token=lease(25))  # a newer lease
    assert not await store.advance_fence(stream="S", partition=3, token=lease(10))  # the old one, refused
    # A new incarnation of the lease registry (the broker's data wiped) wins whatever its revisions.
    assert await store.advance_fence(stream="S", partition=3, token=lease(1, epoch=2))
    assert not await store.advance_fence(stream="S", partition=3, token=lease(99))
    # Other partitions and other streams are fenced apart.
    assert await store.advance_fence(stream="S", partition=4, token=lease(1))
    assert await store.advance_fence(stream="T", partition=3, token=lease(1))


async def test_a_refused_fence_rolls_back_with_its_transaction(store: InMemoryStore | PostgresStore) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction():
            assert await store.advance_fence(stream="S", partition=1, token=lease(50))
            raise RuntimeError("the batch failed")
    assert await store.advance_fence(stream="S", partition=1, token=lease(5))


async def test_a_newer_lease_waits_for_an_older_one_in_flight_then_wins(postgres_dsn: str) -> None:
    """On Postgres, the fence row is locked until the transaction ends: the new owner's batch starts after
    the old owner's commit, and reads what it wrote; the old owner is refused from then on."""
    old, new = PostgresStore(postgres_dsn), PostgresStore(postgres_dsn)
    await old.open()
    await new.open()
    try:
        order: list[str] = []
        async with old.transaction():
            assert await old.advance_fence(stream="S", partition=0, token=lease(7))

            async def newer() -> None:
                async with new.transaction():
                    assert await new.advance_fence(stream="S", partition=0, token=lease(9))
                    order.append("new")

            waiting = asyncio.create_task(newer())
            await asyncio.sleep(0.3)
            assert not waiting.done(), "the newer lease must wait for the older one's transaction"
            order.append("old")
        await waiting
        assert order == ["old", "new"]
        assert not await old.advance_fence(stream="S", partition=0, token=lease(7))
    finally:
        await old.close()
        await new.close()
