"""A bare gRPC echo server: the ceiling of Python gRPC on this machine.

    python -m omnistock.loadtest.echo [--port 0]

One unary method, /omnistock.bench.Echo/Echo, that answers with the request's bytes,
unparsed, on the same grpc.aio server (and options) and the same event loop
(`gateway.event_loop`: uvloop, which carries 15-25% more calls than asyncio's) as the
gateway. `omnistock bench` starts it in its own process and compares every scenario
with it. It prints "listening on PORT with LOOP" once it serves.
"""

from __future__ import annotations

import argparse

import grpc

from omnistock.gateway.runtime.event_loop import loop_runner, running_loop_name
from omnistock.loadtest.processes import until_stopped

ECHO_METHOD = "/omnistock.bench.Echo/Echo"


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


def handler() -> grpc.GenericRpcHandler:
    # No (de)serializers: bytes in, bytes out, so nothing but gRPC itself is measured.
    method = grpc.unary_unary_rpc_method_handler(_echo)
    return grpc.method_handlers_generic_handler("omnistock.bench.Echo", {"Echo": method})


async def serve(host: str, port: int) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler(),))
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    print(f"listening on {bound} with {running_loop_name()}", flush=True)
    await until_stopped()
    await server.stop(grace=1)


def main() -> None:
    parser = argparse.ArgumentParser(description="A bare gRPC echo server (the bench's ceiling).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    args = parser.parse_args()
    loop_runner()(serve(args.host, args.port))


if __name__ == "__main__":
    main()
