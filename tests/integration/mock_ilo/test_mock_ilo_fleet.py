"""The fleet as other tests use it: the CLI in a subprocess, PXE-boot callbacks, addresses, an iLO reboot."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import requests

from bm_mock_ilo import Settings
from bm_mock_ilo.testing import BmcInfo, FleetHandle, RedfishClient, start_fleet

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")]
PXE_ONCE = {"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}
RESET = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"


def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``predicate`` (bounded)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_fleet_runs_the_pxe_command(tmp_path: Path) -> None:
    report = tmp_path / "pxe.json"
    command = (
        f"{sys.executable} -c 'import shutil, sys; shutil.copyfileobj(sys.stdin, open(sys.argv[1], \"w\"))' {report}"
    )
    args = ["--post-seconds", "0.2", "--pxe-command", command, "--state-dir", str(tmp_path)]
    with start_fleet(3, in_process=False, extra_args=args, state_dir=tmp_path) as fleet:
        assert len({bmc.port for bmc in fleet}) == 3
        assert len({bmc.bmc_mac for bmc in fleet}) == 3
        client = RedfishClient.admin(fleet[2])
        assert client.patch("/redfish/v1/Systems/1", PXE_ONCE).ok
        assert client.post(RESET, {"ResetType": "On"}).ok
        wait_until(report.exists)
        wait_until(lambda: report.read_text().endswith("}"))
        posted = json.loads(report.read_text())
        assert (posted["name"], posted["port"], posted["serial"]) == (fleet[2].name, fleet[2].port, fleet[2].serial)
        assert fleet.counters(2)["pxe_boots"] == 1
        assert fleet.counters(0)["pxe_boots"] == 0


def test_same_seed_same_fleet(tmp_path: Path) -> None:
    with start_fleet(2, seed="abc", in_process=False, state_dir=tmp_path) as first:
        identities = [(b.serial, b.bmc_mac, b.nic_macs, b.password) for b in first]
    with start_fleet(2, seed="abc", state_dir=tmp_path) as second:
        assert identities == [(b.serial, b.bmc_mac, b.nic_macs, b.password) for b in second]


def test_one_address_per_bmc(tmp_path: Path) -> None:
    port = free_port()
    args = ["--first-address", "127.0.1.1", "--base-port", str(port)]
    with start_fleet(2, in_process=False, extra_args=args, state_dir=tmp_path) as fleet:
        assert [(b.address, b.port) for b in fleet] == [("127.0.1.1", port), ("127.0.1.2", port)]
        nic = RedfishClient.admin(fleet[1]).get("/redfish/v1/Managers/1/EthernetInterfaces/1").json()
        assert nic["IPv4Addresses"][0]["Address"] == "127.0.1.2"
        ca = tmp_path / "127.0.1.1+2" / "cert.pem"
        verified = requests.get(f"{fleet[1].base_url}/redfish/v1/", verify=str(ca), timeout=10)
        assert verified.json()["Vendor"] == "HPE"


def test_in_process_pxe_callback_sees_the_bmc(tmp_path: Path) -> None:
    booted: list[BmcInfo] = []
    with start_fleet(2, settings=Settings(post_seconds=0.1), on_pxe_boot=booted.append, state_dir=tmp_path) as fleet:
        client = RedfishClient.admin(fleet[1])
        client.patch("/redfish/v1/Systems/1", PXE_ONCE)
        client.post(RESET, {"ResetType": "On"})
        wait_until(lambda: booted)
        assert booted == [fleet[1]]


def test_ilo_reboot_refuses_connections_then_comes_back(fleet: FleetHandle) -> None:
    client = RedfishClient.admin(fleet[0])
    assert client.post("/redfish/v1/Managers/1/Actions/Manager.Reset", {"ResetType": "ForceRestart"}).ok
    time.sleep(0.15)
    with pytest.raises(requests.ConnectionError):
        RedfishClient.admin(fleet[0]).get("/redfish/v1/")
    wait_until(lambda: _answers(fleet[0]))
    assert fleet.counters(0)["manager_resets"] == 1


def _answers(bmc: BmcInfo) -> bool:
    try:
        return RedfishClient.admin(bmc).get("/redfish/v1/").status_code == 200
    except requests.ConnectionError:
        return False


def test_200_bmcs_start_fast_and_small(tmp_path: Path) -> None:
    started = time.monotonic()
    with start_fleet(200, in_process=False, state_dir=tmp_path) as fleet:
        elapsed = time.monotonic() - started
        process = next(p for p in psutil.Process().children() if "bm_mock_ilo" in " ".join(p.cmdline()))
        rss = process.memory_info().rss / 2**20
        assert RedfishClient.admin(fleet[199]).get("/redfish/v1/Systems/1").ok
    assert elapsed < 5, f"{elapsed:.1f} s"
    assert rss < 200, f"{rss:.0f} MiB"
