"""The lab tier (`make lab-e2e`): every arrow of the plan's sequence diagram for real, except the BMC silicon.

src/bm_lab/lab.py builds network namespaces with the DHCP server running the project's hook (ISC dhcpd's `on commit`,
or Kea's run_script hook library), lldpd switches and QEMU servers that PXE-boot the validation image, driven by mock
iLOs over QMP, and runs the ansible-rulebook service on the local stack. The test then checks each arrow: the BMC's
lease in the DHCP server's log and the hook's event, the chain of event ids, NetBox states and timestamps in order, MACs
equal to QEMU's NICs, cables equal to the lab's wiring, model and serial equal to the SMBIOS identity (the product of
the server's iLO generation), the hardening in the mock iLO, the metrics files (from the resources of that generation).
One server with ISC dhcpd and an iLO 5, one with Kea and an iLO 6, then three at once with ISC dhcpd on a mixed iLO 5 /
iLO 6 fleet.

Runs when BM_LAB_E2E says so (scripts/lab-e2e.sh sets `all`; `one` runs the one-server cases only, about 3.5 min each):
root, QEMU and the packages of requirements/apt.txt are needed, and the pipeline's every stage.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pynetbox
import pytest
import redis

from bm_lab import lab
from bm_mock_ilo.models import PROFILES

WANTED = os.environ.get("BM_LAB_E2E", "")
pytestmark = [
    pytest.mark.lab,
    pytest.mark.slow,
    pytest.mark.stack,
    pytest.mark.skipif(
        WANTED not in ("one", "all"), reason="the lab tier runs with `make lab-e2e` (or BM_LAB_E2E=one|all)"
    ),
]
ROOT = Path(__file__).resolve().parents[2]
# lease -> monitored under TCG on 2 quiet cores; a loaded machine may need more (BM_LAB_BUDGET_S)
BUDGET_S = {1: 180.0, 3: 300.0}
MIXED = "ilo5,ilo6"  # bm-lab-e2e's default --model: iLO 5 and iLO 6 cycled over the servers
NOT_ONE = pytest.mark.skipif(WANTED == "one", reason="BM_LAB_E2E=one")
CAUSES = {  # event type -> the event type it must be caused by
    "device_discovered": "dhcp_lease",
    "pxe_boot_initiated": "device_discovered",
    "validation_completed": "validation_report",
    "hardening_completed": "validation_completed",
}


@pytest.fixture
def lab_env(stack: dict[str, str], netbox: pynetbox.api, redis_client: redis.Redis) -> Iterator[Path]:
    """A fresh NetBox template and an empty bus; the stack's settings in the environment; the lab's work dir."""
    missing = lab.missing_tools()
    if missing:
        pytest.skip(f"the lab cannot run here: missing {', '.join(missing)}")
    saved = {k: os.environ.get(k) for k in stack}
    os.environ.update(stack)
    try:
        lab_dir = Path(os.environ.get("BM_LAB_DIR") or ROOT / ".lab")  # a private stack's lab dir (scripts/lib.sh)
        yield Path(os.environ.get("BM_LAB_E2E_DIR") or lab_dir / "lab-e2e")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_lab(count: int, workdir: Path, dhcp: str, model: str) -> lab.LabResult:
    run_dir = workdir / (f"servers-{count}" if dhcp == "isc" else f"servers-{count}-{dhcp}")
    args = lab.build_parser().parse_args(
        ["--count", str(count), "--workdir", str(run_dir), "--timeout", "480", "--dhcp", dhcp, "--model", model]
    )
    args.webhook_port = lab.WEBHOOK_PORT
    result = lab.run(args)
    print()
    lab.print_report(result)
    return result


SOURCE = {"isc": "dhcpd@", "kea": "kea-dhcp4@"}


def granted(dhcp: str, address: str, mac: str, hostname: str | None, interface: str) -> str:
    """The DHCP server's log line for a lease it gave (a pattern): dhcpd's DHCPACK names the host and the interface,
    Kea's DHCP4_LEASE_ALLOC neither (the hook's event carries the host name)."""
    if dhcp == "kea":
        return (
            rf"DHCP4_LEASE_ALLOC \[hwtype=1 {mac}\], cid=\[[^]]*\], tid=0x[0-9a-f]+: lease {address} has been allocated"
        )
    host = rf" \({re.escape(hostname)}\)" if hostname else ""
    return rf"DHCPACK on {address} to {mac}{host} via {interface}"


def assert_server(result: lab.LabResult, server: lab.LabServer) -> None:
    name, bmc = server.name, server.sim.bmc
    dhcp_log = result.dhcp_log

    # the BMC's own lease, and the hook's event for it
    assert server.sim.lease_ip == bmc.address, result.log(f"udhcpc-{name}.log")
    assert re.search(granted(result.dhcp, re.escape(bmc.address), bmc.bmc_mac, f"ilo-{name}", "oob"), dhcp_log), (
        dhcp_log
    )
    assert f"published dhcp_lease {bmc.bmc_mac} {bmc.address}" in dhcp_log
    # the server's PXE boot: the DHCP server leased its eno1, iPXE fetched boot.ipxe, its uuid script, kernel and initrd
    assert re.search(granted(result.dhcp, re.escape("10.77.1.") + r"\d+", bmc.nic_macs[0], None, "data1"), dhcp_log)
    http = result.log("http.log")
    for path in ("/boot.ipxe", f"/pxe/{bmc.uuid.lower()}.ipxe", "/image/vmlinuz", "/image/initrd.gz"):
        assert f'"GET {path} HTTP/1.1" 200' in http, http

    # the chain of events on the bus
    events = result.events[name]
    first: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["event_type"] == "dhcp_lease" and event["data"].get("mac", "").lower() != bmc.bmc_mac:
            continue  # the data NICs' own leases (iPXE, the image) are events too, about other MACs
        first.setdefault(event["event_type"], event)
    assert list(first) == list(lab.EVENT_ORDER), [e["event_type"] for e in events]
    for event_type, cause_type in CAUSES.items():
        assert first[event_type]["causation_id"] == first[cause_type]["event_id"], (event_type, first[event_type])
    assert first["dhcp_lease"]["data"]["ip"] == bmc.address
    assert first["dhcp_lease"]["data"]["hostname"] == f"ilo-{name}", first["dhcp_lease"]
    assert str(first["dhcp_lease"]["source"]).startswith(SOURCE[result.dhcp]), first["dhcp_lease"]

    # NetBox: states and timestamps in order, identity, NICs, cables
    row = next(r for r in result.rows if r["name"] == name)
    assert row["state"] == "monitored", (row, result.netbox[name]["journal"][-3:])
    stamps = [row[label] for label in ("discovered", "pxe", "validated", "hardened", "monitored")]
    assert all(s is not None for s in stamps) and stamps == sorted(stamps), row
    facts = result.netbox[name]
    profile = PROFILES[bmc.model]  # the server the BMC's generation sits in; the VM's SMBIOS says so (dmidecode)
    assert (facts["manufacturer"], facts["model"]) == (lab.MANUFACTURER, profile.product), (bmc.model, facts)
    assert facts["serial"] == bmc.serial
    assert (facts["oob_ip"] or "").split("/")[0] == bmc.address
    for nic, mac, switch, port in server.cabling:
        assert facts["interfaces"][nic]["mac"] == mac.lower(), facts["interfaces"]
        assert facts["interfaces"][nic]["peers"] == [f"{switch} {port}"], facts["interfaces"]
    assert [c[1] for c in server.cabling] == list(bmc.nic_macs)

    # the mock iLO: one PXE boot by the one-time override and a power on; the baseline PATCHed in; metrics polled
    counters, state = result.counters[server.index], result.states[server.index]
    assert state["Settings"]["model"] == bmc.model, state["Settings"]
    assert counters["pxe_boots"] == 1, counters
    assert sum(counters["resets"].values()) == 1, counters
    assert any(h["BootSourceOverrideTarget"] == "Pxe" for h in counters["boot_override_history"]), counters
    assert counters["requests"].get("PATCH", 0) > 0, counters  # the baseline's changes
    assert counters["manager_resets"] >= 1, counters  # iLO applies network settings after a Manager.Reset
    print(f"{name}: iLO requests {counters['requests']}, resets {counters['resets']}, SNMP {state['SnmpService']}")
    assert state["PowerState"] == "Off"  # the validation image powered the server off, the iLO saw it
    files = sorted(lab.metrics_files(result, server))
    assert files, list((result.workdir / "metrics").rglob("*"))
    # monitoring read the generation's own resources: the DMTF PowerSubsystem/ThermalSubsystem where the iLO has them
    # (iLO 6), the deprecated Power/Thermal otherwise (iLO 5)
    metrics = json.loads(files[-1].read_text())["metrics"]
    dmtf = "PowerSubsystem" in profile.types
    expected = ("EnvironmentMetrics/PowerSubsystem", "ThermalSubsystem") if dmtf else ("Power", "Thermal")
    assert (metrics["power"]["source"], metrics["thermal"]["source"]) == expected, (bmc.model, metrics)

    assert state["SnmpService"]["SNMPv1Enabled"] is False, state["SnmpService"]
    assert "public" not in state["SnmpService"]["ReadCommunities"], state["SnmpService"]

    # each ToR heard the server's lldpd (chassis or port id: one of its MACs) on the port NetBox has the cable on
    for _nic, _mac, switch, port in server.cabling:
        heard = result.tor_neighbors.get(switch, {}).get(port, [])
        assert any(line.endswith(f"={m}") for m in bmc.nic_macs for line in heard), (switch, port, heard)


@pytest.mark.parametrize(
    ("count", "dhcp", "model"),
    [
        pytest.param(1, "isc", MIXED, id="one-server"),  # the first of the cycle: an iLO 5
        pytest.param(1, "kea", "ilo6", id="one-server-kea"),  # each generation alone once, also with BM_LAB_E2E=one
        pytest.param(3, "isc", MIXED, id="three-servers", marks=NOT_ONE),
    ],
)
@pytest.mark.timeout(1200)
def test_lab_e2e(lab_env: Path, count: int, dhcp: str, model: str) -> None:
    result = run_lab(count, lab_env, dhcp, model)
    wanted = model.split(",")
    assert [s.sim.bmc.model for s in result.servers] == [wanted[i % len(wanted)] for i in range(count)]
    for server in result.servers:
        assert_server(result, server)
    if count >= len(wanted):  # every generation of the cycle ran the pipeline: a mixed fleet, told apart in NetBox
        assert {result.netbox[s.name]["model"] for s in result.servers} == {PROFILES[m].product for m in wanted}
    budget = float(os.environ.get("BM_LAB_BUDGET_S", BUDGET_S[count]))
    slowest = max(row["monitored"] for row in result.rows)
    assert slowest < budget, f"lease -> monitored took {slowest:.0f} s ({result.accel}); budget {budget:.0f} s"
