"""The network TOML file: what parses to what, and every problem reported by field at once."""

from __future__ import annotations

import pytest

from omnistock.availability import network_file
from omnistock.availability.network import AllocationCap, Channel, Network, NodeGroup, SafetyRule
from omnistock.availability.network_file import NetworkFileError, parse_network
from omnistock.availability.nodes import Node, NodeType

FULL = """
[[nodes]]
node_id = "DC-01"
type = "dc"
name = "Main DC"
latitude = 52.5
longitude = 13
[[nodes]]
node_id = "ST-01"
type = "store"
ships = false
pickup = true
enabled = false

[groups.dcs]
types = ["dc", "3pl"]

[groups.pickup]
types = ["store"]
pickup = true
ships = false

[groups.named]
node_ids = ["DC-01", "ST-01"]

[channels.web]
name = "Web shop"
groups = ["dcs", "pickup"]
low_stock_threshold = 5
display_cap = 50
safety = [
  { node_type = "store", units = 2 },
  { sku = "SKU-1", percent = 10 },
  { sku = "SKU-1", node_id = "DC-01", units = 1, percent = 2.5 },
]
caps = [{ node_type = "store", percent = 50 }, { node_id = "DC-01", percent = 80.5 }, { percent = 90 }]

[channels.app]
groups = ["named"]
"""


def problems_of(text: str) -> list[tuple[str, str]]:
    with pytest.raises(NetworkFileError) as caught:
        parse_network(text)
    return caught.value.problems


def test_a_full_file_parses_to_the_network_it_describes() -> None:
    nodes, groups, channels = parse_network(FULL)
    assert nodes == [
        Node("DC-01", NodeType.DC, name="Main DC", latitude=52.5, longitude=13.0),
        Node("ST-01", NodeType.STORE, ships=False, pickup=True, enabled=False),
    ]
    assert isinstance(nodes[0].longitude, float)
    assert groups == [
        NodeGroup("dcs", types=(NodeType.DC, NodeType.THREE_PL)),
        NodeGroup("pickup", types=(NodeType.STORE,), ships=False, pickup=True),
        NodeGroup("named", node_ids=("DC-01", "ST-01")),
    ]
    assert channels == [
        Channel(
            "web",
            name="Web shop",
            groups=("dcs", "pickup"),
            safety=(
                SafetyRule(units=2, node_type=NodeType.STORE),
                SafetyRule(percent=10.0, sku="SKU-1"),
                SafetyRule(units=1, percent=2.5, sku="SKU-1", node_id="DC-01"),
            ),
            caps=(
                AllocationCap(50.0, node_type=NodeType.STORE),
                AllocationCap(80.5, node_id="DC-01"),
                AllocationCap(90.0),
            ),
            low_stock=5,
            display_cap=50,
        ),
        Channel("app", groups=("named",)),
    ]
    network = Network(
        {n.node_id: n for n in nodes}, {g.group_id: g for g in groups}, {c.channel_id: c for c in channels}
    )
    assert network.problems() == []


def test_the_example_in_the_module_docstring_parses() -> None:
    assert network_file.__doc__ is not None
    example = network_file.__doc__.split("\n\n", 1)[1]
    nodes, groups, channels = parse_network(example)
    assert [n.node_id for n in nodes] == ["DC-01"]
    assert [g.group_id for g in groups] == ["dcs", "ship-from-store"]
    assert channels[0].caps == (AllocationCap(50.0, node_type=NodeType.STORE),)


def test_an_empty_file_is_an_empty_network() -> None:
    assert parse_network("") == ([], [], [])


def test_selector_flags_left_out_are_none() -> None:
    _, groups, _ = parse_network('[groups.g]\ntypes = ["dc"]\n')
    assert (groups[0].ships, groups[0].pickup) == (None, None)


