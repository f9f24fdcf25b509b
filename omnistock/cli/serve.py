"""`omnistock serve` and `omnistock gateway`: the service in this process (with its demo
network), or one gateway process of several."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import ipaddress
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from omnistock.availability.network import Channel, NodeGroup
from omnistock.availability.network_file import NetworkFile
from omnistock.availability.nodes import Node
from omnistock.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    STOP_TIMEOUT,
    ProblemsError,
    UsageError,
    count_of,
)
from omnistock.cli.network_args import (
    network_messages,
    network_problems,
    parse_network_text,
    read_network_file,
)
from omnistock.cli.network_commands import apply_network, describe_applied
from omnistock.client import DEFAULT_TARGET, Credentials, OmnistockClient, OmnistockRpcError, read_api_key
from omnistock.gateway.runtime.event_loop import loop_runner
from omnistock.gateway.runtime.redis_url import redacted as redact
from omnistock.reservations.domain.errors import InvalidArgument

if TYPE_CHECKING:
    from omnistock.gateway.grpc.admission import AdmissionSettings
    from omnistock.gateway.runtime.service import Service, ServiceConfig


def client_target(host: str, port: int) -> str:
    """Where a local client reaches a server listening on host:port."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def is_loopback(host: str) -> bool:
    """Only this machine reaches `host`: localhost, 127.0.0.0/8 or ::1 (not 0.0.0.0, not a name)."""
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def default_auth(host: str, insecure: bool) -> str:
    """API keys off loopback (unless --insecure), none on it: a developer's machine."""
    return "off" if insecure or is_loopback(host) else "keys"


def exposure_refusal(host: str, tls: bool, auth: str, insecure: bool) -> str | None:
    """None when serve may listen on `host` as set; otherwise what to add, in words. Beyond
    loopback the API needs TLS and API keys, unless --insecure says to go without."""
    if insecure or is_loopback(host):
        return None
    needed = [what for what, has in (("TLS", tls), ("API keys", auth == "keys")) if not has]
    if not needed:
        return None
    lines = [
        f"error: --host {host} is reachable from the network: serve listens there only with TLS and"
        f" API keys ({' and '.join(needed)} missing)"
    ]
    if not tls:
        lines.append(
            "  add --tls-cert FILE --tls-key FILE (to try it: `omnistock certs dev ./certs --host NAME`"
            " makes ./certs/server.pem and ./certs/server.key)"
        )
    if auth != "keys":
        lines.append("  leave out --auth off (API keys are the default off loopback)")
    lines.append("  or add --insecure to serve without them anyway (a trusted network only)")
    return "\n".join(lines)


def security_refusal(args: argparse.Namespace) -> str | None:
    """serve's TLS and key flags checked before anything starts: None, or the error to print."""
    if bool(args.tls_cert) != bool(args.tls_key):
        given, missing = ("--tls-cert", "--tls-key") if args.tls_cert else ("--tls-key", "--tls-cert")
        return f"error: {given} needs {missing}: the certificate and its private key go together"
    if args.client_ca and not args.tls_cert:
        return "error: --client-ca needs --tls-cert and --tls-key: client certificates are checked over TLS"
    files = (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key), ("--client-ca", args.client_ca))
    for flag, path in files:
        if path:
            try:
                Path(path).read_bytes()
            except OSError as error:
                return f"error: cannot read {flag} {path}: {error.strerror or error}"
    auth = args.auth or default_auth(args.host, args.insecure)
    return exposure_refusal(args.host, bool(args.tls_cert), auth, args.insecure)


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def security_rows(config: ServiceConfig, admin_key_file: Path | None) -> list[tuple[str, str]]:
    """The banner's TLS and API keys rows, in words (and the admin key made at this start)."""
    if config.tls_cert is None:
        tls = "off (plain text)"
    elif config.client_ca is not None:
        tls = f"on (clients must show a certificate signed by {config.client_ca})"
    else:
        tls = f"on (certificate {config.tls_cert}; clients show none)"
    if config.auth == "keys":
        keys = "required (every call shows `authorization: Bearer <key>`; omnistock keys create makes them)"
    else:
        keys = "not required (anyone who reaches the port can do anything)"
    rows = [("TLS", tls), ("API keys", keys)]
    if admin_key_file is not None:
        rows.append(
            ("admin", f"key in {admin_key_file} (mode 0600, every scope): make narrower keys with it")
        )
    return rows


def insecure_line(config: ServiceConfig, port: int) -> str | None:
    """The loud line of a service reachable from the network without TLS or keys."""
    if is_loopback(config.host):
        return None
    gaps = (("plain text", config.tls_cert is None), ("no keys", config.auth != "keys"))
    missing = [what for what, gone in gaps if gone]
    if not missing:
        return None
    return f"INSECURE: {' and '.join(missing)} on {host_port(config.host, port)}, reachable from the network"


