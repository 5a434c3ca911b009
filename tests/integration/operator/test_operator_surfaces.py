"""bm.lifecycle.reset and bm.lifecycle.status against the real stack (NetBox, Redis), read back through pynetbox and
redis-py, never through the modules under test."""

from __future__ import annotations

import datetime
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pynetbox
import pytest
import redis

from helpers import ROOT, ansible_playbook, textfile_samples

pytestmark = [pytest.mark.stack]

TIMESTAMPS = [
    "discovered_at",
    "pxe_boot_initiated_at",
    "validation_completed_at",
    "hardened_at",
    "last_monitored_at",
    "lifecycle_changed_at",
]


@pytest.fixture
def nb(stack: dict[str, str], netbox: pynetbox.api, redis_client: redis.Redis) -> Iterator[pynetbox.api]:
    """NetBox and the bus reset before the test; NetBox reset to the template after it, as the other tiers leave it."""
    yield netbox
    subprocess.run([ROOT / "scripts" / "stack.sh", "reset"], check=False, capture_output=True)


def run(playbook: str, stack: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    keys = ("NETBOX_API", "NETBOX_TOKEN", "BM_REDIS_URL")
    return ansible_playbook(f"bm.lifecycle.{playbook}", *args, timeout=300, **{k: stack[k] for k in keys})


def cf(device: Any, name: str) -> Any:
    value = device.custom_fields.get(name)
    return value["value"] if isinstance(value, dict) and "value" in value else value


def journal(nb: pynetbox.api, device_id: int) -> list[Any]:
    rows = nb.extras.journal_entries.filter(assigned_object_type="dcim.device", assigned_object_id=device_id)
    return sorted(rows, key=lambda r: r.id)


def iso(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def srv001(nb: pynetbox.api, state: str, **fields: Any) -> Any:
    device = nb.dcim.devices.get(name="srv001")
    device.update({"custom_fields": {"lifecycle_state": state, **fields}})
    return nb.dcim.devices.get(device.id)


def confirm(*more: str) -> list[str]:
    return ["-e", "device=srv001", "-e", "confirm_reset=srv001", *more]


def test_reset_check_apply_and_apply_again(nb: pynetbox.api, stack: dict[str, str]) -> None:
    stamp = "2026-11-01T00:00:00Z"
    before = srv001(nb, "hardening_failed", **dict.fromkeys(TIMESTAMPS, stamp))
    entries = len(journal(nb, before.id))

    checked = run("reset", stack, *confirm("--check", "--diff"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert '-        "lifecycle_state": "hardening_failed"' in checked.stdout
    assert '+        "hardened_at": null' in checked.stdout
    unchanged = nb.dcim.devices.get(before.id)
    assert dict(unchanged.custom_fields) == dict(before.custom_fields)
    assert len(journal(nb, before.id)) == entries

    applied = run("reset", stack, *confirm("-e", "reason='mainboard replaced, ticket 1240'"))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    after = nb.dcim.devices.get(before.id)
    assert cf(after, "lifecycle_state") == "staged"
    assert {name: cf(after, name) for name in TIMESTAMPS} == dict.fromkeys(TIMESTAMPS)
    written = journal(nb, before.id)
    assert len(written) == entries + 1
    assert written[-1].kind.value == "warning"
    assert "lifecycle_state hardening_failed -> staged" in written[-1].comments
    assert "why: operator reset to staged: mainboard replaced, ticket 1240" in written[-1].comments

    again = run("reset", stack, *confirm())
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0", again.stdout), again.stdout
    assert len(journal(nb, before.id)) == entries + 1


def test_reset_of_a_validating_device_revokes_its_token(
    nb: pynetbox.api, stack: dict[str, str], redis_client: redis.Redis
) -> None:
    device = srv001(nb, "validating", lifecycle_changed_at=iso(datetime.datetime.now(datetime.UTC)))
    token_key = f"bm:validation_token:{device.id}"
    redis_client.set(token_key, "sha256-of-a-token", ex=600)
    proc = run("reset", stack, *confirm())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cf(nb.dcim.devices.get(device.id), "lifecycle_state") == "staged"
    assert redis_client.exists(token_key) == 0


def test_reset_refuses_a_device_of_another_tenant(nb: pynetbox.api, stack: dict[str, str]) -> None:
    device = nb.dcim.devices.get(name="srv001")
    device.update({"tenant": None, "custom_fields": {"lifecycle_state": "hardening_failed"}})
    before = dict(nb.dcim.devices.get(device.id).custom_fields)
    proc = run("reset", stack, *confirm())
    assert proc.returncode != 0
    assert "belongs to no tenant, not baremetal-staging" in proc.stdout + proc.stderr
    assert dict(nb.dcim.devices.get(device.id).custom_fields) == before
    assert journal(nb, device.id) == []


def add_device(nb: pynetbox.api, name: str, state: str, tenant: bool = True, **fields: Any) -> Any:
    template = nb.dcim.devices.get(name="srv001")
    return nb.dcim.devices.create(
        name=name,
        device_type=template.device_type.id,
        role=template.role.id,
        site=template.site.id,
        tenant=template.tenant.id if tenant else None,
        custom_fields={"lifecycle_state": state, **fields},
    )


def test_status_shows_states_stuck_devices_and_the_bus(
    nb: pynetbox.api, stack: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    srv001(nb, "validating", lifecycle_changed_at=iso(now - datetime.timedelta(hours=2)))
    add_device(nb, "srv002", "monitored", lifecycle_changed_at=iso(now - datetime.timedelta(days=3)))
    add_device(nb, "srv003", "hardening", lifecycle_changed_at=iso(now - datetime.timedelta(minutes=5)))
    add_device(nb, "other001", "validating", tenant=False, lifecycle_changed_at=iso(now - datetime.timedelta(days=1)))
    redis_client.xadd("bm:events:dhcp_lease", {"envelope": "{}"})
    redis_client.xadd("bm:events:dhcp_lease", {"envelope": "{}"})
    redis_client.xgroup_create("bm:events:dhcp_lease", "bm-lifecycle", id="0")
    redis_client.xreadgroup("bm-lifecycle", "pytest", {"bm:events:dhcp_lease": ">"}, count=1)
    redis_client.xadd("bm:events:dead_letter", {"stream": "bm:events:dhcp_lease", "reason": "pytest"})
    textfile = tmp_path / "prom" / "bm_lifecycle.prom"
    textfile.parent.mkdir()

    checked = run("status", stack, "-e", f"bm_status_textfile={textfile}", "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert not textfile.exists()

    proc = run("status", stack, "-e", f"bm_status_textfile={textfile}", "-e", "bm_status_stuck_minutes=60")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"validating  srv001  since \S+ \(lifecycle_changed_at\)  0d 2h 0m  STUCK", proc.stdout)
    assert re.search(r"hardening  srv003  since \S+ \(lifecycle_changed_at\)  0d 0h [45]m\"", proc.stdout)
    assert "other001" not in proc.stdout
    assert "bm:events:dhcp_lease: 2 entries, 1 pending" in proc.stdout

    got = textfile_samples(textfile)
    assert got['bm_lifecycle_devices{state="validating"}'] == 1
    assert got['bm_lifecycle_devices{state="monitored"}'] == 1
    assert got['bm_lifecycle_devices{state="hardening"}'] == 1
    assert got['bm_lifecycle_stuck_devices{state="validating"}'] == 1
    assert got['bm_lifecycle_stuck_devices{state="hardening"}'] == 0
    assert got['bm_lifecycle_stuck_devices{state="monitored"}'] == 0
    assert 7200 <= got['bm_lifecycle_state_age_max_seconds{state="validating"}'] < 7200 + 300
    assert got['bm_events_stream_length{stream="bm:events:dhcp_lease"}'] == 2
    assert got['bm_events_pending{stream="bm:events:dhcp_lease",group="bm-lifecycle"}'] == 1
    assert got["bm_events_dead_letters"] == 1
    assert abs(got["bm_lifecycle_status_timestamp_seconds"] - now.timestamp()) < 300
    assert not [p.name for p in textfile.parent.iterdir() if p != textfile]  # no temporary file left behind
