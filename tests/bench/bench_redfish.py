"""Redfish stages against the mock iLO 5 fleet (a subprocess, so its CPU is not counted):

1. monitoring: one bm.lifecycle.redfish_metrics cycle over 100 BMCs (1,000 when large) run as a playbook; wall time
   and CPU-seconds (ansible-playbook and its workers), and the same 100 BMCs polled the way a user would write it
   today: a playbook of community.general.redfish_info GetSystemInventory, GetChassisPower and GetChassisThermals
   tasks per host with forks; the ratio of the two.
2. hardening: bm.lifecycle.ilo_baseline against the same baseline written with community.general
   redfish_command/redfish_config (plus ansible.builtin.uri where community.general has no command, e.g. SNMPv3
   users, SNMPv1, remote syslog), each on its own factory-state BMC: HTTP requests (the mock's counters) and wall time,
   first run and second run.
"""

from __future__ import annotations

import json
import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from helpers import ROOT, VENV_BIN, ansible_env

NEW_PASSWORD = "Bench-N3w-Passw0rd"
CG_FORKS = 20


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _playbook(path: Path, *args: str, timeout: float = 1800) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    cpu, started = _cpu(), time.monotonic()
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), str(path), *args],
        cwd=ROOT,
        env=ansible_env(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return time.monotonic() - started, _cpu() - cpu, proc


def _results(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    try:
        document = json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError(f"ansible-playbook failed: {proc.stdout[-1500:]} {proc.stderr[-1500:]}") from None
    return [h for task in document["plays"][-1]["tasks"] for h in task["hosts"].values()]


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=1))
    return path


def _ca() -> str:
    from bm_mock_ilo.cli import DEFAULT_STATE  # noqa: PLC0415

    return str(DEFAULT_STATE / "cert.pem")


def monitoring(fleet: Any, tmp: Path, count: int) -> dict[str, Any]:
    """One redfish_metrics cycle over the first ``count`` BMCs, run as a playbook."""
    bmcs = list(fleet)[:count]
    batch = [{"entry": {"stream": None, "id": None, "envelope": None}, "device": {"id": None, "name": b.name},
              "status": "active", "facts": {}} for b in bmcs]  # fmt: skip
    play = [
        {
            "name": "bench monitoring",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "cycle",
                    "bm.lifecycle.redfish_metrics": {
                        "batch": batch,
                        "addresses": {b.name: f"{b.address}:{b.port}" for b in bmcs},
                        "credentials": {b.name: {"username": b.username, "password": b.password} for b in bmcs},
                        "ca_path": _ca(),
                        "update_netbox": False,
                        "metrics_dir": str(tmp / "metrics"),
                        "textfile": str(tmp / "bm.prom"),
                        "concurrency": 100,
                        "timeout": 60,
                    },
                }
            ],
        }
    ]
    wall, cpu, proc = _playbook(_write(tmp / "monitoring.yml", play))
    result = _results(proc)[0]
    if result.get("failed"):
        raise RuntimeError(result.get("msg"))
    return {
        "wall": wall,
        "cpu": cpu,
        "ok": result["ok"],
        "polled": result["polled"],
        "requests": result["requests"],
        "cycle": result["cycle_seconds"],
    }


def redfish_info(fleet: Any, tmp: Path, count: int) -> dict[str, Any]:
    """The same polling as community.general.redfish_info tasks per host, forks=CG_FORKS."""
    hosts = {
        f"bmc{i}": {
            "baseuri": b.baseuri,
            "bmc_user": b.username,
            "bmc_password": b.password,
            "ansible_connection": "local",
            "ansible_python_interpreter": str(VENV_BIN / "python"),
        }
        for i, b in enumerate(list(fleet)[:count])
    }
    inventory = _write(tmp / "cg-inventory.json", {"all": {"hosts": hosts}})
    common = {
        "baseuri": "{{ baseuri }}",
        "username": "{{ bmc_user }}",
        "password": "{{ bmc_password }}",
        "validate_certs": True,
        "ca_path": _ca(),
    }
    play = [
        {
            "name": "bench redfish_info",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "inventory",
                    "community.general.redfish_info": {
                        "category": "Systems",
                        "command": "GetSystemInventory",
                        **common,
                    },
                },
                {
                    "name": "power",
                    "community.general.redfish_info": {"category": "Chassis", "command": "GetChassisPower", **common},
                },
                {
                    "name": "thermal",
                    "community.general.redfish_info": {
                        "category": "Chassis",
                        "command": "GetChassisThermals",
                        **common,
                    },
                },
            ],
        }
    ]
    wall, cpu, proc = _playbook(_write(tmp / "cg-info.yml", play), "-i", str(inventory), "-f", str(CG_FORKS))
    failed = [r for r in _results(proc) if r.get("failed")]
    return {"wall": wall, "cpu": cpu, "failed": len(failed)}