def own_credentials(config: ServiceConfig, admin_key_file: Path | None) -> Credentials:
    """How serve reaches its own port (to load the demo): it trusts its own certificate chain
    (with `omnistock certs dev`'s, the CA's certificate follows the server's), shows its own
    certificate when clients must show one, and uses the admin key made at this start."""
    if config.tls_cert is None:
        tls = Credentials()
    elif config.client_ca is not None:
        tls = Credentials(config.tls_cert, config.tls_cert, config.tls_key)
    else:
        tls = Credentials(config.tls_cert)
    if config.auth != "keys" or admin_key_file is None:
        return tls
    return Credentials(tls.tls_ca, tls.client_cert, tls.client_key, read_api_key(admin_key_file))


def admission_settings(args: argparse.Namespace) -> AdmissionSettings:
    from omnistock.gateway.grpc.admission import AdmissionSettings

    return AdmissionSettings(
        max_calls=args.max_calls,
        max_streams=args.max_streams,
        connection_streams=args.max_connection_streams,
        rate_per_key=args.rate_per_key,
        burst_per_key=args.burst_per_key,
    )


def service_config(args: argparse.Namespace) -> ServiceConfig:
    from omnistock.gateway.runtime.service import ServiceConfig

    return ServiceConfig(
        **listening_settings(args),
        shards=args.shards,
        partitions=args.partitions,
        data_dir=Path(args.data_dir),
        redis_fsync=args.redis_fsync,
        redis_replicas=args.redis_replicas,
        redis_wait_ms=args.redis_wait_ms,
        gateways=args.gateways,
        # With --demo the file is applied once the demo nodes are there (see serve_async).
        network_file=Path(args.network) if args.network and not args.demo else None,
    )


