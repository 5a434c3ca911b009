"""Event bus numbers: publish latency, the DHCP hook's cost, events/s through the source into the rulebook, and stage
runs/s vs servers/s for a burst of dhcp_lease events with batching off and on.

Runs against a private redis-server (loopback, AOF everysec like the stack) and the real ansible-rulebook; every loop is
bounded in count and time. `large` raises the counts and time bounds.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from ansible_collections.bm.lifecycle.plugins.module_utils import _envelope as env
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient, RedisSettings
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_events import publish
from integration.events.redis_server import RedisServer
from integration.events.rulebook import Rulebook

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "collections/ansible_collections/bm/lifecycle/files/dhcp_hook.py"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"

NOOP_RULEBOOK = """---
- name: bench-noop
  hosts: localhost
  sources:
    - bm.lifecycle.redis_streams:
        event_types: [dhcp_lease]
        consumer: bench
        batch_size: {batch_size}
        batch_wait_ms: 50
        max_batches_in_flight: 0
  rules:
    - name: last
      condition: event.entries[-1].envelope.data.last == true
      action:
        debug:
          msg: BENCH-DONE
    - name: no-op
      condition: event.entries[-1].envelope.data.last == false
      action:
        none:
"""

STAGE = """---
- name: Trivial stage
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Publish the follow-ups and acknowledge the batch
      bm.lifecycle.event_publish:
        source: bench.stage
        events: >-
          {%- set out = [] -%}
          {%- for e in bm_batch.entries -%}
          {%- set _ = out.append({'event_type': 'device_discovered', 'cause': e.envelope, 'data': {}}) -%}
          {%- endfor -%}
          {{ out }}
        ack: "{{ bm_batch.entries }}"
"""

STAGE_RULEBOOK = """---
- name: bench-stage
  hosts: localhost
  sources:
    - bm.lifecycle.redis_streams:
        event_types: [dhcp_lease]
        consumer: bench
        batch_size: {batch_size}
        batch_wait_ms: 250
  rules:
    - name: stage
      condition: event.event_type == "dhcp_lease"
      action:
        run_playbook:
          name: {stage}
          extra_vars:
            bm_batch: "{{{{ event }}}}"