def test_invalid_toml_is_one_problem_on_the_file() -> None:
    problems = problems_of("[channels.web\ngroups = [")
    assert len(problems) == 1
    assert problems[0][0] == "file"
    assert "not valid TOML" in problems[0][1]


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        # unknown keys, at every level
        ("colour = 1", "network.colour", "not a known setting"),
        ('[[nodes]]\nnode_id = "A"\ntype = "dc"\ncolour = 1', "nodes[0].colour", "not a known setting"),
        ('[groups.g]\ntypes = ["dc"]\ncolour = 1', "groups[g].colour", "not a known setting"),
        ('[channels.c]\ngroups = ["g"]\nlow_stock = 1', "channels[c].low_stock", "not a known setting"),
        (
            '[channels.c]\ngroups = ["g"]\nsafety = [{ unit = 1 }]',
            "channels[c].safety[0].unit",
            "not a known",
        ),
        (
            '[channels.c]\ngroups = ["g"]\ncaps = [{ percent = 1, sku = "X" }]',
            "channels[c].caps[0].sku",
            "known",
        ),
        # bad node types
        ('[[nodes]]\nnode_id = "A"\ntype = "warehouse"', "nodes[0].type", "'warehouse'"),
        ('[groups.g]\ntypes = ["dc", "shop"]', "groups[g].types", "'shop'"),
        (
            '[channels.c]\ngroups = ["g"]\nsafety = [{ node_type = "x", units = 1 }]',
            "channels[c].safety[0].node_type",
            "one of",
        ),
        (
            '[channels.c]\ngroups = ["g"]\ncaps = [{ node_type = "x", percent = 1 }]',
            "channels[c].caps[0].node_type",
            "one of",
        ),
        # wrong value types
        ('[[nodes]]\nnode_id = 7\ntype = "dc"', "nodes[0].node_id", "must be a str"),
        ('[[nodes]]\nnode_id = "A"\ntype = "dc"\nships = "yes"', "nodes[0].ships", "must be a bool"),
        ('[[nodes]]\nnode_id = "A"\ntype = "dc"\nlatitude = "north"', "nodes[0].latitude", "must be a float"),
        ('[groups.g]\ntypes = "dc"', "groups[g].types", "must be a list"),
        ('[groups.g]\ntypes = ["dc"]\npickup = 1', "groups[g].pickup", "must be a bool"),
        ('[groups.g]\nnode_ids = "A"', "groups[g].node_ids", "must be a list"),
        ('[channels.c]\ngroups = "g"', "channels[c].groups", "must be a list"),
        ('[channels.c]\ngroups = ["g"]\nlow_stock_threshold = 2.5', "channels[c].low_stock_threshold", "int"),
        (
            '[channels.c]\ngroups = ["g"]\nlow_stock_threshold = true',
            "channels[c].low_stock_threshold",
            "int",
        ),
        ('[channels.c]\ngroups = ["g"]\ndisplay_cap = "50"', "channels[c].display_cap", "must be a int"),
        ('[channels.c]\ngroups = ["g"]\nsafety = { units = 1 }', "channels[c].safety", "array of tables"),
        ('[channels.c]\ngroups = ["g"]\nsafety = [{ units = 1.5 }]', "channels[c].safety[0].units", "int"),
        ('[channels.c]\ngroups = ["g"]\nsafety = [{ units = true }]', "channels[c].safety[0].units", "int"),
        (
            '[channels.c]\ngroups = ["g"]\nsafety = [{ percent = "5%" }]',
            "channels[c].safety[0].percent",
            "float",
        ),
        (
            '[channels.c]\ngroups = ["g"]\nsafety = [{ sku = 5, units = 1 }]',
            "channels[c].safety[0].sku",
            "str",
        ),
        (
            '[channels.c]\ngroups = ["g"]\ncaps = [{ percent = "half" }]',
            "channels[c].caps[0].percent",
            "float",
        ),
        ('[channels.c]\ngroups = ["g"]\ncaps = [{ percent = true }]', "channels[c].caps[0].percent", "float"),
        (
            '[channels.c]\ngroups = ["g"]\ncaps = [{ percent = 5, node_id = 1 }]',
            "channels[c].caps[0].node_id",
            "str",
        ),
        # required values
        ('[[nodes]]\ntype = "dc"', "nodes[0].node_id", "is required"),
        ('[[nodes]]\nnode_id = ""\ntype = "dc"', "nodes[0].node_id", "is required"),
        (
            '[channels.c]\ngroups = ["g"]\ncaps = [{ node_type = "store" }]',
            "channels[c].caps[0].percent",
            "required",
        ),
    ],
)
def test_each_problem_names_its_field(text: str, field: str, words: str) -> None:
    problems = problems_of(text)
    assert {f for f, _ in problems} == {field}, problems  # (a wrong node_id also reads as missing)
    assert any(words in message for _, message in problems), problems


