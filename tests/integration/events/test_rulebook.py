"""The event bus end to end with the real ansible-rulebook CLI, a real Redis and a stage playbook that publishes its
follow-up event and acknowledges its batch with bm.lifecycle.event_publish (the stage contract)."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils import _envelope as env
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient, RedisSettings, pairs, text
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_events import bus_status, publish
from integration.events.redis_server import RedisServer
from integration.events.rulebook import Rulebook, descendants

pytestmark = pytest.mark.slow

STAGE = """---
- name: Test stage
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Slow first delivery (the test kills the playbook here)
      ansible.builtin.command: "sleep {{ item.envelope.data.sleep }}"
      loop: "{{ bm_batch.entries }}"
      when: item.delivery_count == 1 and (item.envelope.data.sleep | default(0) | int) > 0
      changed_when: false
    - name: Publish the follow-ups and acknowledge the batch
      bm.lifecycle.event_publish:
        source: test.stage
        events: >-
          {%- set out = [] -%}
          {%- for e in bm_batch.entries -%}
          {%- set _ = out.append({'event_type': 'device_discovered', 'cause': e.envelope,
                                  'data': {'mac': e.envelope.data.mac}}) -%}
          {%- endfor -%}
          {{ out }}
        ack: "{{ bm_batch.entries }}"
"""

RULEBOOK = """---
- name: test
  hosts: localhost
  sources:
    - bm.lifecycle.redis_streams:
        event_types: [dhcp_lease]
        consumer: test-1
        claim_idle_ms: 4000
        claim_interval_ms: 500
        batch_wait_ms: 100
        backoff_max_s: 1
  rules:
    - name: stage
      condition: event.event_type == "dhcp_lease"
      action:
        run_playbook:
          name: {stage}
          extra_vars:
            bm_batch: "{{{{ event }}}}"
