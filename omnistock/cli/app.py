"""The `omnistock` command line: every command's options, and a client command run against
the service."""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from omnistock.cli.certs import add_certs_commands
from omnistock.cli.commands import (
    Command,
    cmd_availability,
    cmd_cancel_lines,
    cmd_check,
    cmd_confirm,
    cmd_extend,
    cmd_fulfil,
    cmd_get,
    cmd_nodes_list,
    cmd_nodes_put,
    cmd_pickup,
    cmd_reassign,
    cmd_release,
    cmd_reserve,
    cmd_return,
    cmd_stock_adjust,
    cmd_stock_load,
    cmd_stock_set,
)
from omnistock.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_REFUSED,
    EXIT_USAGE,
    INT32,
    INT64,
    NODE_FIELDS,
    NODE_TYPE_NAMES,
    TARGET_ENV,
    ProblemsError,
    UsageError,
    add_connection_arguments,
    connection_hint,
    credentials_of,
)
from omnistock.cli.events import DESCRIPTION as EVENTS_DESCRIPTION
from omnistock.cli.events import HELP as EVENTS_HELP
from omnistock.cli.events import add_arguments as add_events_arguments
from omnistock.cli.events import cmd_events
from omnistock.cli.keys import cmd_keys_create, cmd_keys_list, cmd_keys_revoke, cmd_keys_rotate
from omnistock.cli.network_args import DEFAULT_SOURCING, SOURCING_RULES, STOCK_STATE_NAMES, parse_yes_no
from omnistock.cli.network_commands import (
    cmd_channels_delete,
    cmd_channels_list,
    cmd_channels_put,
    cmd_channels_show,
    cmd_groups_delete,
    cmd_groups_list,
    cmd_groups_put,
    cmd_limits_list,
    cmd_limits_put,
    cmd_network_apply,
    cmd_network_show,
    cmd_supply_expect,
    cmd_supply_load,
)
from omnistock.cli.output import Output
from omnistock.cli.parsing import LEVEL_FORM, SUPPLY_FORM
from omnistock.cli.serve import REDIS_URL_ENV, add_log_level, load_demo_network, run_gateway, serve
from omnistock.cli.shards import cmd_scale, cmd_shards
from omnistock.cli.watch import cmd_watch
from omnistock.client import DEFAULT_TARGET, Credentials, OmnistockClient, OmnistockRpcError
from omnistock.gateway.runtime.cpus import default_shards
from omnistock.gateway.usecases.access import Scope
from omnistock.loadtest.bench import add_arguments as add_bench_arguments
from omnistock.loadtest.bench import run_bench
from omnistock.loadtest.peakday import add_arguments as add_loadtest_arguments
from omnistock.loadtest.peakday import run_loadtest
from omnistock.loadtest.sizing import add_arguments as add_size_arguments
from omnistock.loadtest.sizing import run_size


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def int32(text: str) -> int:
    value = int(text)
    if not INT32[0] <= value <= INT32[1]:
        raise argparse.ArgumentTypeError(f"out of range: {value}")
    return value


def int64(text: str) -> int:
    value = int(text)
    if not INT64[0] <= value <= INT64[1]:
        raise argparse.ArgumentTypeError(f"out of range: {value}")
    return value


