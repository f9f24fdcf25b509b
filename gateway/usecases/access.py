"""Who may do what: API keys, their scopes and channels, and the caller a call is made by.

Pure rules, no Redis or gRPC: the key store (gateway/grpc/key_store.py) keeps `ApiKey`
records, the guard (gateway/grpc/guard.py) turns a call's bearer token into a `Caller` and
checks the scope its method needs, and the servicers check a caller's channels and
customer id where a request names them.

A key is `osk_<key id>_<secret>`. Only the SHA-256 of the secret is stored: the secret is
32 random bytes, so a plain hash is as strong as a slow one here (slow hashes protect
passwords people chose, which can be guessed), and a lookup costs microseconds per call.

Customer ids: a key is either trusted to assert the customer a call acts for (an order
service that signed the shopper in itself: the usual server-to-server integration), or it
may name no customer at all. A JWT from the retailer's identity provider carries the
customer in its signed subject, and a call with it may act for that customer only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum

KEY_PREFIX = "osk_"
KEY_ID_BYTES = 6
SECRET_BYTES = 32
MAX_TOKEN_LENGTH = 256
"""A bearer token longer than this is refused before anything else is done with it."""
KEY_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
"""A key's name: what it is for, e.g. `web-storefront` (shown in audit records and listings)."""


class Scope(StrEnum):
    AVAILABILITY_READ = "availability:read"
    """Availability, pickup search, the live feed; the network's nodes and channels."""
    RESERVATIONS_READ = "reservations:read"
    RESERVATIONS_WRITE = "reservations:write"
    """Reserve and every later step of a reservation (implies reading reservations)."""
    INVENTORY_WRITE = "inventory:write"
    """Stock on hand, adjustments, loads, expected supply."""
    NETWORK_READ = "network:read"
    NETWORK_ADMIN = "network:admin"
    """Nodes, groups, channels, purchase limits and API keys (implies reading the network)."""
    EVENTS_READ = "events:read"
    """The reservation events and the audit trail."""
    OPS_READ = "ops:read"
    """The conservation check, the shards and the service's own statistics."""
    OPS_ADMIN = "ops:admin"
    """Changing the service itself: the number of shards (implies ops:read)."""


IMPLIED: Mapping[Scope, frozenset[Scope]] = {
    Scope.RESERVATIONS_WRITE: frozenset({Scope.RESERVATIONS_READ}),
    Scope.NETWORK_ADMIN: frozenset({Scope.NETWORK_READ}),
    Scope.AVAILABILITY_READ: frozenset({Scope.NETWORK_READ}),
    Scope.OPS_ADMIN: frozenset({Scope.OPS_READ}),
}
"""Write implies read (as Shopify's write_inventory implies read_inventory); reading
availability implies reading the network it is answered over."""

ALL_SCOPES = frozenset(Scope)


def expand(scopes: Iterable[Scope]) -> frozenset[Scope]:
    """The scopes with everything they imply."""
    held = set(scopes)
    for scope in list(held):
        held |= IMPLIED.get(scope, frozenset())
    return frozenset(held)


def parse_scopes(names: Iterable[str]) -> frozenset[Scope]:
    """Scopes by name; ValueError naming every unknown one and listing the known."""
    names = [name.strip() for name in names if name.strip()]
    unknown = [name for name in names if name not in Scope._value2member_map_]
    if unknown:
        known = ", ".join(scope.value for scope in Scope)
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {known}")
    return frozenset(Scope(name) for name in names)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes a call: the key (or token) it showed, what that may do and through which channels."""

    label: str
    """Recorded with every change it makes: `key:<name>`, `jwt:<subject>` or `local` (no auth)."""
    scopes: frozenset[Scope]
    """With what they imply (`expand`)."""
    channels: frozenset[str] = frozenset()
    """The channels it sees and holds through; empty for every channel."""
    asserts_customers: bool = False
    """Trusted to name the customer a call acts for."""
    customer_id: str = ""
    """The one customer it acts for (a JWT's subject); empty when none is fixed."""
    rate_key: str = ""
    """What its rate limit is counted by: the key id, or the token's issuer and subject."""

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes

    def allows_channel(self, channel_id: str) -> bool:
        return not self.channels or channel_id in self.channels

    def customer_problem(self, customer_id: str) -> str | None:
        """Why this caller may not act for `customer_id` (empty: no customer), or None."""
        if not customer_id or self.asserts_customers:
            return None
        if self.customer_id:
            if customer_id == self.customer_id:
                return None
            return "customer_id differs from the customer the token was issued for"
        return "this key is not trusted to name customers (create it with --asserts-customers)"


LOCAL_CALLER = Caller(label="local", scopes=ALL_SCOPES, asserts_customers=True, rate_key="local")
"""Every call when auth is off (a developer's machine on loopback)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored: never its secret, only the secret's hash."""

    key_id: str
    name: str
    scopes: tuple[str, ...]
    channels: tuple[str, ...] = ()
    asserts_customers: bool = False
    secret_hash: str = ""
    created_at: float = 0.0
    created_by: str = ""
    revoked_at: float | None = None
    previous_hash: str = ""
    """After a rotation, the secret before it, valid until `previous_until`."""
    previous_until: float = 0.0
    rotated_at: float | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ApiKey:
        data = json.loads(text)
        data["scopes"] = tuple(data["scopes"])
        data["channels"] = tuple(data.get("channels", ()))
        return cls(**data)

    def caller(self) -> Caller:
        return Caller(
            label=f"key:{self.name}",
            scopes=expand(parse_scopes(self.scopes)),
            channels=frozenset(self.channels),
            asserts_customers=self.asserts_customers,
            rate_key=self.key_id,
        )

    def valid_until(self, secret: str, now: float) -> float | None:
        """Until when `secret` opens this key (forever for its current secret, the end of the
        grace for the one before a rotation); None if it does not (or the key is revoked)."""
        if self.revoked_at is not None:
            return None
        digest = hash_secret(secret)
        if hmac.compare_digest(digest, self.secret_hash):
            return float("inf")
        if (
            self.previous_hash
            and now < self.previous_until
            and hmac.compare_digest(digest, self.previous_hash)
        ):
            return self.previous_until
        return None

    def rotated(self, secret_hash: str, now: float, grace_seconds: float) -> ApiKey:
        """This key with a new secret; the old one still works for `grace_seconds`."""
        return replace(
            self,
            secret_hash=secret_hash,
            previous_hash=self.secret_hash if grace_seconds > 0 else "",
            previous_until=now + grace_seconds if grace_seconds > 0 else 0.0,
            rotated_at=now,
        )


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key_id() -> str:
    return secrets.token_hex(KEY_ID_BYTES)


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def token_of(key_id: str, secret: str) -> str:
    """What the caller sends as `authorization: Bearer <token>`."""
    return f"{KEY_PREFIX}{key_id}_{secret}"


def parse_token(token: str) -> tuple[str, str] | None:
    """(key id, secret) of an API key token; None for anything else (a JWT, garbage)."""
    if not token.startswith(KEY_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        return None
    key_id, _, secret = token[len(KEY_PREFIX) :].partition("_")
    if len(key_id) != KEY_ID_BYTES * 2 or not secret:
        return None
    return key_id, secret


def name_problem(name: str) -> str | None:
    if KEY_NAME.fullmatch(name):
        return None
    return "must be 1-63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
