"""Stages hardening and monitoring end to end: real NetBox and Redis (the stack), a mock iLO 5, the playbooks run as a
user would, checked through pynetbox, raw Redfish GETs and the mock's counters."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pynetbox
import pytest
import redis

from helpers import VENV_BIN, ansible_env, ansible_playbook
from integration.redfish.conftest import ca_path

pytestmark = [pytest.mark.stack, pytest.mark.slow]

VAULT_PASSWORD = "vault-pass-for-tests"
SNMP_AUTH = "snmp-auth-secret"


def vault_file(tmp: Path) -> Path:
    path = tmp / "vault-pass"
    path.write_text(VAULT_PASSWORD + "\n")
    path.chmod(0o600)
    return path


def seed_credentials(tmp: Path, device: str, username: str, password: str) -> Path:
    """What an operator does once per site: the factory credential of the device, Vault-encrypted."""
    directory = tmp / "credentials"
    directory.mkdir(mode=0o700, exist_ok=True)
    plain = directory / f"{device}.yml"
    plain.write_text(f"bmc_username: {username}\nbmc_password: {json.dumps(password)}\n")
    subprocess.run(
        [str(VENV_BIN / "ansible-vault"), "encrypt", str(plain), "--vault-password-file", str(vault_file(tmp))],
        check=True,
        capture_output=True,
        env=ansible_env(),
    )
    return directory


def decrypt(tmp: Path, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [str(VENV_BIN / "ansible-vault"), "view", str(path), "--vault-password-file", str(tmp / "vault-pass")],
        check=True,
        capture_output=True,
        text=True,
        env=ansible_env(),
    ).stdout
    import yaml  # noqa: PLC0415

    data: dict[str, Any] = yaml.safe_load(out)
    return data


def raw_get(bmc: Any, path: str, username: str, password: str) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=ca_path())
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    request = urllib.request.Request(f"{bmc.base_url}{path}", headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:
        return json.load(answer)


def stage_env(stack: dict[str, str], tmp: Path, credentials: Path) -> dict[str, str]:
    return {
        **stack,
        "ANSIBLE_VAULT_PASSWORD_FILE": str(tmp / "vault-pass"),
        "BM_BMC_CREDENTIALS_DIR": str(credentials),
        "BM_BMC_CA_PATH": ca_path(),
        "BM_SYSLOG_SERVER": "10.1.100.10",
        "BM_SNMPV3_USER": "monitoring",
        "BM_SNMPV3_AUTH_PASSPHRASE": SNMP_AUTH,
        "BM_SNMPV3_PRIVACY_PASSPHRASE": "snmp-priv-secret",
        "BM_METRICS_DIR": str(tmp / "metrics"),
        "BM_PROMETHEUS_TEXTFILE": str(tmp / "textfile" / "bm_redfish.prom"),
    }


def set_state(netbox: pynetbox.api, name: str, state: str) -> Any:
    device = netbox.dcim.devices.get(name=name)
    device.custom_fields["lifecycle_state"] = state
    device.save()
    return device


def journal(netbox: pynetbox.api, device_id: int) -> list[str]:
    entries = netbox.extras.journal_entries.filter(assigned_object_type="dcim.device", assigned_object_id=device_id)
    return [e.comments for e in entries]


def addresses(bmc: Any) -> str:
    return json.dumps(
        {
            "bm_bmc_addresses": {"srv001": bmc.baseuri},
            "bm_bmc_baseline": {
                "min_password_length": 12,
                "snmpv1_enabled": False,
                "ipmi_enabled": False,
                "virtual_media_enabled": False,
                "reset_interval": 0.5,
                "reset_timeout": 60,
            },
        }
    )


def test_hardening_then_monitoring(stack, netbox, redis_client: redis.Redis, fleet, tmp_path: Path) -> None:
    bmc = fleet[0]
    device = set_state(netbox, "srv001", "validation_completed")
    credentials = seed_credentials(tmp_path, "srv001", bmc.username, bmc.password)
    env = stage_env(stack, tmp_path, credentials)

    run = ansible_playbook("bm.lifecycle.bmc_hardening", "-e", "device=srv001", "-e", addresses(bmc), **env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    stored = decrypt(tmp_path, credentials / "srv001.yml")
    new_password = stored["bmc_password"]
    assert "bmc_password_pending" not in stored and new_password != bmc.password
    assert new_password not in run.stdout + run.stderr and SNMP_AUTH not in run.stdout + run.stderr
    assert (credentials / "srv001.yml").read_text().startswith("$ANSIBLE_VAULT;")

    hardened = netbox.dcim.devices.get(device.id)
    assert hardened.custom_fields["lifecycle_state"] in ("staged", {"value": "staged", "label": "staged"}) or (
        hardened.custom_fields["lifecycle_state"].get("value") == "staged"
    )
    assert hardened.custom_fields["hardened_at"]
    counters = fleet.counters(0)
    assert counters["manager_resets"] == 1
    # the BMC now takes the stored password (raw reader), and the baseline is there
    protocol = raw_get(bmc, "/redfish/v1/Managers/1/NetworkProtocol", bmc.username, new_password)
    assert protocol["IPMI"]["ProtocolEnabled"] is False and protocol["VirtualMedia"]["ProtocolEnabled"] is False
    assert protocol["Oem"]["Hpe"]["RemoteSyslogServer"] == "10.1.100.10"
    assert any("hardening -> staged" in c for c in journal(netbox, device.id))
    completed: list[Any] = redis_client.xrange("bm:events:hardening_completed")  # type: ignore[assignment]
    assert len(completed) == 1

    # monitoring of this one device by hand in check mode: it polls, and writes no file and nothing to NetBox
    run = ansible_playbook("bm.lifecycle.monitoring", "-e", "device=srv001", "-e", addresses(bmc), "--check", **env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "1/1 BMCs polled" in run.stdout, run.stdout[-3000:]
    assert not (tmp_path / "metrics").exists() or not os.listdir(tmp_path / "metrics")
    assert not netbox.dcim.devices.get(device.id).custom_fields["last_monitored_at"]
    # one that does not exist: a clear error, nothing polled
    run = ansible_playbook("bm.lifecycle.monitoring", "-e", "device=nosuch", "-e", addresses(bmc), **env)
    assert run.returncode != 0 and "'nosuch': no single NetBox device has that id or name" in run.stdout, run.stdout
    assert not netbox.dcim.devices.get(device.id).custom_fields["last_monitored_at"]

    # monitoring: first successful poll moves it to monitored, writes the JSON file, the textfile and NetBox
    run = ansible_playbook("bm.lifecycle.monitoring", "-e", addresses(bmc), **env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert new_password not in run.stdout + run.stderr
    monitored = netbox.dcim.devices.get(device.id)
    state = monitored.custom_fields["lifecycle_state"]
    assert (state.get("value") if isinstance(state, dict) else state) == "monitored"
    assert monitored.custom_fields["last_monitored_at"]
    assert monitored.custom_fields["last_power_watts"] is not None
    files = os.listdir(tmp_path / "metrics")
    assert len(files) == 1 and files[0].startswith("srv001-")
    document = json.loads((tmp_path / "metrics" / files[0]).read_text())
    assert document["device_name"] == "srv001" and document["metrics"]["cpu"]["count"] >= 1
    assert 'bm_redfish_up{device="srv001"} 1' in (tmp_path / "textfile" / "bm_redfish.prom").read_text()
    assert fleet.state(0)["Sessions"] == 0  # Basic auth everywhere: no session left behind


def test_hardening_failure_names_the_step(stack, netbox, redis_client: redis.Redis, fleet, tmp_path: Path) -> None:
    bmc = fleet[0]
    fleet.set_state(0, Settings={"license": "standard"})
    device = set_state(netbox, "srv001", "validation_completed")
    credentials = seed_credentials(tmp_path, "srv001", bmc.username, bmc.password)
    env = stage_env(stack, tmp_path, credentials)
    run = ansible_playbook("bm.lifecycle.bmc_hardening", "-e", "device=srv001", "-e", addresses(bmc), **env)
    assert run.returncode != 0
    failed = netbox.dcim.devices.get(device.id)
    state = failed.custom_fields["lifecycle_state"]
    assert (state.get("value") if isinstance(state, dict) else state) == "hardening_failed"
    entries = journal(netbox, device.id)
    assert any("hardening step syslog failed" in c and "RemoteSyslog" in c for c in entries), entries
    assert fleet.counters(0)["manager_resets"] == 0
    failed_events: list[Any] = redis_client.xrange("bm:events:stage_failed")  # type: ignore[assignment]
    assert len(failed_events) == 1
    # the pending password was stored before the BMC was touched, and the BMC still has the factory one
    assert decrypt(tmp_path, credentials / "srv001.yml")["bmc_password"] == bmc.password