def non_negative_number(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def port_number(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port within 0..65535, got {value}")
    return value


Commands = Any
"""argparse's subcommands of a parser (`add_subparsers`; its class is private)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnistock",
        description="Inventory availability and reservations for omnichannel retail.",
        epilog="Run `omnistock COMMAND --help` for the options of a command.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_service_commands(commands)
    add_certs_commands(commands)
    client_command = ClientCommands()
    add_stock_commands(commands, client_command)
    add_availability_commands(commands, client_command)
    add_reservation_commands(commands, client_command)
    add_network_commands(commands, client_command)
    add_shard_commands(commands, client_command)
    add_events_arguments(
        client_command(commands, "events", cmd_events, EVENTS_HELP, description=EVENTS_DESCRIPTION)
    )
    return parser


class ClientCommands:
    """Adds a command that calls a running service: it takes --target, --json and --timeout,
    and runs through `run_client`."""

    def __init__(self) -> None:
        self.options = argparse.ArgumentParser(add_help=False)
        self.options.add_argument(
            "--target",
            default=os.environ.get(TARGET_ENV, DEFAULT_TARGET),
            help=f"omnistock gRPC address (default: ${TARGET_ENV} or {DEFAULT_TARGET})",
        )
        self.options.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
        self.options.add_argument(
            "--timeout", type=float, default=30.0, help="seconds per call (default %(default)s)"
        )
        add_connection_arguments(self.options)

    def __call__(
        self, group: Commands, name: str, command: Command, help_text: str, **kwargs: Any
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(
            name, parents=[self.options], help=help_text, **kwargs
        )
        sub.set_defaults(handler=lambda args: run_client(args, command))
        return sub


def add_listening_arguments(parser: argparse.ArgumentParser, metrics_port_help: str) -> None:
    """What serve and a standalone gateway share: where they listen, their limits under load,
    TLS and API keys."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default %(default)s)")
    parser.add_argument("--port", type=port_number, default=50051, help="gRPC port (default %(default)s)")
    parser.add_argument(
        "--metrics-port", type=port_number, default=9464, help=f"{metrics_port_help} (default %(default)s)"
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="interface for /metrics, whatever --host is (default %(default)s: loopback only)",
    )
    add_limit_arguments(parser)
    add_security_arguments(parser)


def add_service_commands(commands: Commands) -> None:
    """serve, gateway, bench, size, loadtest: the commands that run something here."""
    serve_parser = commands.add_parser("serve", help="run the service (gRPC, shard actors, Redis journal)")
    add_listening_arguments(serve_parser, "Prometheus /metrics port")
    serve_parser.add_argument(
        "--shards",
        type=positive_int,
        default=default_shards(),
        help="shard actors owning the partitions (default: one per CPU but one, %(default)s)",
    )
    serve_parser.add_argument(
        "--gateways",
        type=positive_int,
        default=1,
        help="gateway processes sharing the gRPC port (SO_REUSEPORT); gateway i serves its metrics"
        " on --metrics-port + i (default %(default)s)",
    )
    serve_parser.add_argument(
        "--partitions",
        type=positive_int,
        default=256,
        help="partitions of the SKU space; fixed at the first start, then read from Redis"
        " (default %(default)s)",
    )
    serve_parser.add_argument(
        "--redis-url",
        default=os.environ.get(REDIS_URL_ENV) or None,
        help="external Redis, e.g. redis://host:6379/0 or redis+cluster://h1:6379,h2:6379 (default:"
        f" ${REDIS_URL_ENV}, which keeps a password out of the process list; unset: embedded)",
    )
    serve_parser.add_argument(
        "--ray-address", help="Ray cluster to join, e.g. auto (default: a local runtime)"
    )
    serve_parser.add_argument(
        "--data-dir", default="./var", help="where the embedded Redis keeps its data (default %(default)s)"
    )
    serve_parser.add_argument(
        "--demo",
        action="store_true",
        help="load the demo network (3 DCs, 50 stores, 1000 SKUs) when no node is registered yet,"
        " with its node groups and channels (loadtest/demo-network.toml) unless --network is given",
    )
    serve_parser.add_argument(
        "--network",
        metavar="FILE",
        help="TOML file of nodes, node groups, channels and purchase limits applied at start over the"
        " stored network;"
        " checked whole: a bad file prints every problem and exits 2",
    )
    serve_parser.add_argument(
        "--redis-fsync",
        choices=["always", "everysec"],
        default="always",
        help="AOF fsync of the embedded Redis: always loses no acknowledged write (default %(default)s)",
    )
    serve_parser.add_argument(
        "--redis-replicas",
        type=non_negative_int,
        default=0,
        help="replicas of the journal's Redis master that must have each batch (WAIT) before it is"
        " acknowledged; 0 trusts the master's AOF alone (default %(default)s)",
    )
    serve_parser.add_argument(
        "--redis-wait-ms",
        type=positive_int,
        default=1000,
        help="how long a batch waits for --redis-replicas before it fails, retry-safe, with"
        " UNAVAILABLE (default %(default)s)",
    )
    add_log_level(serve_parser)
    serve_parser.set_defaults(handler=serve)

    gateway_parser = commands.add_parser(
        "gateway",
        help="one more gateway of a running service, on any host of its Ray cluster (--ray-address)",
        description="With --ray-address: a gateway of its own, on any host of the running service's"
        " Ray cluster, on its own port; it reads the service's partitions, shard count and Ray"
        " namespace from its Redis and serves until SIGTERM or Ctrl-C (docs/running.md). Without:"
        " one of `omnistock serve --gateways N`'s gateways, which reads its settings as one JSON"
        " line on stdin (serve starts it).",
    )
    gateway_parser.add_argument(
        "--ray-address", help="the service's Ray cluster, e.g. 10.0.0.5:6379 or auto (this node's)"
    )
    gateway_parser.add_argument(
        "--redis-url",
        default=os.environ.get(REDIS_URL_ENV) or None,
        help=f"the service's Redis (default: ${REDIS_URL_ENV}, which keeps a password out of the"
        " process list)",
    )
    gateway_parser.add_argument(
        "--prefix", default="omnistock", help="the service's Redis key prefix (default %(default)s)"
    )
    add_listening_arguments(gateway_parser, "Prometheus /metrics port of this gateway")
    add_log_level(gateway_parser)
    gateway_parser.set_defaults(handler=run_gateway)

    bench_parser = commands.add_parser(
        "bench",
        help="measure every hot path against a bare gRPC echo server, in one run",
        description="Starts a gRPC echo server and (unless --target) an omnistock service, loads a"
        " catalog, and measures Reserve, availability, a hot SKU and checkouts against the echo"
        " ceiling: calls/s, p50/p99/max, errors, ratio, and the targets of docs/performance.md."
        " Exit status 1 if any scenario had an error.",
    )
    add_bench_arguments(bench_parser)
    add_connection_arguments(bench_parser)
    bench_parser.set_defaults(handler=run_bench, reads_credentials=True)

    size_parser = commands.add_parser(
        "size",
        help="gateways, shards and cores for a retailer's busy hour times a spike",
        description="Turns orders per busy hour, lines and availability checks per order, stock updates"
        " and a spike factor into request rates per RPC, and, from the per-core capacity `omnistock bench`"
        " measured, into the gateways, shards and cores needed with headroom (docs/sizing.md); with"
        " --node-cores, into Ray nodes, Redis masters and replicas and the manifests' replicas"
        " (docs/cluster.md).",
    )
    add_size_arguments(size_parser)
    size_parser.set_defaults(handler=run_size)

    loadtest_parser = commands.add_parser(
        "loadtest",
        help="the peak day: Locust scenarios ramped to a spike of the normal peak, with a verdict",
        description="Starts an omnistock service (unless --target) with the demo network, runs Locust"
        " (shoppers, checkouts, store associates, the POS / WMS feed, marketplaces on the live feed)"
        " from the normal peak up to --spike x and holds it, writes Locust's CSV and HTML report into"
        " --out, and prints achieved rates against targets, p50/p99 and errors per RPC, and the stock"
        " checks at the end. Exit status 1 on any error, oversold unit or hold left open.",
    )
    add_loadtest_arguments(loadtest_parser)
    add_connection_arguments(loadtest_parser)
    loadtest_parser.set_defaults(
        handler=functools.partial(run_loadtest, load_network=load_demo_network), reads_credentials=True
    )


def add_security_arguments(parser: argparse.ArgumentParser) -> None:
    """serve's TLS and API keys. Off loopback both are required unless --insecure
    (omnistock/cli/serve.py, security_refusal)."""
    group = parser.add_argument_group(
        "TLS and API keys (required when --host is not loopback, unless --insecure)"
    )
    group.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="PEM certificate chain of the gRPC port, which then serves TLS only (with --tls-key);"
        " `omnistock certs dev DIR` makes one to try",
    )
    group.add_argument("--tls-key", metavar="FILE", help="the PEM private key of --tls-cert")
    group.add_argument(
        "--client-ca",
        metavar="FILE",
        help="PEM CA bundle: every client must show a certificate it signed (mutual TLS)",
    )
    group.add_argument(
        "--auth",
        choices=["keys", "off"],
        help="keys: every call shows an API key (`omnistock keys`); off: no key is asked for"
        " (default: keys off loopback, off on loopback)",
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        help="listen beyond loopback without TLS or API keys anyway (a trusted network only)",
    )


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """serve's limits under load: past them a call is refused at once with RESOURCE_EXHAUSTED
    and a RetryInfo (gateway/grpc/admission.py)."""
    limits = parser.add_argument_group("limits under load (each gateway; 0: no limit)")
    limits.add_argument(
        "--max-calls",
        type=non_negative_int,
        default=1000,
        metavar="N",
        help="unary calls in flight at a gateway (default %(default)s)",
    )
    limits.add_argument(
        "--max-streams",
        type=non_negative_int,
        default=1000,
        metavar="N",
        help="open streams at a gateway: live feeds, stock loads (default %(default)s)",
    )
    limits.add_argument(
        "--max-connection-streams",
        type=non_negative_int,
        default=1000,
        metavar="N",
        help="HTTP/2 streams one connection may have open; a client queues the rest (default %(default)s)",
    )
    limits.add_argument(
        "--rate-per-key",
        type=non_negative_number,
        default=0.0,
        metavar="PER_S",
        help="calls a second each caller (API key) may make at a gateway (default 0: no rate limit)",
    )
    limits.add_argument(
        "--burst-per-key",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="calls a caller may make at once beyond its rate (default 0: one second's worth)",
    )


