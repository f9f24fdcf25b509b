"""API keys in Redis: created, listed, rotated and revoked at runtime, seen by every gateway.

Layout (under the service's shared hash tag, so one script may write them all):
- `{<prefix>}:keys`          hash: key id -> the ApiKey record as JSON (the secret's hash, never the secret)
- `{<prefix>}:keys:names`    hash: key name -> key id (names are unique)
- `{<prefix>}:keys:version`  a counter every change bumps
- `{<prefix>}:audit`         the audit trail (reservations/shard/audit_trail.py): each change
                             and who made it, written in the same script as the change

Each gateway polls the counter (`follow`, every 0.25 s: one GET) and reads the keys again
when it moved, so a revoked key stops working everywhere within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

import redis.exceptions

from omnistock.gateway.usecases.access import (
    ApiKey,
    hash_secret,
    name_problem,
    new_key_id,
    new_secret,
    parse_scopes,
    token_of,
)
from omnistock.reservations.domain.errors import AlreadyExists, InvalidArgument, NotFound
from omnistock.reservations.shard.audit_trail import AUDIT_KEPT
from omnistock.reservations.shard.journal import RedisKeys
from omnistock.reservations.shard.redis_connect import AsyncClient

log = logging.getLogger(__name__)

FOLLOW_INTERVAL = 0.25
"""Seconds between two looks at the keys' version by each gateway."""
MAX_CHANNELS_PER_KEY = 100
MAX_ROTATION_GRACE = 7 * 86_400

