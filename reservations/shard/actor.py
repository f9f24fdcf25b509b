"""The shard actor: a thin wrapper that applies batches to a ShardState and journals them.

The class is plain; the gateway wraps it with `ray.remote` (max_restarts=-1), so a
shard that dies is restarted by Ray and rebuilds itself from Redis in __init__.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from omnistock.reservations import crash_points
from omnistock.reservations.domain.audit import PartRow, RecordRow, ShardAudit, audit_here, rows_of
from omnistock.reservations.domain.commands import BatchCommand, ReserveTogether
from omnistock.reservations.domain.model import Event, ReservationDecided
from omnistock.reservations.domain.partition import PENDING_SECONDS
from omnistock.reservations.domain.stats import HoldEndings, ShardStats, StockWatch
from omnistock.reservations.shard import wire
from omnistock.reservations.shard.batch_port import BatchPort
from omnistock.reservations.shard.journal import (
    Journal,
    RedisJournal,
    RedisKeys,
    journal_group,
)
from omnistock.reservations.shard.redis_connect import REDIS_ERRORS, connect_sync
from omnistock.reservations.shard.state import (
    CARRY_LEASE,
    Changes,
    ShardState,
    count_expired,
)
from omnistock.reservations.shard.wire import BatchReply

log = logging.getLogger(__name__)


def settle_heap() -> None:
    """Collect, then leave what the process holds now (modules, Ray's runtime, recovered
    state, open holds) out of every later collection. Objects frozen this way are still
    freed when no longer referenced; only the full collections, which scanned all of it and
    stalled every call in flight for tens of milliseconds, no longer see them. Run once
    after start, and by a shard every `ShardConfig.settle_seconds` it takes batches."""
    gc.collect()
    gc.freeze()


def _node_address() -> str:
    """The address of the Ray node this actor runs on (where Ray's own workers listen)."""
    import ray  # only inside an actor process; a Shard in process is given batch_host

    address: str = ray.util.get_node_ip_address()
    return address


JOURNAL_TIMEOUT = 5.0
"""Seconds a shard waits on Redis for one call before it takes Redis for gone: a batch holds
the shard's lock meanwhile, and the gateway's own deadline for a batch is 30 s."""


class JournalUnavailable(Exception):
    """The batch was not journaled; nothing of it was kept. Safe to retry."""


@dataclass(frozen=True, slots=True)
class ShardConfig:
    index: int
    """Position of this shard among all shards."""
    partitions: tuple[int, ...]
    """Partition numbers this shard owns."""
    redis_url: str
    prefix: str = "omnistock"
    """Prefix of every Redis key."""
    redis_replicas: int = 0
    """Replicas of the journal's master that must have an append before it counts (WAIT)."""
    redis_wait_ms: int = 1000
    """How long an append waits for those replicas before it fails (kept under JOURNAL_TIMEOUT)."""
    pending_seconds: float = PENDING_SECONDS
    """How long a Reserve attempt may stay undecided before its home aborts it."""
    carry_lease: float = CARRY_LEASE
    """Seconds a gateway has to carry a decision's steps before another one is handed them."""
    snapshot_every: int = 10_000
    """Journal entries of a partition between two snapshots."""
    snapshot_levels: int = 20_000
    """Counts loaded into a partition since its snapshot from which a load earns a snapshot of
    its own, once they are also as many as the partition's positions. A reload then does not
    leave its entries to pile up in Redis and be replayed on every restart; a growing
    catalog is snapshotted at doubling sizes."""
    tick_seconds: float = 0.1
    """The longest the timer sleeps; it wakes sooner when a reservation is due to expire."""
    batch_host: str = ""
    """Address the batch port listens on (reservations/shard/batch_port.py); empty: this Ray
    node's address, where the gateways reach it."""
    settle_seconds: float = 1.0
    """How often, at most, a batch first settles the heap (settle_heap): open holds pile up
    by the hundred thousand, and a full collection that scanned them all would stall every
    batch. Each settle scans what came since the last one, so settling often makes the same
    work into short pauses: at peak rate 2-7 ms a second against 25-48 ms every 10 s."""


class Shard:
    """Owns some partitions; every batch is applied then journaled before it replies."""

    def __init__(self, config: ShardConfig, journal: Journal | None = None) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._journal: Journal = journal or RedisJournal(
            connect_sync(
                config.redis_url,
                socket_timeout=JOURNAL_TIMEOUT,
                socket_connect_timeout=JOURNAL_TIMEOUT,
                # Never sent twice: an append whose reply was lost may have been applied, and a
                # second copy would replay twice. A failed call drops the shard's state, which
                # is reloaded from Redis (with or without the append), and the gateway's caller
                # retries with the same ids.
                retries=0,
            ),
            RedisKeys(config.prefix),
            config.snapshot_every,
            config.snapshot_levels,
            config.redis_replicas,
            config.redis_wait_ms,
            owner=str(config.index),
        )
        # Redis Cluster: only a journal group's writes are atomic together (ShardState).
        clustered = isinstance(self._journal, RedisJournal) and self._journal.clustered
        self._write_unit: Callable[[int], int] = journal_group if clustered else _one_unit
        self._looked_up: dict[int, float] = {}
        """Partitions this shard was sent but does not own -> when it last looked whether they
        are now its own (a move whose mover stopped before handing them over)."""
        self._state: ShardState | None = None
        self._recovery_seconds = 0.0
        self._expired_unreported = 0
        # For stats(): who this actor process is, and what it saw since the last call.
        self._incarnation = uuid.uuid4().hex
        self._watch: StockWatch | None = None
        self._endings = HoldEndings()
        self._journal_failures = 0
        self._recoveries: list[float] = []
        self._recover_after = 0.0
        """The timer leaves a shard without state until then (time.monotonic)."""
        self._recover()
        settle_heap()
        self._settled = time.monotonic()
        self._settling = threading.Lock()
        self._port: BatchPort | None = None
        self._stopping = threading.Event()
        self._timer = threading.Thread(target=self._tick_loop, name="expiry", daemon=True)
        self._timer.start()

    # --- called by the gateway ---

    def batch_endpoint(self) -> tuple[str, int, bytes]:
        """(host, port, token) of this process's batch port, opened at the first ask: the
        gateway sends its batches there (apply_packed), not through Ray."""
        if self._port is None:
            self._port = BatchPort(self.apply_packed, self._config.batch_host or _node_address())
        return self._port.endpoint

    def apply_packed(self, batch: bytes) -> bytes:
        """`apply` with the batch and reply packed by reservations.wire (what the gateway sends)."""
        received = time.perf_counter()
        if time.monotonic() - self._settled >= self._config.settle_seconds and self._settling.acquire(
            blocking=False
        ):
            # Outside the lock, where the collector may run at any allocation anyway; it scans
            # only what came since the last time. One thread settles; the others go on.
            try:
                settle_heap()
                self._settled = time.monotonic()
            finally:
                self._settling.release()
        # WireError for bytes that are not a list of commands: nothing was applied.
        return wire.pack(self.apply(wire.unpack_commands(batch), received))

    def apply(self, commands: list[BatchCommand], received: float | None = None) -> BatchReply:
        """`received`: the perf_counter() at which the call arrived (by default, now)."""
        received = time.perf_counter() if received is None else received
        with self._lock:
            state = self._healthy_state()
            wanted = {command.partition for command in commands}
            for command in commands:
                if type(command) is ReserveTogether:
                    wanted.update(command.partitions)
            if not wanted <= state.partitions.keys():
                self._adopt_if_placed(wanted - state.partitions.keys())
            since = state.version
            started = time.perf_counter()
            outcome = state.apply_batch(commands, time.time())
            applied = time.perf_counter()
            self._commit(outcome.events)
            if crash_points.active and _decides(outcome.events):
                crash_points.crash_point("shard.after_journal")
            self._expired_unreported += outcome.expired
            expired, self._expired_unreported = self._expired_unreported, 0
            journal_seconds = time.perf_counter() - applied if outcome.events else 0.0
            changed = state.changes_since(state.epoch, since)
            if self._watch is not None:  # loaded counts hold nothing and are never sold out
                self._watch.update(changed.rows)
            return BatchReply(
                outcome.results,
                applied - started,
                journal_seconds,
                expired,
                (state.epoch, state.version),
                since,
                changed.rows,
                changed.loaded,
                time.perf_counter() - received,
                outcome.handoffs,
            )

    def changes_since(self, epoch: str, version: int) -> Changes:
        """Positions changed after `version` of `epoch` (everything after a restart)."""
        with self._lock:
            return self._healthy_state().changes_since(epoch, version)

    def changes_since_packed(self, epoch: str, version: int) -> bytes:
        """`changes_since` packed by reservations.wire (what the gateway's view calls)."""
        return wire.pack(self.changes_since(epoch, version))

    def check(self) -> list[str]:
        """Conservation check of every partition (reserved and committed equal the open holds)."""
        with self._lock:
            return self._healthy_state().check()

    def audit(self) -> ShardAudit:
        """This shard's share of the check that every reservation's parts agree with their home
        (reservations/domain/audit.py): its own reservations compared here, the rows of those
        that span shards handed on. Read a partition at a time, so that batches go on between
        them (a change caught halfway looks like a disagreement once: the audit asks twice)."""
        with self._lock:
            owned = list(self._healthy_state().partitions)
        records: list[RecordRow] = []
        parts: list[PartRow] = []
        for number in owned:
            with self._lock:
                partition = self._healthy_state().partitions.get(number)
                if partition is None:  # moved meanwhile: its next owner lists it
                    continue
                held, placed = rows_of(partition)
            records += held
            parts += placed
        return audit_here(records, parts, set(owned))

    def ping(self) -> int:
        return self._config.index

    def config(self) -> ShardConfig:
        """What this shard was started with (a new shard of a change of the count copies it)."""
        return self._config

    def reload(self) -> None:
        """Drop every partition and load again those the stored placement gives this shard."""
        with self._lock:
            self._state = None
            self._recover()

    def owned(self) -> list[int]:
        """The partitions this shard holds now."""
        with self._lock:
            return sorted(self._healthy_state().partitions)

    def release(self, number: int) -> bool:
        """Give a partition up to be moved: snapshot it and give up its ownership in Redis in one
        call, then drop it; from now on its commands are answered WrongShard. False when this
        shard did not hold it (already released: a repeated call is harmless)."""
        with self._lock:
            state = self._healthy_state()
            partition = state.partitions.get(number)
            if partition is None:
                return False
            crash_points.crash_point("shard.before_release")
            try:
                self._journal.release(partition)
            except REDIS_ERRORS as error:
                raise JournalUnavailable(f"partition {number} could not be released: {error}") from error
            crash_points.crash_point("shard.after_release")
            state.release(number)
            self._watch = None
            log.info("shard %d released partition %d", self._config.index, number)
            return True

    def adopt(self, number: int) -> bool:
        """Take a partition over: claim it in Redis, then load it (its snapshot and anything
        journaled after). False when this shard held it already."""
        with self._lock:
            state = self._healthy_state()
            if number in state.partitions:
                return False
            crash_points.crash_point("shard.before_adopt")
            self._take(state, [number])
            return True

    def close(self) -> None:
        """Stop the expiry timer and the batch port (an actor process just ends; this is for a
        Shard in process)."""
        self._stopping.set()
        self._timer.join()
        if self._port is not None:
            self._port.close()

    def stats(self) -> ShardStats:
        """Gauges now, and what happened since the previous call (polled by the gateway)."""
        with self._lock:
            state = self._healthy_state()
            if self._watch is None:  # once per recovery: every position, then only changes
                self._watch = StockWatch(state.object_rows())
            expired, self._expired_unreported = self._expired_unreported, 0
            ages, lags = self._endings.take()
            failures, self._journal_failures = self._journal_failures, 0
            recoveries, self._recoveries = self._recoveries, []
            return ShardStats(
                self._incarnation,
                self._watch.units_held,
                self._watch.units_committed,
                self._watch.sold_out,
                self._watch.take_stockouts(),
                expired,
                ages,
                lags,
                failures,
                recoveries,
            )

    # --- internals ---

    def _healthy_state(self) -> ShardState:
        if self._state is None:
            self._recover()
        assert self._state is not None
        return self._state

    def _take(self, state: ShardState, numbers: list[int]) -> None:
        """Claim the partitions, then load them into the state (claimed first: whatever their
        former owner wrote before the claim is loaded, anything after it is refused)."""
        try:
            self._journal.claim(numbers)
            partitions = [self._journal.load(n) for n in numbers]
        except REDIS_ERRORS as error:
            raise JournalUnavailable(f"partitions {numbers} could not be taken over: {error}") from error
        for partition in partitions:
            state.adopt(partition)
            self._looked_up.pop(partition.number, None)
        self._watch = None
        log.info("shard %d took over partitions %s", self._config.index, numbers)

    def _adopt_if_placed(self, numbers: set[int]) -> None:
        """Of partitions sent here that this shard does not hold, take over those the stored
        placement gives it (a mover that stopped between the placement and the handover);
        each looked up at most every LOOKUP_PAUSE seconds."""
        now = time.monotonic()
        due = [n for n in numbers if now - self._looked_up.get(n, 0.0) >= LOOKUP_PAUSE]
        if not due:
            return
        for number in due:
            self._looked_up[number] = now
        try:
            placement = self._journal.placement()
        except REDIS_ERRORS:
            return  # the commands are answered WrongShard; the gateway retries
        if placement is None:
            return
        index = self._config.index
        mine = [
            n
            for n in due
            if n < placement.partitions and placement.shard_of(n) == index and not placement.is_moving(n)
        ]
        if mine and self._state is not None:
            self._take(self._state, mine)

    def _placed_here(self) -> tuple[int, ...]:
        """The partitions the stored placement gives this shard (its config's before any is stored)."""
        placement = self._journal.placement()
        if placement is None:
            return self._config.partitions
        return placement.partitions_of(self._config.index)

    def _recover(self) -> None:
        """Rebuild every owned partition from Redis; raises JournalUnavailable if it cannot."""
        started = time.perf_counter()
        try:
            numbers = self._placed_here()
            self._journal.claim(numbers)
            partitions = [self._journal.load(n) for n in numbers]
        except REDIS_ERRORS as error:
            self._state = None
            message = f"shard {self._config.index} cannot read its journal: {error}"
            raise JournalUnavailable(message) from error
        crash_points.crash_point("shard.recovery")
        config = self._config
        self._state = ShardState(
            partitions, uuid.uuid4().hex, config.pending_seconds, config.carry_lease, self._write_unit
        )
        self._watch = None
        self._recovery_seconds = time.perf_counter() - started
        self._recoveries.append(self._recovery_seconds)
        log.info("shard %d recovered in %.3fs", self._config.index, self._recovery_seconds)

    def _commit(self, events: dict[int, list[Event]]) -> None:
        """Journal the events; on failure drop the in-memory state so nothing unjournaled survives."""
        if not events:
            return
        if crash_points.active and _decides(events):
            crash_points.crash_point("shard.before_journal")
        try:
            self._journal.append(events)
        except REDIS_ERRORS as error:
            self._state = None
            self._journal_failures += 1
            try:
                self._recover()
            except JournalUnavailable:
                log.warning("shard %d: journal down, will recover on next call", self._config.index)
            raise JournalUnavailable(f"journal write failed: {error}") from error
        assert self._state is not None
        partitions = self._state.partitions
        self._endings.note(events, {n: partitions[n].parts for n in events}, time.time())
        for number in self._journal.due_snapshots({n: partitions[n] for n in events}):
            try:
                self._journal.snapshot(self._state.partitions[number])
            except REDIS_ERRORS as error:  # the entries are safe; retried at its next append
                log.warning("snapshot of partition %d failed: %s", number, error)

    def _tick_loop(self) -> None:
        """The homes' timer: wakes when a reservation is due (or every tick_seconds), so a
        hold expires within milliseconds of its time even when no batch arrives."""
        while not self._stopping.wait(self._next_wait()):
            if self._state is None and time.monotonic() < self._recover_after:
                continue  # Redis away: a batch's call retries at once, the timer now and then
            with self._lock:
                try:
                    state = self._healthy_state()
                    since = state.version
                    events = state.expire_due(time.time())
                    self._commit(events)
                    self._expired_unreported += count_expired(events)
                    if events and self._watch is not None:
                        self._watch.update(state.changes_since(state.epoch, since).rows)
                except JournalUnavailable as error:
                    if time.monotonic() >= self._recover_after + 10 * RECOVER_PAUSE:
                        log.warning("expiry tick failed: %s", error)  # once an outage, not every tick
                    self._recover_after = time.monotonic() + RECOVER_PAUSE

    def _next_wait(self) -> float:
        due = self._state.next_due() if self._state is not None else None
        wait = self._config.tick_seconds
        if due is not None:
            wait = min(wait, max(MIN_TICK, due - time.time()))
        return wait


LOOKUP_PAUSE = 0.2
"""Seconds between two looks at the placement for a partition this shard was sent and lacks."""
RECOVER_PAUSE = 0.5
"""Seconds the timer waits after a failed reload before it tries again."""
MIN_TICK = 0.002
"""The timer's shortest sleep: a deadline it had to put off (a lines' change still being
carried) does not make it spin."""


def _one_unit(partition: int) -> int:
    """One Redis: every partition of a batch is journaled in one atomic call."""
    return 0


def _decides(events: dict[int, list[Event]]) -> bool:
    """Whether a batch's events hold a decision of a home (for the crash points around it)."""
    return any(isinstance(event, ReservationDecided) for changes in events.values() for event in changes)