def add_stock_commands(commands: Commands, client_command: ClientCommands) -> None:
    """nodes, stock, supply, check: where stock is, how much, what is coming, whether it adds up."""
    nodes = commands.add_parser("nodes", help="stocking locations: put, list")
    node_commands = nodes.add_subparsers(dest="nodes_command", metavar="ACTION", required=True)
    put = client_command(
        node_commands,
        "put",
        cmd_nodes_put,
        "create or replace nodes from a CSV or JSON file",
        description=f"FILE is CSV with a header naming some of {','.join(NODE_FIELDS)}"
        " (only node_id and type are required; ships and enabled default to true, pickup to false;"
        " priority, shipment_cost and daily_capacity, used by sourcing, to 0: daily_capacity 0 is no"
        " limit) or a JSON list of such objects. type is store, dc, 3pl or dropship. - reads stdin.",
    )
    put.add_argument("file", metavar="FILE")
    listing = client_command(node_commands, "list", cmd_nodes_list, "list nodes")
    listing.add_argument("--type", choices=sorted(NODE_TYPE_NAMES), help="only nodes of this type")

    stock = commands.add_parser("stock", help="stock on hand: set, adjust (and receive), load")
    stock_commands = stock.add_subparsers(dest="stock_command", metavar="ACTION", required=True)
    setting = client_command(
        stock_commands,
        "set",
        cmd_stock_set,
        "set the absolute on_hand of a SKU at a node",
        description="An older --as-of never overwrites a newer count (the call answers stale).",
    )
    setting.add_argument("sku", metavar="SKU")
    setting.add_argument("node", metavar="NODE")
    setting.add_argument("on_hand", metavar="ON_HAND")
    setting.add_argument(
        "--as-of", help="when the count was taken, ISO 8601 (default: now); local time without offset"
    )
    setting.add_argument("--damaged", default="0", metavar="N", help="of ON_HAND, units damaged (default 0)")
    setting.add_argument(
        "--quality-hold", default="0", metavar="N", help="of ON_HAND, units under quality hold (default 0)"
    )
    adjust = client_command(
        stock_commands,
        "adjust",
        cmd_stock_adjust,
        "add a signed delta to on_hand (idempotent by id); with --supply-id a receipt",
        description="Prints the outcome APPLIED, REPLAYED, REFUSED_NEGATIVE, CONFLICT or UNKNOWN_SUPPLY;"
        " exits 1 unless APPLIED or REPLAYED. With --supply-id the delta is a receipt of that expected"
        " supply line (a positive delta of sellable units): the units leave the supply as they go on hand.",
    )
    adjust.add_argument("sku", metavar="SKU")
    adjust.add_argument("node", metavar="NODE")
    adjust.add_argument("delta", metavar="DELTA")
    adjust.add_argument("--id", help="adjustment id (default: a new one, printed); the same id again is safe")
    adjust.add_argument("--reason", default="", help="free text for audit: receipt, pos-sale, damage, ...")
    adjust.add_argument(
        "--state",
        type=str.lower,
        choices=sorted(STOCK_STATE_NAMES),
        default="sellable",
        help="which units change: sellable (default) changes on_hand; damaged or quality_hold changes"
        " on_hand and that state's count together",
    )
    adjust.add_argument(
        "--supply-id",
        metavar="ID",
        help="a receipt of this expected supply line of the SKU at the node (UNKNOWN_SUPPLY when"
        " there is none)",
    )
    load = client_command(
        stock_commands,
        "load",
        cmd_stock_load,
        "stream a CSV of absolute counts",
        description=f"FILE is CSV {LEVEL_FORM}, or with a header row naming those columns in any order"
        " (sku, node_id and on_hand required); damaged and quality_hold are parts of on_hand."
        " Streamed in chunks without reading it all into memory. - reads stdin.",
    )
    load.add_argument("file", metavar="FILE")
    load.add_argument(
        "--chunk", type=positive_int, default=5_000, help="levels per chunk (default %(default)s)"
    )

    supply = commands.add_parser("supply", help="expected inbound supply: expect, load")
    supply_commands = supply.add_subparsers(dest="supply_command", metavar="ACTION", required=True)
    expect = client_command(
        supply_commands,
        "expect",
        cmd_supply_expect,
        "expect QTY units of a SKU at a node on a date (QTY 0 clears the line)",
        description="Creates or changes the supply line (SUPPLY_ID, SKU, NODE): a purchase order or"
        " transfer line still to come. A supply id may have lines for many SKUs and nodes. Receive it"
        " with `omnistock stock adjust SKU NODE QTY --supply-id SUPPLY_ID`.",
    )
    expect.add_argument("supply_id", metavar="SUPPLY_ID")
    expect.add_argument("sku", metavar="SKU")
    expect.add_argument("node", metavar="NODE")
    expect.add_argument("quantity", metavar="QTY", help="units still to come; 0 clears the line")
    expect.add_argument(
        "--date",
        metavar="ISO8601",
        help="when the supply is expected, e.g. 2026-12-01 or 2026-12-01T09:00:00Z (local time"
        " without offset); required unless QTY is 0",
    )
    supply_load = client_command(
        supply_commands,
        "load",
        cmd_supply_load,
        "expect the supply lines of a CSV file",
        description=f"FILE is CSV {SUPPLY_FORM}, or with a header row naming those columns in any order."
        " The whole file is checked before anything is sent, then sent in calls of --chunk lines."
        " Quantity 0 clears a line. - reads stdin.",
    )
    supply_load.add_argument("file", metavar="FILE")
    supply_load.add_argument(
        "--chunk", type=positive_int, default=10_000, help="lines per call (default and most %(default)s)"
    )

    client_command(
        commands,
        "check",
        cmd_check,
        "check: stock is conserved and every reservation's parts agree with its decision",
        description=(
            "Exits 1 when any position breaks conservation (reserved and committed equal the open"
            " holds, no negative count) or any reservation's parts disagree with each other or"
            " with the decision recorded in its home partition."
        ),
    )