BASELINE = {
    "admin_password": NEW_PASSWORD,
    "remove_accounts": ["olduser"],
    "min_password_length": 12,
    "snmpv1_enabled": False,
    "ipmi_enabled": False,
    "virtual_media_enabled": False,
    "snmpv3_users": [{"name": "monitoring", "auth_passphrase": "auth-secret-1", "privacy_passphrase": "priv-secret-1"}],
    "syslog_server": "10.1.100.10",
    "syslog_port": 514,
    "reset_interval": 1,
}


def _uri(bmc: Any, method: str, path: str, body: dict[str, Any] | None, codes: list[int]) -> dict[str, Any]:
    task: dict[str, Any] = {
        "url": f"https://{bmc.baseuri}{path}",
        "method": method,
        "user": bmc.username,
        "password": "{{ bm_pw }}",
        "force_basic_auth": True,
        "ca_path": _ca(),
        "status_code": codes,
    }
    if body is not None:
        task.update(body_format="json", body=body)
    return task


def cg_baseline_play(bmc: Any) -> list[dict[str, Any]]:
    """The baseline as a user writes it today with community.general (and uri where it has no command)."""
    common = {
        "baseuri": bmc.baseuri,
        "username": bmc.username,
        "password": "{{ bm_pw }}",
        "validate_certs": True,
        "ca_path": _ca(),
    }
    snmp = "/redfish/v1/Managers/1/SnmpService"
    user = {
        "SecurityName": "monitoring",
        "AuthProtocol": "SHA256",
        "AuthPassphrase": "auth-secret-1",
        "PrivacyProtocol": "AES",
        "PrivacyPassphrase": "priv-secret-1",
    }
    return [
        {
            "name": "cg baseline",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"bm_pw": "{{ bm_current_password }}"},
            "tasks": [
                {
                    "name": "min password length",
                    "community.general.redfish_command": {
                        "category": "Accounts",
                        "command": "UpdateAccountServiceProperties",
                        "account_properties": {"MinPasswordLength": 12},
                        **common,
                    },
                },
                {
                    "name": "delete olduser",
                    "community.general.redfish_command": {
                        "category": "Accounts",
                        "command": "DeleteUser",
                        "account_username": "olduser",
                        **common,
                    },
                },
                {
                    "name": "network protocols",
                    "community.general.redfish_config": {
                        "category": "Manager",
                        "command": "SetNetworkProtocols",
                        "network_protocols": {
                            "IPMI": {"ProtocolEnabled": False},
                            "VirtualMedia": {"ProtocolEnabled": False},
                            "SNMP": {"ProtocolEnabled": True},
                        },
                        **common,
                    },
                },
                {
                    "name": "remote syslog",
                    "ansible.builtin.uri": _uri(
                        bmc,
                        "PATCH",
                        "/redfish/v1/Managers/1/NetworkProtocol",
                        {
                            "Oem": {
                                "Hpe": {
                                    "RemoteSyslogServer": "10.1.100.10",
                                    "RemoteSyslogPort": 514,
                                    "RemoteSyslogEnabled": True,
                                }
                            }
                        },
                        [200],
                    ),
                },
                {
                    "name": "snmpv3 user",
                    "ansible.builtin.uri": _uri(bmc, "POST", f"{snmp}/SNMPUsers", user, [201, 400]),
                },
                {
                    "name": "snmpv1 off",
                    "ansible.builtin.uri": _uri(
                        bmc, "PATCH", snmp, {"SNMPv1Enabled": False, "ReadCommunities": ["", "", ""]}, [200]
                    ),
                },
                {
                    "name": "admin password",
                    "community.general.redfish_command": {
                        "category": "Accounts",
                        "command": "UpdateUserPassword",
                        "account_username": bmc.username,
                        "account_password": NEW_PASSWORD,
                        **common,
                    },
                },
                {"name": "use the new password", "ansible.builtin.set_fact": {"bm_pw": NEW_PASSWORD}},
                {
                    "name": "iLO reset",
                    "community.general.redfish_command": {
                        "category": "Manager",
                        "command": "GracefulRestart",
                        "resource_id": "1",
                        **common,
                    },
                },
                {
                    "name": "wait for the iLO",
                    "ansible.builtin.uri": _uri(bmc, "GET", "/redfish/v1/Managers/1", None, [200]),
                    "register": "bm_up",
                    "until": "bm_up is succeeded",
                    "retries": 60,
                    "delay": 1,
                },
            ],
        }
    ]