def listening_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings serve and a standalone gateway take alike (app.add_listening_arguments,
    the Redis and Ray to use)."""
    return {
        "host": args.host,
        "port": args.port,
        "metrics_port": args.metrics_port,
        "metrics_host": args.metrics_host,
        "admission": admission_settings(args),
        "redis_url": args.redis_url,
        "ray_address": args.ray_address,
        "tls_cert": Path(args.tls_cert) if args.tls_cert else None,
        "tls_key": Path(args.tls_key) if args.tls_key else None,
        "client_ca": Path(args.client_ca) if args.client_ca else None,
        "auth": args.auth or default_auth(args.host, args.insecure),
    }


ParsedNetwork = tuple[list[Node], list[NodeGroup], list[Channel]]


def serve_network_file(args: argparse.Namespace) -> tuple[str, NetworkFile] | None:
    """The network file `serve` applies at start (--network, or the demo's with --demo), read and
    checked before anything starts; ProblemsError names every problem."""
    if args.network:
        where = args.network
        parsed = read_network_file(args.network)
    elif args.demo:
        from omnistock.loadtest.datagen import DEMO_NETWORK_FILE, demo_network_text

        where = f"loadtest/{DEMO_NETWORK_FILE}"
        parsed = parse_network_text(demo_network_text(), where)
    else:
        return None
    # Checks of single settings (ids, types, ranges) now; references to nodes and groups,
    # which the stored network may hold, are checked when the file is applied.
    messages = network_messages(parsed.nodes, parsed.groups, parsed.channels)
    problems = network_problems(None, *messages, parsed.purchase_limits)
    if problems:
        raise ProblemsError(f"{where}: {count_of(problems, 'problem')}", problems)
    return where, parsed


def serve_network(args: argparse.Namespace) -> tuple[str, ParsedNetwork] | None:
    """serve_network_file's nodes, groups and channels (its purchase limits left out)."""
    found = serve_network_file(args)
    if found is None:
        return None
    where, parsed = found
    return where, (parsed.nodes, parsed.groups, parsed.channels)


def say_problems(say: Callable[[str], None], headline: str, problems: Sequence[tuple[str, str]]) -> None:
    say(f"error: {headline}")
    for field, description in problems:
        say(f"  {field}: {description}")


def banner(service: Service) -> str:
    config = service.config
    embedded = service.redis_server
    redis = redact(service.redis_url) + (
        f" (embedded {embedded.describe()}, data in {(config.data_dir / 'redis').resolve()})"
        if embedded is not None
        else ""
    )
    ports = [port for port in service.metrics_ports if port]
    metrics = (
        ", ".join(f"http://{client_target(config.metrics_host, port)}/metrics" for port in ports) or "off"
    )
    if len(ports) > 1:
        metrics += " (one per gateway)"
    gateways = (
        f"{config.gateways} processes sharing the port (SO_REUSEPORT)" if config.gateways > 1 else "1 process"
    )
    rows = [
        ("gRPC", f"{client_target(config.host, service.port)} (listening on {config.host})"),
        *security_rows(config, admin_key_file(service)),
        ("gateways", gateways),
        ("metrics", metrics),
        ("shards", f"{config.shards} Ray actor(s) on {config.ray_address or 'a local Ray runtime'}"),
        ("redis", redis),
        ("data dir", str(config.data_dir.resolve())),
        ("stop", f"Ctrl-C, or kill -TERM {os.getpid()} (drains in-flight calls, then stops all it started)"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = ["omnistock is serving"] + [f"  {label.ljust(width)}  {value}" for label, value in rows]
    loud = insecure_line(config, service.port)
    return "\n".join([*lines, f"  {loud}"] if loud else lines)


def admin_key_file(service: Service) -> Path | None:
    """The file of the admin key the service made at this start (auth "keys", no key yet)."""
    found = getattr(service, "admin_key_file", None)
    return Path(found) if found else None


def try_hint(target: str, config: ServiceConfig | None = None, key_file: Path | None = None) -> str:
    flag = "" if target == DEFAULT_TARGET else f" --target {target}"
    if config is not None and config.tls_cert is not None:
        flag += f" --tls-ca {config.client_ca or 'CA.pem'}"
        if config.client_ca is not None:
            flag += " --tls-cert CLIENT.pem --tls-key CLIENT.key"
    if config is not None and config.auth == "keys":
        flag += f" --api-key-file {key_file or 'KEY_FILE'}"
    return f"try: omnistock availability SKU-00001 --nodes{flag}    (stop with Ctrl-C)"


async def load_demo_if_empty(
    target: str,
    say: Callable[[str], None],
    network: tuple[str, NetworkFile] | None = None,
    credentials: Credentials | None = None,
) -> None:
    """Load the demo nodes and stock unless nodes are registered, and apply `network` (the demo's
    groups and channels, or the --network file) once the nodes are there."""
    from omnistock.loadtest.datagen import demo_nodes, load_demo

    async with OmnistockClient(target, timeout=60.0, credentials=credentials) as client:

        async def apply() -> None:
            if network is not None:
                where, parsed = network
                applied = await apply_network(client, parsed, where)
                say(f"demo: network {where} applied (version {applied['version']}):")
                for line in describe_applied(applied).splitlines()[:-1]:
                    say(f"demo:   {line}")

        if await client.list_nodes():
            say("demo: nodes are already registered; keeping the stock as it is")
            await apply()
            return
        if network is not None:
            # Checked with the demo nodes before they are put: a bad file leaves nothing behind.
            where, parsed = network
            node_messages, group_messages, channel_messages = network_messages(
                parsed.nodes, parsed.groups, parsed.channels
            )
            problems = network_problems(
                await client.get_network(),
                [*demo_nodes(), *node_messages],
                group_messages,
                channel_messages,
                parsed.purchase_limits,
            )
            if problems:
                raise ProblemsError(
                    f"{where}: {count_of(problems, 'problem')}, nothing was applied", problems
                )
        started = time.perf_counter()
        say("demo: loading the demo network ...")
        await load_demo(client, progress=lambda text: say(f"demo: {text}"), after_nodes=apply)
        say(f"demo: ready in {time.perf_counter() - started:.1f}s")


async def serve_async(args: argparse.Namespace, network: tuple[str, NetworkFile] | None = None) -> int:
    from omnistock.gateway.runtime.service import Service
    from omnistock.reservations.shard.actor import settle_heap

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    service = Service(service_config(args))
    try:
        await service.start()
    except BaseException as error:
        # Whatever started (redis-server, Ray) must not outlive a failed start.
        try:
            await service.stop(grace=0)
        except Exception:
            logging.getLogger(__name__).exception("clean-up after a failed start")
        if isinstance(error, InvalidArgument) and network is not None:
            headline = f"{network[0]} does not fit the stored network; nothing was applied or started"
            say_problems(say, headline, error.violations)
            return EXIT_USAGE
        if isinstance(error, Exception):
            hint = " (is something else listening on that port?)" if "bind" in str(error).lower() else ""
            say(f"error: cannot start omnistock: {error}{hint}")
            return EXIT_REFUSED
        raise

    settle_heap()
    # Installed after start: ray.init() replaces the SIGTERM handler with its own sys.exit.
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    exit_code = EXIT_OK

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            say("already stopping; waiting for in-flight calls to finish")
        else:
            say(f"\n{signal.Signals(signum).name}: stopping, draining in-flight calls (up to 5s)")
            stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)

    target = client_target(service.config.host, service.port)
    key_file = admin_key_file(service)
    say(banner(service))
    if network is not None and not args.demo and service.network is not None:
        say(f"network {network[0]} applied (version {service.network.network.version})")
    demo: asyncio.Task[None] | None = None
    if args.demo:

        async def demo_then_hint() -> None:
            nonlocal exit_code
            try:
                credentials = own_credentials(service.config, key_file)
                await load_demo_if_empty(target, say, network, credentials)
            except ProblemsError as error:
                say_problems(say, f"{error}; stopping", error.problems)
                exit_code = EXIT_USAGE
                stopping.set()
                return
            except OmnistockRpcError as error:
                say(f"demo: loading failed: {error}; the service keeps running")
            except (OSError, ValueError) as error:  # the admin key's file, the TLS files
                say(f"demo: cannot connect to load it: {error}; the service keeps running")
            say(try_hint(target, service.config, key_file))

        demo = asyncio.create_task(demo_then_hint())
    else:
        say(try_hint(target, service.config, key_file))
    try:
        await stopping.wait()
    finally:
        # A stop that hangs would be killed by the supervisor without a word: print every
        # thread's stack and exit instead, so the log says where it hung. Left armed until
        # the process ends, since interpreter exit can hang too.
        faulthandler.dump_traceback_later(STOP_TIMEOUT, exit=True)
        if demo is not None and not demo.done():
            demo.cancel()
            await asyncio.gather(demo, return_exceptions=True)
        await service.stop(grace=5)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    say("omnistock stopped")
    # Everything is stopped and flushed: leave now. Tearing down the event loop can hang
    # joining gRPC's poller thread (grpc/grpc#40989), and nothing is left to clean up.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)


def serve(args: argparse.Namespace) -> int:
    try:
        network = serve_network_file(args)
    except ProblemsError as error:
        say_problems(lambda text: print(text, file=sys.stderr), str(error), error.problems)
        return EXIT_USAGE
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    refusal = security_refusal(args)
    if refusal is not None:  # before anything starts
        print(refusal, file=sys.stderr)
        return EXIT_USAGE
    start_logging(args)
    try:
        return cast(int, loop_runner()(serve_async(args, network)))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default="info",
        type=str.lower,
        choices=["debug", "info", "warning", "error"],
        help="(default %(default)s)",
    )


def start_logging(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def gateway_config(args: argparse.Namespace) -> ServiceConfig:
    """A standalone gateway's own settings; what it shares with the service (partitions,
    shards, Ray namespace) it reads from Redis (serve_standalone_gateway)."""
    from omnistock.gateway.runtime.service import ServiceConfig

    return ServiceConfig(**listening_settings(args), prefix=args.prefix)


def run_standalone_gateway(args: argparse.Namespace) -> int:
    """`omnistock gateway --ray-address ADDR`: one gateway of a running service, on any host
    of its Ray cluster, on a port of its own."""
    from omnistock.gateway.runtime.service import NoService, ServiceGone, serve_standalone_gateway

    if not args.redis_url:
        print(
            "error: a gateway of its own needs the running service's Redis: --redis-url URL"
            f" (or {REDIS_URL_ENV}, which keeps a password out of the process list)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    refusal = security_refusal(args)
    if refusal is not None:  # before anything starts
        print(refusal, file=sys.stderr)
        return EXIT_USAGE
    start_logging(args)
    code = EXIT_OK
    try:
        loop_runner()(serve_standalone_gateway(gateway_config(args)))
    except (NoService, ServiceGone) as error:
        print(f"error: {error}", file=sys.stderr)
        code = EXIT_REFUSED
    except Exception:
        logging.getLogger(__name__).exception("gateway failed")
        code = EXIT_REFUSED
    # As serve: leave without tearing down the loop (grpc/grpc#40989).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


REDIS_URL_ENV = "OMNISTOCK_REDIS_URL"
"""`omnistock gateway --redis-url`'s default."""


def run_gateway(args: argparse.Namespace) -> int:
    from omnistock.gateway.runtime.service import serve_gateway

    if args.ray_address:
        return run_standalone_gateway(args)
    settings = "" if sys.stdin.isatty() else sys.stdin.readline()
    if not settings.strip():
        print(
            "error: omnistock gateway needs --ray-address (a gateway of its own), or its settings on"
            " stdin (serve starts it)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    start_logging(args)
    code = EXIT_OK
    try:
        loop_runner()(serve_gateway(settings))
    except Exception:
        logging.getLogger(__name__).exception("gateway failed")
        code = EXIT_REFUSED
    # As serve: leave without tearing down the loop (grpc/grpc#40989).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def load_demo_network(
    target: str, say: Callable[[str], None], credentials: Credentials | None = None
) -> None:
    """The demo network and stock, unless nodes are registered (then its channels only)."""
    from omnistock.loadtest.datagen import DEMO_NETWORK_FILE, demo_network_text

    where = f"loadtest/{DEMO_NETWORK_FILE}"
    network = (where, parse_network_text(demo_network_text(), where))
    await load_demo_if_empty(target, say, network, credentials)
