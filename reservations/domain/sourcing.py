"""Rule-based sourcing (pure): choose the node(s) for order lines that name none, and say why.

An order service may reserve lines without a node; `plan` picks nodes for them by the
channel's `SourcingPolicy` and explains every choice, line by line.

Hard constraints, always, checked in this order (a node is rejected for the first it fails):

1. one of the channel's nodes: in one of its node groups ("not in channel <id>'s node
   groups") and enabled ("disabled");
2. delivery: the node ships ("does not ship"); pickup: only the pickup store itself
   counts ("not the pickup store <id>");
3. not in `exclude` ("excluded: the line is moving away from it");
4. stock for the line: some units, or all of them when lines may not be split
   ("out of stock: 0 of 2 promisable", "short: 1 of 2 promisable"); an unknown SKU has
   no stock;
5. daily capacity left: `capacity_left[node] <= 0` rejects ("daily capacity reached
   (N orders a day)"); a node absent from `capacity_left` has no limit.

Preferences rank the nodes left, lexicographically in the channel's `rules` order, then
by node id (so the answer never depends on dict order):

- single_node: covers more of the still-unplanned lines in full, then more units;
- nearest: smaller great-circle distance to the destination (to the pickup store for a
  pickup order), compared at 0.1 km;
- priority: lower `Node.priority`;
- cost: lower `Node.shipment_cost`, compared at 0.01.

Greedy: repeatedly take the best-ranked node that can contribute and give it every
unplanned line it can fill (the whole line, or with `split_lines` also part of one),
until every line is planned, `max_shipments` nodes are used (0: no limit), or no node
can contribute. One picked node is one shipment and uses one order of its daily
capacity (a node is picked at most once per plan). This is a greedy heuristic, not an
optimum: it may use more shipments, or fill less, than the best possible plan.

Each line's explanation lists its chosen node(s) first, with the metrics of the rules
that made them win ("chosen: fills the whole order; 12.3 km; priority 1"), then every
other node with why it lost: the first preference on which it ranked behind the (first)
node chosen for the line, with both values ("lost on nearest: 412.3 km vs 12.3 km",
"tied; lost on node id"), or "max shipments reached (N)"; then the nodes that failed a
hard constraint, the furthest along first. At most `MAX_EXPLAINED_NODES` are listed (but
never fewer than the chosen ones); `omitted` counts the rest. Distances are to the
destination, or from the pickup store for a pickup order.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice

from omnistock.availability.network import Channel, Network, SourcingRule
from omnistock.availability.nodes import Node
from omnistock.availability.pickup import distance_km

MAX_EXPLAINED_NODES = 20


@dataclass(frozen=True, slots=True)
class Destination:
    latitude: float = 0.0
    longitude: float = 0.0
    pickup_node_id: str = ""
    """Set for a pickup order: it is collected at this store, so only this store can hold it."""


@dataclass(frozen=True, slots=True)
class Wanted:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class NodeVerdict:
    node_id: str
    units: int
    """Units of this line taken at this node (0 when it lost)."""
    reason: str
    """One line of plain English: why chosen, or why it lost."""
    distance_km: float | None = None
    """To the destination (rounded to 0.1 km), when known."""

    @property
    def chosen(self) -> bool:
        return self.units > 0


@dataclass(frozen=True, slots=True)
class LineSourcing:
    """Why one requested line went where it went."""

    sku: str
    quantity: int
    rules: tuple[str, ...]
    """The rules applied, in order, as short text, constraints first."""
    considered: tuple[NodeVerdict, ...]
    """Chosen node(s) first, then the rejected ones: at most MAX_EXPLAINED_NODES in all, unless
    more nodes than that share a split line (every chosen node is always listed)."""
    omitted: int = 0
    """Rejected nodes left out of `considered` by the cap."""


@dataclass(frozen=True, slots=True)
class SourcingPlan:
    allocations: tuple[tuple[str, str, int], ...]
    """(sku, node_id, units), one per (sku, node), sorted by (sku, node_id)."""
    explanations: tuple[LineSourcing, ...]
    """One per wanted line, in request order."""
    unfilled: tuple[tuple[str, int, int], ...]
    """(sku, requested, sourced) for each line it could not fill, in request order."""

    @property
    def complete(self) -> bool:
        return not self.unfilled


_EXCLUDED = "excluded: the line is moving away from it"
_SINGLE = SourcingRule.SINGLE_NODE

# (full lines per node, units per node, open lines) as they stood when a node was picked
_Snapshot = tuple[list[int], list[int], int]
_Key = Callable[[int, list[int], list[int]], tuple[float, ...]]


@dataclass(frozen=True, slots=True)
class _Metric:
    """A preference that does not change while planning: each node's value and its text."""

    rule: SourcingRule
    values: list[float]
    """Compared as rounded (0.1 km, 0.01 of cost) so that a reason never says '5.0 vs 5.0'."""
    texts: list[str]
    label: str
    """Put before the text when a chosen node is described ("priority 1", "cost 4.00")."""

    @classmethod
    def of(cls, rule: SourcingRule, nodes: list[Node], dist: list[float | None]) -> _Metric:
        values: list[float]
        if rule is SourcingRule.NEAREST:
            values = [0.0 if d is None else d for d in dist]
            return cls(rule, values, [f"{v:.1f} km" for v in values], "")
        if rule is SourcingRule.PRIORITY:
            values = [node.priority for node in nodes]
            return cls(rule, values, [str(node.priority) for node in nodes], "priority ")
        values = [round(node.shipment_cost, 2) for node in nodes]
        return cls(rule, values, [f"{v:.2f}" for v in values], "cost ")


