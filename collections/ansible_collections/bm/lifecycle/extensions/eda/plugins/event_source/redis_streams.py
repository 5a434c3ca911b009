# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bm.lifecycle.redis_streams: the lifecycle event bus (Redis Streams, consumer group) as an EDA event source."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

try:
    from ansible_collections.bm.lifecycle.plugins.module_utils import _envelope, _redis_events
except ImportError:  # loaded by path from the collection: make the collection importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[7]))
    from ansible_collections.bm.lifecycle.plugins.module_utils import _envelope, _redis_events

DOCUMENTATION = r"""
---
short_description: Read lifecycle events from Redis Streams with a consumer group, in batches.
description:
  - Reads the streams C(bm:events:<event_type>) of O(event_types) with the consumer group O(group)
    (created from the start of each stream if missing) and hands the rulebook one event per batch of entries
    of one type. At-least-once - an entry stays pending until the stage that handled it acknowledges it with
    M(bm.lifecycle.event_publish); the source itself never acknowledges a handed-over entry.
  - Event shape - C({event_type, stream, group, consumer, batch_size, entries}); each of C(entries) is
    C({stream, id, group, delivery_count, envelope}) where C(envelope) is the validated v1 envelope.
  - Batching - the first entry is taken with a blocking read; what else is already waiting on that stream is added
    (up to O(batch_size)); while entries keep arriving the batch waits at most O(batch_wait_ms) to fill. A lone event
    goes at once. The window is per event type - with O(max_batches_in_flight) (default 1) the source reads nothing new
    of a type until the stage acknowledged that type's previous batch (or O(claim_idle_ms) passed); a burst that
    arrives during a playbook run is the next batch. Other types go on meanwhile, so with the ruleset's
    parallel execution strategy every stage runs beside the others, at most O(max_batches_in_flight) batches each.
  - On start, entries this consumer had taken but not acknowledged (a killed rulebook) are handed over again first.
    Entries of any consumer idle longer than O(claim_idle_ms) are claimed again (C(XAUTOCLAIM)), so a killed stage
    is retried. An entry delivered more than O(max_deliveries) times, or one that is not a valid v1 envelope of the
    stream's type, is moved to C(bm:events:dead_letter) with the reason and acknowledged, in one transaction.
  - Redis down - logs it and reconnects with bounded exponential backoff; the source never raises after its arguments
    were accepted (a source that raises stops ansible-rulebook), never returns, and closes its connection on cancel.
options:
  redis_url:
    description: Redis URL; default the environment variable BM_REDIS_URL, then redis://127.0.0.1:6379/0.
    type: str
  redis_password:
    description: Redis password; default the environment variable BM_REDIS_PASSWORD.
    type: str
  event_types:
    description: Event types to consume (streams bm:events:<type>). List only types that have a rule whose stage
      acknowledges them; an entry nobody acknowledges is redelivered and finally dead-lettered.
    type: list
    required: true
  group:
    description: Consumer group.
    type: str
    default: bm-lifecycle
  consumer:
    description: Consumer name; keep it stable across restarts of one service (default the host name).
    type: str
  batch_size:
    description: Most entries per rulebook event; 1 turns batching off.
    type: int
    default: 50
  batch_wait_ms:
    description: Longest wait to fill a batch while entries keep arriving.
    type: int
    default: 250
  block_ms:
    description: Longest blocking read before the source looks for idle entries again.
    type: int
    default: 1000
  claim_idle_ms:
    description: Entries pending longer than this are claimed again. Must exceed the longest stage run.
    type: int
    default: 300000
  claim_interval_ms:
    description: How often to look for idle entries.
    type: int
    default: 5000
  max_deliveries:
    description: An entry delivered more often than this goes to the dead-letter stream.
    type: int
    default: 5
  max_batches_in_flight:
    description: Batches of one event type handed over and not yet acknowledged before the source reads on for that
      type; 0 means no limit (only the rulebook's own queue holds the source back).
    type: int
    default: 1
  backoff_max_s:
    description: Longest wait between reconnection attempts.
    type: float
    default: 30
"""

EXAMPLES = r"""
- name: lifecycle
  hosts: localhost
  sources:
    - bm.lifecycle.redis_streams:
        redis_url: redis://127.0.0.1:16379/0
        event_types: [dhcp_lease]
        batch_size: 50
        batch_wait_ms: 250
  rules:
    - name: dhcp_lease -> discovery
      condition: event.event_type == "dhcp_lease"
      action:
        run_playbook:
          name: bm.lifecycle.discovery
          extra_vars:
            bm_batch: "{{ event }}"
"""

LOG = logging.getLogger("bm.lifecycle.redis_streams")
POLL_S = 0.05

