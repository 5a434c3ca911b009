"""Stages discovery and provisioning on the real stack (NetBox, Redis), a mock iLO 5 and real ansible-playbook runs.

Everything the stages wrote is checked through a separate reader (pynetbox, redis-py, the mock's counters)."""

from __future__ import annotations

import json
from typing import Any

import pynetbox
import pytest

from integration.stages.conftest import SRV001_BMC_MAC, Stages, bmc_ips, cf, journal, snapshot

pytestmark = [pytest.mark.stack, pytest.mark.slow]

LEASE_IP = "10.1.100.21"


def discover(stages: Stages, mac: str = SRV001_BMC_MAC, ip: str = LEASE_IP, hostname: str = "ilo-srv001") -> Any:
    stages.publish("dhcp_lease", {"mac": mac, "ip": ip, "hostname": hostname})
    return stages.run("discovery", "-e", stages.batch_file(stages.take("dhcp_lease")))


def provision(stages: Stages, **env: str) -> Any:
    return stages.run("provisioning", "-e", stages.batch_file(stages.take("device_discovered")), **env)


def test_lease_takes_srv001_to_validating_with_one_override_and_one_reset(
    netbox: pynetbox.api, stages: Stages, fleet: Any
) -> None:
    run = discover(stages, mac="94-40-C9-5E-7A-B0")  # dashes and upper case: the same MAC
    assert run.rc == 0, run.output()
    srv = netbox.dcim.devices.get(name="srv001")
    assert cf(srv, "lifecycle_state") == "discovery"
    assert cf(srv, "discovered_at") and cf(srv, "lifecycle_changed_at")
    assert srv.oob_ip is not None and str(srv.oob_ip.address) == f"{LEASE_IP}/32"
    assert bmc_ips(netbox, srv) == [(f"{LEASE_IP}/32", "active")]
    assert stages.pending("dhcp_lease") == 0
    [discovered] = stages.events("device_discovered")
    assert discovered["device"] == {"id": srv.id, "name": "srv001"}
    assert discovered["data"]["bmc_ip"] == LEASE_IP

    run = provision(stages)
    assert run.rc == 0, run.output()
    srv = netbox.dcim.devices.get(name="srv001")
    assert cf(srv, "lifecycle_state") == "validating"
    assert cf(srv, "pxe_boot_initiated_at") and cf(srv, "discovered_at")
    entries = journal(netbox, srv)
    assert len(entries) == 2
    assert "staged -> discovery" in entries[0] and discovered["causation_id"] in entries[0]
    assert "discovery -> validating" in entries[1] and discovered["event_id"] in entries[1]
    counters = fleet.counters(0)
    assert counters["resets"] == {"On": 1}
    assert len(counters["boot_override_history"]) == 1
    assert counters["boot_override_history"][0]["BootSourceOverrideTarget"] == "Pxe"
    assert stages.pending("device_discovered") == 0
    [initiated] = stages.events("pxe_boot_initiated")
    assert initiated["data"]["reset_type"] == "On"

    # The token: not in the device's iPXE script (no secret there); in Redis, the identity the BMC stated, to which
    # the webhook hands the token out once.
    script = (stages.tmp / "boot" / "srv001.ipxe").read_text()
    assert "token" not in script
    assert f"bm.device_id={srv.id} " in script and "bm.callback=http://127.0.0.1:5000/" in script
    stored = json.loads(stages.bus.get(f"bm:validation_token:{srv.id}"))
    assert (stored["state"], stored["uuid"], stored["serial"]) == ("issued", fleet[0].uuid.lower(), fleet[0].serial)
    assert "hash" not in stored
    assert (stages.tmp / "boot" / f"{fleet[0].uuid.lower()}.ipxe").exists()


def test_two_leases_of_one_bmc_in_one_batch_record_one_ip(netbox: pynetbox.api, stages: Stages) -> None:
    """A BMC that renewed twice before the batch was read: the later lease counts, the earlier is acknowledged. Per
    host, two forks reconciled the same interface at once and could both create an IP address."""
    stages.publish("dhcp_lease", {"mac": SRV001_BMC_MAC, "ip": LEASE_IP, "hostname": "ilo-srv001"})
    stages.publish("dhcp_lease", {"mac": SRV001_BMC_MAC, "ip": "10.1.100.22", "hostname": "ilo-srv001"})
    batch = stages.take("dhcp_lease")
    assert len(batch["entries"]) == 2
    run = stages.run("discovery", "-e", stages.batch_file(batch))
    assert run.rc == 0, run.output()
    srv = netbox.dcim.devices.get(name="srv001")
    assert bmc_ips(netbox, srv) == [("10.1.100.22/32", "active")]
    assert str(srv.oob_ip.address) == "10.1.100.22/32"
    assert cf(srv, "lifecycle_state") == "discovery"
    [discovered] = stages.events("device_discovered")
    assert discovered["causation_id"] == batch["entries"][1]["envelope"]["event_id"]
    assert stages.pending("dhcp_lease") == 0
    assert len(journal(netbox, srv)) == 1