def plan(
    network: Network,
    channel_id: str,
    wanted: Sequence[Wanted],
    destination: Destination,
    promisable: Mapping[tuple[str, str], int],
    capacity_left: Mapping[str, int],
    exclude: Collection[str] = (),
) -> SourcingPlan:
    """Choose nodes for `wanted` by the channel's sourcing policy, and explain every choice.

    `promisable[(sku, node_id)]`: units the channel may hold there now (absent: 0);
    `capacity_left[node_id]`: orders the node can still take today (absent: no limit);
    `exclude`: nodes that must not be used. Raises KeyError for an unknown channel and
    ValueError for a quantity below 1 or a SKU wanted twice (merge such lines first).
    """
    channel = network.channels[channel_id]
    policy = channel.sourcing
    rules, split, max_shipments = policy.rules, policy.split_lines, policy.max_shipments
    lines = tuple(wanted)
    _check(lines)
    eligible = network.eligible(channel_id)
    excluded = exclude if isinstance(exclude, set | frozenset) else frozenset(exclude)
    pickup_id = destination.pickup_node_id

    ids = sorted(network.nodes)  # index order is node-id order: the final tiebreak
    nodes = [network.nodes[node_id] for node_id in ids]
    count = len(nodes)
    origin: tuple[float, float] | None = (destination.latitude, destination.longitude)
    if pickup_id:
        store = network.nodes.get(pickup_id)
        origin = (store.latitude, store.longitude) if store is not None else None
    dist: list[float | None] = [
        None if origin is None else round(distance_km(*origin, node.latitude, node.longitude), 1)
        for node in nodes
    ]

    # Line-independent constraints (1-3, 5).
    stage_lists: tuple[list[NodeVerdict], list[NodeVerdict], list[NodeVerdict]] = ([], [], [])
    passed: list[int] = []  # constraints 1-3 met
    active = [False] * count  # constraints 1-3 and 5 met: may be picked where it has stock
    capacity_verdict: dict[int, NodeVerdict] = {}
    members: set[str] | None = None
    not_in_channel = f"not in channel {channel_id}'s node groups"
    for i, node in enumerate(nodes):
        node_id = node.node_id
        if node_id not in eligible:
            reason = not_in_channel
            if not node.enabled:
                if members is None:
                    members = _members(network, channel)
                if node_id in members:
                    reason = "disabled"
            stage_lists[0].append(NodeVerdict(node_id, 0, reason, dist[i]))
        elif pickup_id and node_id != pickup_id:
            stage_lists[1].append(NodeVerdict(node_id, 0, f"not the pickup store {pickup_id}", dist[i]))
        elif not pickup_id and not node.ships:
            stage_lists[1].append(NodeVerdict(node_id, 0, "does not ship", dist[i]))
        elif node_id in excluded:
            stage_lists[2].append(NodeVerdict(node_id, 0, _EXCLUDED, dist[i]))
        else:
            passed.append(i)
            left = capacity_left.get(node_id)
            if left is not None and left <= 0:
                capacity_verdict[i] = NodeVerdict(node_id, 0, _capacity_reason(node), dist[i])
            else:
                active[i] = True
    candidates = [i for i in passed if active[i]]
    position = {i: k for k, i in enumerate(passed)}

    # Stock (constraint 4), looked up once: what each node can give each line.
    get = promisable.get
    passed_ids = [ids[i] for i in passed]
    needs = [1 if split else line.quantity for line in lines]
    found: list[list[int]] = []  # line -> promisable units, aligned with `passed`
    stockers: list[list[tuple[int, int]]] = []  # line -> (active node, units) able to contribute
    full = [0] * count  # open lines the node can fill in full
    units = [0] * count  # units the node can give the open lines
    for line, need in zip(lines, needs, strict=True):
        sku, quantity = line.sku, line.quantity
        here = [get((sku, node_id), 0) for node_id in passed_ids]
        serving = [(i, p) for i, p in zip(passed, here, strict=True) if p >= need and active[i]]
        for i, p in serving:
            if p >= quantity:
                full[i] += 1
                units[i] += quantity
            else:
                units[i] += p
        found.append(here)
        stockers.append(serving)

    # Greedy picks.
    static = [_Metric.of(rule, nodes, dist) for rule in rules if rule is not _SINGLE]
    key_at = _ranker(rules, static, count)
    remaining = [line.quantity for line in lines]
    open_lines = len(lines)
    used = [False] * count
    chosen_for: list[list[tuple[int, int, int]]] = [[] for _ in lines]  # (node, units, pick)
    snapshots: list[_Snapshot] = []
    while open_lines and (not max_shipments or len(snapshots) < max_shipments):
        best, best_key = -1, None
        for i in candidates:
            if units[i] > 0 and not used[i]:
                key = key_at(i, full, units)
                if best_key is None or key < best_key:
                    best, best_key = i, key
        if best < 0:
            break
        pick = len(snapshots)
        snapshots.append((full.copy(), units.copy(), open_lines))
        used[best] = True
        k = position[best]
        for j, here in enumerate(found):
            before, p = remaining[j], here[k]
            if before <= 0 or p < needs[j]:
                continue
            after = before - p if p < before else 0  # without split_lines p >= before
            remaining[j] = after
            chosen_for[j].append((best, before - after, pick))
            if after == 0:
                open_lines -= 1
                for i, q in stockers[j]:  # the line no longer counts for anyone
                    if q >= before:
                        full[i] -= 1
                        units[i] -= before
                    else:
                        units[i] -= q
            else:
                for i, q in stockers[j]:  # a smaller rest: some now fill it in full
                    if q >= before:
                        units[i] -= before - after
                    elif q >= after:
                        units[i] -= q - after
                        full[i] += 1
    snapshots.append((full, units, open_lines))  # the state it stopped in

    explainer = _Explainer(
        rules, static, nodes, dist, snapshots, key_at, passed, capacity_verdict, stage_lists, split
    )
    rule_text = _rule_text(channel_id, rules, split, max_shipments, pickup_id, bool(excluded))
    explanations: list[LineSourcing] = []
    allocations: list[tuple[str, str, int]] = []
    unfilled: list[tuple[str, int, int]] = []
    for line, chosen, left_over, here in zip(lines, chosen_for, remaining, found, strict=True):
        if left_over:
            unfilled.append((line.sku, line.quantity, line.quantity - left_over))
        allocations.extend((line.sku, ids[i], taken) for i, taken, _ in chosen)
        considered = explainer.verdicts(line, chosen, not left_over, here, max_shipments)
        explanations.append(
            LineSourcing(line.sku, line.quantity, rule_text, considered, count - len(considered))
        )
    allocations.sort()
    return SourcingPlan(tuple(allocations), tuple(explanations), tuple(unfilled))


