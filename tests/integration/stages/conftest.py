"""Fixtures of the stage integration tests: real NetBox and Redis (the stack), a mock iLO 5, the stage playbooks run
as a user (or the rulebook) would, and a raw reader of what they wrote."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pynetbox
import pytest
import redis

from helpers import ROOT, ansible_playbook

testing = pytest.importorskip("bm_mock_ilo.testing", reason="the mock iLO fleet (issue 4) is not available")

SRV001_BMC_MAC = "94:40:c9:5e:7a:b0"
GROUP = "bm-lifecycle"


def ca_path() -> str:
    from bm_mock_ilo.cli import DEFAULT_STATE  # noqa: PLC0415

    return str(DEFAULT_STATE / "cert.pem")


@pytest.fixture
def fleet() -> Iterator[Any]:
    """One mock iLO 5 (factory state, host Off), fast POST."""
    from bm_mock_ilo.bmc import Settings  # noqa: PLC0415

    with testing.start_fleet(1, settings=Settings(manager_reset_seconds=1.0, post_seconds=0.5)) as handle:
        yield handle


@dataclass
class Run:
    """One ansible-playbook run: return code, wall time, per-host task results (JSON callback)."""

    rc: int
    seconds: float
    stdout: str
    stderr: str
    hosts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def netbox_requests(self) -> dict[str, int]:
        return {h: sum(int(r.get("netbox_requests") or 0) for r in rs) for h, rs in self.hosts.items()}

    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Stages:
    """Runs stage playbooks with the stack's settings plus the BMC and PXE settings of this test."""

    env: dict[str, str]
    bus: redis.Redis
    tmp: Path
    measurements: list[dict[str, Any]] = field(default_factory=list)

    def run(self, playbook: str, *args: str, **env: str) -> Run:
        started = time.monotonic()
        proc = ansible_playbook(
            f"bm.lifecycle.{playbook}",
            *args,
            timeout=300,
            **{
                **self.env,
                "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
                "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
                **env,
            },
        )
        run = Run(proc.returncode, time.monotonic() - started, proc.stdout, proc.stderr)
        try:
            document = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(
                f"no JSON from ansible-playbook: {proc.stdout[-3000:]} {proc.stderr[-3000:]}"
            ) from None
        for play in document["plays"]:
            for task in play["tasks"]:
                for host, result in task["hosts"].items():
                    run.hosts.setdefault(host, []).append({**result, "_task": task["task"]["name"]})
        self.measurements.append({"playbook": playbook, "seconds": run.seconds, "netbox": run.netbox_requests()})
        return run

    # --- the bus, as the event source would hand it over ------------------------------------------------------------

    def publish(self, event_type: str, data: dict[str, Any], device: dict[str, Any] | None = None) -> dict[str, Any]:
        envelope = {
            "version": 1,
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": "pytest",
            "causation_id": None,
            "device": device,
            "data": data,
        }
        stream = f"bm:events:{event_type}"
        with contextlib.suppress(redis.ResponseError):
            self.bus.xgroup_create(stream, GROUP, id="0", mkstream=True)
        self.bus.xadd(stream, {"envelope": json.dumps(envelope)})
        return envelope

    def take(self, event_type: str, count: int = 50) -> dict[str, Any]:
        """Read new entries with the consumer group, as bm.lifecycle.redis_streams does: the batch event."""
        stream = f"bm:events:{event_type}"
        with contextlib.suppress(redis.ResponseError):
            self.bus.xgroup_create(stream, GROUP, id="0", mkstream=True)
        rows: Any = self.bus.xreadgroup(GROUP, "pytest", {stream: ">"}, count=count) or []
        entries = [
            {
                "stream": stream,
                "id": entry_id,
                "group": GROUP,
                "delivery_count": 1,
                "envelope": json.loads(f["envelope"]),
            }
            for _, items in rows
            for entry_id, f in items
        ]
        return {"event_type": event_type, "stream": stream, "group": GROUP, "consumer": "pytest",
                "batch_size": len(entries), "entries": entries}  # fmt: skip

    def batch_file(self, batch: dict[str, Any]) -> str:
        path = self.tmp / f"batch-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps({"bm_batch": batch}))
        return f"@{path}"

    def pending(self, event_type: str) -> int:
        try:
            return int(self.bus.xpending(f"bm:events:{event_type}", GROUP)["pending"])
        except redis.ResponseError:
            return 0

    def events(self, event_type: str) -> list[dict[str, Any]]:
        rows: Any = self.bus.xrange(f"bm:events:{event_type}")
        return [json.loads(f["envelope"]) for _, f in rows]


