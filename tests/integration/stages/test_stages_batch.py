"""A batch of five servers through discovery and provisioning: one playbook run per stage, per-device isolation
(one BMC with a wrong password fails alone), and the NetBox requests and wall time per stage and server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pynetbox
import pytest

from integration.stages.conftest import Stages, cf, journal

pytestmark = [pytest.mark.stack, pytest.mark.slow]

COUNT = 5


@pytest.fixture
def fleet5() -> Iterator[Any]:
    from bm_mock_ilo import testing  # noqa: PLC0415
    from bm_mock_ilo.bmc import Settings  # noqa: PLC0415

    with testing.start_fleet(COUNT, settings=Settings(manager_reset_seconds=1.0, post_seconds=0.5)) as handle:
        yield handle


def register(nb: pynetbox.api, fleet: Any) -> list[Any]:
    """srv101.. with a mgmt-only ilo interface carrying each mock BMC's MAC."""
    srv = nb.dcim.devices.get(name="srv001")
    devices = []
    for n, bmc in enumerate(fleet):
        dev = nb.dcim.devices.create(
            name=f"srv1{n:02d}", device_type=srv.device_type.id, role=srv.role.id, site=srv.site.id,
            tenant=srv.tenant.id, status="active", custom_fields={"lifecycle_state": "staged"},
        )  # fmt: skip
        iface = nb.dcim.interfaces.create(device=dev.id, name="ilo", type="1000base-t", mgmt_only=True)
        nb.dcim.mac_addresses.create(
            mac_address=bmc.bmc_mac, assigned_object_type="dcim.interface", assigned_object_id=iface.id
        )
        devices.append(dev)
    return devices


def test_batch_of_five_with_one_bad_bmc(netbox: pynetbox.api, stages: Stages, fleet5: Any) -> None:
    devices = register(netbox, fleet5)
    for n, bmc in enumerate(fleet5):
        stages.publish("dhcp_lease", {"mac": bmc.bmc_mac, "ip": f"10.1.101.{10 + n}", "hostname": bmc.name})
    discovery = stages.run("discovery", "-e", stages.batch_file(stages.take("dhcp_lease")))
    assert discovery.rc == 0, discovery.output()
    assert stages.pending("dhcp_lease") == 0
    assert len(stages.events("device_discovered")) == COUNT

    addresses = {d.name: b.baseuri for d, b in zip(devices, fleet5, strict=True)}
    credentials = {
        d.name: {"username": b.username, "password": b.password} for d, b in zip(devices, fleet5, strict=True)
    }
    credentials[devices[2].name]["password"] = "wrong-password"
    vault = stages.tmp / "bmc_credentials.json"
    vault.write_text(json.dumps({"bm_bmc_credentials": credentials}))
    provisioning = stages.run(
        "provisioning", "-e", stages.batch_file(stages.take("device_discovered")), "-e", f"@{vault}",
        BM_BMC_ADDRESSES=json.dumps(addresses),
    )  # fmt: skip
    assert provisioning.rc != 0  # the bad one failed ...
    assert "wrong-password" not in provisioning.output()
    states = {d.name: cf(netbox.dcim.devices.get(d.id), "lifecycle_state") for d in devices}
    assert states == {d.name: "provisioning_failed" if n == 2 else "validating" for n, d in enumerate(devices)}
    for n in range(COUNT):  # ... and its batch-mates went on
        assert fleet5.counters(n)["resets"] == ({} if n == 2 else {"On": 1})
    assert "wrong_credentials" in journal(netbox, devices[2])[-1]
    assert stages.pending("device_discovered") == 0

    for name, run in (("discovery", discovery), ("provisioning", provisioning)):
        requests = run.netbox_requests()["localhost"]
        print(
            f"MEASURE batch={COUNT} stage={name} wall={run.seconds:.1f}s per_server={run.seconds / COUNT:.2f}s "
            f"netbox_requests={requests} per_server={requests / COUNT:.1f}"
        )
