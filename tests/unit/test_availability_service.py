"""GetAvailability's own registration keeps every method of the generated service."""

from __future__ import annotations

from typing import Any

from omnistock.gateway.grpc.servicers import AvailabilityServicer, add_service, serialize_availability
from omnistock.protos.gen.omnistock.v1 import availability_pb2


class Recorder:
    def __init__(self) -> None:
        self.registered: dict[str, dict[str, Any]] = {}
        self.generic: list[Any] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.registered[service] = handlers


class Servicer:
    async def GetAvailability(self, request: Any, context: Any) -> bytes:
        return b""

    async def FindPickupStores(self, request: Any, context: Any) -> Any:
        return None

    async def WatchAvailability(self, request: Any, context: Any) -> Any:
        yield None


def test_every_method_of_the_service_is_registered() -> None:
    server = Recorder()
    add_service(Servicer(), server, AvailabilityServicer.SERVICE)  # type: ignore[arg-type]
    service = availability_pb2.DESCRIPTOR.services_by_name["AvailabilityService"]
    handlers = server.registered[service.full_name]
    assert set(handlers) == {method.name for method in service.methods}
    for method in service.methods:
        assert handlers[method.name].response_streaming == method.server_streaming
    assert len(server.generic) == 1


def test_the_serializer_takes_bytes_or_a_message() -> None:
    message = availability_pb2.GetAvailabilityResponse(version=3)
    assert serialize_availability(message) == message.SerializeToString()
    assert serialize_availability(b"\x18\x03") == b"\x18\x03"
