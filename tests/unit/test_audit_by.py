"""Every change records who made it: the commands' `by` lands in the events a partition
journals, in a reservation's history (also after a replay or a snapshot), in the events
published for downstream systems and in the audit trail of stock changes; entries written
before `by` existed decode with an empty one."""

from __future__ import annotations

import json
from array import array
from collections.abc import Sequence

import pytest

from omnistock.availability.network import Channel, Network, NodeGroup
from omnistock.availability.nodes import Node, NodeType
from omnistock.cli.events import audit_line, json_line, reservation_line
from omnistock.gateway.grpc.network_store import network_audit
from omnistock.gateway.usecases.reservations import ReservationCoordinator
from omnistock.gateway.usecases.stock import Stock
from omnistock.protos.gen.omnistock.journal.v1 import journal_pb2 as pb
from omnistock.protos.gen.omnistock.v1 import events_pb2, reservation_pb2
from omnistock.reservations.domain.commands import (
    AdjustStock,
    Command,
    ExpectSupply,
    LoadLevels,
    Result,
    SetStock,
)
from omnistock.reservations.domain.model import (
    Close,
    Decision,
    Event,
    Follow,
    HoldAborted,
    HoldExtended,
    HoldPlaced,
    Intent,
    LevelColumns,
    LevelsSet,
    Line,
    LineMoved,
    LinesClosed,
    PartChanged,
    PartState,
    ReservationDecided,
    StockAdjusted,
    StockState,
    SupplyExpected,
    UnitsReturned,
    Withdraw,
)
from omnistock.reservations.domain.partition import EXPIRY_BY, Partition
from omnistock.reservations.shard.audit_trail import LISTED, AuditEntry, stock_audit
from omnistock.reservations.shard.codec import (
    decode_entry,
    decode_snapshot,
    encode_entry,
    encode_snapshot,
    published_events,
)
from omnistock.reservations.shard.state import ShardState

PARTITIONS = 4
WEB = "key:web-storefront"
OMS = "key:order-service"
WMS = "key:wms-feed"


def partition_of(key: str) -> int:
    """The digits at the end of a key pick its partition (readable placement)."""
    return int(key.rsplit("-", 1)[1]) % PARTITIONS


