"""Moving a Redis written by an omnistock before journal groups to today's key names.

Earlier versions kept every key under `<prefix>:` with no hash tags. On a single Redis the
names are all that changed, so the first start of this version renames them (RENAME keeps a
stream's entries, ids and consumer groups); the old single events stream becomes journal
group 0's, so a reader of the feed still finds every event it holds.
"""

from __future__ import annotations

import logging

import redis.exceptions

from omnistock.reservations.shard.journal import RedisKeys
from omnistock.reservations.shard.redis_connect import AsyncClient

log = logging.getLogger(__name__)


def legacy_names(keys: RedisKeys, partitions: int) -> list[tuple[str, str]]:
    """(old name, new name) of every key an earlier version wrote, in the order they are
    renamed: the partition count last, since migrate_key_layout finds an earlier layout by
    it, so a start cut midway leaves it behind and the next start renames the rest."""
    old = keys.prefix
    names = [
        (f"{old}:service", keys.service),
        (f"{old}:network", keys.network),
        (f"{old}:network:version", keys.network_version),
        (f"{old}:keys", keys.api_keys),
        (f"{old}:keys:names", keys.api_key_names),
        (f"{old}:keys:version", keys.api_key_version),
        (f"{old}:audit", keys.audit),
        (f"{old}:events", keys.events(0)),
    ]
    for number in range(partitions):
        names.append((f"{old}:p:{number}:log", keys.log(number)))
        names.append((f"{old}:p:{number}:snap", keys.snapshot(number)))
    names.append((f"{old}:partitions", keys.partitions))
    return names


async def migrate_key_layout(client: AsyncClient, keys: RedisKeys) -> int:
    """Rename an earlier version's keys, if this Redis has them and none of today's; returns
    how many were renamed. A start cut midway renames the rest at the next start."""
    raw = await client.get(f"{keys.prefix}:partitions")
    if raw is None:
        return 0
    partitions = int(raw)
    renamed = 0
    for old, new in legacy_names(keys, partitions):
        try:
            renamed += bool(await client.renamenx(old, new))
        except redis.exceptions.ResponseError as error:
            if "no such key" not in str(error).lower():
                raise
    log.warning("renamed %d keys of an earlier omnistock to journal groups (prefix %r)", renamed, keys.prefix)
    return renamed
