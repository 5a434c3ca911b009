"""The local stack and the NetBox lifecycle schema: idempotent, verified through pynetbox, clear errors."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pynetbox
import pytest
import requests

from helpers import ROOT, ansible_playbook, read_env_file

STACK_SH = ROOT / "scripts" / "stack.sh"
LAB = Path(os.environ.get("BM_LAB_DIR") or ROOT / ".lab")
LIFECYCLE_STATES = {
    "staged", "discovery", "validating", "validation_completed", "hardening", "monitored",
    "provisioning_failed", "validation_failed", "hardening_failed",
}  # fmt: skip


def recap_changed(output: str) -> int:
    """The `changed=` count of localhost in an ansible-playbook PLAY RECAP."""
    match = re.search(r"localhost\s+:.*changed=(\d+)", output)
    assert match, output
    return int(match.group(1))


def test_bootstrap_is_idempotent_and_complete(netbox: pynetbox.api) -> None:
    # The template the fixture restored was bootstrapped once already: a new run must change nothing.
    for playbook in ("bm.lifecycle.bootstrap_netbox", "bm.lifecycle.demo_data"):
        result = ansible_playbook(playbook)
        assert result.returncode == 0, result.stdout + result.stderr
        assert recap_changed(result.stdout) == 0, result.stdout

    fields = {cf.name: cf for cf in netbox.extras.custom_fields.filter(object_type="dcim.device")}
    assert {"lifecycle_state", "discovered_at", "pxe_boot_initiated_at", "hardened_at", "last_monitored_at",
            "last_power_watts"} <= set(fields)  # fmt: skip
    assert fields["lifecycle_state"].type.value == "select"
    assert fields["hardened_at"].type.value == "datetime"
    assert fields["last_power_watts"].type.value == "integer"
    choice_set = netbox.extras.custom_field_choice_sets.get(name="lifecycle_states")
    assert {value for value, _label in choice_set.extra_choices} == LIFECYCLE_STATES
    assert netbox.tenancy.tenants.get(slug="baremetal-staging") is not None


def test_demo_server_is_registered_as_the_plan_says(netbox: pynetbox.api) -> None:
    device = netbox.dcim.devices.get(name="srv001")
    assert device.tenant.slug == "baremetal-staging"
    assert device.device_type.model == "ProLiant DL360 Gen10"
    assert device.custom_fields["lifecycle_state"]["value"] == "staged"
    interfaces = {i.name: i for i in netbox.dcim.interfaces.filter(device_id=device.id)}
    assert set(interfaces) == {"ilo", "eno1", "eno2", "eno3", "eno4"}
    assert interfaces["ilo"].mgmt_only
    macs = list(netbox.dcim.mac_addresses.filter(mac_address="94:40:c9:5e:7a:b0"))
    assert [m.assigned_object_id for m in macs] == [interfaces["ilo"].id]


def test_reset_restores_the_template(netbox: pynetbox.api, stack: dict[str, str]) -> None:
    site = netbox.dcim.sites.create(name="scratch", slug="scratch")
    assert netbox.dcim.sites.get(site.id) is not None
    subprocess.run([STACK_SH, "reset"], check=True)
    fresh = pynetbox.api(stack["NETBOX_API"], token=stack["NETBOX_TOKEN"])
    assert fresh.dcim.sites.get(slug="scratch") is None
    assert fresh.dcim.devices.get(name="srv001") is not None


def test_second_up_changes_nothing(stack: dict[str, str]) -> None:
    pids = {p: (LAB / "run" / p).read_text() for p in ("netbox.pid", "rqworker.pid", "redis.pid")}
    result = subprocess.run([STACK_SH, "up"], capture_output=True, text=True, check=True)
    assert "starting" not in result.stderr, result.stderr
    assert pids == {p: (LAB / "run" / p).read_text() for p in pids}
    assert read_env_file(LAB / "stack.env") == stack


def test_the_token_is_in_no_log_or_output(stack: dict[str, str]) -> None:
    secret = stack["NETBOX_TOKEN"].split(".", 1)[1]
    result = subprocess.run([STACK_SH, "status"], capture_output=True, text=True, check=True)
    assert secret not in result.stdout + result.stderr
    for log in (LAB / "logs").glob("*.log"):
        assert secret not in log.read_text(errors="replace"), log
    assert (LAB / "stack.env").stat().st_mode & 0o077 == 0


def test_snapshot_is_current_for_the_pinned_netbox(stack: dict[str, str]) -> None:
    env = read_env_file(LAB / "secrets.env") | {
        "NETBOX_CONFIGURATION": "bm_netbox_config",
        "NETBOX_ROOT": str(LAB / "netbox"),
        "PYTHONPATH": str(ROOT / "stack" / "netbox"),
        "BM_PG_PORT": stack["BM_PG_PORT"],
        "BM_REDIS_PORT": stack["BM_REDIS_URL"].rsplit(":", 1)[1].split("/")[0],
        "PATH": "/usr/bin:/bin",
    }
    netbox_cli = ROOT / ".lab" / "netbox-venv" / "bin" / "netbox"
    result = subprocess.run([netbox_cli, "migrate", "--check"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_wrong_token_is_a_clear_error(stack: dict[str, str]) -> None:
    wrong = "nbt_wrongkey0001." + "0" * 40
    result = ansible_playbook("bm.lifecycle.bootstrap_netbox", NETBOX_TOKEN=wrong)
    assert result.returncode != 0
    assert re.search(r"403|[Ii]nvalid.*token", result.stdout + result.stderr), result.stdout
    response = requests.get(
        f"{stack['NETBOX_API']}/api/status/", headers={"Authorization": f"Bearer {wrong}"}, timeout=10
    )
    assert response.status_code == 403


def test_netbox_down_is_a_clear_error(stack: dict[str, str], free_port: int) -> None:
    result = ansible_playbook("bm.lifecycle.bootstrap_netbox", NETBOX_API=f"http://127.0.0.1:{free_port}")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert re.search(r"[Cc]onnection refused|Failed to establish|unreachable|ConnectionError", output), output


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def scratch_lab() -> Iterator[Path]:
    """A second, empty lab directory (under .lab/, where the postgres user can reach it); removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="scratch-", dir=ROOT / ".lab"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_port_in_use_is_a_clear_error_and_starts_nothing(scratch_lab: Path, busy_port: int) -> None:
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "BM_LAB_DIR": str(scratch_lab), "BM_PG_PORT": str(busy_port),
           "BM_NETBOX_VENV": str(ROOT / ".lab" / "netbox-venv")}  # fmt: skip
    result = subprocess.run([STACK_SH, "up"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"port 127.0.0.1:{busy_port} (for PostgreSQL) is already in use" in result.stderr
    assert not (scratch_lab / "postgres" / "postmaster.pid").exists()


def test_stale_snapshot_is_refused(scratch_lab: Path, free_port: int) -> None:
    snapshots = scratch_lab / "snapshots"
    snapshots.mkdir()
    (snapshots / "netbox-4.6.0-migrated.sql.gz").write_bytes(b"")
    lab = scratch_lab / "lab"
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "BM_LAB_DIR": str(lab), "BM_NETBOX_SNAPSHOT_DIR": str(snapshots),
           "BM_NETBOX_VENV": str(ROOT / ".lab" / "netbox-venv"), "BM_PG_PORT": str(free_port),
           "BM_REDIS_PORT": str(free_port + 1), "BM_NETBOX_PORT": str(free_port + 2)}  # fmt: skip
    try:
        result = subprocess.run([STACK_SH, "up"], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1
        assert "netbox-4.6.0-migrated.sql.gz does not match the pinned NetBox 4.7.3: it is stale" in result.stderr
    finally:
        subprocess.run([STACK_SH, "down"], env=env, capture_output=True, check=False, timeout=60)