def add_availability_commands(commands: Commands, client_command: ClientCommands) -> None:
    """availability, pickup, watch: what can be promised, and where."""
    availability = client_command(
        commands,
        "availability",
        cmd_availability,
        "availability of SKUs, network-wide or for a channel (1000 per call)",
        description="Answers come from the gateway's view of the shards (fresh within tens of"
        " milliseconds; the answer says its version and time) unless --consistent is given.",
    )
    availability.add_argument("skus", metavar="SKU", nargs="+")
    availability.add_argument("--nodes", action="store_true", help="also show every node's position")
    availability.add_argument(
        "--channel", metavar="CHANNEL", help="what this channel may promise, with its stock status"
    )
    availability.add_argument(
        "--consistent",
        action="store_true",
        help="read the shards (slower, reflects every acknowledged write)",
    )
    availability.add_argument(
        "--by-date",
        metavar="ISO8601",
        help="also what can be promised by then, counting expected supply (BY_DATE; local time"
        " without offset)",
    )
    availability.add_argument(
        "--quantity",
        type=positive_int,
        metavar="N",
        help="also the earliest time N units can be promised (EARLIEST: now, a date, or -)",
    )

    pickup = client_command(
        commands,
        "pickup",
        cmd_pickup,
        "pickup stores near a place or a store that have the basket, nearest first",
        description="Each ITEM is SKU or SKU:QTY (quantity 1 when left out; the part after the last"
        " colon is the quantity). Prints the stores that have the whole basket, then those that have"
        " part of it, each with every item's available and requested units. A latitude below zero"
        " needs the = form: --near=-33.87,151.21.",
    )
    pickup.add_argument("items", metavar="ITEM", nargs="+", help="SKU[:QTY], each SKU once (up to 100)")
    origin = pickup.add_mutually_exclusive_group(required=True)
    origin.add_argument("--near", metavar="LAT,LON", help="search around this place, decimal degrees")
    origin.add_argument("--store", metavar="STORE_ID", help="search around this store (it is included)")
    pickup.add_argument(
        "--radius", type=float, metavar="KM", help="search radius in km (default 50, at most 1000)"
    )
    pickup.add_argument(
        "--channel", metavar="CHANNEL", help="only the channel's pickup stores, with its share of their stock"
    )
    pickup.add_argument(
        "--limit", type=positive_int, metavar="N", help="stores per list (default 10, at most 100)"
    )

    watch = client_command(
        commands,
        "watch",
        cmd_watch,
        "follow availability live: changes and status crossings as they happen",
        description="First the current availability of every watched SKU (catch-up), then each"
        " change as it happens; a status crossing prints as OLD -> NEW. With no SKU every SKU is"
        " watched. Ctrl-C stops and prints the last version seen; --from-version V resumes after it"
        " with only what changed since. --json prints one JSON object per update and line.",
    )
    watch.add_argument("skus", metavar="SKU", nargs="*", help="SKUs to watch (up to 10000; none: every SKU)")
    watch.add_argument("--channel", metavar="CHANNEL", help="what this channel may promise, with its status")
    watch.add_argument(
        "--from-version",
        type=non_negative_int,
        default=0,
        metavar="V",
        help="resume after this version (the last one seen); 0 starts with every watched SKU",
    )
    watch.add_argument(
        "--full",
        action="store_true",
        help="list every SKU of a catch-up; without it a catch-up of more than 50 SKUs is counted by status",
    )