def test_same_lease_again_and_a_renewal_after_hardening_change_only_the_ip(
    netbox: pynetbox.api, stages: Stages, fleet: Any
) -> None:
    assert discover(stages).rc == 0
    assert provision(stages).rc == 0
    assert fleet.counters(0)["resets"] == {"On": 1}
    before = snapshot(netbox)

    run = discover(stages)  # the same lease delivered again
    assert run.rc == 0, run.output()
    assert snapshot(netbox) == before
    assert len(stages.events("device_discovered")) == 1
    assert stages.pending("dhcp_lease") == 0

    # A late duplicate of device_discovered: refused by compare-and-set, acknowledged, no reset.
    first = stages.events("device_discovered")[0]
    stages.publish("device_discovered", first["data"], first["device"])
    run = provision(stages)
    assert run.rc == 0, run.output()
    assert snapshot(netbox) == before
    assert stages.pending("device_discovered") == 0

    # Hardened and staged again: a renewal with a new address reconciles the IP only.
    srv = netbox.dcim.devices.get(name="srv001")
    srv.custom_fields.update(lifecycle_state="staged", hardened_at="2026-11-25T04:00:00Z")
    srv.save()
    run = discover(stages, ip="10.1.100.22")
    assert run.rc == 0, run.output()
    srv = netbox.dcim.devices.get(name="srv001")
    assert cf(srv, "lifecycle_state") == "staged"
    assert str(srv.oob_ip.address) == "10.1.100.22/32"
    assert bmc_ips(netbox, srv) == [("10.1.100.21/32", "deprecated"), ("10.1.100.22/32", "active")]
    assert len(journal(netbox, srv)) == 2
    [changed] = stages.events("bmc_ip_changed")
    assert changed["data"]["previous_ip"] == "10.1.100.21/32"
    assert [e["source"] for e in stages.events("device_discovered")] == ["bm.lifecycle.discovery", "pytest"]
    assert fleet.counters(0)["resets"] == {"On": 1}


def test_lease_redelivered_after_a_crash_past_the_patch_finishes_discovery(
    netbox: pynetbox.api, stages: Stages
) -> None:
    """A first run that moved srv001 to discovery and died before publishing: the redelivered lease publishes
    device_discovered (and repairs the journal); a renewal delivered for the first time meanwhile changes nothing."""
    lease = stages.publish("dhcp_lease", {"mac": SRV001_BMC_MAC, "ip": LEASE_IP, "hostname": "ilo-srv001"})
    batch = stages.take("dhcp_lease")
    srv = netbox.dcim.devices.get(name="srv001")  # what the dead run had written: the PATCH, no journal, no event
    srv.custom_fields.update(lifecycle_state="discovery", discovered_at="2026-12-01T10:00:00Z")
    srv.save()

    run = discover(stages)  # a renewal, first delivery: the device is past staged, nothing starts
    assert run.rc == 0, run.output()
    assert stages.events("device_discovered") == []

    for entry in batch["entries"]:
        entry["delivery_count"] = 2  # claimed again after the crash
    run = stages.run("discovery", "-e", stages.batch_file(batch))
    assert run.rc == 0, run.output()
    [discovered] = stages.events("device_discovered")
    assert discovered["causation_id"] == lease["event_id"]
    assert stages.pending("dhcp_lease") == 0
    srv = netbox.dcim.devices.get(name="srv001")
    assert cf(srv, "lifecycle_state") == "discovery"
    entries = journal(netbox, srv)
    assert len(entries) == 1 and lease["event_id"] in entries[0] and "written late" in entries[0], entries


def test_unknown_mac_warns_publishes_unknown_mac_and_changes_nothing(netbox: pynetbox.api, stages: Stages) -> None:
    before = snapshot(netbox)
    run = discover(stages, mac="02:00:00:00:00:99")
    assert run.rc == 0, run.output()
    assert "is not known to NetBox" in run.output()
    assert snapshot(netbox) == before
    [unknown] = stages.events("unknown_mac")
    assert unknown["data"]["mac"] == "02:00:00:00:00:99"
    assert stages.pending("dhcp_lease") == 0


def add_device(nb: pynetbox.api, name: str, tenant: str = "baremetal-staging") -> Any:
    srv = nb.dcim.devices.get(name="srv001")
    t = nb.tenancy.tenants.get(slug=tenant) or nb.tenancy.tenants.create(name=tenant, slug=tenant)
    return nb.dcim.devices.create(
        name=name, device_type=srv.device_type.id, role=srv.role.id, site=srv.site.id, tenant=t.id, status="active"
    )


