"""The bm.lifecycle.redis_streams event source with a fake (list-backed) queue and a private Redis."""

from __future__ import annotations

import asyncio
import runpy
import time
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils import _envelope as env
from ansible_collections.bm.lifecycle.plugins.module_utils import _redis_events as ev
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient, RedisSettings
from integration.events.redis_server import RedisServer

SOURCE = (
    Path(__file__).resolve().parents[3]
    / "collections/ansible_collections/bm/lifecycle/extensions/eda/plugins/event_source/redis_streams.py"
)
PLUGIN = runpy.run_path(str(SOURCE))  # how ansible-rulebook loads it
main = PLUGIN["main"]


class FakeQueue:
    """Like the engine's asyncio.Queue(1) whose consumer takes each event at once."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def put(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def args(server: RedisServer, **more: Any) -> dict[str, Any]:
    base = {"redis_url": server.url, "event_types": ["dhcp_lease"], "consumer": "c1", "batch_wait_ms": 100}
    return {**base, **more}


def lease(n: int) -> dict[str, Any]:
    return env.new_event("dhcp_lease", {"n": n}, source="test")


async def until(done: Any, seconds: float, task: asyncio.Task[None] | None = None) -> None:
    """Poll ``done()`` for at most ``seconds``; re-raise if ``task`` died."""
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        if task is not None and task.done():
            task.result()
        await asyncio.sleep(0.02)


async def while_running(queue: FakeQueue, a: dict[str, Any], steps: Any) -> None:
    """Run the source on ``queue`` while ``await steps(task)`` runs, then cancel it and wait for it to end."""
    task = asyncio.create_task(main(queue, a))
    try:
        await steps(task)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def run_until(queue: FakeQueue, a: dict[str, Any], done: Any, seconds: float = 10) -> None:
    await while_running(queue, a, lambda task: until(done, seconds, task))


def entries(queue: FakeQueue) -> list[dict[str, Any]]:
    return [e for event in queue.events for e in event["entries"]]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"event_types": []}, "event_types must be a non-empty list"),
        ({"event_types": ["Bad Type"]}, "does not match"),
        ({"event_types": ["dead_letter"]}, "dead-letter stream"),
        ({"batch_size": 0}, "batch_size must be an integer from 1"),
        ({"batch_wait_ms": "soon"}, "batch_wait_ms must be an integer"),
        ({"redis_url": "http://x"}, "redis_url must start with"),
        ({"bogus": 1}, "unknown argument"),
    ],
)
def test_arguments_are_checked_up_front(redis_server: RedisServer, bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        asyncio.run(main(FakeQueue(), args(redis_server, **bad)))


def test_lone_event_goes_at_once_and_is_not_acknowledged(bus: RedisClient, redis_server: RedisServer) -> None:
    ev.publish(bus, [lease(1)])
    q = FakeQueue()
    started = time.monotonic()
    asyncio.run(run_until(q, args(redis_server, batch_wait_ms=5000), lambda: q.events))
    assert time.monotonic() - started < 3
    [event] = q.events
    assert event["event_type"] == "dhcp_lease" and event["batch_size"] == 1
    [entry] = event["entries"]
    assert entry["stream"] == "bm:events:dhcp_lease" and entry["group"] == "bm-lifecycle"
    assert entry["delivery_count"] == 1 and entry["envelope"]["data"] == {"n": 1}
    assert bus.call("XPENDING", "bm:events:dhcp_lease", "bm-lifecycle")[0] == 1  # the stage acknowledges


def test_burst_becomes_batches(bus: RedisClient, redis_server: RedisServer) -> None:
    ev.publish(bus, [lease(n) for n in range(25)])
    q = FakeQueue()
    asyncio.run(run_until(q, args(redis_server, batch_size=10, max_batches_in_flight=0), lambda: len(entries(q)) == 25))
    assert [e["batch_size"] for e in q.events] == [10, 10, 5]
    assert [e["envelope"]["data"]["n"] for e in entries(q)] == list(range(25))


def test_window_waits_for_the_ack(bus: RedisClient, redis_server: RedisServer) -> None:
    ev.publish(bus, [lease(0)])
    q = FakeQueue()

    async def steps(task: asyncio.Task[None]) -> None:
        await until(lambda: q.events, 10, task)
        ev.publish(bus, [lease(n) for n in range(1, 8)])  # a burst while the stage runs
        await asyncio.sleep(0.5)
        assert len(q.events) == 1  # nothing read until the first batch is acknowledged
        ev.publish(bus, [], q.events[0]["entries"])
        await until(lambda: len(q.events) >= 2, 5, task)

    asyncio.run(while_running(q, args(redis_server, batch_size=50), steps))
    assert [e["batch_size"] for e in q.events] == [1, 7]


def test_window_is_per_event_type(bus: RedisClient, redis_server: RedisServer) -> None:
    ev.publish(bus, [lease(0)])
    q = FakeQueue()
    a = args(redis_server, event_types=["dhcp_lease", "device_discovered"])

    async def steps(task: asyncio.Task[None]) -> None:
        await until(lambda: q.events, 10, task)
        ev.publish(bus, [lease(1), env.new_event("device_discovered", {}, source="t")])
        await until(lambda: len(q.events) >= 2, 5, task)  # the other stage goes on while discovery runs
        await asyncio.sleep(0.5)
        assert [e["event_type"] for e in q.events] == ["dhcp_lease", "device_discovered"]
        ev.publish(bus, [], q.events[0]["entries"])
        await until(lambda: len(q.events) >= 3, 5, task)

    asyncio.run(while_running(q, a, steps))
    assert [e["event_type"] for e in q.events] == ["dhcp_lease", "device_discovered", "dhcp_lease"]


def test_types_are_never_mixed(bus: RedisClient, redis_server: RedisServer) -> None:
    ev.publish(bus, [lease(1), env.new_event("device_discovered", {}, source="t"), lease(2)])
    q = FakeQueue()
    a = args(redis_server, event_types=["dhcp_lease", "device_discovered"], max_batches_in_flight=0)
    asyncio.run(run_until(q, a, lambda: len(entries(q)) == 3))
    for event in q.events:
        assert {e["envelope"]["event_type"] for e in event["entries"]} == {event["event_type"]}


MALFORMED = {
    "not JSON": {"envelope": "{nope"},
    "wrong version": {"envelope": env.encode(lease(0)).replace('"version":1', '"version":2')},
    "missing fields": {"envelope": '{"version": 1}'},
    "wrong types": {"envelope": env.encode(lease(0)).replace('"data":{"n":0}', '"data":[1]')},
    "1 MiB payload": {"envelope": '{"data": "' + "x" * (1024 * 1024) + '"}'},
    "no envelope field": {"foo": "bar"},
    "wrong stream": {"envelope": env.encode(env.new_event("unknown_mac", {}, source="t"))},
}


def test_malformed_entries_go_to_dead_letter_and_consumption_goes_on(
    bus: RedisClient, redis_server: RedisServer
) -> None:
    for fields in MALFORMED.values():
        flat = [x for kv in fields.items() for x in kv]
        bus.call("XADD", "bm:events:dhcp_lease", "*", *flat)
    ev.publish(bus, [lease(99)])
    q = FakeQueue()
    asyncio.run(run_until(q, args(redis_server, max_batches_in_flight=0), lambda: entries(q)))
    assert [e["envelope"]["data"] for e in entries(q)] == [{"n": 99}]
    dead = ev.bus_status(bus, dead_letters=50)["dead_letters"]
    reasons = [d["reason"] for d in reversed(dead)]
    assert len(reasons) == len(MALFORMED)
    for reason, expected in zip(
        reasons,
        ["not JSON", "version: must be 1", "missing field", "data: expected object", "more than 65536", "no 'envelope'",
         "does not belong"],
        strict=True,
    ):  # fmt: skip
        assert expected in reason
    assert bus.call("XPENDING", "bm:events:dhcp_lease", "bm-lifecycle")[0] == 1  # only the good one waits for its stage


def test_restart_hands_over_own_pending_entries_first(bus: RedisClient, redis_server: RedisServer) -> None:
    ev.publish(bus, [lease(1)])
    first = FakeQueue()
    asyncio.run(run_until(first, args(redis_server), lambda: first.events))
    second = FakeQueue()  # the rulebook was killed before its stage acknowledged
    asyncio.run(run_until(second, args(redis_server), lambda: second.events))
    [entry] = entries(second)
    assert entry["id"] == entries(first)[0]["id"] and entry["delivery_count"] == 2


def test_idle_entries_of_a_dead_consumer_are_claimed_then_dead_lettered(
    bus: RedisClient, redis_server: RedisServer
) -> None:
    ev.publish(bus, [lease(1)])
    q = FakeQueue()
    a = args(
        redis_server, consumer="c2", claim_idle_ms=200, claim_interval_ms=100, max_deliveries=3, max_batches_in_flight=0
    )
    asyncio.run(run_until(q, {**a, "consumer": "c-dead"}, lambda: q.events))
    asyncio.run(run_until(q, a, lambda: ev.bus_status(bus)["dead_letters"], seconds=15))
    counts = [e["delivery_count"] for e in entries(q)]
    assert counts[:3] == [1, 2, 3]
    [dead] = ev.bus_status(bus)["dead_letters"]
    assert "more than max_deliveries 3" in dead["reason"] and dead["replayable"]


def test_redis_down_means_retry_not_crash(redis_server: RedisServer, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r")
    q = FakeQueue()

    async def scenario() -> None:
        task = asyncio.create_task(main(q, args(server, backoff_max_s=0.5)))
        await asyncio.sleep(1.5)
        assert not task.done()  # still retrying
        server.start()
        with RedisClient(RedisSettings(server.url)) as c:
            ev.publish(c, [lease(5)])
        await until(lambda: q.events, 10, task)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(scenario())
    finally:
        server.stop()
    assert entries(q)[0]["envelope"]["data"] == {"n": 5}


def test_cancel_closes_cleanly(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        task = asyncio.create_task(main(FakeQueue(), args(redis_server, block_ms=5000)))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 1

    asyncio.run(scenario())


def test_reconnect_does_not_hand_over_in_flight_entries_again(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r2")
    server.start()
    q = FakeQueue()

    async def scenario() -> None:
        with RedisClient(RedisSettings(server.url)) as c:
            ev.publish(c, [lease(1)])
        task = asyncio.create_task(main(q, args(server, backoff_max_s=0.5, max_batches_in_flight=0)))
        try:
            await until(lambda: q.events, 10, task)
            server.restart()  # AOF keeps the entry and its pending state; the source reconnects
            await asyncio.sleep(1.5)
            with RedisClient(RedisSettings(server.url)) as c:
                ev.publish(c, [lease(2)])
            await until(lambda: len(entries(q)) >= 2, 10, task)
            await asyncio.sleep(0.5)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    try:
        asyncio.run(scenario())
    finally:
        server.stop()
    assert [e["envelope"]["data"]["n"] for e in entries(q)] == [1, 2]
