"""bm.lifecycle.status's Prometheus textfile carries the service's own counters, read from the real bus (Redis of the
stack): events handled per stream, stage_failed events per stage, stage durations from the event chain."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pynetbox
import pytest
import redis

from helpers import ROOT, ansible_playbook, textfile_samples

pytestmark = [pytest.mark.stack]


def envelope(event_type: str, data: dict[str, Any], cause: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "version": 1,
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "timestamp": "2026-12-01T19:00:00Z",
        "source": "pytest",
        "causation_id": None if cause is None else cause["event_id"],
        "device": None,
        "data": data,
    }


def add(bus: redis.Redis, entry_id: str, env: dict[str, Any]) -> None:
    bus.xadd(f"bm:events:{env['event_type']}", {"envelope": json.dumps(env)}, id=entry_id)


def test_textfile_has_handled_failures_and_durations(
    stack: dict[str, str], netbox: pynetbox.api, redis_client: redis.Redis, tmp_path: Path
) -> None:
    lease = envelope("dhcp_lease", {"mac": "94:40:c9:5e:7a:b0", "ip": "10.1.100.21"})
    lease2 = envelope("dhcp_lease", {"mac": "94:40:c9:5e:7a:b1", "ip": "10.1.100.22"})
    add(redis_client, "1764000000000-0", lease)
    add(redis_client, "1764000001000-0", lease2)
    add(redis_client, "1764000002500-0", envelope("device_discovered", {"stage": "discovery"}, cause=lease))
    add(redis_client, "1764000009000-0", envelope("stage_failed", {"stage": "discovery"}, cause=lease2))
    for n, stage in enumerate(["provisioning", "provisioning", "hardening"]):
        add(redis_client, f"1764000100000-{n + 1}", envelope("stage_failed", {"stage": stage, "reason": "pytest"}))
    redis_client.xgroup_create("bm:events:dhcp_lease", "bm-lifecycle", id="0")
    rows: Any = redis_client.xreadgroup("bm-lifecycle", "pytest", {"bm:events:dhcp_lease": ">"}, count=10)
    redis_client.xack("bm:events:dhcp_lease", "bm-lifecycle", rows[0][1][0][0])  # 2 read, 1 acknowledged
    textfile = tmp_path / "bm_lifecycle.prom"

    keys = ("NETBOX_API", "NETBOX_TOKEN", "BM_REDIS_URL")
    proc = ansible_playbook(
        "bm.lifecycle.status", "-e", f"bm_status_textfile={textfile}", timeout=300, **{k: stack[k] for k in keys}
    )
    subprocess.run([ROOT / "scripts" / "stack.sh", "reset"], check=False, capture_output=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    got = textfile_samples(textfile)
    assert got['bm_events_handled_total{stream="bm:events:dhcp_lease",group="bm-lifecycle"}'] == 1
    assert got['bm_lifecycle_stage_failures{stage="provisioning"}'] == 2
    assert got['bm_lifecycle_stage_failures{stage="hardening"}'] == 1
    assert got['bm_lifecycle_stage_failures{stage="discovery"}'] == 1
    assert got['bm_lifecycle_stage_seconds_count{event_type="dhcp_lease"}'] == 2
    assert got['bm_lifecycle_stage_seconds_sum{event_type="dhcp_lease"}'] == 10.5
    assert got['bm_lifecycle_stage_seconds_max{event_type="dhcp_lease"}'] == 8.0
    assert not any("stage_seconds" in k and "stage_failed" in k for k in got)
