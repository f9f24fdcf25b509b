"""StockState 0 was SELLABLE before SELLABLE got its own number (3) and 0 became UNSPECIFIED.

Journals and snapshots in Redis written before still hold 0 for sellable units, and API
clients may still send 0 (or nothing): both must keep meaning sellable."""

from __future__ import annotations

from typing import cast

import pytest

from omnistock.gateway.grpc.convert import STOCK_STATES, Limits, adjustments_problems
from omnistock.protos.gen.omnistock.journal.v1 import journal_pb2 as pb
from omnistock.protos.gen.omnistock.v1 import common_pb2, inventory_pb2
from omnistock.reservations.domain.commands import AdjustOutcome, AdjustResult, AdjustStock
from omnistock.reservations.domain.errors import InvalidArgument
from omnistock.reservations.domain.model import StockAdjusted, StockState
from omnistock.reservations.shard.codec import decode_entry, decode_snapshot, encode_entry, encode_snapshot

P = 3
OLD_SELLABLE = cast(pb.StockState, 0)
"""The number journal.v1.StockState.STOCK_STATE_SELLABLE had before this change."""


def test_the_numbers_of_the_other_states_did_not_move() -> None:
    assert (pb.STOCK_STATE_DAMAGED, pb.STOCK_STATE_QUALITY_HOLD) == (1, 2)
    assert (common_pb2.STOCK_STATE_DAMAGED, common_pb2.STOCK_STATE_QUALITY_HOLD) == (1, 2)
    assert pb.STOCK_STATE_SELLABLE == common_pb2.STOCK_STATE_SELLABLE != OLD_SELLABLE
    assert pb.STOCK_STATE_UNSPECIFIED == common_pb2.STOCK_STATE_UNSPECIFIED == OLD_SELLABLE


def _old_adjustment_entry() -> bytes:
    """A journal entry as written before: a sellable receipt, state 0 (so not on the wire)."""
    adjusted = pb.StockAdjusted(
        adjustment_id="a1", sku="S", node_id="N", delta=5, reason="receipt", state=OLD_SELLABLE
    )
    return pb.JournalEntry(events=[pb.Event(stock_adjusted=adjusted)]).SerializeToString()


def test_an_entry_written_with_state_0_decodes_as_sellable() -> None:
    data = _old_adjustment_entry()
    assert decode_entry(data) == [StockAdjusted("a1", "S", "N", 5, "receipt", StockState.SELLABLE)]


def test_an_entry_with_state_0_written_on_the_wire_decodes_as_sellable() -> None:
    # The same entry with the field present (tag 6, varint 0): a valid encoding another
    # writer may have used.
    adjusted = pb.StockAdjusted(adjustment_id="a1", sku="S", node_id="N", delta=5, reason="receipt")
    inner = adjusted.SerializeToString() + bytes([6 << 3 | 0, OLD_SELLABLE])
    event = bytes([2 << 3 | 2, len(inner)]) + inner  # Event.stock_adjusted
    data = bytes([1 << 3 | 2, len(event)]) + event  # JournalEntry.events
    assert pb.JournalEntry.FromString(data).events[0].stock_adjusted.state == OLD_SELLABLE
    assert decode_entry(data) == [StockAdjusted("a1", "S", "N", 5, "receipt", StockState.SELLABLE)]


def test_new_entries_write_every_state_with_its_own_number() -> None:
    events = [StockAdjusted(f"a{state.name}", "S", "N", 1, "", state) for state in StockState]
    written = pb.JournalEntry.FromString(encode_entry(list(events)))
    assert [e.stock_adjusted.state for e in written.events] == [
        {
            StockState.SELLABLE: pb.STOCK_STATE_SELLABLE,
            StockState.DAMAGED: pb.STOCK_STATE_DAMAGED,
            StockState.QUALITY_HOLD: pb.STOCK_STATE_QUALITY_HOLD,
        }[state]
        for state in StockState
    ]
    assert decode_entry(encode_entry(list(events))) == events


def _old_snapshot() -> bytes:
    """A snapshot as written before: 10 on hand, and the record of a sellable receipt of 5
    with state 0."""
    return pb.PartitionSnapshot(
        partition=P,
        last_entry_id="5-0",
        positions=[pb.PositionRecord(sku="S", node_id="N", on_hand=10, as_of=1.0)],
        adjustments=[
            pb.AdjustmentRecord(adjustment_id="a1", sku="S", node_id="N", delta=5, state=OLD_SELLABLE)
        ],
    ).SerializeToString()


def test_a_snapshot_written_with_state_0_decodes_as_sellable() -> None:
    partition, last = decode_snapshot(_old_snapshot())
    assert last == "5-0"
    assert partition.adjustments["a1"].state is StockState.SELLABLE
    # The same sellable adjustment again is a replay, not a conflict.
    result, events = partition.handle(AdjustStock(P, "a1", "S", "N", 5, "receipt"))
    assert isinstance(result, AdjustResult)
    assert result.outcome is AdjustOutcome.REPLAYED
    assert events == []
    # Written again, the record holds the new number and still reads as sellable.
    again = pb.PartitionSnapshot.FromString(encode_snapshot(partition, last))
    assert [a.state for a in again.adjustments] == [pb.STOCK_STATE_SELLABLE]
    restored, _ = decode_snapshot(again.SerializeToString())
    assert restored.adjustments["a1"].state is StockState.SELLABLE


@pytest.mark.parametrize("state", [common_pb2.STOCK_STATE_UNSPECIFIED, common_pb2.STOCK_STATE_SELLABLE])
def test_a_request_without_a_state_or_with_sellable_adjusts_sellable_units(
    state: common_pb2.StockState,
) -> None:
    assert STOCK_STATES[state] is StockState.SELLABLE
    receipt = inventory_pb2.StockAdjustment(
        adjustment_id="r1",
        sku="S",
        node_id="N",
        delta=4,
        state=state,
        supply_id="PO-1",
    )
    adjustments_problems([receipt], Limits())  # a receipt of supply takes sellable units


def test_a_receipt_of_damaged_units_or_an_unknown_state_is_refused() -> None:
    damaged = inventory_pb2.StockAdjustment(
        adjustment_id="r1",
        sku="S",
        node_id="N",
        delta=4,
        state=common_pb2.STOCK_STATE_DAMAGED,
        supply_id="PO-1",
    )
    with pytest.raises(InvalidArgument):
        adjustments_problems([damaged], Limits())
    unknown = inventory_pb2.StockAdjustment(
        adjustment_id="r2",
        sku="S",
        node_id="N",
        delta=4,
        state=cast(common_pb2.StockState, 7),
    )
    with pytest.raises(InvalidArgument, match="unknown stock state 7"):
        adjustments_problems([unknown], Limits())
