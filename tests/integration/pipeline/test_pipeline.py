"""The whole pipeline on the real stack: DHCP hook -> rulebook -> every stage -> NetBox, for simulated servers.

The servers are mock iLO 5s whose simulated hosts post the validation report when they PXE-boot; everything else is
the real thing. Verified through raw readers (pynetbox, Redis, the mock's counters), never through the stages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pynetbox
import pytest
import redis

from bm_lab.chaos import bus_entries
from bm_lab.sim import TIMESTAMPS, SimResult, build_parser, run
from bm_mock_ilo.models import PROFILES

pytestmark = pytest.mark.slow


def run_sim(workdir: Path, count: int) -> SimResult:
    args = build_parser().parse_args(["--count", str(count), "--timeout", "480", "--workdir", str(workdir)])
    result = run(args)
    log = (result.workdir / "logs" / "rulebook.log").read_text(errors="replace")
    assert result.monitored == count, f"{result.rows}\n{[s.errors for s in result.servers]}\n{log[-6000:]}"
    return result


def assert_server_in_netbox(netbox: pynetbox.api, result: SimResult, index: int) -> None:
    server, row = result.servers[index], result.rows[index]
    device = netbox.dcim.devices.get(server.device_id)
    assert device.serial == server.bmc.serial
    assert device.device_type.model == PROFILES[server.bmc.model].product  # its iLO's generation: Gen10 Plus, Gen11
    assert device.oob_ip.address.split("/")[0] == server.lease_ip  # the leased IP, kept through the renewals, no reboot
    stamps = [row[label] for label, _ in TIMESTAMPS if label != "hardened"] + [row["hardened"]]
    assert all(value is not None for value in stamps), row
    assert row["discovered"] <= row["pxe"] <= row["validated"] <= row["hardened"] <= row["monitored"], row
    interfaces = {i.name: i for i in netbox.dcim.interfaces.filter(device_id=device.id)}
    for nic, mac, switch in zip(("eno1", "eno2"), server.bmc.nic_macs, ("tor1", "tor2"), strict=True):
        assert interfaces[nic].mac_address.lower() == mac
        peers = interfaces[nic].link_peers
        assert len(peers) == 1, nic
        assert (peers[0]["device"]["name"], peers[0]["name"]) == (switch, f"Ethernet{server.bmc.index + 1}")
    counters = result.counters[index]
    assert counters["pxe_boots"] == 1, counters  # exactly one PXE boot, renewals included
    assert sum(counters["resets"].values()) == 1, counters
    assert counters["manager_resets"] == 1, counters  # the hardening baseline's single Manager.Reset


def bus_events(client: redis.Redis) -> list[dict[str, Any]]:
    """Every envelope on the bus's streams (the dead-letter stream excluded)."""
    return [envelope for stream, _id, envelope in bus_entries(client) if stream != "bm:events:dead_letter"]


def assert_event_chain(client: redis.Redis, device_id: int) -> None:
    """Every stage left its event for the device, each caused by an event that is on the bus too."""
    events = bus_events(client)
    by_id = {e["event_id"]: e for e in events}
    mine = [e for e in events if (e.get("device") or {}).get("id") == device_id]
    types = {e["event_type"] for e in mine}
    assert {"device_discovered", "pxe_boot_initiated", "validation_completed", "hardening_completed"} <= types, types
    for event in mine:
        if event["event_type"] in {"device_discovered", "pxe_boot_initiated", "validation_completed"}:
            assert event["causation_id"] in by_id, event
    discovered = next(e for e in mine if e["event_type"] == "device_discovered")
    assert by_id[discovered["causation_id"]]["event_type"] == "dhcp_lease"


def test_one_server_from_lease_to_monitored(netbox: pynetbox.api, redis_client: redis.Redis, tmp_path: Path) -> None:
    result = run_sim(tmp_path, 1)
    assert_server_in_netbox(netbox, result, 0)
    assert_event_chain(redis_client, result.servers[0].device_id)
    logs = "".join(p.read_text(errors="replace") for p in (result.workdir / "logs").glob("*"))
    assert result.bmc_password not in logs


def test_three_servers_at_once(netbox: pynetbox.api, redis_client: redis.Redis, tmp_path: Path) -> None:
    result = run_sim(tmp_path, 3)
    for index in range(3):
        assert_server_in_netbox(netbox, result, index)