"""


@pytest.fixture
def service(tmp_path: Path, redis_server: RedisServer, bus: RedisClient) -> Iterator[Rulebook]:
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage/stage.yml").write_text(STAGE)
    rulebook = tmp_path / "rulebook.yml"
    rulebook.write_text(RULEBOOK.format(stage=tmp_path / "stage/stage.yml"))
    rb = Rulebook(rulebook, tmp_path / "rulebook.log", redis_server.url)
    yield rb
    rb.kill()


def lease(n: int, sleep: int = 0) -> dict[str, Any]:
    data: dict[str, object] = {"ip": f"192.0.2.{n}", "mac": f"52:54:00:00:00:{n:02x}"}
    if sleep:
        data["sleep"] = sleep
    return env.new_event("dhcp_lease", data, source="test")


def discovered(bus: RedisClient) -> list[str]:
    rows = bus.call("XRANGE", "bm:events:device_discovered", "-", "+")
    return [str(env.decode(pairs(r[1])["envelope"])["causation_id"]) for r in rows]


def pending(bus: RedisClient) -> int:
    try:
        return int(bus.call("XPENDING", "bm:events:dhcp_lease", "bm-lifecycle")[0])
    except Exception:
        return -1


def wait(cond: object, timeout: float, what: str, rb: Rulebook | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.2)
    tail = rb.text()[-3000:] if rb else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def test_batch_flows_through_and_is_acknowledged(service: Rulebook, bus: RedisClient) -> None:
    events = [lease(n) for n in range(1, 4)]
    publish(bus, events)
    service.start()
    wait(lambda: len(discovered(bus)) == 3, 120, "3 device_discovered", service)
    assert sorted(discovered(bus)) == sorted(e["event_id"] for e in events)
    wait(lambda: pending(bus) == 0, 10, "no pending entries", service)
    wait(lambda: "PLAY RECAP" in service.text(), 30, "the playbook's recap in the service output", service)
    assert service.text().count("PLAY RECAP") == 1  # one playbook run for the batch of three


def test_stage_playbook_killed_mid_run_is_retried_and_runs_once(service: Rulebook, bus: RedisClient) -> None:
    e = lease(7, sleep=60)
    publish(bus, [e])
    service.start()
    assert service.proc is not None
    leader = service.proc.pid
    wait(lambda: descendants(leader, "sleep"), 120, "the stage to start", service)
    for pid in descendants(leader, "ansible-playbook") + descendants(leader, "sleep"):
        os.kill(pid, signal.SIGKILL)
    assert discovered(bus) == []
    wait(lambda: discovered(bus), 120, "the retried stage", service)
    wait(lambda: pending(bus) == 0, 10, "the ack", service)
    time.sleep(2)
    assert discovered(bus) == [e["event_id"]]  # once
    assert bus_status(bus)["dead_letters"] == []


def test_rulebook_killed_mid_run_loses_nothing(service: Rulebook, bus: RedisClient) -> None:
    e = lease(8, sleep=60)
    publish(bus, [e])
    service.start()
    assert service.proc is not None
    pid = service.proc.pid
    wait(lambda: descendants(pid, "sleep"), 120, "the stage to start", service)
    service.kill(signal.SIGKILL)  # the rulebook and its playbook, at once
    assert discovered(bus) == [] and pending(bus) == 1
    service.start()  # same consumer name: its own pending entry comes first, delivery 2 (no sleep)
    wait(lambda: discovered(bus), 120, "the entry after the restart", service)
    wait(lambda: pending(bus) == 0, 10, "the ack", service)
    assert discovered(bus) == [e["event_id"]]


def test_redis_restart_between_publish_and_consume(
    service: Rulebook, bus: RedisClient, redis_server: RedisServer
) -> None:
    first = [lease(n) for n in range(10, 15)]
    publish(bus, first)
    bus.close()
    redis_server.restart(signal.SIGKILL)  # AOF (appendfsync always) brings the entries back
    service.start()
    with RedisClient(RedisSettings(redis_server.url)) as c:
        wait(lambda: len(discovered(c)) == 5, 120, "5 entries after the restart", service)
    # and while the service runs: Redis goes away, comes back, the source reconnects
    redis_server.restart(signal.SIGKILL)
    service.wait_for("reconnecting", timeout=30)
    later = lease(20)
    with RedisClient(RedisSettings(redis_server.url)) as c:
        publish(c, [later])
        wait(lambda: later["event_id"] in discovered(c), 120, "the entry after the reconnect", service)
        wait(lambda: pending(c) == 0, 10, "acks", service)
        assert sorted(discovered(c)) == sorted(str(e["event_id"]) for e in [*first, later])
    assert service.running()


def test_malformed_entries_are_dead_lettered_and_the_service_runs_on(service: Rulebook, bus: RedisClient) -> None:
    service.start()
    service.wait_for("consuming bm:events:dhcp_lease", timeout=60)
    good = lease(30)
    junk = {
        "not JSON": "{nope",
        "wrong version": env.encode(good).replace('"version":1', '"version":2'),
        "missing fields": '{"version": 1, "event_type": "dhcp_lease"}',
        "wrong types": env.encode(good).replace('"source":"test"', '"source":42'),
        "1 MiB": '{"data":"' + "x" * (1024 * 1024) + '"}',
    }
    for raw in junk.values():
        bus.call("XADD", "bm:events:dhcp_lease", "*", "envelope", raw)
    publish(bus, [good])
    wait(lambda: discovered(bus) == [good["event_id"]], 120, "the good entry", service)
    dead = bus_status(bus, dead_letters=20)["dead_letters"]
    assert len(dead) == len(junk)
    assert all(d["reason"] for d in dead)
    assert service.running()
    wait(lambda: pending(bus) == 0, 10, "acks", service)
    size = max(int(text(pairs(r[1])["raw_bytes"])) for r in bus.call("XRANGE", env.DEAD_LETTER_STREAM, "-", "+"))
    assert size > 1024 * 1024  # the reason says how big it was; only 64 KiB of it are kept


def test_service_rulebook_has_a_rule_for_every_consumed_type() -> None:
    """rulebooks/lifecycle.yml: every event type the bus source consumes has a rule (else nobody acknowledges it and
    it ends in the dead-letter stream), and every bus rule's type is consumed."""
    import yaml  # noqa: PLC0415

    path = Path(__file__).resolve().parents[3] / "rulebooks/lifecycle.yml"
    [ruleset] = yaml.safe_load(path.read_text())
    [bus_source] = [s["bm.lifecycle.redis_streams"] for s in ruleset["sources"] if "bm.lifecycle.redis_streams" in s]
    consumed = set(bus_source["event_types"])
    ruled = set()
    for rule in ruleset["rules"]:
        ruled.update(re.findall(r'event\.event_type == "([a-z0-9_]+)"', str(rule.get("condition", ""))))
    assert consumed == ruled, (
        f"consumed without a rule: {consumed - ruled}; rule without the type consumed: {ruled - consumed}"
    )
