"""The network as data: node groups, rule precedence, channel status, validation, and the answers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from omnistock.availability.answer import channel_availability, network_availability
from omnistock.availability.atp import ChannelLimit
from omnistock.availability.network import AllocationCap, Channel, Network, NodeGroup, SafetyRule, StockStatus
from omnistock.availability.nodes import Node, NodeType
from omnistock.availability.positions import PositionView

DC, STORE, TPL, DROP = NodeType.DC, NodeType.STORE, NodeType.THREE_PL, NodeType.DROPSHIP

NODES = {
    n.node_id: n
    for n in (
        Node("DC1", DC, ships=True, pickup=False),
        Node("DC2", DC, ships=True, pickup=False, enabled=False),
        Node("S1", STORE, ships=True, pickup=True),
        Node("S2", STORE, ships=False, pickup=True),
        Node("S3", STORE, ships=True, pickup=False),
        Node("T1", TPL, ships=True, pickup=False),
        Node("D1", DROP, ships=False, pickup=False),
    )
}


def network(*channels: Channel, groups: tuple[NodeGroup, ...] = ()) -> Network:
    default_groups = (
        NodeGroup("dcs", types=(DC,)),
        NodeGroup("pickup-stores", types=(STORE,), pickup=True),
        NodeGroup("tpl", node_ids=("T1",)),
    )
    return Network(
        nodes=dict(NODES),
        groups={g.group_id: g for g in default_groups + groups},
        channels={c.channel_id: c for c in channels},
    )


# --- node groups: explicit members plus a selector ---


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        (NodeGroup("g"), set()),
        (NodeGroup("g", types=(DC,)), {"DC1", "DC2"}),  # disabled nodes are members; eligible drops them
        (NodeGroup("g", types=(DC, TPL)), {"DC1", "DC2", "T1"}),
        (NodeGroup("g", types=(STORE,)), {"S1", "S2", "S3"}),
        (NodeGroup("g", types=(STORE,), ships=True), {"S1", "S3"}),
        (NodeGroup("g", types=(STORE,), ships=False), {"S2"}),
        (NodeGroup("g", types=(STORE,), pickup=True), {"S1", "S2"}),
        (NodeGroup("g", types=(STORE,), pickup=False), {"S3"}),
        (NodeGroup("g", types=(STORE,), ships=True, pickup=True), {"S1"}),
        (NodeGroup("g", types=(STORE,), ships=True, pickup=False), {"S3"}),
        (NodeGroup("g", types=(STORE,), ships=False, pickup=False), set()),
        (NodeGroup("g", ships=False), {"S2", "D1"}),  # any type
        (NodeGroup("g", pickup=True), {"S1", "S2"}),
        (NodeGroup("g", ships=True, pickup=False), {"DC1", "DC2", "S3", "T1"}),
        (NodeGroup("g", node_ids=("S2",)), {"S2"}),
        (NodeGroup("g", node_ids=("S2", "D1")), {"S2", "D1"}),
        (NodeGroup("g", node_ids=("S2", "GHOST")), {"S2"}),  # unknown ids are not members
        (NodeGroup("g", node_ids=("D1",), types=(DC,)), {"D1", "DC1", "DC2"}),  # explicit plus selector
        (NodeGroup("g", node_ids=("D1",), pickup=True), {"D1", "S1", "S2"}),  # explicit ignore selector
    ],
)
def test_group_members(group: NodeGroup, expected: set[str]) -> None:
    assert group.members(NODES) == expected


def test_has_selector() -> None:
    assert not NodeGroup("g", node_ids=("S1",)).has_selector
    assert NodeGroup("g", types=(DC,)).has_selector
    assert NodeGroup("g", ships=False).has_selector
    assert NodeGroup("g", pickup=False).has_selector


# --- safety stock: the most specific matching rule wins ---

SAFETY_LEVELS = (  # most specific first; units name the level
    SafetyRule(units=60, sku="X", node_id="S1"),
    SafetyRule(units=50, sku="X", node_type=STORE),
    SafetyRule(units=40, sku="X"),
    SafetyRule(units=30, node_id="S1"),
    SafetyRule(units=20, node_type=STORE),
    SafetyRule(units=10),
)
NOISE = (  # rules that never match (X, S1), at every level
    SafetyRule(units=99, sku="Y", node_id="S1"),
    SafetyRule(units=98, sku="X", node_id="S3"),
    SafetyRule(units=97, sku="X", node_type=DC),
    SafetyRule(units=96, sku="Y"),
    SafetyRule(units=95, node_id="DC1"),
    SafetyRule(units=94, node_type=DC),
)


@pytest.mark.parametrize("dropped", range(len(SAFETY_LEVELS) + 1))
@pytest.mark.parametrize("order", ["as_written", "reversed"])
def test_each_safety_level_beats_every_less_specific_one(dropped: int, order: str) -> None:
    """Remove the `dropped` most specific levels: the next one down applies, whatever the order."""
    rules = SAFETY_LEVELS[dropped:] + NOISE
    if order == "reversed":
        rules = tuple(reversed(rules))
    net = network(Channel("web", groups=("dcs",), safety=rules))
    expected = SAFETY_LEVELS[dropped].units if dropped < len(SAFETY_LEVELS) else 0
    assert net.limit(net.channels["web"], "X", NODES["S1"]).safety_units == expected


@pytest.mark.parametrize(
    ("sku", "node_id", "units"),
    [
        ("X", "S1", 60),  # sku + node
        ("X", "S3", 50),  # sku + node type (a store, not S1)
        ("X", "DC1", 40),  # sku
        ("Y", "S1", 30),  # node
        ("Y", "S3", 20),  # node type
        ("Y", "DC1", 10),  # channel-wide
        ("Y", "T1", 10),
    ],
)
def test_safety_resolution_per_position(sku: str, node_id: str, units: int) -> None:
    net = network(Channel("web", groups=("dcs",), safety=SAFETY_LEVELS))
    assert net.limit(net.channels["web"], sku, NODES[node_id]).safety_units == units


def test_safety_rule_carries_units_and_percent_together() -> None:
    net = network(Channel("web", groups=("dcs",), safety=(SafetyRule(units=3, percent=20.0, sku="X"),)))
    limit = net.limit(net.channels["web"], "X", NODES["DC1"])
    assert (limit.safety_units, limit.safety_percent) == (3, 20.0)
    assert limit.safety(10) == 3 and limit.safety(100) == 20  # the larger wins


def test_a_more_specific_rule_replaces_rather_than_adds_to_a_general_one() -> None:
    rules = (SafetyRule(percent=50.0), SafetyRule(units=1, sku="X"))
    net = network(Channel("web", groups=("dcs",), safety=rules))
    limit = net.limit(net.channels["web"], "X", NODES["DC1"])
    assert (limit.safety_units, limit.safety_percent) == (1, 0.0)


def test_no_rules_is_no_limit() -> None:
    net = network(Channel("web", groups=("dcs",)))
    assert net.limit(net.channels["web"], "X", NODES["DC1"]) == ChannelLimit()


# --- allocation caps: node beats node type beats channel-wide ---

CAP_LEVELS = (
    AllocationCap(20.0, node_id="S1"),
    AllocationCap(50.0, node_type=STORE),
    AllocationCap(90.0),
)
CAP_NOISE = (AllocationCap(1.0, node_id="S3"), AllocationCap(2.0, node_type=DC))


@pytest.mark.parametrize("dropped", range(len(CAP_LEVELS) + 1))
@pytest.mark.parametrize("order", ["as_written", "reversed"])
def test_each_cap_level_beats_every_less_specific_one(dropped: int, order: str) -> None:
    caps = CAP_LEVELS[dropped:] + CAP_NOISE
    if order == "reversed":
        caps = tuple(reversed(caps))
    net = network(Channel("web", groups=("dcs",), caps=caps))
    expected = CAP_LEVELS[dropped].percent if dropped < len(CAP_LEVELS) else 100.0
    assert net.limit(net.channels["web"], "X", NODES["S1"]).cap_percent == expected


@pytest.mark.parametrize(
    ("node_id", "percent"), [("S1", 20.0), ("S2", 50.0), ("S3", 1.0), ("DC1", 2.0), ("T1", 90.0)]
)
def test_cap_resolution_per_node(node_id: str, percent: float) -> None:
    net = network(Channel("web", groups=("dcs",), caps=CAP_LEVELS + CAP_NOISE))
    assert net.limit(net.channels["web"], "ANY", NODES[node_id]).cap_percent == percent


def test_caps_and_safety_resolve_independently() -> None:
    channel = Channel(
        "web",
        groups=("dcs",),
        safety=(SafetyRule(units=2, node_type=STORE),),
        caps=(AllocationCap(40.0, node_id="S1"),),
    )
    net = network(channel)
    assert net.limit(channel, "X", NODES["S1"]) == ChannelLimit(2, 0.0, 40.0)
    assert net.limit(channel, "X", NODES["DC1"]) == ChannelLimit(0, 0.0, 100.0)


# --- status and display cap ---


@pytest.mark.parametrize(
    ("low_stock", "available", "status"),
    [
        (5, -1, StockStatus.OUT_OF_STOCK),
        (5, 0, StockStatus.OUT_OF_STOCK),
        (5, 1, StockStatus.LOW_STOCK),
        (5, 5, StockStatus.LOW_STOCK),
        (5, 6, StockStatus.IN_STOCK),
        (0, 0, StockStatus.OUT_OF_STOCK),
        (0, 1, StockStatus.IN_STOCK),
    ],
)
def test_status(low_stock: int, available: int, status: StockStatus) -> None:
    assert Channel("c", low_stock=low_stock).status(available) is status


@pytest.mark.parametrize(
    ("display_cap", "available", "shown"),
    [(0, 1000, 1000), (50, 100, 50), (50, 50, 50), (50, 7, 7), (50, 0, 0)],
)
def test_display_cap(display_cap: int, available: int, shown: int) -> None:
    assert Channel("c", display_cap=display_cap).shown(available) == shown


# --- eligibility ---


def test_eligible_is_enabled_members_of_the_channels_groups() -> None:
    net = network(Channel("web", groups=("dcs", "pickup-stores")), Channel("mkt", groups=("tpl",)))
    assert net.eligible("web") == {"DC1", "S1", "S2"}  # DC2 disabled; S3, T1, D1 outside the groups
    assert net.eligible("mkt") == {"T1"}


def test_with_changes_is_a_new_version_and_leaves_the_old_one_alone() -> None:
    old = network(Channel("web", groups=("dcs",)))
    assert old.eligible("web") == {"DC1"}
    new = old.with_changes(nodes=[replace(NODES["DC2"], enabled=True), replace(NODES["DC1"], enabled=False)])
    assert new.version == old.version + 1
    assert new.eligible("web") == {"DC2"}
    assert old.eligible("web") == {"DC1"}  # the old version (and its cache) is untouched

    newer = new.with_changes(
        groups=[NodeGroup("dcs", node_ids=("DC1", "DC2"), types=(TPL,))],
        channels=[Channel("mkt", groups=("tpl",))],
    )
    assert newer.eligible("web") == {"DC2", "T1"}
    dropped = newer.with_changes(drop_channels=["mkt"], drop_groups=["tpl", "nope"])
    assert set(dropped.channels) == {"web"} and "tpl" not in dropped.groups
    assert dropped.version == old.version + 3


# --- validation: every problem, each naming its field ---


def valid() -> Network:
    return network(
        Channel(
            "web",
            groups=("dcs", "pickup-stores"),
            safety=(SafetyRule(units=2, percent=10.0, node_id="S1"), SafetyRule(units=1, sku="X")),
            caps=(AllocationCap(50.0, node_type=STORE), AllocationCap(100.0, node_id="DC1")),
            low_stock=5,
            display_cap=50,
        )
    )


def test_a_valid_network_has_no_problems() -> None:
    assert valid().problems() == []


def web_with(**changes: object) -> Network:
    net = valid()
    return net.with_changes(channels=[replace(net.channels["web"], **changes)])


CASES = [
    (
        "unknown group",
        lambda: web_with(groups=("dcs", "nope")),
        "channels[web].groups",
        "unknown group 'nope'",
    ),
    ("channel without groups", lambda: web_with(groups=()), "channels[web].groups", "at least one"),
    (
        "safety percent over 100",
        lambda: web_with(safety=(SafetyRule(percent=100.5),)),
        "channels[web].safety[0].percent",
        "0..100",
    ),
    (
        "safety percent negative",
        lambda: web_with(safety=(SafetyRule(), SafetyRule(percent=-1.0))),
        "channels[web].safety[1].percent",
        "0..100",
    ),
    (
        "safety percent NaN",
        lambda: web_with(safety=(SafetyRule(percent=float("nan")),)),
        "channels[web].safety[0].percent",
        "0..100",
    ),
    (
        "negative units",
        lambda: web_with(safety=(SafetyRule(units=-1),)),
        "channels[web].safety[0].units",
        "negative",
    ),
    (
        "safety on unknown node",
        lambda: web_with(safety=(SafetyRule(units=1, node_id="GHOST"),)),
        "channels[web].safety[0].node_id",
        "GHOST",
    ),
    (
        "cap over 100",
        lambda: web_with(caps=(AllocationCap(101.0),)),
        "channels[web].caps[0].percent",
        "0..100",
    ),
    (
        "cap negative",
        lambda: web_with(caps=(AllocationCap(50.0), AllocationCap(-0.5, node_type=DC))),
        "channels[web].caps[1].percent",
        "0..100",
    ),
    (
        "cap on unknown node",
        lambda: web_with(caps=(AllocationCap(10.0, node_id="GHOST"),)),
        "channels[web].caps[0].node_id",
        "GHOST",
    ),
    ("negative low stock", lambda: web_with(low_stock=-1), "channels[web].low_stock_threshold", "negative"),
    ("negative display cap", lambda: web_with(display_cap=-1), "channels[web].display_cap", "negative"),
    (
        "unknown node in a group",
        lambda: valid().with_changes(groups=[NodeGroup("dcs", node_ids=("DC1", "GHOST", "ALSO"))]),
        "groups[dcs].node_ids",
        "ALSO, GHOST",
    ),
    (
        "group with no nodes",
        lambda: valid().with_changes(groups=[NodeGroup("empty")]),
        "groups[empty]",
        "no nodes",
    ),
    (
        "selector matching nothing",
        lambda: valid().with_changes(groups=[NodeGroup("none", types=(DROP,), pickup=True)]),
        "groups[none]",
        "no nodes",
    ),
    (
        "node out of range",
        lambda: valid().with_changes(nodes=[Node("X9", DC, latitude=91.0)]),
        "nodes[X9].latitude",
        "-90..90",
    ),
]


@pytest.mark.parametrize(("name", "make", "field", "text"), CASES, ids=[c[0] for c in CASES])
def test_each_problem_names_its_field(name: str, make, field: str, text: str) -> None:
    problems = make().problems()
    assert len(problems) == 1, problems
    assert problems[0][0] == field
    assert text in problems[0][1]


def test_every_problem_is_reported_at_once() -> None:
    net = valid().with_changes(
        groups=[NodeGroup("empty"), NodeGroup("ghosts", node_ids=("GHOST",))],
        channels=[
            Channel(
                "web",
                groups=("nope",),
                safety=(SafetyRule(units=-1, percent=200.0, node_id="GHOST"),),
                caps=(AllocationCap(-1.0, node_id="GHOST"),),
                low_stock=-1,
                display_cap=-1,
            ),
            Channel("bare"),
        ],
    )
    fields = sorted(field for field, _ in net.problems())
    assert fields == sorted(
        [
            "groups[empty]",
            "groups[ghosts].node_ids",
            "channels[web].groups",
            "channels[web].safety[0].units",
            "channels[web].safety[0].percent",
            "channels[web].safety[0].node_id",
            "channels[web].caps[0].percent",
            "channels[web].caps[0].node_id",
            "channels[web].low_stock_threshold",
            "channels[web].display_cap",
            "channels[bare].groups",
        ]
    )


def test_a_group_of_disabled_nodes_is_not_empty() -> None:
    net = valid().with_changes(groups=[NodeGroup("off", node_ids=("DC2",))])
    assert net.problems() == []


# --- answers ---


def view(node_id: str, on_hand: int, reserved: int = 0, committed: int = 0, **more: object) -> PositionView:
    return PositionView("X", node_id, on_hand, reserved, committed, 1.0, **more)  # type: ignore[arg-type]


def test_network_availability_counts_enabled_nodes_only() -> None:
    net = network()
    rows = [
        view("DC1", 10, 2, 1, damaged=3, quality_hold=1),  # sellable 6, free 3
        view("DC2", 50),  # disabled: counts zero
        view("GHOST", 50),  # not in the network: counts zero
        view("S1", 4, 6),  # oversold: zero, not negative
        view("S3", 5),
    ]
    answer = network_availability("X", rows, net)
    assert [row.available for row in answer.nodes] == [3, 0, 0, 0, 5]
    assert answer.available == 8
    assert (answer.on_hand, answer.reserved, answer.committed) == (119, 8, 1)
    assert (answer.damaged, answer.quality_hold) == (3, 1)
    assert answer.status is None


def test_channel_availability_applies_eligibility_safety_and_caps() -> None:
    channel = Channel(
        "web",
        groups=("dcs", "pickup-stores"),
        safety=(SafetyRule(units=2, node_type=STORE), SafetyRule(percent=10.0)),
        caps=(AllocationCap(50.0, node_id="S2"),),
    )
    net = network(channel)
    rows = [
        view("DC1", 20, 5, 0, damaged=5),  # sellable 15, safety ceil(1.5)=2 -> 8
        view("DC2", 100),  # disabled
        view("S1", 10, 3, 0, by_channel=(("web", 3),)),  # safety 2 -> 5
        view("S2", 10, 0, 2, by_channel=(("other", 2),)),  # free 8-2=6, cap 5 (other's units don't count)
        view("S3", 100),  # not in the channel's groups
        view("T1", 100),
    ]
    answer = channel_availability("X", rows, net, channel)
    assert [(row.position.node_id, row.available) for row in answer.nodes] == [
        ("DC1", 8),
        ("S1", 5),
        ("S2", 5),
    ]
    assert answer.available == 18
    assert answer.on_hand == 40  # only the nodes that count
    assert answer.status is StockStatus.IN_STOCK


def test_channel_cap_is_consumed_by_its_own_units() -> None:
    channel = Channel("web", groups=("dcs",), caps=(AllocationCap(50.0),))
    net = network(channel)
    mine = channel_availability("X", [view("DC1", 10, 3, 1, by_channel=(("web", 4),))], net, channel)
    theirs = channel_availability("X", [view("DC1", 10, 3, 1, by_channel=(("mkt", 4),))], net, channel)
    assert mine.available == 1  # cap 5 - 4 of its own
    assert theirs.available == 5  # free 6, cap 5 untouched


@pytest.mark.parametrize(
    ("on_hand", "shown", "status"),
    [
        (100, 3, StockStatus.IN_STOCK),  # hidden by the display cap, but plenty: not LOW
        (6, 3, StockStatus.IN_STOCK),
        (5, 3, StockStatus.LOW_STOCK),
        (2, 2, StockStatus.LOW_STOCK),
        (0, 0, StockStatus.OUT_OF_STOCK),
    ],
)
def test_status_follows_real_availability_not_the_display_cap(
    on_hand: int, shown: int, status: StockStatus
) -> None:
    channel = Channel("web", groups=("dcs",), low_stock=5, display_cap=3)
    answer = channel_availability("X", [view("DC1", on_hand)], network(channel), channel)
    assert answer.available == shown
    assert answer.status is status
    assert answer.nodes[0].available == on_hand  # rows show what each node may really promise


def test_status_after_safety_is_out_of_stock() -> None:
    channel = Channel("web", groups=("dcs",), safety=(SafetyRule(units=5),), low_stock=2)
    answer = channel_availability("X", [view("DC1", 5)], network(channel), channel)
    assert (answer.available, answer.status) == (0, StockStatus.OUT_OF_STOCK)


def test_a_group_a_remaining_channel_sells_from_cannot_be_dropped() -> None:
    from omnistock.availability.network import Channel, Network, NodeGroup
    from omnistock.availability.nodes import Node, NodeType

    network = Network(
        nodes={"D": Node("D", NodeType.DC)},
        groups={"dcs": NodeGroup("dcs", node_ids=("D",))},
        channels={"web": Channel("web", groups=("dcs",))},
    )
    assert network.groups_in_use(["dcs"], []) == [("groups[dcs]", "is still used by channel(s) web")]
    assert network.groups_in_use(["dcs"], ["web"]) == []  # dropped together: fine