Entry = tuple[str, dict[bytes, bytes] | None]  # (id, fields or None when the entry was deleted)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class Config:
    """The source's arguments, validated up front (``ValueError`` names the bad one)."""

    INTS: ClassVar[dict[str, tuple[int, int, int]]] = {
        "batch_size": (50, 1, 10_000),
        "batch_wait_ms": (250, 0, 60_000),
        "block_ms": (1000, 10, 60_000),
        "claim_idle_ms": (300_000, 100, 86_400_000),
        "claim_interval_ms": (5000, 50, 3_600_000),
        "max_deliveries": (5, 1, 1000),
        "max_batches_in_flight": (1, 0, 10_000),
    }

    def __init__(self, args: dict[str, Any]) -> None:
        known = {"redis_url", "redis_password", "event_types", "group", "consumer", "backoff_max_s", *self.INTS}
        unknown = sorted(k for k in args if k not in known and not k.startswith("eda_"))
        if unknown:
            raise ValueError(f"redis_streams: unknown argument(s) {', '.join(unknown)}")
        self.redis_url = str(args.get("redis_url") or os.environ.get("BM_REDIS_URL") or "redis://127.0.0.1:6379/0")
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_streams: redis_url must start with redis://, rediss:// or unix://")
        self.redis_password = args.get("redis_password") or os.environ.get("BM_REDIS_PASSWORD") or None
        types = args.get("event_types")
        if isinstance(types, str):
            types = [types]
        if not isinstance(types, list) or not types:
            raise ValueError("redis_streams: event_types must be a non-empty list of event types")
        self.streams = []
        for t in types:
            try:
                stream = _envelope.stream_for(str(t))
            except ValueError as exc:
                raise ValueError(f"redis_streams: {exc}") from None
            if stream == _envelope.DEAD_LETTER_STREAM:
                raise ValueError("redis_streams: the dead-letter stream is not an event type to consume")
            self.streams.append(stream)
        if len(set(self.streams)) != len(self.streams):
            raise ValueError("redis_streams: event_types lists a type twice")
        self.group = str(args.get("group") or _redis_events.DEFAULT_GROUP)
        self.consumer = str(args.get("consumer") or socket.gethostname())
        for name, (default, low, high) in self.INTS.items():
            value = args.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"redis_streams: {name} must be an integer from {low} to {high}, got {value!r}")
            setattr(self, name, value)
        backoff = args.get("backoff_max_s", 30)
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not 0.1 <= backoff <= 600:
            raise ValueError(f"redis_streams: backoff_max_s must be a number from 0.1 to 600, got {backoff!r}")
        self.backoff_max_s = float(backoff)
        self.batch_size: int
        self.batch_wait_ms: int
        self.block_ms: int
        self.claim_idle_ms: int
        self.claim_interval_ms: int
        self.max_deliveries: int
        self.max_batches_in_flight: int


