"""Ownership of partitions in the journal, for real: in-process shards on the session's
redis-server (and on the Redis Cluster fixture), each writing as its own index. A shard that
lost a partition can never write it again; a partition moves with its stock and holds."""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from redis.crc import key_slot

from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis
from omnistock.reservations.domain.commands import (
    Command,
    ConfirmReservation,
    DecideHold,
    DecisionOutcome,
    DecisionResult,
    HoldOutcome,
    HoldResult,
    PlaceHold,
    RecordClaim,
    SetStock,
)
from omnistock.reservations.domain.model import Decision, Line, PartState, fingerprint
from omnistock.reservations.domain.placement import Placement
from omnistock.reservations.shard.actor import JournalUnavailable, Shard, ShardConfig
from omnistock.reservations.shard.journal import Fenced, RedisJournal, RedisKeys, journal_group
from omnistock.reservations.shard.redis_connect import SyncClient, connect_sync
from omnistock.reservations.shard.state import WrongShard
from tests.redis_cluster import RedisCluster

A_OWNS = (0, 1, 2, 3)
B_OWNS = (4, 5, 6, 7)


def stock(number: int, units: int = 50) -> SetStock:
    return SetStock(number, f"sku-{number}", "dc", units, 0.0)


def reserve(number: int, reservation_id: str, ttl: float = 60.0) -> list[Command]:
    """A Reserve of one unit of sku-<number>, its home and its part in that one partition."""
    now, attempt = time.time(), f"at-{reservation_id}"
    lines = (Line(f"sku-{number}", "dc", 1),)
    digest = fingerprint(list(lines))
    return [
        RecordClaim(number, reservation_id, digest, (number,), now, attempt=attempt, expires_at=now + ttl),
        PlaceHold(number, reservation_id, digest, lines, now, now + ttl, attempt=attempt, home=number),
        DecideHold(number, reservation_id, attempt, placed=True),
    ]


@contextmanager
def shard_on(url: str, prefix: str, index: int, partitions: tuple[int, ...]) -> Iterator[Shard]:
    shard = Shard(ShardConfig(index, partitions, url, prefix=prefix, batch_host="127.0.0.1"))
    try:
        yield shard
    finally:
        shard.close()
        gc.unfreeze()  # a Shard settles its heap: the rest of the session collects as usual


def on_hand_and_reserved(shard: Shard, sku: str) -> tuple[int, int]:
    (row,) = [row for row in shard.changes_since("", 0).positions if row.sku == sku]
    return row.on_hand, row.reserved


def placed(placement: Placement, client: SyncClient, keys: RedisKeys) -> None:
    """What a move stores before it hands a partition over."""
    client.set(keys.placement, placement.to_json())


@pytest.fixture
def prefix() -> str:
    return f"fence-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def admin(redis_server: EmbeddedRedis) -> Iterator[SyncClient]:
    client = connect_sync(redis_server.url)
    yield client
    client.close()


def test_a_fresh_shard_claims_its_partitions_and_appends(
    redis_server: EmbeddedRedis, admin: SyncClient, prefix: str
) -> None:
    keys = RedisKeys(prefix)
    with shard_on(redis_server.url, prefix, 1, B_OWNS) as shard:
        assert [admin.get(keys.owner(p)) for p in B_OWNS] == [b"1"] * 4
        assert admin.get(keys.owner(0)) is None
        shard.apply([stock(4), stock(5)])
        assert admin.xlen(keys.log(4)) == 1 and admin.xlen(keys.log(5)) == 1
        assert admin.xlen(keys.log(6)) == 0
        assert shard.owned() == list(B_OWNS)


