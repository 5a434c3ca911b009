"""Publish-and-ack, idempotency, dead letters, replay and status (module_utils/_redis_events.py) on a real Redis."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils import _envelope as env
from ansible_collections.bm.lifecycle.plugins.module_utils import _redis
from ansible_collections.bm.lifecycle.plugins.module_utils import _redis_events as ev
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import (
    RedisClient,
    RedisConnectionError,
    RedisError,
    RedisReplyError,
    RedisSettings,
    pairs,
    text,
)
from integration.events.redis_server import RedisServer

GROUP = ev.DEFAULT_GROUP


def consume_one(bus: RedisClient, event_type: str) -> dict[str, str]:
    stream = env.stream_for(event_type)
    bus.pipeline([("XGROUP", "CREATE", stream, GROUP, "0", "MKSTREAM")])
    reply = bus.call("XREADGROUP", "GROUP", GROUP, "c1", "COUNT", 1, "STREAMS", stream, ">")
    entry_id = text(reply[0][1][0][0])
    return {"stream": stream, "id": entry_id, "group": GROUP}


def test_publish_then_ack_with_the_follow_up(bus: RedisClient) -> None:
    lease = env.new_event("dhcp_lease", {"ip": "192.0.2.1"}, source="t")
    first = ev.publish(bus, [lease])
    assert first["changed"] and first["published"][0]["entry_id"]
    entry = consume_one(bus, "dhcp_lease")
    follow = env.new_event("device_discovered", {"n": 1}, source="stage", cause=lease)
    out = ev.publish(bus, [follow], [entry])
    assert out["changed"] and out["acked"] == [{**entry, "was_pending": True}]
    assert bus.call("XPENDING", entry["stream"], GROUP)[0] == 0
    assert bus.call("XLEN", "bm:events:device_discovered") == 1


def test_same_logical_event_twice_is_one_entry(bus: RedisClient) -> None:
    lease = env.new_event("dhcp_lease", {}, source="t")
    ev.publish(bus, [lease])
    entry = consume_one(bus, "dhcp_lease")
    again = [env.new_event("device_discovered", {"run": r}, source="s", cause=lease) for r in (1, 2)]
    a = ev.publish(bus, [again[0]], [entry])
    b = ev.publish(bus, [again[1]], [entry])  # a re-run of the stage after a crash
    assert not a["published"][0]["duplicate"] and b["published"][0]["duplicate"]
    assert b["acked"][0]["was_pending"] is False and b["changed"] is False
    assert bus.call("XLEN", "bm:events:device_discovered") == 1


def test_concurrent_publishers_of_one_event_add_it_once(bus: RedisClient, redis_server: RedisServer) -> None:
    cause = env.new_event("dhcp_lease", {}, source="t")
    results: list[bool] = []

    def worker() -> None:
        with RedisClient(RedisSettings(redis_server.url)) as c:
            e = env.new_event("device_discovered", {}, source="s", cause=cause)
            results.append(ev.publish(c, [e])["published"][0]["duplicate"])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [False] + [True] * 7
    assert bus.call("XLEN", "bm:events:device_discovered") == 1


def test_check_mode_writes_nothing(bus: RedisClient) -> None:
    e = env.new_event("dhcp_lease", {}, source="t")
    out = ev.publish(bus, [e], check_mode=True)
    assert out["changed"] and out["published"][0]["entry_id"] is None
    assert bus.call("EXISTS", "bm:events:dhcp_lease") == 0
    assert bus.call("EXISTS", ev.dedupe_key(e)) == 0


def test_refuses_before_writing(bus: RedisClient) -> None:
    e = env.new_event("device_discovered", {}, source="t")
    with pytest.raises(ev.BusError, match="NOGROUP"):
        ev.publish(bus, [e], [{"stream": "bm:events:dhcp_lease", "id": "1-0", "group": "nope"}])
    assert bus.call("EXISTS", "bm:events:device_discovered") == 0
    bus.call("SET", "bm:events:device_discovered", "oops")
    with pytest.raises(ev.BusError, match="not a stream"):
        ev.publish(bus, [e])
    with pytest.raises(ev.BusError, match="lacks"):
        ev.publish(bus, [], [{"stream": "s"}])
    with pytest.raises(ev.BusError, match="not a stream entry id"):
        ev.publish(bus, [], [{"stream": "s", "group": "g", "id": "abc"}])
    with pytest.raises(ev.BusError, match="twice"):
        ev.publish(bus, [e, e])


def test_dead_letter_replay_and_status(bus: RedisClient) -> None:
    good = env.new_event("dhcp_lease", {"ip": "192.0.2.9"}, source="t")
    ev.publish(bus, [good])
    entry = consume_one(bus, "dhcp_lease")
    fields = {b"envelope": env.encode(good).encode()}
    out = bus.pipeline(
        [
            ("MULTI",),
            *ev.dead_letter(
                entry["stream"], entry["id"], GROUP, reason="delivered 6 times", fields=fields, delivery_count=6
            ),
            ("EXEC",),
        ]
    )
    assert isinstance(out[-1], list)
    status = ev.bus_status(bus)
    lease = next(s for s in status["streams"] if s["stream"] == "bm:events:dhcp_lease")
    assert lease["length"] == 1 and lease["groups"][0]["pending"] == 0
    [dead] = status["dead_letters"]
    assert dead["reason"] == "delivered 6 times" and dead["replayable"] and not dead["replayed"]
    first = ev.replay(bus, dead["id"])
    second = ev.replay(bus, dead["id"])
    assert first["changed"] and not second["changed"] and second["already_replayed"]
    assert bus.call("XLEN", "bm:events:dhcp_lease") == 2
    assert ev.bus_status(bus)["dead_letters"][0]["replayed"]


def test_dead_letter_of_garbage_is_not_replayable(bus: RedisClient) -> None:
    cmds = ev.dead_letter(
        "bm:events:dhcp_lease", "1-0", GROUP, reason="not JSON", fields={b"x": b"\xff" * 70000}, delivery_count=1
    )
    bus.pipeline([("MULTI",), *cmds, ("EXEC",)])
    row = bus.call("XRANGE", env.DEAD_LETTER_STREAM, "-", "+")[0]
    f = pairs(row[1])
    assert text(f["raw_truncated"]) == "1"
    with pytest.raises(ev.BusError, match="cannot be replayed"):
        ev.replay(bus, text(row[0]))


def test_connection_errors_are_clear_and_redacted() -> None:
    s = RedisSettings("redis://user:s3cret@127.0.0.1:1/0")
    assert "s3cret" not in str(s) and "***" in str(s)
    with pytest.raises(RedisConnectionError) as info, RedisClient(s, timeout=0.5) as c:
        c.call("PING")
    assert "s3cret" not in str(info.value)
    with pytest.raises(ValueError, match="must start with"):
        RedisSettings("http://x")


def test_an_error_reply_inside_exec_and_a_missing_library_are_clear(bus: RedisClient, monkeypatch: Any) -> None:
    bus.call("SET", "bm:test:text", "x")
    queued, executed = bus.pipeline([("MULTI",), ("INCR", "bm:test:text"), ("EXEC",)])[1:]
    assert text(queued) == "QUEUED"
    assert isinstance(executed[0], RedisReplyError) and "not an integer" in str(executed[0])
    monkeypatch.setattr(_redis, "HAS_REDIS", False)
    with pytest.raises(RedisError, match=r"redis \(redis-py\) is missing"), RedisClient(RedisSettings()) as c:
        c.call("PING")