def _check(lines: Sequence[Wanted]) -> None:
    seen: set[str] = set()
    for line in lines:
        if line.quantity < 1:
            raise ValueError(f"line {line.sku!r}: quantity must be at least 1, got {line.quantity}")
        if line.sku in seen:
            raise ValueError(f"line {line.sku!r}: SKU wanted twice; merge the lines first")
        seen.add(line.sku)


def _members(network: Network, channel: Channel) -> set[str]:
    found: set[str] = set()
    for group_id in channel.groups:
        group = network.groups.get(group_id)
        if group is not None:
            found |= group.members(network.nodes)
    return found


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _capacity_reason(node: Node) -> str:
    if node.daily_capacity <= 0:
        return "daily capacity reached"
    return f"daily capacity reached ({_plural(node.daily_capacity, 'order')} a day)"


def _rule_text(
    channel_id: str,
    rules: tuple[SourcingRule, ...],
    split: bool,
    max_shipments: int,
    pickup_id: str,
    excluding: bool,
) -> tuple[str, ...]:
    text = [f"channel {channel_id}'s nodes", f"pickup store {pickup_id}" if pickup_id else "ships"]
    if excluding:
        text.append("not excluded")
    text += ["stock", "daily capacity", *(rule.value for rule in rules)]
    text.append("lines may be split" if split else "lines not split")
    if max_shipments:
        text.append(f"at most {_plural(max_shipments, 'shipment')}")
    return tuple(text)


