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


def test_every_method_of_the_service_is_served_by_one_generic_handler_and_none_registered() -> None:
    server = Recorder()
    add_service(Servicer(), server, AvailabilityServicer.SERVICE)  # type: ignore[arg-type]
    service = availability_pb2.DESCRIPTOR.services_by_name["AvailabilityService"]
    (generic,) = server.generic
    assert server.registered == {}  # each registered method would cost every call a wait
    for method in service.methods:
        details = grpc_details(f"/{service.full_name}/{method.name}")
        handler = generic.service(details)
        assert handler is not None and handler.response_streaming == method.server_streaming
    assert generic.service(grpc_details(f"/{service.full_name}/Nothing")) is None


def test_the_serializer_takes_bytes_or_a_message() -> None:
    message = availability_pb2.GetAvailabilityResponse(version=3)
    assert serialize_availability(message) == message.SerializeToString()
    assert serialize_availability(b"\x18\x03") == b"\x18\x03"


def grpc_details(method: str) -> Any:
    class Details:
        pass

    details = Details()
    details.method = method  # type: ignore[attr-defined]
    return details