def _add_olduser(fleet: Any, index: int) -> None:
    import base64  # noqa: PLC0415
    import ssl  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    bmc = fleet[index]
    token = base64.b64encode(f"{bmc.username}:{bmc.password}".encode()).decode()
    request = urllib.request.Request(
        f"{bmc.base_url}/redfish/v1/AccountService/Accounts",
        data=json.dumps({"UserName": "olduser", "Password": "olduser-pass", "RoleId": "Operator"}).encode(),
        method="POST",
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, context=ssl.create_default_context(cafile=_ca()), timeout=10).close()


def _requests(fleet: Any, index: int) -> int:
    return int(sum(fleet.counters(index)["requests"].values()))


def hardening(fleet: Any, tmp: Path) -> dict[str, Any]:
    """ilo_baseline on BMC 0, the community.general version on BMC 1; two runs each."""
    out: dict[str, Any] = {}
    for index in (0, 1):
        _add_olduser(fleet, index)
        fleet.reset_counters(index)
    ours = fleet[0]
    args = {"address": ours.baseuri, "username": ours.username, "ca_path": _ca(), **BASELINE}
    for label, password in (("first", ours.password), ("second", NEW_PASSWORD)):
        play = [
            {
                "name": "bench ilo_baseline",
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [{"name": "baseline", "bm.lifecycle.ilo_baseline": {**args, "password": password}}],
            }
        ]
        before = _requests(fleet, 0)
        wall, _cpu_s, proc = _playbook(_write(tmp / "ours.yml", play))
        result = _results(proc)[0]
        if result.get("failed"):
            raise RuntimeError(result.get("msg"))
        out[f"ours_{label}"] = {
            "wall": wall,
            "requests": _requests(fleet, 0) - before,
            "changed": result["changed"],
            "module_requests": result["bmc_requests"],
        }
    cg = fleet[1]
    for label, password in (("first", cg.password), ("second", NEW_PASSWORD)):
        before = _requests(fleet, 1)
        wall, _cpu_s, proc = _playbook(
            _write(tmp / "cg.yml", cg_baseline_play(cg)), "-e", json.dumps({"bm_current_password": password})
        )
        results = _results(proc)
        failed = [r.get("msg") for r in results if r.get("failed")]
        out[f"cg_{label}"] = {
            "wall": wall,
            "requests": _requests(fleet, 1) - before,
            "changed": sum(1 for r in results if r.get("changed")),
            "failed": failed[:2],
        }
    out["resets"] = (fleet.counters(0)["manager_resets"], fleet.counters(1)["manager_resets"])
    return out


def run(large: bool) -> None:
    """Print the numbers (see the module docstring)."""
    from bm_mock_ilo.testing import start_fleet  # noqa: PLC0415

    count = 1000 if large else 100
    with tempfile.TemporaryDirectory(prefix="bench-redfish-") as name:
        tmp = Path(name)
        with start_fleet(count, in_process=False, timeout=120) as fleet:
            ours = monitoring(fleet, tmp, count)
            print(
                f"monitoring {ours['polled']} BMCs (redfish_metrics, one process): {ours['ok']} ok, playbook wall "
                f"{ours['wall']:.1f} s (polling {ours['cycle']:.1f} s), CPU {ours['cpu']:.1f} s, "
                f"{ours['requests']} HTTP requests",
                flush=True,
            )
            small = ours if count == 100 else monitoring(fleet, tmp, 100)
            theirs = redfish_info(fleet, tmp, 100)
            print(
                f"100 BMCs: redfish_metrics wall {small['wall']:.1f} s / CPU {small['cpu']:.1f} s vs "
                f"community.general.redfish_info x3 per host (forks={CG_FORKS}) wall {theirs['wall']:.1f} s / CPU "
                f"{theirs['cpu']:.1f} s ({theirs['failed']} failed): ratio wall x{theirs['wall'] / small['wall']:.1f}, "
                f"CPU x{theirs['cpu'] / max(small['cpu'], 0.01):.1f}",
                flush=True,
            )
        with start_fleet(2, in_process=False, extra_args=["--manager-reset-seconds", "3"]) as fleet:
            numbers = hardening(fleet, tmp)
        for key in ("ours_first", "ours_second", "cg_first", "cg_second"):
            n = numbers[key]
            print(
                f"baseline {key}: {n['requests']} HTTP requests, wall {n['wall']:.1f} s, changed {n['changed']}"
                + (f", failed {n['failed']}" if n.get("failed") else ""),
                flush=True,
            )
        print(f"Manager.Reset count (ours, community.general): {numbers['resets']}", flush=True)
