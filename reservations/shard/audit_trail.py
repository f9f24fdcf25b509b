"""The audit trail: who changed stock, the network or the keys, one entry each on the Redis
stream `<prefix>:audit` (RedisKeys.audit), trimmed approximately to AUDIT_KEPT entries.

Every writer uses `AuditEntry`: the shard's journal script for stock (in the very call that
journals the change, so neither is stored without the other), the network store in the
transaction that stores the network, the key store for keys. An entry's fields:

- `at`: milliseconds since the epoch, on the writer's clock;
- `by`: the caller's label (`key:<name>`, `jwt:<subject>`, `local`), or `startup` for a
  network file applied when the service starts;
- `action`: what was done (`stock.adjusted`, `network.nodes_put`, `key.revoked`, ...);
- `subject`: what it was done to (`<sku>@<node>`, a SKU, `partition:<n>`, a node, group or
  channel id, a key's name): readers filter on its prefix;
- `detail`: short JSON of the change (ASCII: control characters come escaped).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import chain

from redis.typing import EncodableT, FieldT

from omnistock.reservations.domain.model import (
    Event,
    LevelColumns,
    LevelsSet,
    StockAdjusted,
    SupplyExpected,
)

AUDIT_KEPT = 1_000_000
"""Audit entries kept on the stream (approximately): trimmed like the reservation events."""
LISTED = 5
"""SKUs (or nodes) an entry for many counts names: a load of 50,000 levels is one entry per
partition and batch, with a count and the first few SKUs, not one entry per level."""
FIELDS = ("at", "by", "action", "subject", "detail")
"""An entry's fields on the stream, in the order the journal script writes them."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: int
    """Milliseconds since the epoch."""
    by: str
    action: str
    subject: str
    detail: str
    """Short JSON."""

    def fields(self) -> dict[FieldT, EncodableT]:
        """The stream entry's fields (XADD)."""
        return {
            "at": self.at,
            "by": self.by,
            "action": self.action,
            "subject": self.subject,
            "detail": self.detail,
        }

    def values(self) -> tuple[str | int, ...]:
        """The fields' values in FIELDS order (the journal script's arguments)."""
        return self.at, self.by, self.action, self.subject, self.detail

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> AuditEntry:
        """An entry as read from the stream; a field that is missing reads as empty."""

        def text(name: bytes) -> str:
            return fields.get(name, b"").decode(errors="replace")

        at = text(b"at")
        return cls(
            int(at) if at.isdigit() else 0, text(b"by"), text(b"action"), text(b"subject"), text(b"detail")
        )


def audit_entry(at: int, by: str, action: str, subject: str, **detail: object) -> AuditEntry:
    """An entry whose detail is `detail` as compact JSON."""
    return AuditEntry(at, by, action, subject, detail_json(detail))


def detail_json(values: Mapping[str, object]) -> str:
    return json.dumps(values, separators=(",", ":"), sort_keys=True)


def stock_audit(partition: int, events: Iterable[Event], at: int) -> list[AuditEntry]:
    """The entries for one partition's journal entry: one per adjustment and per expected
    supply line, and one per caller for the counts it set (however many levels)."""
    entries: list[AuditEntry] = []
    counts: dict[str, list[LevelColumns]] = {}
    for event in events:
        match event:
            case StockAdjusted():
                detail: dict[str, object] = {
                    "adjustment_id": event.adjustment_id,
                    "delta": event.delta,
                    "reason": event.reason,
                    "state": event.state.value,
                }
                if event.supply_id:
                    detail["supply_id"] = event.supply_id
                subject = f"{event.sku}@{event.node_id}"
                entries.append(AuditEntry(at, event.by, "stock.adjusted", subject, detail_json(detail)))
            case SupplyExpected():
                entries.append(
                    audit_entry(
                        at,
                        event.by,
                        "supply.expected",
                        f"{event.sku}@{event.node_id}",
                        supply_id=event.supply_id,
                        quantity=event.quantity,
                        expected_at=round(event.expected_at, 3),
                    )
                )
            case LevelsSet():
                counts.setdefault(event.by, []).append(event.levels)
    entries.extend(_counts_entry(partition, by, parts, at) for by, parts in counts.items())
    return entries


def _counts_entry(partition: int, by: str, parts: list[LevelColumns], at: int) -> AuditEntry:
    """One entry for the counts one caller set in a partition: the position for one level,
    the SKU and its first nodes for levels of one SKU, else a count and the first SKUs."""
    levels = sum(map(len, parts))
    skus: list[str] = []
    for sku in chain.from_iterable(part.sku for part in parts):
        # A SKU's levels travel together: comparing with the last one seen is enough mostly.
        if not skus or (sku != skus[-1] and sku not in skus):
            skus.append(sku)
            if len(skus) > LISTED:
                break
    if levels == 1:
        (part,) = (part for part in parts if len(part))
        detail: dict[str, object] = {
            "levels": 1,
            "on_hand": part.on_hand[0],
            "as_of": round(part.as_of[0], 3),
        }
        if part.damaged[0] or part.quality_hold[0]:
            detail["damaged"], detail["quality_hold"] = part.damaged[0], part.quality_hold[0]
        return AuditEntry(at, by, "stock.set", f"{part.sku[0]}@{part.node_id[0]}", detail_json(detail))
    if len(skus) == 1:
        nodes = list(dict.fromkeys(chain.from_iterable(part.node_id for part in parts)))
        return audit_entry(at, by, "stock.set", skus[0], levels=levels, nodes=nodes[:LISTED])
    return audit_entry(at, by, "stock.set", f"partition:{partition}", levels=levels, skus=skus[:LISTED])