def test_a_shard_that_lost_a_partition_writes_nothing_of_it_and_keeps_the_rest(
    redis_server: EmbeddedRedis, admin: SyncClient, prefix: str
) -> None:
    keys = RedisKeys(prefix)
    with (
        shard_on(redis_server.url, prefix, 0, A_OWNS) as a,
        shard_on(redis_server.url, prefix, 1, B_OWNS) as b,
    ):
        a.apply([stock(1), stock(2, 10)])
        # Partition 2 is taken over by B (a move, as its mover stores it first), A not told.
        placed(Placement((0, 0, 1, 0, 1, 1, 1, 1), 2, 2), admin, keys)
        assert b.adopt(2)
        assert admin.get(keys.owner(2)) == b"1"
        logged = admin.xlen(keys.log(2)), admin.xlen(keys.log(1))
        with pytest.raises(JournalUnavailable, match="FENCED"):
            a.apply([stock(1, 99), stock(2, 99)])  # one call for both: neither is written
        assert (admin.xlen(keys.log(2)), admin.xlen(keys.log(1))) == logged
        assert a.owned() == [0, 1, 3]  # reloaded what it still owns
        assert on_hand_and_reserved(a, "sku-1") == (50, 0)
        assert a.apply([stock(2, 7)]).results == [WrongShard(2)]
        assert a.apply([stock(1, 20)]).results[0] != WrongShard(1)
        assert on_hand_and_reserved(a, "sku-1") == (20, 0)
        assert on_hand_and_reserved(b, "sku-2") == (10, 0)  # B has what A wrote before the claim
        b.apply([stock(2, 11)])
        assert on_hand_and_reserved(b, "sku-2") == (11, 0)
        assert admin.get(keys.owner(2)) == b"1"  # A's reload did not take it back


def test_a_partition_moves_with_its_stock_and_holds(
    redis_server: EmbeddedRedis, admin: SyncClient, prefix: str
) -> None:
    keys = RedisKeys(prefix)
    with (
        shard_on(redis_server.url, prefix, 0, A_OWNS) as a,
        shard_on(redis_server.url, prefix, 1, B_OWNS) as b,
    ):
        outcome = a.apply([stock(3), *reserve(3, "order-1")])
        held = outcome.results[2]
        assert isinstance(held, HoldResult) and held.outcome is HoldOutcome.PLACED
        placed(Placement((0, 0, 0, 1, 1, 1, 1, 1), 2, 2), admin, keys)
        assert a.release(3)
        assert admin.get(keys.owner(3)) is None  # given up with its snapshot, in one call
        assert admin.get(keys.snapshot(3)) is not None
        assert a.release(3) is False  # twice: harmless
        assert a.apply([ConfirmReservation(3, "order-1")]).results == [WrongShard(3)]
        assert b.adopt(3)
        assert b.adopt(3) is False
        assert b.owned() == [3, *B_OWNS] and a.owned() == [0, 1, 2]
        assert on_hand_and_reserved(b, "sku-3") == (50, 1)
        (confirmed,) = b.apply([ConfirmReservation(3, "order-1")]).results
        assert isinstance(confirmed, DecisionResult) and confirmed.outcome is DecisionOutcome.DECIDED
        assert confirmed.decision is Decision.CONFIRMED
        assert [part.state for _, part in confirmed.carried] == [PartState.CONFIRMED]
        assert b.check() == []
    # A restart of both finds the partition where it moved, with the confirmed hold.
    with (
        shard_on(redis_server.url, prefix, 0, A_OWNS) as a,
        shard_on(redis_server.url, prefix, 1, B_OWNS) as b,
    ):
        assert a.owned() == [0, 1, 2] and b.owned() == [3, *B_OWNS]
        # The reservation lies whole in b now: b compares it itself, and it agrees.
        share = b.audit()
        assert (share.local.reservations, share.local.disagreements) == (1, [])
        assert (share.records, share.parts) == ([], [])
        assert b.apply([ConfirmReservation(3, "order-1")]).results[0].decision is Decision.CONFIRMED