def clean_srv001(nb: pynetbox.api) -> None:
    """srv001 as the demo data registers it, whatever an earlier session left in the shared template database:
    staged, not hardened, no oob_ip, no IPs, no journal entries."""
    srv = nb.dcim.devices.get(name="srv001")
    for entry in nb.extras.journal_entries.filter(assigned_object_type="dcim.device", assigned_object_id=srv.id):
        entry.delete()
    if (
        srv.oob_ip is not None
        or cf(srv, "lifecycle_state") != "staged"
        or any(cf(srv, f) for f in ("hardened_at", "discovered_at", "pxe_boot_initiated_at"))
    ):
        nb.http_session.patch(
            f"{nb.base_url}/dcim/devices/{srv.id}/",
            json={
                "oob_ip": None,
                "custom_fields": {
                    "lifecycle_state": "staged",
                    "hardened_at": None,
                    "discovered_at": None,
                    "pxe_boot_initiated_at": None,
                    "lifecycle_changed_at": None,
                },
            },
            headers={"Authorization": f"Bearer {nb.token}"},
        ).raise_for_status()
    for iface in nb.dcim.interfaces.filter(device_id=srv.id):
        for ip in nb.ipam.ip_addresses.filter(interface_id=iface.id):
            ip.delete()


@pytest.fixture
def stages(
    stack: dict[str, str], netbox: pynetbox.api, redis_client: redis.Redis, fleet: Any, tmp_path: Path
) -> Iterator[Stages]:
    clean_srv001(netbox)
    boot = tmp_path / "boot"
    boot.mkdir()
    bmc = fleet[0]
    env = {
        "NETBOX_API": stack["NETBOX_API"],
        "NETBOX_TOKEN": stack["NETBOX_TOKEN"],
        "BM_REDIS_URL": stack["BM_REDIS_URL"],
        "BM_BMC_USERNAME": bmc.username,
        "BM_BMC_PASSWORD": bmc.password,
        "BM_BMC_CA_PATH": ca_path(),
        "BM_BMC_ADDRESSES": json.dumps({"srv001": bmc.baseuri}),
        "BM_PXE_BOOT_DIR": str(boot),
        "BM_PXE_KERNEL_URL": "http://127.0.0.1:8080/validation/vmlinuz",
        "BM_PXE_INITRD_URL": "http://127.0.0.1:8080/validation/initrd.img",
        "BM_VALIDATION_CALLBACK_URL": "http://127.0.0.1:5000/api/v1/validation/report",
    }
    yield Stages(env, redis_client, tmp_path)
    # Leave the shared NetBox as the template had it: the next session bootstraps on top of the live database.
    subprocess.run([ROOT / "scripts" / "stack.sh", "reset"], check=False, capture_output=True)


# --- the raw reader: pynetbox, never the modules under test ---------------------------------------------------------


def cf(device: Any, name: str) -> Any:
    value = device.custom_fields.get(name)
    return value["value"] if isinstance(value, dict) and "value" in value else value


def journal(nb: pynetbox.api, device: Any) -> list[str]:
    rows = nb.extras.journal_entries.filter(assigned_object_type="dcim.device", assigned_object_id=device.id)
    return [r.comments for r in sorted(rows, key=lambda r: r.id)]


def bmc_ips(nb: pynetbox.api, device: Any) -> list[tuple[str, str]]:
    iface = nb.dcim.interfaces.get(device_id=device.id, name="ilo")
    return sorted((str(ip.address), str(ip.status.value)) for ip in nb.ipam.ip_addresses.filter(interface_id=iface.id))


def snapshot(nb: pynetbox.api) -> dict[str, Any]:
    """Everything a stage could write: devices' custom fields and oob_ip, IPs, journal entries."""
    devices = {d.name: (dict(d.custom_fields), d.oob_ip.id if d.oob_ip else None) for d in nb.dcim.devices.all()}
    ips = sorted((str(ip.address), str(ip.status.value), ip.assigned_object_id) for ip in nb.ipam.ip_addresses.all())
    return {"devices": devices, "ips": ips, "journal": len(list(nb.extras.journal_entries.all()))}