"""


def lease(n: int, last: bool = False) -> dict[str, object]:
    return env.new_event("dhcp_lease", {"ip": f"10.0.{n // 250}.{n % 250 + 1}", "n": n, "last": last}, source="bench")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def bench_publish(client: RedisClient, n: int) -> None:
    times = []
    for i in range(n):
        e = lease(i)
        t = time.perf_counter()
        publish(client, [e])
        times.append((time.perf_counter() - t) * 1000)
    print(
        f"publish (WATCH + MULTI/EXEC with dedupe), {n} calls: p50 {pct(times, 50):.2f} ms, p99 {pct(times, 99):.2f} ms"
    )


def bench_hook(url: str, spool: Path, n: int, hook: Path = HOOK) -> list[float]:
    """ISC dhcpd's cost of one lease: dhcpd's execute() waits for the hook, from process start to exit (Redis up,
    the spool empty). Returns the times in ms."""
    environ = {"PATH": "/usr/bin:/bin", "BM_REDIS_URL": url, "BM_HOOK_SPOOL": str(spool), "BM_HOOK_CONFIG": "/none"}
    times = []
    for i in range(n):
        t = time.perf_counter()
        subprocess.run(
            [PYTHON, "-S", str(hook), f"10.9.0.{i % 250 + 1}", f"52:54:0:9:{i // 256:x}:{i % 256:x}", f"ilo-{i}"],
            env=environ, capture_output=True, timeout=10, check=False,
        )  # fmt: skip
        times.append((time.perf_counter() - t) * 1000)
    print(
        f"dhcp hook, ISC dhcpd entry ({PYTHON} -S, process start to exit; dhcpd waits for it), {n} calls: "
        f"median {statistics.median(times):.1f} ms, p95 {pct(times, 95):.1f} ms, max {max(times):.1f} ms"
    )
    return times


def bench_noop(server: RedisServer, work: Path, n: int, batch_size: int, limit_s: float) -> None:
    with RedisClient(RedisSettings(server.url)) as c:
        c.call("FLUSHALL")
    rulebook = work / f"noop-{batch_size}.yml"
    rulebook.write_text(NOOP_RULEBOOK.format(batch_size=batch_size))
    rb = Rulebook(rulebook, work / f"noop-{batch_size}.log", server.url).start()
    try:
        rb.wait_for("consuming bm:events:dhcp_lease", timeout=90)
        events = [lease(i) for i in range(n)] + [lease(n, last=True)]
        with RedisClient(RedisSettings(server.url)) as c:
            for start in range(0, len(events), 500):
                publish(c, events[start : start + 500])
        t = time.monotonic()
        rb.wait_for("BENCH-DONE", timeout=limit_s)
        elapsed = time.monotonic() - t
        label = "off" if batch_size == 1 else f"on (batch_size {batch_size})"
        print(f"source -> rulebook, no-op action, batching {label}: {n + 1} events in {elapsed:.2f} s = "
              f"{(n + 1) / elapsed:.0f} events/s")  # fmt: skip
    finally:
        rb.stop()


def bench_stage(server: RedisServer, work: Path, burst: int, batch_size: int, limit_s: float) -> tuple[float, float]:
    with RedisClient(RedisSettings(server.url)) as c:
        c.call("FLUSHALL")
    (work / "stage").mkdir(exist_ok=True)
    (work / "stage/stage.yml").write_text(STAGE)
    rulebook = work / f"stage-{batch_size}.yml"
    rulebook.write_text(STAGE_RULEBOOK.format(batch_size=batch_size, stage=work / "stage/stage.yml"))
    rb = Rulebook(rulebook, work / f"stage-{batch_size}.log", server.url).start()
    try:
        rb.wait_for("consuming bm:events:dhcp_lease", timeout=90)
        with RedisClient(RedisSettings(server.url)) as c:
            publish(c, [lease(i) for i in range(burst)])
            t = time.monotonic()
            done = 0
            while time.monotonic() - t < limit_s:
                done = int(c.call("XLEN", "bm:events:device_discovered") or 0)
                if done >= burst:
                    break
                time.sleep(0.1)
            elapsed = time.monotonic() - t
        time.sleep(1)  # let the last playbook's recap reach the log
        runs = rb.text().count("PLAY RECAP")
        label = "off" if batch_size == 1 else f"on (batch_size {batch_size})"
        note = "" if done >= burst else f" (time bound {limit_s:.0f} s reached)"
        print(
            f"stage burst of {burst} dhcp_lease, batching {label}: {done} servers by {runs} playbook runs in "
            f"{elapsed:.1f} s = {runs / elapsed:.2f} stage runs/s, {done / elapsed:.2f} servers/s{note}"
        )
        return runs / elapsed, done / elapsed
    finally:
        rb.stop()


def run(large: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        work = Path(tmp)
        server = RedisServer(work / "redis", fsync="everysec")
        server.start()
        try:
            with RedisClient(RedisSettings(server.url)) as c:
                bench_publish(c, 2000 if large else 300)
            bench_hook(server.url, work / "spool", 200 if large else 50)
            bench_noop(server, work, 2000 if large else 300, 1, 300 if large else 90)
            bench_noop(server, work, 2000 if large else 300, 50, 300 if large else 90)
            burst = 100
            _off_runs, off_servers = bench_stage(server, work, burst, 1, 400 if large else 40)
            _on_runs, on_servers = bench_stage(server, work, burst, 50, 120 if large else 60)
            print(f"batching on / off: {on_servers / off_servers:.1f}x servers/s")
        finally:
            server.stop()