def test_a_fenced_shard_cannot_store_a_snapshot(
    redis_server: EmbeddedRedis, admin: SyncClient, prefix: str
) -> None:
    keys = RedisKeys(prefix)
    first = RedisJournal(connect_sync(redis_server.url), keys, snapshot_every=10_000, owner="0")
    second = RedisJournal(connect_sync(redis_server.url), keys, snapshot_every=10_000, owner="1")
    first.claim([5])
    partition = first.load(5)
    partition.handle(stock(5), 0.0)
    first.snapshot(partition)
    stored = admin.get(keys.snapshot(5))
    assert stored is not None
    second.claim([5])
    partition.handle(stock(5, 1), 1.0)
    with pytest.raises(Fenced):
        first.snapshot(partition)
    with pytest.raises(Fenced):
        first.release(partition)
    assert admin.get(keys.snapshot(5)) == stored
    assert admin.get(keys.owner(5)) == b"1"  # a refused release gives nothing up


def test_a_shard_sent_a_partition_the_placement_gives_it_takes_it_over(
    redis_server: EmbeddedRedis, admin: SyncClient, prefix: str
) -> None:
    keys = RedisKeys(prefix)
    with (
        shard_on(redis_server.url, prefix, 0, A_OWNS) as a,
        shard_on(redis_server.url, prefix, 1, B_OWNS) as b,
    ):
        a.apply([stock(0, 12)])
        assert b.apply([stock(0, 99)]).results == [WrongShard(0)]  # not B's: nothing written
        # The mover stored the placement and released partition 0, then stopped.
        placed(Placement((1, 0, 0, 0, 1, 1, 1, 1), 2, 2), admin, keys)
        assert a.release(0)
        time.sleep(0.25)  # B looks at the placement for a partition at most this often
        (result,) = b.apply([ConfirmReservation(0, "none"), stock(0, 13)]).results[:1]
        assert result != WrongShard(0)
        assert 0 in b.owned() and admin.get(keys.owner(0)) == b"1"
        assert on_hand_and_reserved(b, "sku-0") == (13, 0)


def test_on_redis_cluster_a_batch_spans_groups_and_masters_and_is_fenced_per_partition(
    redis_cluster: RedisCluster,
) -> None:
    prefix = f"fence-cluster-{uuid.uuid4().hex[:8]}"
    keys = RedisKeys(prefix)
    mine = tuple(range(0, 32, 2))  # 16 partitions in 8 journal groups
    groups = {journal_group(p) for p in mine}
    assert len(groups) == 8
    masters = {redis_cluster.master_of_slot(key_slot(keys.log(p).encode())).port for p in mine}
    assert len(masters) > 1
    admin = connect_sync(redis_cluster.url)
    try:
        with shard_on(redis_cluster.url, prefix, 0, mine) as a:
            a.apply([stock(p, 10 + p) for p in mine])
            a.apply(reserve(4, "order-4"))
            assert all(admin.xlen(keys.log(p)) >= 1 for p in mine)
            assert sum(admin.xlen(keys.events(g)) for g in range(16)) >= 1
        with shard_on(redis_cluster.url, prefix, 0, mine) as a:  # a restart: everything loads back
            assert a.owned() == list(mine)
            for p in mine:
                expected = (10 + p, 1 if p == 4 else 0)
                assert on_hand_and_reserved(a, f"sku-{p}") == expected
            with shard_on(redis_cluster.url, prefix, 1, (1,)) as b:
                admin.set(keys.placement, Placement.even(32, 2).with_owner(6, 1).to_json())
                assert b.adopt(6)
                logged = {p: admin.xlen(keys.log(p)) for p in mine}
                with pytest.raises(JournalUnavailable, match="FENCED"):
                    a.apply([stock(2, 1), stock(6, 1)])  # 2 and 6 are in other groups
                # One call per group: the group of 6 wrote nothing, the group of 2 its entry
                # (only a journal group is atomic); A reloaded it, so it is never lost.
                assert admin.xlen(keys.log(6)) == logged[6]
                assert admin.xlen(keys.log(2)) == logged[2] + 1
                assert on_hand_and_reserved(a, "sku-2") == (1, 0)
                assert 6 not in a.owned() and 6 in b.owned()
                assert a.apply([stock(8, 3)]).results[0] != WrongShard(8)
                assert on_hand_and_reserved(b, "sku-6") == (16, 0)
    finally:
        admin.close()