def add_reservation_commands(commands: Commands, client_command: ClientCommands) -> None:
    """reserve, then each step of a reservation's life."""
    reserve = client_command(
        commands,
        "reserve",
        cmd_reserve,
        "hold stock: every line or none, at the nodes named or sourced by the channel's rules",
        description="Each LINE is SKU:NODE:QTY, held at that node. With --ship-to or --pickup-at"
        " (and --channel) each LINE is SKU:QTY instead (SKU:*:QTY for a SKU holding colons) and the"
        " channel's sourcing rules choose the nodes; the answer says why each line went where it"
        " went (--explain: every node considered and why it lost). Either every line names its node"
        " or none does. A latitude below zero needs the = form: --ship-to=-33.87,151.21. The same"
        " --id again returns the first answer. A SKU with a purchase limit (`omnistock limits list`)"
        " needs --customer; a hold that would take the customer over it is refused"
        " (RESOURCE_EXHAUSTED, exit 1) naming every limit exceeded.",
    )
    reserve.add_argument("lines", metavar="LINE", nargs="+", help="SKU:NODE:QTY, or SKU:QTY to be sourced")
    destination = reserve.add_mutually_exclusive_group()
    destination.add_argument(
        "--ship-to",
        metavar="LAT,LON",
        help="deliver to this place (decimal degrees): omnistock sources the lines by --channel's rules",
    )
    destination.add_argument(
        "--pickup-at",
        metavar="STORE_ID",
        help="the customer collects at this store: only it can hold the lines (sourced, with --channel)",
    )
    reserve.add_argument(
        "--explain",
        action="store_true",
        help="for sourced lines, print every node considered, with its distance and why it won or lost",
    )
    reserve.add_argument("--id", help="reservation id (default: a new one, printed)")
    reserve.add_argument(
        "--ttl", type=int32, default=0, help="seconds the hold lives (default: server's, 900)"
    )
    reserve.add_argument(
        "--channel",
        metavar="CHANNEL",
        help="hold through this channel: each line may take only what the channel may promise there",
    )
    reserve.add_argument(
        "--customer",
        metavar="ID",
        help="the customer the hold is for; required for SKUs with a purchase limit, which counts"
        " this customer's open reservations",
    )

    for name, command, help_text in (
        ("confirm", cmd_confirm, "HELD -> CONFIRMED: the hold no longer expires"),
        ("release", cmd_release, "HELD or CONFIRMED -> RELEASED: the units return to availability"),
        ("get", cmd_get, "show a reservation, its fulfilled and cancelled units and its history"),
    ):
        sub = client_command(commands, name, command, help_text)
        sub.add_argument("id", metavar="ID")
        if name == "get":
            sub.add_argument(
                "--explain",
                action="store_true",
                help="for a sourced reservation, every node considered for each line and why it won or lost",
            )

    reassign = client_command(
        commands,
        "reassign",
        cmd_reassign,
        "move the open units of a line to another node in one step (the store cannot find them)",
        description="The open units of the line of SKU at FROM_NODE (HELD or CONFIRMED) move to"
        " TO_NODE: the new node is held before the old one is freed, and a refusal changes nothing."
        " Without TO_NODE the reservation's channel's sourcing rules choose the node (never one the"
        " SKU is at already); the answer says why (--explain: every node considered). Units already"
        " fulfilled or cancelled stay where they were. The same --id again returns the answer as it"
        " stands and changes nothing.",
    )
    reassign.add_argument("reservation_id", metavar="ID")
    reassign.add_argument("sku", metavar="SKU")
    reassign.add_argument("from_node", metavar="FROM_NODE", help="the node the line is at now")
    reassign.add_argument(
        "to_node", metavar="TO_NODE", nargs="?", help="the node to move it to (default: sourced)"
    )
    reassign.add_argument(
        "--id", metavar="REASSIGNMENT_ID", help="reassignment id (default: a new one, printed)"
    )
    reassign.add_argument(
        "--explain", action="store_true", help="when sourced, every node considered and why it won or lost"
    )

    returning = client_command(
        commands,
        "return",
        cmd_return,
        "fulfilled units of a line come back, at any node (buy online, return in store)",
        description="LINE is SKU:NODE:QTY: the reservation's line (the node it was fulfilled at) and"
        " the units that come back, at most those fulfilled and not yet returned. They go on hand at"
        " --at (default: the line's node), sellable at once, or as damaged with --damaged. The same"
        " --id again returns the answer as it stands and changes nothing.",
    )
    returning.add_argument("reservation_id", metavar="ID")
    returning.add_argument("line", metavar="LINE", help="SKU:NODE:QTY")
    returning.add_argument(
        "--at", metavar="NODE", help="where the units come back (default: the line's node)"
    )
    returning.add_argument(
        "--damaged", action="store_true", help="not sellable: the units go on hand as damaged"
    )
    returning.add_argument("--id", metavar="RETURN_ID", help="return id (default: a new one, printed)")

    extend = client_command(
        commands,
        "extend",
        cmd_extend,
        "a HELD reservation now expires SECONDS from now",
        description="The hold's expiry moves to now + SECONDS (1..86400) on the server's clock, for"
        " every line alike. A retry is safe: it moves the expiry to the retry's now + SECONDS."
        " Only a HELD reservation can be extended (FAILED_PRECONDITION, exit 1, otherwise).",
    )
    extend.add_argument("id", metavar="ID")
    extend.add_argument(
        "--ttl", type=int32, required=True, metavar="SECONDS", help="seconds from now (1..86400)"
    )
    fulfil = client_command(
        commands,
        "fulfil",
        cmd_fulfil,
        "units of CONFIRMED lines shipped or picked up: they leave on_hand",
        description="Each LINE is SKU:NODE:QTY, a line of the reservation and the units of it that"
        " left, whole or in part; each SKU:NODE once. Once every unit of every line is fulfilled or"
        " cancelled the reservation is FULFILLED. The same --id again returns the answer as it stands"
        " and changes nothing. More units than are open is refused (FAILED_PRECONDITION, exit 1).",
    )
    fulfil.add_argument("reservation_id", metavar="ID")
    fulfil.add_argument("lines", metavar="LINE", nargs="+", help="SKU:NODE:QTY")
    fulfil.add_argument("--id", metavar="FULFILMENT_ID", help="fulfilment id (default: a new one, printed)")
    cancel = client_command(
        commands,
        "cancel-lines",
        cmd_cancel_lines,
        "cancel units of some lines of a HELD or CONFIRMED reservation: they return to availability",
        description="Each LINE is SKU:NODE:QTY, a line of the reservation and the units of it to"
        " cancel; each SKU:NODE once. The rest of the reservation stays as it is (`release` cancels"
        " all of it). The same --id again returns the answer as it stands and changes nothing."
        " More units than are open is refused (FAILED_PRECONDITION, exit 1).",
    )
    cancel.add_argument("reservation_id", metavar="ID")
    cancel.add_argument("lines", metavar="LINE", nargs="+", help="SKU:NODE:QTY")
    cancel.add_argument(
        "--id", metavar="CANCELLATION_ID", help="cancellation id (default: a new one, printed)"
    )