def test_every_problem_in_the_file_is_reported_at_once() -> None:
    text = """
    mystery = true
    [[nodes]]
    node_id = "A"
    type = "warehouse"
    [[nodes]]
    type = "dc"
    [[nodes]]
    node_id = "B"
    type = "dc"
    ships = "often"
    [groups.g]
    types = ["dc", "castle"]
    size = 3
    [channels.c]
    groups = ["g"]
    low_stock_threshold = "low"
    safety = [{ units = "two" }, { percent = 5, colour = "red" }]
    caps = [{ node_type = "store" }, { percent = 50, node_type = "moon" }]
    [channels.d]
    display_cap = 1.5
    """
    fields = [field for field, _ in problems_of(text)]
    assert sorted(fields) == sorted(
        [
            "network.mystery",
            "nodes[0].type",
            "nodes[1].node_id",
            "nodes[2].ships",
            "groups[g].size",
            "groups[g].types",
            "channels[c].low_stock_threshold",
            "channels[c].safety[0].units",
            "channels[c].safety[1].colour",
            "channels[c].caps[0].percent",
            "channels[c].caps[1].node_type",
            "channels[d].display_cap",
        ]
    )


def test_the_error_message_names_every_field() -> None:
    with pytest.raises(NetworkFileError) as caught:
        parse_network('bogus = 1\n[channels.c]\ngroups = ["g"]\ncaps = [{}]')
    assert isinstance(caught.value, ValueError)
    assert "network.bogus: is not a known setting" in str(caught.value)
    assert "channels[c].caps[0].percent: is required" in str(caught.value)


def test_range_checks_are_left_to_the_network() -> None:
    """The file parses values of the right type; Network.problems then checks their ranges."""
    nodes, groups, channels = parse_network(
        '[[nodes]]\nnode_id = "A"\ntype = "dc"\n[groups.g]\nnode_ids = ["A"]\n'
        '[channels.c]\ngroups = ["g"]\nsafety = [{ units = -1, percent = 150 }]\ncaps = [{ percent = 101 }]\n'
    )
    network = Network(
        {n.node_id: n for n in nodes}, {g.group_id: g for g in groups}, {c.channel_id: c for c in channels}
    )
    assert sorted(f for f, _ in network.problems()) == [
        "channels[c].caps[0].percent",
        "channels[c].safety[0].percent",
        "channels[c].safety[0].units",
    ]


# --- wrongly shaped files: reported by field, never a crash ---


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ('[[nodes]]\nnode_id = "A"', "nodes[0].type", "is required"),
        ("[groups.g]\nnode_ids = [1]", "groups[g].node_ids", "list of strings"),
        ('[groups.g]\ntypes = [["dc"]]', "groups[g].types", "list of strings"),
        ("[channels.c]\ngroups = [1]", "channels[c].groups", "list of strings"),
        ("groups = [1]", "groups", "[groups.NAME]"),
        ("[groups]\ng = 5", "groups", "[groups.NAME]"),
        ("channels = 3", "channels", "[channels.NAME]"),
        ("nodes = { a = 1 }", "nodes", "array of tables"),
        ("nodes = [1]", "nodes", "array of tables"),
        ('[channels.c]\ngroups = ["g"]\nsafety = [1]', "channels[c].safety", "array of tables"),
        ('[channels.c]\ngroups = ["g"]\ncaps = ["x"]', "channels[c].caps", "array of tables"),
    ],
)
def test_a_wrongly_shaped_file_is_reported_by_field(text: str, field: str, words: str) -> None:
    problems = problems_of(text)
    assert [f for f, _ in problems] == [field], problems
    assert words in problems[0][1]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('[[nodes]]\nnode_id = "A"\ntype = ["dc"]', "nodes[0].type"),
        ('[[nodes]]\nnode_id = "A"\ntype = { a = 1 }', "nodes[0].type"),
        (
            '[channels.c]\ngroups = ["g"]\nsafety = [{ node_type = ["dc"] }]',
            "channels[c].safety[0].node_type",
        ),
        (
            '[channels.c]\ngroups = ["g"]\ncaps = [{ percent = 1, node_type = {} }]',
            "channels[c].caps[0].node_type",
        ),
    ],
)
def test_an_unhashable_node_type_is_reported(text: str, field: str) -> None:
    assert [f for f, _ in problems_of(text)] == [field]