def test_mac_on_two_devices_is_an_error_and_changes_nothing(netbox: pynetbox.api, stages: Stages) -> None:
    other = add_device(netbox, "srv002")
    iface = netbox.dcim.interfaces.create(device=other.id, name="ilo", type="1000base-t", mgmt_only=True)
    netbox.dcim.mac_addresses.create(
        mac_address=SRV001_BMC_MAC, assigned_object_type="dcim.interface", assigned_object_id=iface.id
    )
    before = snapshot(netbox)
    run = discover(stages)
    assert run.rc != 0
    assert "is on 2 devices" in run.output()
    assert snapshot(netbox) == before
    [failed] = stages.events("stage_failed")
    assert failed["data"]["match"] == "ambiguous"
    assert stages.pending("dhcp_lease") == 0


def test_foreign_tenant_is_not_touched(netbox: pynetbox.api, stages: Stages) -> None:
    prod = netbox.tenancy.tenants.create(name="production", slug="production")
    srv = netbox.dcim.devices.get(name="srv001")
    srv.tenant = prod.id
    srv.save()
    before = snapshot(netbox)
    run = discover(stages)
    assert run.rc == 0, run.output()
    assert "belongs to production, not baremetal-staging" in run.output()
    assert snapshot(netbox) == before
    assert stages.events("device_discovered") == []
    assert stages.pending("dhcp_lease") == 0


def test_data_nic_lease_never_starts_anything(netbox: pynetbox.api, stages: Stages) -> None:
    srv = netbox.dcim.devices.get(name="srv001")
    eno1 = netbox.dcim.interfaces.get(device_id=srv.id, name="eno1")
    netbox.dcim.mac_addresses.create(
        mac_address="3C:FD:FE:00:00:01", assigned_object_type="dcim.interface", assigned_object_id=eno1.id
    )
    before = snapshot(netbox)
    run = discover(stages, mac="3c:fd:fe:00:00:01", ip="10.1.200.50")
    assert run.rc == 0, run.output()
    assert snapshot(netbox) == before
    assert stages.events("device_discovered") == []
    assert stages.pending("dhcp_lease") == 0


def test_bmc_503_bursts_are_ridden_out(netbox: pynetbox.api, stages: Stages, fleet: Any) -> None:
    assert discover(stages).rc == 0
    fleet.set_faults(0, unavailable_count=4)
    run = provision(stages)
    assert run.rc == 0, run.output()
    assert cf(netbox.dcim.devices.get(name="srv001"), "lifecycle_state") == "validating"
    counters = fleet.counters(0)
    assert counters["injected_503"] == 4
    assert counters["resets"] == {"On": 1}


def test_wrong_bmc_password_ends_in_provisioning_failed(netbox: pynetbox.api, stages: Stages, fleet: Any) -> None:
    # Discovery by hand (same code path as the rulebook's), then the provisioning stage with a wrong password.
    run = stages.run("discovery", "-e", f"mac={SRV001_BMC_MAC}", "-e", f"ip={LEASE_IP}")
    assert run.rc == 0, run.output()
    run = provision(stages, BM_BMC_PASSWORD="not-the-password")
    assert run.rc != 0
    assert "not-the-password" not in run.output()
    srv = netbox.dcim.devices.get(name="srv001")
    assert cf(srv, "lifecycle_state") == "provisioning_failed"
    assert not cf(srv, "pxe_boot_initiated_at")
    entries = journal(netbox, srv)
    assert len(entries) == 2 and "discovery -> provisioning_failed" in entries[1]
    assert "wrong_credentials" in entries[1]
    counters = fleet.counters(0)
    assert counters["resets"] == {} and counters["boot_override_history"] == []
    assert stages.bus.exists(f"bm:validation_token:{srv.id}") == 0
    assert list((stages.tmp / "boot").iterdir()) == []
    [failed] = stages.events("stage_failed")
    assert failed["data"]["reason"] == "wrong_credentials"
    assert stages.pending("device_discovered") == 0


def test_provisioning_by_hand_with_a_device_name(netbox: pynetbox.api, stages: Stages, fleet: Any) -> None:
    assert stages.run("discovery", "-e", f"mac={SRV001_BMC_MAC}", "-e", f"ip={LEASE_IP}").rc == 0
    run = stages.run("provisioning", "-e", "device=srv001")
    assert run.rc == 0, run.output()
    assert cf(netbox.dcim.devices.get(name="srv001"), "lifecycle_state") == "validating"
    assert fleet.counters(0)["resets"] == {"On": 1}
    run = stages.run("provisioning", "-e", "device=srv001")  # again: refused, no second reset
    assert run.rc == 0, run.output()
    assert fleet.counters(0)["resets"] == {"On": 1}


def test_measure_requests_and_wall_time(netbox: pynetbox.api, stages: Stages, fleet: Any) -> None:
    """Not an assertion of speed: prints the NetBox requests and wall time of each stage for one server."""
    discovery = discover(stages)
    provisioning = provision(stages)
    assert discovery.rc == 0 and provisioning.rc == 0
    assert cf(netbox.dcim.devices.get(name="srv001"), "lifecycle_state") == "validating"
    for name, run in (("discovery", discovery), ("provisioning", provisioning)):
        print(f"MEASURE stage={name} seconds={run.seconds:.2f} netbox_requests={run.netbox_requests()['localhost']}")