def _ranker(rules: tuple[SourcingRule, ...], static: list[_Metric], count: int) -> _Key:
    """The ranking key of node i given the current (full, units): smaller is better."""

    def keys(metrics: list[_Metric], with_id: bool) -> list[tuple[float, ...]]:
        if with_id:
            return [(*(m.values[i] for m in metrics), i) for i in range(count)]
        return [tuple(m.values[i] for m in metrics) for i in range(count)]

    if _SINGLE not in rules:
        fixed = keys(static, with_id=True)
        return lambda i, full, units: fixed[i]
    at = rules.index(_SINGLE)
    tail = keys(static[at:], with_id=True)
    if at == 0:
        return lambda i, full, units: (-full[i], -units[i], *tail[i])
    head = keys(static[:at], with_id=False)
    return lambda i, full, units: (*head[i], -full[i], -units[i], *tail[i])


class _Explainer:
    """Builds each line's verdicts, chosen first. Verdicts are immutable, so one object
    serves every line it is the same for."""

    def __init__(
        self,
        rules: tuple[SourcingRule, ...],
        static: list[_Metric],
        nodes: list[Node],
        dist: list[float | None],
        snapshots: list[_Snapshot],
        key_at: _Key,
        passed: list[int],
        capacity_verdict: dict[int, NodeVerdict],
        stage_lists: tuple[list[NodeVerdict], list[NodeVerdict], list[NodeVerdict]],
        split: bool,
    ) -> None:
        self.rules = rules
        self.static = static
        self.nodes = nodes
        self.dist = dist
        self.snapshots = snapshots
        self.key_at = key_at
        self.passed = passed
        self.position = {i: k for k, i in enumerate(passed)}
        self.at_capacity = [(self.position[i], verdict) for i, verdict in sorted(capacity_verdict.items())]
        self.pickable = [i for i in passed if i not in capacity_verdict]
        self.stage_lists = stage_lists
        self.split = split
        self.line_count = snapshots[0][2]
        self._ranked: dict[int, list[tuple[int, int]]] = {}
        self._lost_rows: dict[tuple[int, int], list[NodeVerdict | None]] = {}
        self._chosen: dict[tuple[int, int, int, int], NodeVerdict] = {}
        self._short: dict[tuple[int, int, int], NodeVerdict] = {}
        self._chosen_metrics: dict[tuple[int, int], str] = {}

    def verdicts(
        self,
        line: Wanted,
        chosen: list[tuple[int, int, int]],
        filled: bool,
        found: list[int],
        max_shipments: int,
    ) -> tuple[NodeVerdict, ...]:
        """The first MAX_EXPLAINED_NODES verdicts on a line; `found` holds its promisable
        units at the nodes that met constraints 1-3."""
        nodes, dist, quantity = self.nodes, self.dist, line.quantity
        out: list[NodeVerdict] = []
        for i, taken, pick in chosen:
            key = (i, pick, taken, quantity if taken < quantity else 0)
            verdict = self._chosen.get(key)
            if verdict is None:
                reason = self._chosen_reason(i, pick, taken, quantity)
                verdict = self._chosen[key] = NodeVerdict(nodes[i].node_id, taken, reason, dist[i])
            out.append(verdict)
        need = 1 if self.split else quantity
        # Met every hard constraint but lost: best ranked first, as when the line was decided.
        reference = chosen[0][2] if chosen else len(self.snapshots) - 1
        winner = chosen[0][0] if filled else -1  # -1: lost for want of shipments
        row = self._lost_rows.get((winner, reference))
        if row is None:
            row = self._lost_rows[(winner, reference)] = [None] * len(nodes)
        chosen_nodes = {i for i, _, _ in chosen}
        room = max(0, MAX_EXPLAINED_NODES - len(out))  # a chosen node is never left out
        for i, k in self._ranked_at(reference):
            if not room:
                return tuple(out)
            if found[k] >= need and i not in chosen_nodes:
                verdict = row[i]
                if verdict is None:
                    if filled:
                        reason = self._lost(i, winner, reference)
                    else:
                        reason = f"max shipments reached ({max_shipments})"
                    verdict = row[i] = NodeVerdict(nodes[i].node_id, 0, reason, dist[i])
                out.append(verdict)
                room -= 1
        if room:
            out.extend(islice(self._failed(quantity, need, found), room))
        return tuple(out)

    def _failed(self, quantity: int, need: int, found: list[int]) -> Iterator[NodeVerdict]:
        """The nodes that failed a hard constraint on a line: the furthest along first,
        then by node id."""
        for k, at_capacity in self.at_capacity:
            if found[k] >= need:
                yield at_capacity
        for k, i in enumerate(self.passed):
            p = found[k]
            if p < need:
                short = (i, p, quantity)
                verdict = self._short.get(short)
                if verdict is None:
                    if p <= 0:
                        reason = f"out of stock: 0 of {quantity} promisable"
                    else:
                        reason = f"short: {p} of {quantity} promisable"
                    node_id = self.nodes[i].node_id
                    verdict = self._short[short] = NodeVerdict(node_id, 0, reason, self.dist[i])
                yield verdict
        for failed in reversed(self.stage_lists):
            yield from failed

    def _ranked_at(self, pick: int) -> list[tuple[int, int]]:
        """The pickable nodes, best first, as ranked at a pick: (node, position in `passed`)."""
        ranked = self._ranked.get(pick)
        if ranked is None:
            full, units, _ = self.snapshots[pick]
            key_at, position = self.key_at, self.position
            order = sorted(self.pickable, key=lambda i: key_at(i, full, units))
            ranked = self._ranked[pick] = [(i, position[i]) for i in order]
        return ranked

    def _chosen_reason(self, i: int, pick: int, taken: int, quantity: int) -> str:
        metrics = self._chosen_metrics.get((i, pick))
        if metrics is None:
            full, units, open_lines = self.snapshots[pick]
            parts = []
            static = iter(self.static)
            for rule in self.rules:
                if rule is not _SINGLE:
                    metric = next(static)
                    parts.append(metric.label + metric.texts[i])
                elif full[i] == open_lines:
                    if open_lines == self.line_count:
                        parts.append("fills the whole order")
                    else:
                        parts.append(f"fills the remaining {_plural(open_lines, 'line')}")
                else:
                    lines_text, units_text = _plural(open_lines, "line"), _plural(units[i], "unit")
                    parts.append(f"fills {full[i]} of {lines_text} ({units_text})")
            metrics = "; ".join(parts) if parts else "lowest node id"
            self._chosen_metrics[(i, pick)] = metrics
        if taken < quantity:
            return f"chosen: {taken} of {quantity} units; {metrics}"
        return f"chosen: {metrics}"

    def _lost(self, loser: int, winner: int, pick: int) -> str:
        """The first preference on which `loser` ranked behind `winner` when `winner` was picked."""
        full, units, open_lines = self.snapshots[pick]
        static = iter(self.static)
        for rule in self.rules:
            if rule is not _SINGLE:
                metric = next(static)
                if metric.values[loser] != metric.values[winner]:
                    texts = metric.texts
                    return f"lost on {rule.value}: {texts[loser]} vs {texts[winner]}"
            elif full[loser] != full[winner]:
                lines_text = _plural(open_lines, "line")
                return f"lost on single_node: fills {full[loser]} of {lines_text} vs {full[winner]}"
            elif units[loser] != units[winner]:
                lines_text = _plural(open_lines, "line")
                return (
                    f"lost on single_node: {_plural(units[loser], 'unit')} vs {units[winner]}"
                    f" (both fill {full[loser]} of {lines_text})"
                )
        return "tied; lost on node id"
