"""The public form of a reservation, built in place in a response's field."""

from __future__ import annotations

from omnistock.gateway.grpc.convert import reservation_to_proto
from omnistock.protos.gen.omnistock.v1 import reservation_pb2
from omnistock.reservations.domain.model import Line, PartState
from omnistock.reservations.domain.reservation_view import ReservationView
from omnistock.reservations.domain.sourcing import Destination
from omnistock.reservations.shard.codec import reservation_event

CREATED = 1_796_000_000.123456789


def view(**changes: object) -> ReservationView:
    fields: dict[str, object] = dict(
        reservation_id="order-1",
        state=PartState.CONFIRMED,
        lines=(Line("SKU-1", "DC-EAST", 2), Line("SKU-2", "STORE-7", 3)),
        created_at=CREATED,
        expires_at=CREATED + 600,
        changed_at=CREATED + 5.5,
        channel="web",
        customer="c-9",
        history=(("held", CREATED, "key:web-storefront"), ("confirmed", CREATED + 5.5, "local")),
        progress=((1, 0, 0), (0, 2, 1)),
    )
    fields.update(changes)
    return ReservationView(**fields)  # type: ignore[arg-type]


def test_every_field_of_the_view_is_in_the_message() -> None:
    message = reservation_to_proto(view(destination=Destination(pickup_node_id="STORE-7")))

    assert message.reservation_id == "order-1"
    assert message.state == reservation_pb2.RESERVATION_STATE_CONFIRMED
    assert [(line.sku, line.node_id, line.quantity) for line in message.lines] == [
        ("SKU-1", "DC-EAST", 2),
        ("SKU-2", "STORE-7", 3),
    ]
    done = [(line.fulfilled, line.cancelled, line.returned) for line in message.lines]
    assert done == [(1, 0, 0), (0, 2, 1)]
    assert message.created_at.ToNanoseconds() == round(CREATED * 1e9)
    assert message.expires_at.ToNanoseconds() == round((CREATED + 600) * 1e9)
    assert message.changed_at.ToNanoseconds() == round((CREATED + 5.5) * 1e9)
    assert (message.channel_id, message.customer_id) == ("web", "c-9")
    assert message.destination.pickup_node_id == "STORE-7"
    assert list(message.history) == [
        reservation_event(None, "order-1", "held", CREATED, "key:web-storefront"),
        reservation_event(None, "order-1", "confirmed", CREATED + 5.5, "local"),
    ]
    assert message.history[1].event_id == f"order-1/confirmed/{round((CREATED + 5.5) * 1000)}"


def test_filling_a_response_field_gives_the_same_bytes_as_building_apart() -> None:
    for shown in (view(), view(progress=(), changed_at=0.0, history=(), channel="", customer="")):
        in_place = reservation_pb2.ReserveResponse(replayed=True)
        reservation_to_proto(shown, in_place.reservation)
        apart = reservation_pb2.ReserveResponse(reservation=reservation_to_proto(shown), replayed=True)
        assert in_place.SerializeToString(deterministic=True) == apart.SerializeToString(deterministic=True)


def test_lines_without_progress_show_nothing_done_and_no_change_time_is_left_unset() -> None:
    message = reservation_to_proto(view(progress=(), changed_at=0.0))

    done = [(line.fulfilled, line.cancelled, line.returned) for line in message.lines]
    assert done == [(0, 0, 0), (0, 0, 0)]
    assert not message.HasField("changed_at")
