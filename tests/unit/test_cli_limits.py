"""The CLI's purchase limits for hot drops, without a server: `limits put` pairs, quota refusals,
`reserve --customer`, and the `[purchase_limits]` table of network files."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from omnistock.availability.network_file import NetworkFile
from omnistock.cli import main
from omnistock.cli.app import build_parser
from omnistock.cli.commands import cmd_reserve
from omnistock.cli.common import ProblemsError, UsageError
from omnistock.cli.network_args import (
    describe_limit_changes,
    limit_field_by_sku,
    network_problems,
    parse_limit_pairs,
    parse_quota_subject,
    quota_text,
    read_network_file,
)
from omnistock.cli.network_commands import (
    cmd_limits_list,
    cmd_limits_put,
    cmd_network_apply,
    cmd_network_show,
)
from omnistock.cli.output import Output, format_reservation, limits_table
from omnistock.cli.serve import serve_network, serve_network_file
from omnistock.client import OmnistockRpcError
from omnistock.protos.gen.omnistock.v1 import common_pb2, inventory_pb2, network_pb2, reservation_pb2

DC = common_pb2.NODE_TYPE_DC
CLOSED = "127.0.0.1:1"  # never an omnistock: a call would fail with UNAVAILABLE (exit 1), not 2


# --- `limits put SKU MAX [SKU MAX ...]` ---


def test_limit_pairs_keep_their_order_and_zero_removes() -> None:
    assert parse_limit_pairs(["SKU-00042", "2", "SKU-00007", " 0 "]) == {"SKU-00042": 2, "SKU-00007": 0}
    assert list(parse_limit_pairs(["b", "1", "a", "1"])) == ["b", "a"]


@pytest.mark.parametrize(
    ("texts", "says"),
    [
        (["SKU-00042"], "expected SKU MAX pairs, e.g. SKU-00042 2 SKU-00043 0; got 1 value: SKU-00042"),
        (["A", "1", "B"], "got 3 values: A 1 B"),
        (["A", "two"], "A: MAX must be a whole number of units, 0 or more (0 removes the limit), got 'two'"),
        (["A", "-1"], "got '-1'"),
        (["A", "1.5"], "got '1.5'"),
        (["A", str(2**63)], f"got '{2**63}'"),
        (["A", "1", "A", "2"], "A is given twice; give each SKU once"),
        ([" ", "1"], "a SKU must not be empty (before MAX '1')"),
    ],
)
def test_bad_limit_pairs_are_usage_errors(texts: list[str], says: str) -> None:
    with pytest.raises(UsageError) as error:
        parse_limit_pairs(texts)
    assert says in str(error.value)


def test_limits_commands_parse() -> None:
    args = build_parser().parse_args(["limits", "put", "SKU-00042", "2", "SKU-00043", "0", "--json"])
    assert args.pairs == ["SKU-00042", "2", "SKU-00043", "0"] and args.json
    assert build_parser().parse_args(["limits", "list"]).limits_command == "list"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["limits", "put"])


def test_bad_pairs_exit_2_before_anything_is_sent(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["limits", "put", "SKU-00042", "--target", CLOSED]) == 2
    assert capsys.readouterr().err.startswith("error: expected SKU MAX pairs")
    assert main(["limits", "put", "SKU-00042", "x", "--json", "--target", CLOSED]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "INVALID_ARGUMENT"


def test_limit_texts() -> None:
    assert describe_limit_changes({"SKU-00042": 2, "SKU-00007": 0}) == "SKU-00042 2, SKU-00007 removed"
    limits = [
        network_pb2.PurchaseLimit(sku="SKU-2", max_per_customer=10),
        network_pb2.PurchaseLimit(sku="SKU-1"),
    ]
    assert [line.split() for line in limits_table(limits).splitlines()] == [
        ["SKU", "MAX_PER_CUSTOMER"],
        ["SKU-1", "0"],
        ["SKU-2", "10"],
    ]
    assert limits_table([]) == "no purchase limits"


# --- quota refusals ---


def test_quota_subjects() -> None:
    assert parse_quota_subject("customer:alice/sku:SKU-00042") == ("alice", "SKU-00042")
    assert parse_quota_subject("customer:a/sku:b/sku:c") == ("a", "b/sku:c")
    # The customer that was sent splits an id holding `/sku:` right.
    assert parse_quota_subject("customer:a/sku:b/sku:c", customer="a/sku:b") == ("a/sku:b", "c")
    assert parse_quota_subject("something else") == ("", "something else")
    assert (
        quota_text("customer:alice/sku:SKU-00042", "limit 2, already held 2, requested 1")
        == "customer alice, SKU-00042: limit 2, already held 2, requested 1"
    )
    assert quota_text("odd", "limit 1") == "odd: limit 1"


def quota_error() -> OmnistockRpcError:
    return OmnistockRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "customer 'alice' would exceed the purchase limit of SKU-00042 (...), SKU-00043 (...)",
        quota_violations=[
            ("customer:alice/sku:SKU-00042", "limit 2, already held 2, requested 1"),
            ("customer:alice/sku:SKU-00043", "limit 1, already held 0, requested 3"),
        ],
    )


def test_a_quota_refusal_prints_every_limit(capsys: pytest.CaptureFixture[str]) -> None:
    assert Output(False).rpc_error(quota_error()) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: RESOURCE_EXHAUSTED: over the per-customer purchase limit of 2 SKUs, nothing was held",
        "  customer alice, SKU-00042: limit 2, already held 2, requested 1",
        "  customer alice, SKU-00043: limit 1, already held 0, requested 3",
    ]


def test_a_quota_refusal_in_json_keeps_the_message_and_every_violation() -> None:
    stdout = io.StringIO()
    assert Output(True, stdout=stdout).rpc_error(quota_error()) == 1
    error = json.loads(stdout.getvalue())["error"]
    assert error["code"] == "RESOURCE_EXHAUSTED"
    assert error["message"].startswith("customer 'alice' would exceed")
    assert error["quota_violations"][0] == {
        "customer": "alice",
        "sku": "SKU-00042",
        "subject": "customer:alice/sku:SKU-00042",
        "description": "limit 2, already held 2, requested 1",
    }
    assert len(error["quota_violations"]) == 2


def test_a_message_size_refusal_is_printed_as_it_comes(capsys: pytest.CaptureFixture[str]) -> None:
    error = OmnistockRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "message larger than max")
    assert Output(False).rpc_error(error) == 1
    assert capsys.readouterr().err.splitlines() == ["error: RESOURCE_EXHAUSTED: message larger than max"]


# --- `reserve --customer`, `get` ---


def held(customer: str) -> reservation_pb2.Reservation:
    return reservation_pb2.Reservation(
        reservation_id="drop-1",
        state=reservation_pb2.RESERVATION_STATE_HELD,
        customer_id=customer,
        lines=[reservation_pb2.ReservationLine(sku="SKU-00042", node_id="DC-01", quantity=1)],
    )


def test_reservation_text_names_its_customer() -> None:
    assert "customer     alice" in format_reservation(held("alice")).splitlines()
    assert "customer" not in format_reservation(held(""))


class ReserveClient:
    def __init__(self, refusal: OmnistockRpcError | None = None) -> None:
        self.refusal = refusal
        self.asked: dict[str, Any] = {}

    async def reserve(
        self, reservation_id: str, lines: Any, **kwargs: Any
    ) -> reservation_pb2.ReserveResponse:
        self.asked = {"reservation_id": reservation_id, **kwargs}
        if self.refusal is not None:
            raise self.refusal
        return reservation_pb2.ReserveResponse(reservation=held(kwargs["customer_id"]))


async def reserve(argv: list[str], client: ReserveClient) -> tuple[int, str, str]:
    args = build_parser().parse_args(["reserve", *argv])
    stdout, stderr = io.StringIO(), io.StringIO()
    code = await cmd_reserve(client, args, Output(args.json, stdout=stdout, stderr=stderr))  # type: ignore[arg-type]
    return code, stdout.getvalue(), stderr.getvalue()


async def test_reserve_sends_the_customer() -> None:
    client = ReserveClient()
    code, out, _ = await reserve(["--id", "drop-1", "--customer", "alice", "SKU-00042:DC-01:1"], client)
    assert code == 0 and client.asked["customer_id"] == "alice"
    assert "customer     alice" in out.splitlines()
    await reserve(["--id", "drop-2", "SKU-00042:DC-01:1"], client)
    assert client.asked["customer_id"] == ""
    with pytest.raises(UsageError):
        await reserve(["--customer", "", "SKU-00042:DC-01:1"], client)


async def test_reserve_over_a_limit_names_the_customer_it_sent() -> None:
    refusal = OmnistockRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "...",
        quota_violations=[("customer:a/sku:b/sku:SKU-1", "limit 1, already held 1, requested 1")],
    )
    code, _, err = await reserve(
        ["--id", "x", "--customer", "a/sku:b", "SKU-1:DC-01:1"], ReserveClient(refusal)
    )
    assert code == 1
    assert "  customer a/sku:b, SKU-1: limit 1, already held 1, requested 1" in err.splitlines()


async def test_reserve_without_a_customer_hints_at_the_flag() -> None:
    refusal = OmnistockRpcError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "customer_id: is required",
        field_violations=[("customer_id", "is required: SKU-00042 has a per-customer purchase limit")],
    )
    code, _, err = await reserve(["--id", "x", "SKU-00042:DC-01:1"], ReserveClient(refusal))
    assert code == 2
    assert err.splitlines() == [
        "error: INVALID_ARGUMENT: 1 problem, nothing was changed",
        "  customer_id: is required: SKU-00042 has a per-customer purchase limit",
        "hint: give the customer the hold is for with --customer ID",
    ]


# --- `limits list`, `limits put`, `network show` ---


def config_with(limits: dict[str, int], version: int = 5) -> network_pb2.NetworkConfig:
    return network_pb2.NetworkConfig(
        version=version,
        purchase_limits=[
            network_pb2.PurchaseLimit(sku=s, max_per_customer=m) for s, m in sorted(limits.items())
        ],
    )


class LimitsClient:
    def __init__(self, stored: dict[str, int]) -> None:
        self.stored = dict(stored)
        self.version = 4
        self.calls: list[tuple[str, Any]] = []

    async def get_network(self) -> network_pb2.NetworkConfig:
        return config_with(self.stored, self.version)

    async def put_purchase_limits(self, limits: dict[str, int]) -> network_pb2.NetworkConfig:
        self.calls.append(("limits", dict(limits)))
        for sku, most in limits.items():
            if most:
                self.stored[sku] = most
            else:
                self.stored.pop(sku, None)
        self.version += 1
        return await self.get_network()

    async def put_nodes(self, nodes: Any) -> inventory_pb2.PutNodesResponse:
        self.calls.append(("nodes", [n.node_id for n in nodes]))
        return inventory_pb2.PutNodesResponse(created=len(nodes))

    async def put_groups(self, groups: Any) -> network_pb2.NetworkConfig:
        self.calls.append(("groups", [g.group_id for g in groups]))
        return await self.get_network()

    async def put_channels(self, channels: Any) -> network_pb2.NetworkConfig:
        self.calls.append(("channels", [c.channel_id for c in channels]))
        return await self.get_network()


async def run(command: Any, argv: list[str], client: LimitsClient) -> str:
    args = build_parser().parse_args(argv)
    stdout = io.StringIO()
    assert await command(client, args, Output(args.json, stdout=stdout)) == 0
    return stdout.getvalue()


async def test_limits_put_and_list() -> None:
    client = LimitsClient({"SKU-00007": 1})
    text = await run(cmd_limits_put, ["limits", "put", "SKU-00042", "2", "SKU-00007", "0"], client)
    assert client.calls == [("limits", {"SKU-00042": 2, "SKU-00007": 0})]
    assert [line.split() for line in text.splitlines()] == [
        ["purchase", "limits:", "SKU-00042", "2,", "SKU-00007", "removed"],
        ["SKU", "MAX_PER_CUSTOMER"],
        ["SKU-00042", "2"],
        ["network", "version", "5"],
    ]
    data = json.loads(await run(cmd_limits_list, ["limits", "list", "--json"], client))
    assert data == {"version": 5, "purchase_limits": [{"sku": "SKU-00042", "max_per_customer": 2}]}
    put = json.loads(await run(cmd_limits_put, ["limits", "put", "SKU-00042", "0", "--json"], client))
    assert put == {
        "version": 6,
        "changed": [{"sku": "SKU-00042", "max_per_customer": 0}],
        "purchase_limits": [],
    }
    assert await run(cmd_limits_list, ["limits", "list"], client) == "no purchase limits\nnetwork version 6\n"


def test_refused_limits_are_named_by_sku() -> None:
    skus = ["SKU-00042", "SKU 9"]
    assert limit_field_by_sku("limits[0].max_per_customer", skus) == "limits[SKU-00042].max_per_customer"
    assert limit_field_by_sku("limits[1].sku", skus) == "limits[SKU 9].sku"
    assert limit_field_by_sku("limits[7].sku", skus) == "limits[7].sku"
    assert limit_field_by_sku("limits", skus) == "limits"


async def test_limits_put_refused_names_each_sku(capsys: pytest.CaptureFixture[str]) -> None:
    class Refusing(LimitsClient):
        async def put_purchase_limits(self, limits: dict[str, int]) -> network_pb2.NetworkConfig:
            raise OmnistockRpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "...",
                field_violations=[("limits[1].max_per_customer", "must be within 0..1000000 (0 removes it)")],
            )

    args = build_parser().parse_args(["limits", "put", "SKU-00042", "2", "SKU-00043", "2000000"])
    assert await cmd_limits_put(Refusing({}), args, Output(False)) == 2  # type: ignore[arg-type]
    assert capsys.readouterr().err.splitlines() == [
        "error: INVALID_ARGUMENT: 1 problem, nothing was changed",
        "  limits[SKU-00043].max_per_customer: must be within 0..1000000 (0 removes it)",
    ]


async def test_network_show_lists_the_purchase_limits() -> None:
    client = LimitsClient({"SKU-00042": 2})
    text = await run(cmd_network_show, ["network", "show"], client)
    blocks = text.split("\n\n")
    assert blocks[0] == "network version 4: 0 nodes, 0 groups, 0 channels, 1 purchase limit"
    assert blocks[-1].splitlines()[1].split() == ["SKU-00042", "2"]
    data = json.loads(await run(cmd_network_show, ["network", "show", "--json"], client))
    assert data["purchase_limits"] == [{"sku": "SKU-00042", "max_per_customer": 2}]
    empty = await run(cmd_network_show, ["network", "show"], LimitsClient({}))
    assert empty.split("\n\n")[0] == "network version 4: 0 nodes, 0 groups, 0 channels"
    assert empty.rstrip().endswith("no purchase limits")


# --- network files with [purchase_limits] ---

DROP_FILE = (
    '[[nodes]]\nnode_id = "DC-09"\ntype = "dc"\n'
    '[groups.dc9]\nnode_ids = ["DC-09"]\n'
    '[channels.drops]\ngroups = ["dc9"]\n'
    '[purchase_limits]\n"SKU-00042" = 2\n"SKU-00043" = 1\n"SKU-00007" = 0\n'
)


async def test_network_apply_puts_the_limits_last(tmp_path: Path) -> None:
    path = tmp_path / "drop.toml"
    path.write_text(DROP_FILE)
    client = LimitsClient({"SKU-00007": 5})
    text = await run(cmd_network_apply, ["network", "apply", str(path)], client)
    assert client.calls == [
        ("nodes", ["DC-09"]),
        ("groups", ["dc9"]),
        ("channels", ["drops"]),
        ("limits", {"SKU-00042": 2, "SKU-00043": 1, "SKU-00007": 0}),
    ]
    assert "limits    SKU-00042 2, SKU-00043 1, SKU-00007 removed" in text.splitlines()
    assert text.splitlines()[-1] == "network version 5"


async def test_a_file_of_limits_alone_applies(tmp_path: Path) -> None:
    path = tmp_path / "limits.toml"
    path.write_text('[purchase_limits]\n"SKU-00042" = 3\n')
    client = LimitsClient({})
    data = json.loads(await run(cmd_network_apply, ["network", "apply", str(path), "--json"], client))
    assert client.calls == [("limits", {"SKU-00042": 3})]
    assert data == {"purchase_limits": {"SKU-00042": 3}, "version": 5}


def limit_file_problems(limits: dict[str, int], current: network_pb2.NetworkConfig | None = None) -> Any:
    return network_problems(current, [], [], [], limits)


def test_limits_are_checked_with_the_servers_rules_and_named_as_in_the_file() -> None:
    assert limit_file_problems({"SKU-00042": 2, "SKU-00043": 0}) == []
    assert limit_file_problems({"SKU-00042": 2}, config_with({})) == []
    problems = limit_file_problems({"SKU-00042": -1, "has space": 2, "SKU-00044": 1_000_001})
    assert problems == [
        ("purchase_limits[SKU-00042]", "must be within 0..1000000 (0 removes it), got -1"),
        ("purchase_limits[has space]", "may only contain printable ASCII characters without spaces"),
        ("purchase_limits[SKU-00044]", "must be within 0..1000000 (0 removes it), got 1000001"),
    ]
    assert limit_file_problems({"SKU-00042": 2**64}) == [
        ("purchase_limits[SKU-00042]", f"is out of range: {2**64}")
    ]
    # Against a stored network too, and alongside other problems of the file.
    node = common_pb2.Node(node_id="bad id", type=DC)
    both = network_problems(config_with({}), [node], [], [], {"SKU-1": -2})
    assert [field for field, _ in both] == ["nodes[bad id].node_id", "purchase_limits[SKU-1]"]


def test_serve_takes_a_network_file_with_purchase_limits(tmp_path: Path) -> None:
    path = tmp_path / "drop.toml"
    path.write_text(DROP_FILE)
    found = serve_network_file(build_parser().parse_args(["serve", "--network", str(path)]))
    assert found is not None
    where, parsed = found
    assert where == str(path) and isinstance(parsed, NetworkFile)
    assert parsed.purchase_limits == {"SKU-00042": 2, "SKU-00043": 1, "SKU-00007": 0}
    # The older form keeps its nodes, groups and channels.
    old = serve_network(build_parser().parse_args(["serve", "--network", str(path)]))
    assert old is not None and [len(part) for part in old[1]] == [1, 1, 1]


def test_serve_refuses_a_bad_limit_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "drop.toml"
    path.write_text('[purchase_limits]\n"SKU-00042" = -2\n"SKU-00043" = "two"\n')
    data_dir = tmp_path / "var"
    assert main(["serve", "--network", str(path), "--data-dir", str(data_dir), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "  purchase_limits[SKU-00043]: must be a whole number of units, got 'two'" in err
    path.write_text('[purchase_limits]\n"SKU-00042" = -2\n')
    assert main(["serve", "--network", str(path), "--data-dir", str(data_dir), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: 1 problem" in err
    assert "  purchase_limits[SKU-00042]: must be within 0..1000000 (0 removes it), got -2" in err
    assert not data_dir.exists()  # no Redis, no Ray was started


def test_network_apply_refuses_a_bad_limit_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "drop.toml"
    path.write_text('[purchase_limits]\n"SKU-00042" = 1.5\n')
    assert main(["network", "apply", str(path), "--target", CLOSED]) == 2
    assert "  purchase_limits[SKU-00042]: must be a whole number of units, got 1.5" in capsys.readouterr().err


def test_a_problems_error_is_what_a_bad_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "drop.toml"
    path.write_text("[purchase_limits]\nSKU = true\n")
    with pytest.raises(ProblemsError) as error:
        read_network_file(str(path), ", nothing was applied")
    assert error.value.problems == [("purchase_limits[SKU]", "must be a whole number of units, got True")]