class OneShard:
    """Every partition in one shard, applying batches as the shard process does; each
    partition's events kept in order, as its journal would have them."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.state = ShardState(Partition(n) for n in range(PARTITIONS))
        self.journal: dict[int, list[Event]] = {}

    async def execute(self, commands: Sequence[Command]) -> list[Result]:
        outcome = self.state.apply_batch(list(commands), self.now)
        for number, events in outcome.events.items():
            self.journal.setdefault(number, []).extend(events)
        return outcome.results  # type: ignore[return-value]

    def coordinator(self, colocated: bool) -> ReservationCoordinator:
        """colocated False: a Reserve takes the path of parts in several shards (claim, place, decide)."""
        return ReservationCoordinator(
            self.execute, partition_of, lambda: self.now, colocated=lambda _: colocated
        )


async def stocked(colocated: bool = True) -> tuple[OneShard, ReservationCoordinator]:
    shard = OneShard()
    await shard.execute([SetStock(partition_of(sku), sku, "DC-1", 10, 1.0) for sku in ("SKU-1", "SKU-2")])
    return shard, shard.coordinator(colocated)


@pytest.mark.parametrize("colocated", [True, False])
async def test_each_step_of_a_reservation_records_its_caller_in_the_history_and_the_events(
    colocated: bool,
) -> None:
    shard, coordinator = await stocked(colocated)
    lines = [Line("SKU-1", "DC-1", 2), Line("SKU-2", "DC-1", 3)]  # two partitions: two parts
    await coordinator.reserve("order-3", lines, 600.0, by=WEB)
    shard.now += 10
    await coordinator.extend("order-3", 900.0, by=OMS)
    shard.now += 10
    await coordinator.confirm("order-3", by=OMS)
    shard.now += 10
    await coordinator.close_lines("order-3", "ship-1", "fulfilled", [Line("SKU-1", "DC-1", 2)], by=WMS)
    view = await coordinator.get("order-3")

    assert [(what, by) for what, _, by in view.history] == [
        ("held", WEB),
        ("extended", OMS),
        ("confirmed", OMS),
        ("fulfilled", WMS),
    ]
    journaled = [event for events in shard.journal.values() for event in events]
    parts = [e for e in journaled if isinstance(e, HoldPlaced | HoldExtended | PartChanged | LinesClosed)]
    assert {(type(e).__name__, e.by) for e in parts} == {
        ("HoldPlaced", WEB),
        ("HoldExtended", OMS),
        ("PartChanged", OMS),
        ("LinesClosed", WMS),
    }
    decided = [(e.decision.name, e.by) for e in journaled if isinstance(e, ReservationDecided)]
    assert decided == [("HELD", WEB), ("HELD", OMS), ("CONFIRMED", OMS), ("CONFIRMED", WMS)]


async def test_a_release_a_return_and_a_move_record_their_callers() -> None:
    shard, coordinator = await stocked()
    await shard.execute([SetStock(partition_of("SKU-1"), "SKU-1", "DC-2", 10, 1.0)])
    await coordinator.reserve("order-1", [Line("SKU-1", "DC-1", 2)], 600.0, by=WEB)
    shard.now += 1  # (the history is in time order)
    await coordinator.move_line("order-1", "move-1", "SKU-1", "DC-1", "DC-2", None, by=OMS)
    shard.now += 1
    await coordinator.confirm("order-1", by=OMS)
    shard.now += 1
    await coordinator.close_lines("order-1", "ship-1", "fulfilled", [Line("SKU-1", "DC-2", 2)], by=WMS)
    shard.now += 1
    await coordinator.return_units("order-1", "back-1", Line("SKU-1", "DC-2", 1), "DC-1", True, by="key:pos")
    await coordinator.reserve("order-2", [Line("SKU-2", "DC-1", 1)], 600.0, by=WEB)
    shard.now += 1
    await coordinator.release("order-2", by="key:support")

    first, second = await coordinator.get("order-1"), await coordinator.get("order-2")
    assert [(what, by) for what, _, by in first.history] == [
        ("held", WEB),
        ("moved", OMS),
        ("confirmed", OMS),
        ("fulfilled", WMS),
        ("returned", "key:pos"),
    ]
    assert [(what, by) for what, _, by in second.history] == [("held", WEB), ("released", "key:support")]
    journaled = [event for events in shard.journal.values() for event in events]
    assert {e.by for e in journaled if isinstance(e, LineMoved)} == {OMS}
    assert {e.by for e in journaled if isinstance(e, UnitsReturned)} == {"key:pos"}


async def test_an_expiry_is_recorded_as_the_timer_s_not_as_any_caller_s() -> None:
    shard, coordinator = await stocked()
    await coordinator.reserve("order-1", [Line("SKU-1", "DC-1", 1), Line("SKU-2", "DC-1", 1)], 5.0, by=WEB)
    shard.now += 6
    view = await coordinator.get("order-1")
    assert view.state is PartState.EXPIRED
    assert [(what, by) for what, _, by in view.history] == [("held", WEB), ("expired", EXPIRY_BY)]
    expired = [e for events in shard.journal.values() for e in events if isinstance(e, PartChanged)]
    assert len(expired) == 2 and {e.by for e in expired} == {EXPIRY_BY}


async def test_stock_changes_carry_their_caller_into_the_journal_and_the_audit_trail() -> None:
    shard = OneShard()
    p = partition_of("SKU-1")
    await shard.execute(
        [
            SetStock(p, "SKU-1", "DC-1", 10, 1.0, by=WMS),
            AdjustStock(p, "adj-1", "SKU-1", "DC-1", -2, "broken", by="key:pos"),
            ExpectSupply(p, "po-1", "SKU-1", "DC-1", 30, 5_000.0, by="key:erp"),
            AdjustStock(p, "adj-2", "SKU-1", "DC-1", -99, "too many", by="key:pos"),  # refused: no event
        ]
    )
    events = shard.journal[p]
    assert [(type(e).__name__, e.by) for e in events] == [  # type: ignore[union-attr]
        ("LevelsSet", WMS),
        ("StockAdjusted", "key:pos"),
        ("SupplyExpected", "key:erp"),
    ]
    assert [(e.action, e.by) for e in stock_audit(p, events, 1)] == [
        ("stock.adjusted", "key:pos"),
        ("supply.expected", "key:erp"),
        ("stock.set", WMS),
    ]


async def test_the_history_and_its_callers_survive_a_replay_of_the_journal_and_a_snapshot() -> None:
    shard, coordinator = await stocked()
    await coordinator.reserve("order-1", [Line("SKU-1", "DC-1", 2), Line("SKU-2", "DC-1", 1)], 600.0, by=WEB)
    await coordinator.confirm("order-1", by=OMS)
    live = {n: shard.state.partitions[n] for n in range(PARTITIONS)}
    for number, events in shard.journal.items():
        replayed = Partition(number)
        for event in decode_entry(encode_entry(events)):
            replayed.apply(event)
        restored, _ = decode_snapshot(encode_snapshot(live[number], "1-0"))
        for again in (replayed, restored):
            assert {r: p.history for r, p in again.parts.items()} == {
                r: p.history for r, p in live[number].parts.items()
            }
            assert {r: c.history for r, c in again.claims.items()} == {
                r: c.history for r, c in live[number].claims.items()
            }
    home = live[partition_of("order-1")]
    assert home.claims["order-1"].history[-1][::2] == ("confirmed", OMS)


def test_by_round_trips_through_the_journal_for_every_event_and_step_that_has_it() -> None:
    lines = (Line("SKU-1", "DC-1", 2),)
    levels = LevelColumns.of([("SKU-1", "DC-1", 5, 1.0, 0, 0)])
    follow = Follow(PartState.CONFIRMED, 5.0, 9.0, 2, OMS)
    close = Close("ship-1", "fulfilled", lines, 8.0, WMS)
    events: list[Event] = [
        LevelsSet(levels, WMS),
        StockAdjusted("adj-1", "SKU-1", "DC-1", -1, "broken", StockState.SELLABLE, "", WMS),
        SupplyExpected("po-1", "SKU-1", "DC-1", 4, 50.0, WMS),
        HoldPlaced("r-1", "fp", lines, 1.0, 9.0, by=WEB),
        PartChanged("r-1", PartState.CONFIRMED, 2.0, OMS),
        HoldExtended("r-1", 20.0, 3.0, 2, OMS),
        LinesClosed("r-1", "ship-1", "fulfilled", ((0, 1),), 4.0, (Line("SKU-1", "DC-1", 1),), WMS),
        UnitsReturned("r-1", "back-1", 0, "DC-1", 1, True, 5.0, "SKU-1", "key:pos"),
        LineMoved("r-1", "move-1", 0, "DC-2", 6.0, "SKU-1", "DC-1", 1, OMS),
        HoldAborted("r-2", EXPIRY_BY),
        ReservationDecided("r-1", Decision.CONFIRMED, 7.0, 9.0, Intent("confirm#2", ((1, follow),)), OMS),
        ReservationDecided(
            "r-2", Decision.ABORTED, 7.0, 9.0, Intent("abort:a", ((2, Withdraw("a", 70.0, OMS)),)), OMS
        ),
        ReservationDecided("r-1", Decision.CONFIRMED, 8.0, 9.0, Intent("close:ship-1", ((1, close),)), WMS),
    ]
    back = decode_entry(encode_entry(events))
    assert back == events  # every field, `by` of the events and of the intents' steps included
    assert all(event.by for event in back)  # type: ignore[union-attr]


def test_entries_and_snapshots_written_before_by_existed_decode_with_an_empty_by() -> None:
    # What the released journal wrote: the same messages, with no `by` field in them.
    old = pb.JournalEntry(
        events=[
            pb.Event(
                hold_placed=pb.HoldPlaced(
                    reservation_id="r-1", fingerprint="fp", created_at=1.0, expires_at=9.0
                )
            ),
            pb.Event(
                part_changed=pb.PartChanged(reservation_id="r-1", state=pb.PART_STATE_CONFIRMED, at=2.0)
            ),
            pb.Event(stock_adjusted=pb.StockAdjusted(adjustment_id="a", sku="S", node_id="N", delta=1)),
            pb.Event(
                reservation_decided=pb.ReservationDecided(
                    reservation_id="r-1",
                    decision=pb.DECISION_CONFIRMED,
                    at=2.0,
                    intent=pb.Intent(
                        operation="confirm#2", steps=[pb.Step(partition=1, follow=pb.Follow(state=2))]
                    ),
                )
            ),
        ]
    ).SerializeToString()
    events = decode_entry(old)
    assert [event.by for event in events] == ["", "", "", ""]  # type: ignore[union-attr]
    decided = events[3]
    assert isinstance(decided, ReservationDecided) and decided.intent is not None
    assert decided.intent.steps[0][1] == Follow(PartState.CONFIRMED, 0.0, 0.0, 0, "")
    snapshot = pb.PartitionSnapshot(
        partition=1,
        parts=[
            pb.PartRecord(
                reservation_id="r-1",
                fingerprint="fp",
                state=pb.PART_STATE_HELD,
                created_at=1.0,
                expires_at=9.0,
                history=[pb.HistoryEntry(what="held", at=1.0)],
            )
        ],
    ).SerializeToString()
    restored, _ = decode_snapshot(snapshot)
    assert restored.parts["r-1"].history == (("held", 1.0, ""),)


def test_published_events_and_the_history_in_the_api_say_who_made_each_change() -> None:
    lines = (Line("SKU-1", "DC-1", 2),)
    published = published_events(
        2,
        [
            HoldPlaced("r-1", "fp", lines, 1.0, 9.0, by=WEB),
            PartChanged("r-1", PartState.EXPIRED, 9.0, EXPIRY_BY),
            HoldAborted("r-2", OMS),
            StockAdjusted("adj-1", "SKU-1", "DC-1", -1, "", by=WMS),  # not a reservation event
        ],
    )
    events = [reservation_pb2.ReservationEvent.FromString(data) for data in published]
    assert [(e.reservation_id, e.type, e.by) for e in events] == [
        ("r-1", reservation_pb2.RESERVATION_EVENT_TYPE_HELD, WEB),
        ("r-1", reservation_pb2.RESERVATION_EVENT_TYPE_EXPIRED, EXPIRY_BY),
        ("r-2", reservation_pb2.RESERVATION_EVENT_TYPE_WITHDRAWN, OMS),
    ]


# --- the audit trail of stock changes ---


def columns(skus: Sequence[str], nodes: Sequence[str]) -> LevelColumns:
    count = len(skus)
    ones = array("q", [1] * count)
    return LevelColumns(
        tuple(skus),
        tuple(nodes),
        ones,
        array("d", [2.0] * count),
        array("q", bytes(8 * count)),
        array("q", bytes(8 * count)),
    )


def test_a_large_load_is_one_audit_entry_per_partition_and_caller_with_a_count_and_a_few_skus() -> None:
    skus = [f"SKU-{i // 50:05d}" for i in range(50_000)]  # 1,000 SKUs at 50 nodes each
    nodes = [f"STORE-{i % 50:03d}" for i in range(50_000)]
    events: list[Event] = [
        LevelsSet(columns(skus[:30_000], nodes[:30_000]), WMS),
        LevelsSet(columns(skus[30_000:], nodes[30_000:]), WMS),  # another command of the same load
        LevelsSet(columns(["SKU-99999"], ["DC-1"]), "key:pos"),  # another caller in the same batch
    ]
    entries = stock_audit(7, events, 1_733_580_000_123)
    assert [(e.by, e.action, e.subject) for e in entries] == [
        (WMS, "stock.set", "partition:7"),
        ("key:pos", "stock.set", "SKU-99999@DC-1"),
    ]
    assert json.loads(entries[0].detail) == {
        "levels": 50_000,
        "skus": [f"SKU-{i:05d}" for i in range(LISTED)],
    }
    assert json.loads(entries[1].detail) == {"levels": 1, "on_hand": 1, "as_of": 2.0}
    assert {e.at for e in entries} == {1_733_580_000_123}


def test_counts_of_one_sku_name_the_sku_and_adjustments_and_supply_name_the_position() -> None:
    events: list[Event] = [
        LevelsSet(columns(["SKU-1"] * 8, [f"STORE-{i}" for i in range(8)]), WMS),
        StockAdjusted("adj-1", "SKU-2", "DC-1", -2, "damaged in store", StockState.DAMAGED, "", "key:pos"),
        StockAdjusted("adj-2", "SKU-2", "DC-1", 5, "receipt", StockState.SELLABLE, "po-1", WMS),
        SupplyExpected("po-1", "SKU-3", "DC-1", 40, 1_733_600_000.0, "key:erp"),
        HoldPlaced("r-1", "fp", (Line("SKU-1", "DC-1", 1),), 1.0, 9.0, by=WEB),  # not a stock change
    ]
    entries = stock_audit(3, events, 5)
    assert [(e.by, e.action, e.subject) for e in entries] == [
        ("key:pos", "stock.adjusted", "SKU-2@DC-1"),
        (WMS, "stock.adjusted", "SKU-2@DC-1"),
        ("key:erp", "supply.expected", "SKU-3@DC-1"),
        (WMS, "stock.set", "SKU-1"),
    ]
    assert json.loads(entries[0].detail) == {
        "adjustment_id": "adj-1",
        "delta": -2,
        "reason": "damaged in store",
        "state": "damaged",
    }
    assert json.loads(entries[1].detail)["supply_id"] == "po-1"
    assert json.loads(entries[2].detail) == {
        "supply_id": "po-1",
        "quantity": 40,
        "expected_at": 1_733_600_000.0,
    }
    assert json.loads(entries[3].detail) == {"levels": 8, "nodes": [f"STORE-{i}" for i in range(LISTED)]}


def test_an_audit_entry_reads_back_from_its_stream_fields_and_escapes_control_characters() -> None:
    entry = stock_audit(0, [StockAdjusted("a", "S", "N", 1, "evil\x1b[2J", by=WMS)], 42)[0]
    assert "\x1b" not in entry.detail and json.loads(entry.detail)["reason"] == "evil\x1b[2J"
    raw = {name.encode(): str(value).encode() for name, value in entry.fields().items()}
    assert AuditEntry.from_fields(raw) == entry
    assert AuditEntry.from_fields({b"at": b"oops"}) == AuditEntry(0, "", "", "", "")


async def test_the_stock_use_case_sends_the_caller_with_every_partition_s_counts() -> None:
    sent: list[Command] = []

    async def execute(commands: Sequence[Command]) -> list[Result]:
        sent.extend(commands)
        return []

    stock = Stock(execute, partition_of, lambda: Network(nodes={"DC-1": Node("DC-1", NodeType.DC)}))
    await stock.set_levels(columns(["SKU-1", "SKU-2", "SKU-3"], ["DC-1"] * 3), WMS)
    assert len(sent) == 3 and all(isinstance(c, LoadLevels) and c.by == WMS for c in sent)


# --- the audit trail of network changes ---


def test_a_network_change_is_an_audit_entry_per_node_group_channel_and_limit_it_changed() -> None:
    dc, store = Node("DC-1", NodeType.DC), Node("STORE-1", NodeType.STORE)
    before = Network(
        nodes={"DC-1": dc},
        groups={"old": NodeGroup("old", ("DC-1",))},
        channels={"gone": Channel("gone")},
        purchase_limits={"SKU-1": 2, "SKU-2": 5},
    )
    after = before.with_changes(
        nodes=[dc, store],  # DC-1 as it was: nothing to record
        groups=[NodeGroup("stores", ("STORE-1",))],
        channels=[Channel("web", groups=("stores",))],
        drop_groups=["old"],
        drop_channels=["gone"],
        purchase_limits={"SKU-1": 3, "SKU-2": 0, "SKU-3": 1},
    )
    entries = network_audit(before, after, "key:admin", 7)
    assert [(e.action, e.subject, json.loads(e.detail)) for e in entries] == [
        ("network.nodes_put", "STORE-1", {"created": True, "enabled": True, "type": "store"}),
        ("network.groups_put", "stores", {"created": True}),
        ("network.groups_deleted", "old", {}),
        ("network.channels_put", "web", {"created": True}),
        ("network.channels_deleted", "gone", {}),
        ("network.limits_put", "SKU-1", {"max_per_customer": 3}),
        ("network.limits_put", "SKU-2", {"max_per_customer": 0}),
        ("network.limits_put", "SKU-3", {"max_per_customer": 1}),
    ]
    assert {(e.by, e.at) for e in entries} == {("key:admin", 7)}
    assert network_audit(after, after, "key:admin", 8) == []


# --- how `omnistock events` prints them ---


def test_the_cli_prints_an_event_per_line_and_never_a_raw_control_character() -> None:
    entry = events_pb2.ReservationEventEntry(id="17-0")
    entry.event.CopyFrom(
        reservation_pb2.ReservationEvent(
            reservation_id="order-\x1b[2J",
            partition=3,
            type=reservation_pb2.RESERVATION_EVENT_TYPE_HELD,
            by="key:web",
            lines=[reservation_pb2.ReservationLine(sku="SKU-1", node_id="DC-1", quantity=2)],
        )
    )
    text = reservation_line(entry)
    assert "\x1b" not in text and "order-\\x1b[2J/p3" in text
    assert text.split()[1:] == ["HELD", "order-\\x1b[2J/p3", "by", "key:web", "SKU-1", "at", "DC-1", "x2"]
    audit = events_pb2.AuditEvent(
        id="18-0", by="", action="stock.adjusted", subject="S@N", detail='{"delta":1}'
    )
    audit.at.FromSeconds(1_733_580_000)
    assert audit_line(audit).split()[1:] == ["stock.adjusted", "S@N", "by", "-", '{"delta":1}']
    assert json.loads(json_line(entry))["id"] == "17-0"
    assert json.loads(json_line(entry))["reservation_id"] == "order-\x1b[2J"  # escaped by JSON itself
    assert "\x1b" not in json_line(entry)
    assert json.loads(json_line(audit)) == {
        "id": "18-0",
        "at": "2024-12-07T14:00:00Z",
        "by": "",
        "action": "stock.adjusted",
        "subject": "S@N",
        "detail": '{"delta":1}',
    }
