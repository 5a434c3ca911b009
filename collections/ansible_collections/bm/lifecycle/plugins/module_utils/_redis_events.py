# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bus operations shared by the modules, the DHCP hook, the event source and the tests.

Publish and acknowledge together (``publish``)
    One ``MULTI/EXEC`` holds, for every new event, ``SET bm:dedupe:<event_id> <stream> NX-by-WATCH EX ttl`` and
    ``XADD``, then the ``XACK`` of every consumed entry: a stage that finished has done both or neither.

Idempotency
    A follow-up event's ``event_id`` is derived from its cause (``_envelope.new_event``), so a re-run stage builds the
    same id. Before the transaction the dedupe keys are ``WATCH``ed and read: an id seen before is not added again
    (its consumed entry is still acknowledged). A concurrent publisher of the same id changes a watched key, ``EXEC``
    aborts and the loop re-reads: exactly one of them adds the entry. The key lives ``dedupe_ttl`` seconds (default
    7 days), far longer than any redelivery (claim idle time x max deliveries). A plain ``SET NX`` inside ``MULTI``
    cannot do this: a transaction cannot make the ``XADD`` depend on the ``SET``'s answer; ``WATCH`` can.

Both-or-neither also needs no runtime error inside ``EXEC`` (Redis does not roll back): so the first round trip checks
that target streams are streams and that the consumer groups being acknowledged exist, and refuses before writing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._envelope import (
    DEAD_LETTER_STREAM,
    ENTRY_FIELD,
    STREAM_PREFIX,
    decode,
    encode,
    stream_for,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import (
    RedisClient,
    RedisReplyError,
    pairs,
    text,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._time import event_time

DEFAULT_GROUP = "bm-lifecycle"
DEDUPE_PREFIX = "bm:dedupe:"
REPLAYED_PREFIX = "bm:dead_letter:replayed:"
DEFAULT_DEDUPE_TTL = 7 * 24 * 3600
DEFAULT_MAXLEN = 100_000
DEAD_LETTER_MAXLEN = 10_000
MAX_RAW_IN_DEAD_LETTER = 64 * 1024
_ENTRY_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")


class BusError(Exception):
    """A bus operation was refused before anything was written; ``str(exc)`` says why."""


def dedupe_key(envelope: dict[str, Any]) -> str:
    return DEDUPE_PREFIX + str(envelope["event_id"])


def parse_ack(value: object) -> tuple[str, str, str]:
    """``(stream, group, entry_id)`` from an entry as the event source hands it (``stream``, ``id``, ``group``; other
    keys ignored). Raises ``BusError``."""
    if not isinstance(value, dict):
        raise BusError(
            f"an entry to acknowledge must be a mapping with stream, id and group, got {type(value).__name__}"
        )
    missing = [k for k in ("stream", "id", "group") if not value.get(k)]
    if missing:
        raise BusError(f"entry to acknowledge lacks {', '.join(missing)}")
    stream, entry_id, group = str(value["stream"]), str(value["id"]), str(value["group"])
    if not _ENTRY_ID.match(entry_id):
        raise BusError(f"entry id {entry_id!r} is not a stream entry id (<ms>-<seq>)")
    return stream, group, entry_id


def publish(  # noqa: PLR0912, PLR0915  (two round trips, each checked before anything is written)
    client: RedisClient,
    envelopes: list[dict[str, Any]],
    acks: Sequence[Any] = (),
    *,
    dedupe_ttl: int = DEFAULT_DEDUPE_TTL,
    maxlen: int = DEFAULT_MAXLEN,
    check_mode: bool = False,
    attempts: int = 10,
) -> dict[str, Any]:
    """Publish ``envelopes`` (each at most once, by event_id) and acknowledge ``acks`` in one transaction.

    Returns ``{"changed", "published": [{event_id, event_type, stream, entry_id, duplicate}], "acked": [{stream, group,
    id, was_pending}]}``; in check mode nothing is written and ``entry_id`` is None. Raises ``BusError`` (nothing
    written) or ``RedisError``.
    """
    encoded = [(env, stream_for(env["event_type"]), encode(env)) for env in envelopes]
    ids = [env["event_id"] for env in envelopes]
    if len(set(ids)) != len(ids):
        raise BusError("the same event_id appears twice in one publish")
    ack_refs = [parse_ack(a) for a in acks]
    keys = [dedupe_key(env) for env in envelopes]
    streams = sorted({s for _env, s, _raw in encoded})

    for _attempt in range(attempts):
        first: list[tuple[Any, ...]] = []
        if keys:
            first.append(("WATCH", *keys))
        first += [("EXISTS", k) for k in keys]
        first += [("TYPE", s) for s in streams]
        first += [("XPENDING", s, g, i, i, 1) for s, g, i in ack_refs]
        replies = client.pipeline(first)
        replies = replies[1:] if keys else replies
        seen = [bool(r) for r in replies[: len(keys)]]
        types = replies[len(keys) : len(keys) + len(streams)]
        pend = replies[len(keys) + len(streams) :]
        problems = [
            f"{s} holds a {text(t)}, not a stream"
            for s, t in zip(streams, types, strict=True)
            if text(t) not in ("stream", "none")
        ]
        for (s, g, i), r in zip(ack_refs, pend, strict=True):
            if isinstance(r, RedisReplyError):
                problems.append(f"cannot acknowledge {s} {i} in group {g}: {r}")
        problems += [str(r) for r in replies[: len(keys) + len(streams)] if isinstance(r, RedisReplyError)]
        if problems:
            if keys:
                client.pipeline([("UNWATCH",)])
            raise BusError("; ".join(dict.fromkeys(problems)))
        was_pending = [bool(r) for r in pend]
        todo = [(env, s, raw, k) for (env, s, raw), k, dup in zip(encoded, keys, seen, strict=True) if not dup]
        if check_mode:
            if keys:
                client.pipeline([("UNWATCH",)])
            return _result(encoded, seen, [None] * len(todo), ack_refs, was_pending)
        tx: list[tuple[Any, ...]] = [("MULTI",)]
        for _env, s, raw, k in todo:
            tx.append(("SET", k, s, "EX", int(dedupe_ttl)))
            tx.append(("XADD", s, "MAXLEN", "~", int(maxlen), "*", ENTRY_FIELD, raw))
        tx += [("XACK", s, g, i) for s, g, i in ack_refs]
        tx.append(("EXEC",))
        out = client.pipeline(tx)
        queued_errors = [r for r in out[:-1] if isinstance(r, RedisReplyError)]
        if queued_errors:
            raise BusError(f"Redis refused the transaction: {queued_errors[0]}")
        executed = out[-1]
        if executed is None:  # a watched dedupe key changed: someone published one of these ids; look again
            continue
        if isinstance(executed, RedisReplyError):
            raise BusError(f"Redis refused the transaction: {executed}")
        failed = [r for r in executed if isinstance(r, RedisReplyError)]
        if failed:  # cannot happen after the checks above short of a concurrent DEL/TYPE change; say so loudly
            raise BusError(f"partly applied transaction, first error: {failed[0]}")
        entry_ids = [text(executed[2 * n + 1]) for n in range(len(todo))]
        return _result(encoded, seen, entry_ids, ack_refs, was_pending)
    raise BusError(f"dedupe keys kept changing under us ({attempts} attempts)")


def _result(
    encoded: list[tuple[dict[str, Any], str, str]],
    seen: list[bool],
    entry_ids: Sequence[str | None],
    ack_refs: list[tuple[str, str, str]],
    was_pending: list[bool],
) -> dict[str, Any]:
    published = []
    new_ids = iter(entry_ids)
    for (env, s, _raw), dup in zip(encoded, seen, strict=True):
        published.append(
            {
                "event_id": env["event_id"],
                "event_type": env["event_type"],
                "stream": s,
                "entry_id": None if dup else next(new_ids),
                "duplicate": dup,
            }
        )
    acked = [
        {"stream": s, "group": g, "id": i, "was_pending": p} for (s, g, i), p in zip(ack_refs, was_pending, strict=True)
    ]
    changed = any(not p["duplicate"] for p in published) or any(was_pending)
    return {"changed": changed, "published": published, "acked": acked}


# --- dead letters ----------------------------------------------------------------------------------------------------


def dead_letter(
    stream: str, entry_id: str, group: str, *, reason: str, fields: dict[Any, Any] | None, delivery_count: int
) -> list[tuple[Any, ...]]:
    """The two commands that dead-letter one stream entry: ``XADD`` of its dead-letter entry, ``XACK`` of the entry.

    The single home of the dead-letter format, for every writer (the event source, the tests): run both in one
    transaction (``MULTI``/``EXEC``, or a redis-py ``pipeline(transaction=True)``) so that the entry is moved, or not.
    The dead-letter entry keeps the reason, the delivery count and ``raw``, the original envelope cut at 64 KiB.
    """
    if fields and set(map(text, fields)) == {ENTRY_FIELD}:
        raw = text(next(iter(fields.values())))
    elif fields:
        raw = json.dumps({text(k): text(v) for k, v in fields.items()}, sort_keys=True)
    else:
        raw = ""
    raw_bytes = len(raw.encode("utf-8"))
    truncated = raw_bytes > MAX_RAW_IN_DEAD_LETTER
    if truncated:
        raw = raw.encode("utf-8")[:MAX_RAW_IN_DEAD_LETTER].decode("utf-8", "ignore")
    entry = {
        "stream": stream,
        "entry_id": entry_id,
        "group": group,
        "reason": reason[:2000],
        "delivery_count": str(delivery_count),
        "failed_at": event_time(),
        "raw": raw,
        "raw_bytes": str(raw_bytes),
        "raw_truncated": "1" if truncated else "0",
    }
    flat = [item for pair in entry.items() for item in pair]
    return [
        ("XADD", DEAD_LETTER_STREAM, "MAXLEN", "~", DEAD_LETTER_MAXLEN, "*", *flat),
        ("XACK", stream, group, entry_id),
    ]


def replay(
    client: RedisClient, dead_letter_id: str, *, check_mode: bool = False, force: bool = False
) -> dict[str, Any]:
    """Re-publish the envelope of one dead-letter entry to its original stream, once (unless ``force``)."""
    if not _ENTRY_ID.match(dead_letter_id):
        raise BusError(f"{dead_letter_id!r} is not a stream entry id (<ms>-<seq>)")
    rows = client.call("XRANGE", DEAD_LETTER_STREAM, dead_letter_id, dead_letter_id)
    if not rows:
        raise BusError(f"no dead-letter entry {dead_letter_id}")
    fields = {k: text(v) for k, v in pairs(rows[0][1]).items()}
    stream = fields.get("stream", "")
    if fields.get("raw_truncated") == "1":
        raise BusError(f"dead-letter entry {dead_letter_id} kept only part of its envelope; it cannot be replayed")
    if not stream.startswith(STREAM_PREFIX) or stream == DEAD_LETTER_STREAM:
        raise BusError(f"dead-letter entry {dead_letter_id} names no event stream ({stream!r})")
    try:
        envelope = decode(fields.get("raw"))
    except ValueError as exc:
        raise BusError(
            f"dead-letter entry {dead_letter_id} holds an invalid envelope ({exc}); fix it and publish anew"
        ) from None
    marker = REPLAYED_PREFIX + dead_letter_id
    result = {"changed": False, "dead_letter_id": dead_letter_id, "stream": stream, "event_id": envelope["event_id"]}
    for _attempt in range(10):
        first = client.pipeline([("WATCH", marker), ("GET", marker)])
        done = first[1]
        if done is not None and not force:
            client.pipeline([("UNWATCH",)])
            return {**result, "entry_id": text(done), "already_replayed": True}
        if check_mode:
            client.pipeline([("UNWATCH",)])
            return {**result, "changed": True, "entry_id": None, "already_replayed": done is not None}
        out = client.pipeline(
            [
                ("MULTI",),
                ("XADD", stream, "MAXLEN", "~", DEFAULT_MAXLEN, "*", ENTRY_FIELD, encode(envelope)),
                ("SET", dedupe_key(envelope), stream, "EX", DEFAULT_DEDUPE_TTL),
                ("EXEC",),
            ]
        )
        if out[-1] is None:
            continue
        if isinstance(out[-1], RedisReplyError) or any(isinstance(r, RedisReplyError) for r in out[-1]):
            raise BusError(f"Redis refused the replay: {out[-1]}")
        entry_id = text(out[-1][0])
        client.call("SET", marker, entry_id, "EX", DEFAULT_DEDUPE_TTL)
        return {**result, "changed": True, "entry_id": entry_id, "already_replayed": False}
    raise BusError("replay marker kept changing under us")


# --- operator view ----------------------------------------------------------------------------------------------------


def stream_names(client: RedisClient, max_streams: int = 1000) -> list[str]:
    """The ``bm:events:*`` streams, sorted, at most ``max_streams``."""
    names: list[str] = []
    cursor = "0"
    for _page in range(max_streams):
        cursor_raw, batch = client.call("SCAN", cursor, "MATCH", STREAM_PREFIX + "*", "COUNT", 500, "TYPE", "stream")
        names += [text(b) for b in batch]
        cursor = text(cursor_raw)
        if cursor == "0" or len(names) >= max_streams:
            break
    return sorted(set(names))[:max_streams]


def bus_status(client: RedisClient, dead_letters: int = 20, max_streams: int = 1000) -> dict[str, Any]:
    """Stream lengths, consumer groups with pending entries per consumer, and the newest dead letters."""
    names = stream_names(client, max_streams)
    streams = []
    for name in names:
        length, groups_raw = client.pipeline([("XLEN", name), ("XINFO", "GROUPS", name)])
        groups = []
        for g in groups_raw if isinstance(groups_raw, list) else []:
            info = pairs(g)
            gname = text(info.get("name"))
            summary = client.call("XPENDING", name, gname)
            consumers = {text(c[0]): int(text(c[1])) for c in (summary[3] or [])} if summary else {}
            lag = info.get("lag")
            entries_read = info.get("entries-read")
            groups.append(
                {
                    "name": gname,
                    "entries_read": None if entries_read is None else int(entries_read),
                    "consumers": int(info.get("consumers") or 0),
                    "pending": int(info.get("pending") or 0),
                    "pending_per_consumer": consumers,
                    "last_delivered_id": text(info.get("last-delivered-id")),
                    "lag": None if lag is None else int(lag),
                }
            )
        streams.append({"stream": name, "length": int(length), "groups": groups})
    rows = client.call("XREVRANGE", DEAD_LETTER_STREAM, "+", "-", "COUNT", int(dead_letters)) if dead_letters else []
    markers = client.pipeline([("EXISTS", REPLAYED_PREFIX + text(r[0])) for r in rows]) if rows else []
    dead = []
    for row, replayed in zip(rows, markers, strict=True):
        f = {k: text(v) for k, v in pairs(row[1]).items()}
        dead.append(
            {
                "id": text(row[0]),
                "stream": f.get("stream"),
                "entry_id": f.get("entry_id"),
                "group": f.get("group"),
                "reason": f.get("reason"),
                "delivery_count": int(f.get("delivery_count") or 0),
                "failed_at": f.get("failed_at"),
                "raw_bytes": int(f.get("raw_bytes") or 0),
                "replayable": f.get("raw_truncated") != "1",
                "replayed": bool(replayed),
            }
        )
    return {"streams": streams, "dead_letters": dead}


# --- the service's own counters (Prometheus textfile of bm.lifecycle.status) ------------------------------------------


def entry_seconds(entry_id: str) -> float:
    """When Redis added a stream entry: the milliseconds part of its id, in seconds."""
    return int(entry_id.partition("-")[0]) / 1000


def failures_by_stage(envelopes: Iterable[dict[str, Any]]) -> dict[str, int]:
    """``stage_failed`` envelopes counted by their ``data.stage`` (``unknown`` without one)."""
    counts: dict[str, int] = {}
    for env in envelopes:
        stage = str((env.get("data") or {}).get("stage") or "unknown")
        counts[stage] = counts.get(stage, 0) + 1
    return counts


def handling_seconds(entries: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """How long the stages took, from the event chain: for every ``(entry_id, envelope)`` whose cause is among the
    entries, the time from the cause's entry to its own, grouped by the cause's event type (the stage that handled it:
    waiting for the batch plus the stage's run). ``{event_type: {count, sum, max}}`` in seconds."""
    rows = list(entries)
    added = {env["event_id"]: (entry_seconds(entry_id), env["event_type"]) for entry_id, env in rows}
    out: dict[str, dict[str, float]] = {}
    for entry_id, env in rows:
        cause = added.get(env.get("causation_id") or "")
        if cause is None:
            continue
        seconds = max(0.0, entry_seconds(entry_id) - cause[0])
        agg = out.setdefault(cause[1], {"count": 0, "sum": 0.0, "max": 0.0})
        agg["count"] += 1
        agg["sum"] = round(agg["sum"] + seconds, 3)
        agg["max"] = max(agg["max"], seconds)
    return out


def bus_metrics(client: RedisClient, window: int = 1000, max_streams: int = 1000) -> dict[str, Any]:
    """:func:`failures_by_stage` and :func:`handling_seconds` over the newest ``window`` entries of every event stream
    (the dead-letter stream aside; an entry that is not a valid envelope is skipped)."""
    names = [n for n in stream_names(client, max_streams) if n != DEAD_LETTER_STREAM]
    replies = client.pipeline([("XREVRANGE", n, "+", "-", "COUNT", int(window)) for n in names]) if names else []
    entries: list[tuple[str, dict[str, Any]]] = []
    for rows in replies:
        for row in rows if isinstance(rows, list) else []:
            raw = pairs(row[1]).get(ENTRY_FIELD)
            try:
                envelope = decode(raw if isinstance(raw, (bytes, str)) else None)
            except ValueError:
                continue
            entries.append((text(row[0]), envelope))
    failed = [env for _id, env in entries if env["event_type"] == "stage_failed"]
    return {
        "window": window,
        "stage_failures": failures_by_stage(failed),
        "handling_seconds": handling_seconds(entries),
    }