def add_network_commands(commands: Commands, client_command: ClientCommands) -> None:
    """groups, channels, limits, network: how the network sells its stock."""
    groups = commands.add_parser("groups", help="node groups: list, put, delete")
    group_commands = groups.add_subparsers(dest="groups_command", metavar="ACTION", required=True)
    client_command(group_commands, "list", cmd_groups_list, "list node groups and their members")
    group_put = client_command(
        group_commands,
        "put",
        cmd_groups_put,
        "create or replace a node group",
        description="A group is the nodes named with --nodes plus every node matching the selector"
        " (--types, --ships, --pickup), when one is given. Selectors follow the nodes as they change."
        " A group must hold at least one node.",
    )
    group_put.add_argument("group_id", metavar="GROUP_ID")
    group_put.add_argument("--nodes", metavar="N1,N2", help="node ids in the group")
    group_put.add_argument("--types", metavar="dc,store", help="selector: nodes of these types")
    group_put.add_argument(
        "--ships", type=parse_yes_no, metavar="yes|no", help="selector: only nodes that ship (or do not)"
    )
    group_put.add_argument(
        "--pickup", type=parse_yes_no, metavar="yes|no", help="selector: only nodes with pickup (or without)"
    )
    group_delete = client_command(
        group_commands,
        "delete",
        cmd_groups_delete,
        "delete node groups (refused while a channel sells from one)",
    )
    group_delete.add_argument("group_ids", metavar="GROUP_ID", nargs="+")

    channels = commands.add_parser("channels", help="sales channels: list, show, put, delete")
    channel_commands = channels.add_subparsers(dest="channels_command", metavar="ACTION", required=True)
    client_command(channel_commands, "list", cmd_channels_list, "list channels")
    channel_show = client_command(channel_commands, "show", cmd_channels_show, "show a channel and its rules")
    channel_show.add_argument("channel_id", metavar="CHANNEL_ID")
    channel_put = client_command(
        channel_commands,
        "put",
        cmd_channels_put,
        "create or replace a channel (the whole definition)",
        description="A safety RULE keeps units back from the channel: units=N and/or percent=P"
        " (the larger applies), optionally scoped by sku=SKU, node=NODE or node_type=TYPE, e.g."
        " units=2,node_type=store or percent=10,sku=SKU-00001. The most specific rule wins:"
        " sku+node > sku+node_type > sku > node > node_type > channel-wide. A cap RULE limits"
        " the share of a node's sellable units the channel may hold: percent=P, optionally with"
        " node=NODE or node_type=TYPE (node > node_type > channel-wide), e.g. percent=50,node_type=store.",
    )
    channel_put.add_argument("channel_id", metavar="CHANNEL_ID")
    channel_put.add_argument(
        "--groups", required=True, metavar="G1,G2", help="node groups the channel sells from"
    )
    channel_put.add_argument("--name", default="", help="display name")
    channel_put.add_argument(
        "--low-stock",
        type=int64,
        default=0,
        metavar="N",
        help="status LOW_STOCK when 0 < available <= N (default 0)",
    )
    channel_put.add_argument(
        "--display-cap",
        type=int64,
        default=0,
        metavar="N",
        help="answers show at most N units (default 0: no cap); holds are not limited by it",
    )
    channel_put.add_argument(
        "--safety", action="append", default=[], metavar="RULE", help="safety stock rule (repeatable)"
    )
    channel_put.add_argument(
        "--cap", action="append", default=[], metavar="RULE", help="allocation cap (repeatable)"
    )
    channel_put.add_argument(
        "--future-supply-holds",
        action="store_true",
        help="holds through the channel may take expected inbound supply (preorders, backorders),"
        " not only stock on hand",
    )
    channel_put.add_argument(
        "--sourcing",
        metavar="RULE,RULE",
        help="how lines without a node are sourced: preferences in order, the first decides, from"
        f" {', '.join(SOURCING_RULES)} (default {','.join(DEFAULT_SOURCING)})",
    )
    channel_put.add_argument(
        "--split-lines",
        action="store_true",
        help="a sourced line's units may come from several nodes (default: each line from one node)",
    )
    channel_put.add_argument(
        "--max-shipments",
        type=int32,
        default=0,
        metavar="N",
        help="a sourced order uses at most N nodes (default 0: no limit)",
    )
    channel_delete = client_command(channel_commands, "delete", cmd_channels_delete, "delete channels")
    channel_delete.add_argument("channel_ids", metavar="CHANNEL_ID", nargs="+")

    limits = commands.add_parser("limits", help="per-customer purchase limits (hot drops): list, put")
    limit_commands = limits.add_subparsers(dest="limits_command", metavar="ACTION", required=True)
    client_command(limit_commands, "list", cmd_limits_list, "list the SKUs with a purchase limit")
    limits_put = client_command(
        limit_commands,
        "put",
        cmd_limits_put,
        "set or remove per-customer purchase limits (MAX 0 removes)",
        description="One customer may hold at most MAX units of SKU over all their open reservations"
        " (held or confirmed), across nodes and channels; holds of a limited SKU need"
        " `reserve --customer`. MAX 0 removes the SKU's limit; SKUs not named keep theirs.",
    )
    limits_put.add_argument(
        "pairs", metavar="SKU MAX", nargs="+", help="a SKU and the most units one customer may hold"
    )

    add_key_commands(commands, client_command)

    network = commands.add_parser("network", help="the whole network: show, apply a file")
    network_commands = network.add_subparsers(dest="network_command", metavar="ACTION", required=True)
    client_command(network_commands, "show", cmd_network_show, "nodes, groups, channels and purchase limits")
    network_apply = client_command(
        network_commands,
        "apply",
        cmd_network_apply,
        "put the nodes, groups, channels and purchase limits of a TOML file",
        description="FILE has the format of `omnistock serve --network` ([[nodes]], [groups.ID],"
        " [channels.ID], [purchase_limits]). It is checked whole against the network as it stands"
        " before anything is sent; then its nodes, groups, channels and purchase limits are put,"
        " in that order. - reads stdin.",
    )
    network_apply.add_argument("file", metavar="FILE")