_SAVE = """
local keys, names, version, audit = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local key_id, name, record, expected = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if expected == '' then
  if redis.call('HEXISTS', names, name) == 1 then return 'name taken' end
  redis.call('HSET', names, name, key_id)
elseif redis.call('HGET', keys, key_id) ~= expected then
  return 'changed'
end
redis.call('HSET', keys, key_id, record)
redis.call('INCR', version)
redis.call('XADD', audit, 'MAXLEN', '~', ARGV[5], '*',
  'at', ARGV[6], 'by', ARGV[7], 'action', ARGV[8], 'subject', name, 'detail', ARGV[9])
return 'ok'
"""
"""Store a key record: a new one (its name free) or a change of one (`expected`: the record
as read, so two rotations at once cannot both win), and audit it, in one atomic script."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class KeyStore:
    def __init__(
        self, redis_client: AsyncClient, prefix: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis_client
        self._clock = clock
        keys = RedisKeys(prefix)
        self._keys = keys.api_keys
        self._names = keys.api_key_names
        self._version = keys.api_key_version
        self._audit = keys.audit
        self._save = redis_client.register_script(_SAVE)
        self._changed = asyncio.Event()
        """Set by a change made here: this gateway's `follow` reads the keys at once."""
        self._listener: Callable[[dict[str, ApiKey]], None] | None = None

    async def keys(self) -> dict[str, ApiKey]:
        """Every key, revoked ones included, by key id."""
        records = await self._redis.hgetall(self._keys)
        return {_text(key_id): ApiKey.from_json(record) for key_id, record in records.items()}

    async def version(self) -> int:
        return int(await self._redis.get(self._version) or 0)

    async def find(self, name_or_id: str) -> ApiKey:
        key_id = await self._redis.hget(self._names, name_or_id)
        record = await self._redis.hget(self._keys, _text(key_id) if key_id else name_or_id)
        if record is None:
            raise NotFound("API key", name_or_id)
        return ApiKey.from_json(record)

    async def create(
        self,
        name: str,
        scopes: Iterable[str],
        channels: Iterable[str] = (),
        asserts_customers: bool = False,
        by: str = "local",
    ) -> tuple[ApiKey, str]:
        """A new key and its token (shown once: only its hash is kept)."""
        violations = []
        if (problem := name_problem(name)) is not None:
            violations.append(("name", problem))
        try:
            scope_set = parse_scopes(scopes)
            if not scope_set:
                violations.append(("scopes", "name at least one scope"))
        except ValueError as error:
            violations.append(("scopes", str(error)))
            scope_set = frozenset()
        channel_ids = sorted(set(channels))
        if len(channel_ids) > MAX_CHANNELS_PER_KEY:
            violations.append(("channels", f"at most {MAX_CHANNELS_PER_KEY} channels"))
        if violations:
            raise InvalidArgument(violations)
        secret, now = new_secret(), self._clock()
        key = ApiKey(
            key_id=new_key_id(),
            name=name,
            scopes=tuple(sorted(scope.value for scope in scope_set)),
            channels=tuple(channel_ids),
            asserts_customers=asserts_customers,
            secret_hash=hash_secret(secret),
            created_at=now,
            created_by=by,
        )
        detail = {
            "scopes": list(key.scopes),
            "channels": list(key.channels),
            "asserts_customers": asserts_customers,
        }
        outcome = await self._store(key, "", "key.created", by, detail)
        if outcome == "name taken":
            raise AlreadyExists("API key", name, f"an API key named {name!r} exists: rotate or revoke it")
        return key, token_of(key.key_id, secret)

    async def rotate(
        self, name_or_id: str, grace_seconds: float = 0.0, by: str = "local"
    ) -> tuple[ApiKey, str]:
        """A new secret for the key; the old one keeps working for `grace_seconds` (so the
        integration can be redeployed with the new one first)."""
        if not 0 <= grace_seconds <= MAX_ROTATION_GRACE:
            raise InvalidArgument([("grace_seconds", f"must be 0 to {MAX_ROTATION_GRACE}")])
        while True:
            key = await self.find(name_or_id)
            if key.revoked_at is not None:
                raise InvalidArgument([("name", f"API key {key.name!r} is revoked; create a new one")])
            secret = new_secret()
            rotated = key.rotated(hash_secret(secret), self._clock(), grace_seconds)
            outcome = await self._store(
                rotated, key.to_json(), "key.rotated", by, {"grace_seconds": grace_seconds}
            )
            if outcome == "ok":
                return rotated, token_of(key.key_id, secret)

    async def revoke(self, name_or_id: str, by: str = "local") -> ApiKey:
        """The key stops working at every gateway within a second. Revoking twice is a no-op."""
        while True:
            key = await self.find(name_or_id)
            if key.revoked_at is not None:
                return key
            revoked = replace(key, revoked_at=self._clock(), previous_hash="", previous_until=0.0)
            if await self._store(revoked, key.to_json(), "key.revoked", by, {}) == "ok":
                return revoked

    async def _store(
        self, key: ApiKey, expected: str, action: str, by: str, detail: Mapping[str, object]
    ) -> str:
        outcome = await self._save(
            keys=[self._keys, self._names, self._version, self._audit],
            args=[
                key.key_id,
                key.name,
                key.to_json(),
                expected,
                AUDIT_KEPT,
                int(self._clock() * 1000),
                by,
                action,
                json.dumps(detail, sort_keys=True),
            ],
        )
        outcome = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        if outcome == "ok":
            if (
                self._listener is not None
            ):  # this gateway knows at once; the others within `follow`'s interval
                self._listener(await self.keys())
            self._changed.set()
        return outcome

    async def follow(
        self, on_change: Callable[[dict[str, ApiKey]], None], interval: float = FOLLOW_INTERVAL
    ) -> None:
        """Hand every gateway's guard the keys again whenever they change (until cancelled).
        Reads them once at the start; a Redis that is down leaves the keys in hand as they were."""
        self._listener = on_change
        seen: int | None = None
        while True:
            self._changed.clear()
            try:
                version = await self.version()
                if version != seen:
                    on_change(await self.keys())
                    seen = version
            except (redis.exceptions.RedisError, OSError) as error:
                log.warning("API keys not refreshed: %s", error)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives as the event is set, and the loop would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._changed.wait()
