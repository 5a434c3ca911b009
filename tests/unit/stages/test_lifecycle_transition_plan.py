"""Compare-and-set transitions, the device lock, lease matching and BMC IP reconciliation, on a fake NetBox."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import (
    DeviceLock,
    LockBusy,
    NetBoxError,
    match_lease,
    plan_transition,
    reconcile_bmc_ip,
    transition,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient

TENANT = {"id": 1, "name": "baremetal-staging", "slug": "baremetal-staging"}
STAMP = "2026-11-25T05:00:00Z"


def device(state: str = "staged", tenant: dict[str, Any] | None = TENANT, **cf: Any) -> dict[str, Any]:
    fields = {"lifecycle_state": {"value": state, "label": state}, "hardened_at": None, **cf}
    return {"id": 1, "name": "srv001", "tenant": tenant, "custom_fields": fields, "oob_ip": None}


def plan(dev: dict[str, Any], **kw: Any) -> dict[str, Any]:
    kw.setdefault("expected", ["staged"])
    kw.setdefault("state", "discovery")
    kw.setdefault("tenant", "baremetal-staging")
    return plan_transition(dev, timestamp=STAMP, **kw)


def test_staged_to_discovery_sets_state_and_timestamps() -> None:
    p = plan(device(), expected_fields={"hardened_at": None})
    assert p["ok"]
    assert p["patch"] == {
        "custom_fields": {"lifecycle_state": "discovery", "lifecycle_changed_at": STAMP, "discovered_at": STAMP}
    }
    assert p["before"]["lifecycle_state"] == "staged"


@pytest.mark.parametrize(
    ("state", "field"),
    [("validating", "pxe_boot_initiated_at"), ("validation_completed", "validation_completed_at"),
     ("monitored", "last_monitored_at"), ("provisioning_failed", None)],
)  # fmt: skip
def test_each_state_stamps_its_field(state: str, field: str | None) -> None:
    cf = plan(device("x"), expected=["x"], state=state)["patch"]["custom_fields"]
    assert cf["lifecycle_changed_at"] == STAMP
    expected = {"lifecycle_state", "lifecycle_changed_at"} | ({field} if field else set())
    assert set(cf) == expected


def test_staged_from_hardening_stamps_hardened_at_but_not_from_elsewhere() -> None:
    assert "hardened_at" in plan(device("hardening"), expected=["hardening"], state="staged")["patch"]["custom_fields"]
    reset = plan(device("provisioning_failed"), expected=["provisioning_failed"], state="staged")
    assert "hardened_at" not in reset["patch"]["custom_fields"]


def test_wrong_state_changes_nothing_and_says_so() -> None:
    p = plan(device("validating"))
    assert not p["ok"]
    assert p["reason"] == "state"
    assert "is in state 'validating', not 'staged'" in p["msg"]
    assert p["patch"] == {}


def test_hardened_staged_device_is_not_discovered() -> None:
    p = plan(device(hardened_at=STAMP), expected_fields={"hardened_at": None})
    assert not p["ok"]
    assert p["reason"] == "fields"


def test_foreign_tenant_is_refused() -> None:
    other = {"id": 2, "name": "production", "slug": "production"}
    for tenant in (other, None):
        p = plan(device(tenant=tenant))
        assert not p["ok"]
        assert p["reason"] == "tenant"


def test_custom_and_device_fields_go_in_the_same_patch() -> None:
    p = plan(
        device("hardening"),
        expected=["hardening"],
        state="staged",
        custom_fields={"hardened_at": "2026-01-01T00:00:00Z", "last_power_watts": 190},
        device_fields={"oob_ip": 7},
        timestamp_field="",
    )
    assert p["patch"] == {
        "oob_ip": 7,
        "custom_fields": {
            "lifecycle_state": "staged",
            "lifecycle_changed_at": STAMP,
            "hardened_at": "2026-01-01T00:00:00Z",
            "last_power_watts": 190,
        },
    }


def test_update_within_a_state_without_difference_is_a_noop() -> None:
    dev = device("monitored", last_power_watts=190)
    p = plan(dev, expected=["monitored"], state="monitored", custom_fields={"last_power_watts": 190})
    assert p["ok"]
    assert p["patch"] == {}


def routes_for(dev: dict[str, Any], journal: list[Any]) -> dict[tuple[str, str], Any]:
    def patch(_: dict[str, Any], body: Any) -> dict[str, Any]:
        for k, v in body.get("custom_fields", {}).items():
            dev["custom_fields"][k] = {"value": v, "label": v} if k == "lifecycle_state" else v
        return dev

    def post_journal(_: dict[str, Any], body: Any) -> dict[str, Any]:
        journal.append(body)
        return {"id": len(journal)}

    def find_journal(params: dict[str, Any], _: Any) -> dict[str, Any]:
        return {"count": sum(1 for j in journal if params["q"] in j["comments"]), "results": []}

    return {
        ("GET", "/api/dcim/devices/1/"): lambda *_: dev,
        ("PATCH", "/api/dcim/devices/1/"): patch,
        ("POST", "/api/extras/journal-entries/"): post_journal,
        ("GET", "/api/extras/journal-entries/"): find_journal,
    }


def test_transition_under_lock_then_duplicate_is_refused(bus: RedisClient, fake_netbox: Callable[..., Any]) -> None:
    dev, journal = device(), list[Any]()
    nb = fake_netbox(routes_for(dev, journal))
    kw: dict[str, Any] = {"expected": ["staged"], "state": "discovery", "reason": "lease", "event_id": "ev-1"}
    first = transition(nb, bus, 1, **kw)
    assert first["changed"] and first["transitioned"]
    assert first["journal_entry"] == 1
    assert "staged -> discovery" in journal[0]["comments"] and "ev-1" in journal[0]["comments"]
    assert journal[0]["assigned_object_type"] == "dcim.device"
    assert bus.call("KEYS", "bm:lock:*") == []  # released
    again = transition(nb, bus, 1, **kw)
    assert not again["changed"]
    assert again["refused"] == "state"
    assert len(journal) == 1


def test_missing_journal_entry_is_repaired_on_redelivery(bus: RedisClient, fake_netbox: Callable[..., Any]) -> None:
    dev, journal = device("discovery"), list[Any]()  # a first run changed the state and died before its journal entry
    nb = fake_netbox(routes_for(dev, journal))
    out = transition(nb, bus, 1, expected=["staged"], state="discovery", reason="lease", event_id="ev-9")
    assert out["changed"] and not out["transitioned"]
    assert len(journal) == 1 and "ev-9" in journal[0]["comments"]


def test_check_mode_writes_nothing_and_takes_no_lock(fake_netbox: Callable[..., Any]) -> None:
    dev, journal = device(), list[Any]()
    nb = fake_netbox(routes_for(dev, journal))
    out = transition(nb, None, "1", expected=["staged"], state="discovery", reason="r", check_mode=True)
    assert out["changed"] and out["transitioned"]
    assert out["diff"]["after"]["lifecycle_state"] == "discovery"
    assert nb.writes() == []


def test_lock_is_exclusive_and_released_only_by_its_holder(bus: RedisClient) -> None:
    with DeviceLock(bus, 5, ttl=5, wait=0):
        started = time.monotonic()
        with pytest.raises(LockBusy), DeviceLock(bus, 5, ttl=5, wait=0.2):
            pass
        assert time.monotonic() - started < 2
        bus.call("SET", "bm:lock:device:6", "someone-else")
        with pytest.raises(LockBusy), DeviceLock(bus, 6, wait=0):
            pass
        assert bus.call("GET", "bm:lock:device:6") == b"someone-else"
    assert bus.call("EXISTS", "bm:lock:device:5") == 0
    with DeviceLock(bus, 5, ttl=5, wait=0):  # free again
        assert 0 < int(bus.call("PTTL", "bm:lock:device:5")) <= 5000


# --- lease matching --------------------------------------------------------------------------------------------------


def mac_row(iface: int, dev: int, name: str = "srv001", obj: str = "dcim.interface") -> dict[str, Any]:
    return {
        "id": 100 + iface,
        "assigned_object_type": obj,
        "assigned_object_id": iface,
        "assigned_object": {"id": iface, "name": f"if{iface}", "device": {"id": dev, "name": name}},
        "is_primary": True,
    }


def lease_routes(rows: list[dict[str, Any]], mgmt: bool = True, tenant: dict[str, Any] = TENANT) -> dict[Any, Any]:
    routes: dict[Any, Any] = {("GET", "/api/dcim/mac-addresses/"): {"count": len(rows), "results": rows}}
    for r in rows:
        routes[("GET", f"/api/dcim/interfaces/{r['assigned_object_id']}/")] = {
            "id": r["assigned_object_id"],
            "name": "ilo",
            "mgmt_only": mgmt,
        }
    routes[("GET", "/api/dcim/devices/1/")] = device(tenant=tenant)
    return routes


def test_unknown_mac(fake_netbox: Callable[..., Any]) -> None:
    nb = fake_netbox(lease_routes([]))
    found = match_lease(nb, "9440.C95E.7AB0")
    assert found["match"] == "unknown"
    assert found["mac"] == "94:40:c9:5e:7a:b0"
    assert nb.calls[0][2] == {"mac_address": "94:40:c9:5e:7a:b0", "limit": 50}
    assert nb.requests == 1


def test_mac_on_two_devices_is_ambiguous(fake_netbox: Callable[..., Any]) -> None:
    nb = fake_netbox(lease_routes([mac_row(1, 1), mac_row(2, 2, "srv002")]))
    found = match_lease(nb, "94:40:c9:5e:7a:b0")
    assert found["match"] == "ambiguous"
    assert "srv001" in found["msg"] and "srv002" in found["msg"]


def test_data_nic_lease_is_not_a_bmc(fake_netbox: Callable[..., Any]) -> None:
    found = match_lease(fake_netbox(lease_routes([mac_row(3, 1)], mgmt=False)), "94:40:c9:5e:7a:b0")
    assert found["match"] == "not_bmc"


def test_foreign_tenant(fake_netbox: Callable[..., Any]) -> None:
    nb = fake_netbox(lease_routes([mac_row(1, 1)], tenant={"id": 9, "name": "prod", "slug": "prod"}))
    assert match_lease(nb, "94:40:c9:5e:7a:b0")["match"] == "foreign_tenant"


def test_bmc_match(fake_netbox: Callable[..., Any]) -> None:
    nb = fake_netbox(lease_routes([mac_row(1, 1)]))
    found = match_lease(nb, "94-40-C9-5E-7A-B0")
    assert found["match"] == "bmc"
    assert found["device"]["name"] == "srv001"
    assert found["interface"] == {"id": 1, "name": "ilo"}
    assert nb.requests == 3


def test_vm_interface_mac_is_unknown(fake_netbox: Callable[..., Any]) -> None:
    nb = fake_netbox(lease_routes([mac_row(1, 1, obj="virtualization.vminterface")]))
    assert match_lease(nb, "94:40:c9:5e:7a:b0")["match"] == "unknown"


# --- BMC IP -----------------------------------------------------------------------------------------------------------


def ip_routes(on_iface: list[dict[str, Any]], elsewhere: list[dict[str, Any]] | None = None) -> dict[Any, Any]:
    def listing(params: dict[str, Any], _: Any) -> dict[str, Any]:
        if "interface_id" in params:
            return {"count": len(on_iface), "next": None, "results": on_iface}
        return {"count": len(elsewhere or []), "results": elsewhere or []}

    return {
        ("GET", "/api/ipam/ip-addresses/"): listing,
        ("GET", "/api/ipam/prefixes/"): {"results": [{"prefix": "10.1.0.0/16"}, {"prefix": "10.1.100.0/24"}]},
        ("POST", "/api/ipam/ip-addresses/"): lambda _, body: {"id": 50, **body},
        ("PATCH", "/api/dcim/devices/1/"): {},
        **{("PATCH", f"/api/ipam/ip-addresses/{i}/"): {} for i in range(1, 60)},
    }


def test_first_lease_creates_the_ip_and_sets_oob(fake_netbox: Callable[..., Any]) -> None:
    nb = fake_netbox(ip_routes([]))
    out = reconcile_bmc_ip(nb, device(), 1, "10.1.100.21")
    assert out["ip"] == "10.1.100.21/24" and out["ip_changed"] and out["changed"]
    assert nb.writes()[0][1] == "/api/ipam/ip-addresses/"
    assert nb.writes()[0][2]["status"] == "active"
    assert nb.writes()[-1] == ("PATCH", "/api/dcim/devices/1/", {"oob_ip": 50})


def test_same_lease_again_changes_nothing(fake_netbox: Callable[..., Any]) -> None:
    ip = {"id": 50, "address": "10.1.100.21/24", "status": {"value": "active", "label": "Active"}}
    dev = {**device(), "oob_ip": {"id": 50, "address": "10.1.100.21/24"}}
    nb = fake_netbox(ip_routes([ip]))
    out = reconcile_bmc_ip(nb, dev, 1, "10.1.100.21")
    assert not out["changed"] and not out["ip_changed"]
    assert nb.writes() == []
    assert nb.requests == 1


def test_new_address_deprecates_the_old_one(fake_netbox: Callable[..., Any]) -> None:
    old = {"id": 50, "address": "10.1.100.21/24", "status": {"value": "active", "label": "Active"}}
    dev = {**device(), "oob_ip": {"id": 50, "address": "10.1.100.21/24"}}
    nb = fake_netbox(ip_routes([old]))
    out = reconcile_bmc_ip(nb, dev, 1, "10.1.100.22/24")
    assert out["ip_changed"] and out["previous_ip"] == "10.1.100.21/24"
    assert ("PATCH", "/api/ipam/ip-addresses/50/", {"status": "deprecated"}) in nb.writes()


def test_address_held_elsewhere_is_not_moved(fake_netbox: Callable[..., Any]) -> None:
    other = {"id": 9, "address": "10.1.100.21/24", "assigned_object_id": 77,
             "assigned_object": {"name": "ilo", "device": {"name": "srv009"}}}  # fmt: skip
    nb = fake_netbox(ip_routes([], [other]))
    with pytest.raises(NetBoxError, match="srv009"):
        reconcile_bmc_ip(nb, device(), 1, "10.1.100.21")
    assert nb.writes() == []


def test_check_mode_reports_without_writing(fake_netbox: Callable[..., Any]) -> None:
    nb = fake_netbox(ip_routes([]))
    out = reconcile_bmc_ip(nb, device(), 1, "10.1.100.21", check_mode=True)
    assert out["changed"] and nb.writes() == []