def add_key_commands(commands: Commands, client_command: ClientCommands) -> None:
    keys = commands.add_parser(
        "keys",
        help="API keys with scopes: create, list, rotate, revoke (needs network:admin)",
        description="One key per integration with the least scopes it needs. Scopes: "
        + ", ".join(scope.value for scope in Scope)
        + ". Write implies read (reservations:write brings reservations:read, network:admin"
        " network:read); availability:read brings network:read.",
    )
    key_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = client_command(
        key_commands,
        "create",
        cmd_keys_create,
        "create a key; prints its token once",
        description="Create an API key. Callers send its token as `authorization: Bearer <token>`"
        " (the CLI: --api-key or OMNISTOCK_API_KEY). Only a hash is stored: the token is printed"
        " this once. Every gateway accepts it within a second.",
    )
    create.add_argument("--name", required=True, help="what the key is for, e.g. web-storefront (unique)")
    create.add_argument(
        "--scopes", required=True, metavar="S1,S2", help="comma-separated scopes, e.g. availability:read"
    )
    create.add_argument(
        "--channels",
        metavar="C1,C2",
        help="bind the key to these channels: it sees and holds only through them",
    )
    create.add_argument(
        "--asserts-customers",
        action="store_true",
        help="trust the key to name the customer a reservation is for (an order service that"
        " signed the shopper in); without it, a Reserve naming a customer is refused",
    )
    client_command(key_commands, "list", cmd_keys_list, "list keys (never their secrets)")
    rotate = client_command(
        key_commands,
        "rotate",
        cmd_keys_rotate,
        "give a key a new secret; prints the new token once",
        description="Give a key a new secret. With --grace, the old secret keeps working that many"
        " seconds, so the integration can switch without a refused call.",
    )
    rotate.add_argument("name", metavar="NAME", help="the key's name or id")
    rotate.add_argument(
        "--grace",
        type=non_negative_int,
        default=0,
        metavar="SECONDS",
        help="seconds the old secret keeps working (default 0)",
    )
    revoke = client_command(
        key_commands, "revoke", cmd_keys_revoke, "revoke a key: refused everywhere within a second"
    )
    revoke.add_argument("name", metavar="NAME", help="the key's name or id")