class Source:
    """One consumer of the group; see DOCUMENTATION for the behaviour."""

    def __init__(self, cfg: Config, queue: Any) -> None:
        self.cfg = cfg
        self.queue = queue
        self.redis: Any = None
        self.backlog: dict[str, list[tuple[str, dict[bytes, bytes] | None, int]]] = {}
        self.history: dict[str, str] = {}
        self.inflight: list[tuple[str, set[str], float]] = []
        self.next_claim = 0.0
        self.handed_over = 0
        self.started = False

    # --- connection -------------------------------------------------------------------------------------------
    async def connect(self) -> None:
        import redis.asyncio as aioredis  # noqa: PLC0415  (the rulebook's venv has it; imported where used)

        self.redis = aioredis.from_url(
            self.cfg.redis_url,
            password=self.cfg.redis_password,
            socket_connect_timeout=5,
            socket_timeout=self.cfg.block_ms / 1000 + 10,
            decode_responses=False,
        )
        await self.redis.ping()
        for stream in self.cfg.streams:
            try:
                await self.redis.xgroup_create(stream, self.cfg.group, id="0", mkstream=True)
                LOG.info("created consumer group %s on %s", self.cfg.group, stream)
            except Exception as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        if not self.started:
            # Entries this consumer took before the process started (a killed rulebook) are handed over first, read
            # from the consumer's own history. Not after a reconnect: those entries are in flight in this process.
            self.history = dict.fromkeys(self.cfg.streams, "0")
            self.started = True
        LOG.info(
            "consuming %s as %s/%s (batch_size %d, batch_wait_ms %d)",
            ", ".join(self.cfg.streams),
            self.cfg.group,
            self.cfg.consumer,
            self.cfg.batch_size,
            self.cfg.batch_wait_ms,
        )

    async def close(self) -> None:
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
        self.redis = None

    # --- main loop --------------------------------------------------------------------------------------------
    async def run(self) -> None:
        delay = 0.5
        try:
            while True:
                try:
                    await self.connect()
                    delay = 0.5
                    while True:
                        await self.step()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    wait = delay * random.uniform(0.5, 1.0)  # noqa: S311  (jitter, not cryptography)
                    LOG.warning("redis_streams: %s: %s; reconnecting in %.1f s", type(exc).__name__, exc, wait)
                    await self.close()
                    await asyncio.sleep(wait)
                    delay = min(delay * 2, self.cfg.backoff_max_s)
        finally:
            await self.close()

    async def step(self) -> None:
        """Claim idle entries when due, then hand over at most one batch of a type whose window is open."""
        now = time.monotonic()
        if now >= self.next_claim:
            self.next_claim = now + self.cfg.claim_interval_ms / 1000
            await self.autoclaim()
        streams = await self.open_streams()
        if not streams:
            await asyncio.sleep(POLL_S)
            return
        stream, entries = await self.next_batch(streams)
        if not entries:
            return
        good = await self.screen(stream, entries)
        if good:
            await self.hand_over(stream, good)

    async def open_streams(self) -> list[str]:
        """The streams with fewer than max_batches_in_flight handed-over batches still waiting for their ack."""
        limit = self.cfg.max_batches_in_flight
        if not limit:
            return self.cfg.streams
        if any(self.in_flight(s) >= limit for s in self.cfg.streams):
            await self.refresh_inflight()
        return [s for s in self.cfg.streams if self.in_flight(s) < limit]

    def in_flight(self, stream: str) -> int:
        return sum(1 for s, _ids, _at in self.inflight if s == stream)

    async def refresh_inflight(self) -> None:
        still = []
        horizon = time.monotonic() - self.cfg.claim_idle_ms / 1000
        for stream, ids, at in self.inflight:
            if at < horizon:
                continue  # ours no longer: idle entries get claimed again
            rows = await self.redis.xpending_range(
                stream, self.cfg.group, min=min(ids, key=_id_key), max=max(ids, key=_id_key), count=len(ids) + 1000,
                consumername=self.cfg.consumer,
            )  # fmt: skip
            pending = {_text(r["message_id"]) for r in rows} & ids
            if pending:
                still.append((stream, pending, at))
        self.inflight = still

    # --- reading ----------------------------------------------------------------------------------------------
    async def next_batch(self, streams: list[str]) -> tuple[str, list[tuple[str, dict[bytes, bytes] | None, int]]]:
        """One batch of one of ``streams``: own history, then claimed entries, then new ones."""
        size = self.cfg.batch_size
        for stream in streams:  # own history (after a restart), then claimed entries
            if self.history.get(stream) and len(self.backlog.get(stream, [])) < size:
                await self.read_history(stream)
            if self.backlog.get(stream):
                batch, self.backlog[stream] = self.backlog[stream][:size], self.backlog[stream][size:]
                return stream, batch
        # While a type's window is shut, wake up often enough to see its acknowledgement.
        block_ms = self.cfg.block_ms if len(streams) == len(self.cfg.streams) else min(self.cfg.block_ms, 200)
        reply = await self.redis.xreadgroup(
            self.cfg.group, self.cfg.consumer, dict.fromkeys(streams, ">"), count=1, block=block_ms
        )
        if not reply:
            return "", []
        for raw_stream, rows in reply:
            self.backlog.setdefault(_text(raw_stream), []).extend((_text(i), f, 1) for i, f in rows)
        stream = next(s for s in streams if self.backlog.get(s))
        batch = self.backlog.pop(stream)
        if size > 1:
            deadline = time.monotonic() + self.cfg.batch_wait_ms / 1000
            more = await self.read_new(stream, size - len(batch), block_ms=None)
            batch += more
            # Lone event: nothing else was waiting, go now. Burst: wait a little for the rest of it.
            while more and len(batch) < size:
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms <= 0:
                    break
                more = await self.read_new(stream, size - len(batch), block_ms=left_ms)
                batch += more
        return stream, batch

    async def read_new(self, stream: str, count: int, block_ms: int | None) -> list[tuple[str, Any, int]]:
        reply = await self.redis.xreadgroup(
            self.cfg.group, self.cfg.consumer, {stream: ">"}, count=count, block=block_ms
        )
        return [(_text(i), f, 1) for _s, rows in reply or [] for i, f in rows]

    async def read_history(self, stream: str) -> None:
        start = self.history[stream]
        reply = await self.redis.xreadgroup(
            self.cfg.group, self.cfg.consumer, {stream: start}, count=self.cfg.batch_size
        )
        rows = [(_text(i), f or None) for _s, rs in reply or [] for i, f in rs]
        if not rows:
            self.history[stream] = ""
            return
        self.history[stream] = rows[-1][0]
        counts = await self.delivery_counts(stream, [i for i, _fields in rows])
        self.backlog.setdefault(stream, []).extend((i, f, counts.get(i, 1)) for i, f in rows)
        LOG.info("redis_streams: %d entries of %s taken before a restart are handed over again", len(rows), stream)

    async def autoclaim(self) -> None:
        for stream in self.cfg.streams:
            if len(self.backlog.get(stream, [])) >= self.cfg.batch_size:
                continue
            reply = await self.redis.xautoclaim(
                stream, self.cfg.group, self.cfg.consumer, self.cfg.claim_idle_ms, "0-0", count=self.cfg.batch_size
            )
            rows = [(_text(i), f or None) for i, f in reply[1]]
            if not rows:
                continue
            claimed = {i for i, _fields in rows}
            counts = await self.delivery_counts(stream, list(claimed))
            queued = self.backlog.setdefault(stream, [])
            known = {i for i, _f, _c in queued}
            queued.extend((i, f, counts.get(i, 1)) for i, f in rows if i not in known)
            self.inflight = [(s, ids - claimed, at) for s, ids, at in self.inflight if s != stream or ids - claimed]
            LOG.warning("redis_streams: claimed %d idle entries of %s again", len(rows), stream)

    async def delivery_counts(self, stream: str, ids: list[str]) -> dict[str, int]:
        rows = await self.redis.xpending_range(
            stream, self.cfg.group, min=min(ids, key=_id_key), max=max(ids, key=_id_key), count=len(ids) + 1000,
            consumername=self.cfg.consumer,
        )  # fmt: skip
        return {_text(r["message_id"]): int(r["times_delivered"]) for r in rows}

    # --- screening and hand-over ------------------------------------------------------------------------------
    async def screen(self, stream: str, entries: list[tuple[str, Any, int]]) -> list[dict[str, Any]]:
        """Valid entries as handed to the rulebook; the others go to the dead-letter stream."""
        good = []
        event_type = stream[len(_envelope.STREAM_PREFIX) :]
        for entry_id, fields, count in entries:
            reason = None
            envelope = None
            if fields is None:
                reason = "entry no longer exists (deleted or trimmed by MAXLEN before it was acknowledged)"
            elif count > self.cfg.max_deliveries:
                reason = f"delivered {count} times, more than max_deliveries {self.cfg.max_deliveries}"
            else:
                try:
                    raw = fields.get(_envelope.ENTRY_FIELD.encode())
                    envelope = _envelope.decode(raw)
                    if envelope["event_type"] != event_type:
                        reason = f"event_type {envelope['event_type']!r} does not belong on {stream}"
                except ValueError as exc:
                    reason = str(exc)
            if reason is None:
                good.append(
                    {
                        "stream": stream,
                        "id": entry_id,
                        "group": self.cfg.group,
                        "delivery_count": count,
                        "envelope": envelope,
                    }
                )
            else:
                await self.dead_letter(stream, entry_id, reason, fields, count)
        return good

    async def dead_letter(self, stream: str, entry_id: str, reason: str, fields: Any, count: int) -> None:
        commands = _redis_events.dead_letter(
            stream, entry_id, self.cfg.group, reason=reason, fields=fields, delivery_count=count
        )
        async with self.redis.pipeline(transaction=True) as tx:
            for command in commands:
                tx.execute_command(*command)
            await tx.execute()
        LOG.warning("redis_streams: %s %s moved to %s: %s", stream, entry_id, _envelope.DEAD_LETTER_STREAM, reason)

    async def hand_over(self, stream: str, entries: list[dict[str, Any]]) -> None:
        event = {
            "event_type": stream[len(_envelope.STREAM_PREFIX) :],
            "stream": stream,
            "group": self.cfg.group,
            "consumer": self.cfg.consumer,
            "batch_size": len(entries),
            "entries": entries,
        }
        await self.queue.put(event)  # blocks while the rulebook is busy; never acknowledges
        self.handed_over += len(entries)
        self.inflight.append((stream, {e["id"] for e in entries}, time.monotonic()))
        LOG.debug("redis_streams: handed over %d entries of %s", len(entries), stream)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _dash, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def main(queue: Any, args: dict[str, Any]) -> None:
    """EDA entry point: validate ``args`` (raises ``ValueError``), then consume forever."""
    cfg = Config(args)
    await Source(cfg, queue).run()


if __name__ == "__main__":
    # Manual check: python redis_streams.py prints what it would hand to the rulebook.

    class _PrintQueue:
        async def put(self, event: dict[str, Any]) -> None:
            print(event)

    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(_PrintQueue(), {"event_types": ["dhcp_lease"], "max_batches_in_flight": 0}))