def add_shard_commands(commands: Commands, client_command: ClientCommands) -> None:
    client_command(
        commands,
        "shards",
        cmd_shards,
        "the shards and the partitions each owns (needs ops:read)",
    )
    scale = client_command(
        commands,
        "scale",
        cmd_scale,
        "change the number of shards while serving (needs ops:admin)",
        description="New shards start first, then partitions move one at a time (snapshotted,"
        " handed over, routed there: calls to a moving partition wait, none is refused), then"
        " shards left without partitions stop. Progress goes to stderr. One change runs at a time;"
        " one that was cut (Ctrl-C does not cut it: the service completes it) is completed by"
        " asking again. A restart of serve starts the number of shards its --shards gives.",
    )
    scale.add_argument(
        "--shards", type=positive_int, required=True, metavar="N", help="the number of shards wanted"
    )
    scale.add_argument(
        "--every",
        type=positive_int,
        default=16,
        metavar="K",
        help="print progress every K partitions (default 16)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    if getattr(args, "reads_credentials", False):
        # bench and loadtest use them with --target; a service they start listens on loopback
        # in plain text.
        try:
            args.credentials = credentials_of(args)
        except UsageError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
    try:
        return handler(args)
    except BrokenPipeError:
        # The reader went away (`omnistock nodes list | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_REFUSED


def unreachable(client: OmnistockClient) -> bool:
    """UNAVAILABLE with no live connection: the server is not there (the service's own UNAVAILABLE
    comes over a READY channel)."""
    state = client.channel.get_state(try_to_connect=False)
    return bool(state != grpc.ChannelConnectivity.READY)


class ClientOutput(Output):
    """A client command's output: a refusal for want of an API key, a scope or the right TLS
    settings also says what to do about it."""

    def __init__(self, as_json: bool) -> None:
        super().__init__(as_json)
        self.credentials = Credentials()

    def rpc_error(self, error: OmnistockRpcError, *args: Any, **kwargs: Any) -> int:
        code = super().rpc_error(error, *args, **kwargs)
        if hint := connection_hint(error.code, error.message, self.credentials):
            self.note(hint)
        return code


def run_client(args: argparse.Namespace, command: Command) -> int:
    out = ClientOutput(args.json)

    async def go() -> int:
        async with OmnistockClient(args.target, timeout=args.timeout, credentials=out.credentials) as client:
            try:
                return await command(client, args, out)
            except OmnistockRpcError as error:
                if error.code == grpc.StatusCode.UNAVAILABLE and unreachable(client):
                    hint = connection_hint(error.code, error.message, out.credentials)
                    out.error(
                        "UNAVAILABLE",
                        f"cannot connect to omnistock at {args.target}"
                        if hint
                        else f'cannot reach omnistock at {args.target}; is "omnistock serve" running?',
                        {"target": args.target, "detail": error.message},
                    )
                    if hint:
                        out.note(hint)
                    return EXIT_REFUSED
                return out.rpc_error(error)

    try:
        out.credentials = credentials_of(args)
        return asyncio.run(go())
    except ProblemsError as error:
        return out.problems(error)
    except UsageError as error:
        out.error("INVALID_ARGUMENT" if out.as_json else "", str(error))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
