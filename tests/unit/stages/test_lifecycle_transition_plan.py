"""The state machine (plans, guards, timestamps), the batch writer under the device locks, lease matching and BMC IP
reconciliation, on a fake NetBox."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils import _transition
from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle import (
    POLLED_STATES,
    STATES,
    TRANSITIONS,
    Plan,
    admits,
    polled,
    transition_named,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle import plan as plan_of
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import (
    BmcLease,
    DeviceLocks,
    LockBusy,
    NetBoxError,
    match_leases,
    reconcile_bmc_ips,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient

TENANT = {"id": 1, "name": "baremetal-staging", "slug": "baremetal-staging"}
STAMP = "2026-11-25T05:00:00Z"


def device(state: str = "staged", tenant: dict[str, Any] | None = TENANT, **cf: Any) -> dict[str, Any]:
    fields = {"lifecycle_state": {"value": state, "label": state}, "hardened_at": None, **cf}
    return {"id": 1, "name": "srv001", "tenant": tenant, "custom_fields": fields, "oob_ip": None}


def plan(dev: dict[str, Any], name: str = "discover", **kw: Any) -> Plan:
    kw.setdefault("tenant", "baremetal-staging")
    return plan_of(dev, transition_named(name), timestamp=STAMP, **kw)


def test_the_table_is_closed_and_every_target_is_a_state() -> None:
    for t in TRANSITIONS.values():
        assert t.target in STATES and set(t.sources) <= set(STATES), t
    with pytest.raises(ValueError, match="unknown lifecycle transition 'fly'"):
        transition_named("fly")


def test_monitoring_polls_monitored_and_hardened_staged_devices_of_its_tenant_only() -> None:
    hardened: dict[str, Any] = {"hardened_at": STAMP}
    want = {(state, h) for state in ("monitored",) for h in (False, True)} | {("staged", True)}
    got = {
        (state, h)
        for state in STATES
        for h in (False, True)
        if polled(device(state, TENANT, **(hardened if h else {})), "baremetal-staging")
    }
    assert got == want
    assert set(POLLED_STATES) == {state for state, _h in want}  # the NetBox filter lets every polled state through
    assert not polled(device("monitored", tenant={"id": 2, "slug": "prod", "name": "prod"}), "baremetal-staging")


def test_staged_to_discovery_sets_state_and_timestamps() -> None:
    p = plan(device())
    assert p.refused is None and p.moves
    assert p.patch == {
        "custom_fields": {"lifecycle_state": "discovery", "lifecycle_changed_at": STAMP, "discovered_at": STAMP}
    }
    assert p.before["lifecycle_state"] == "staged"


@pytest.mark.parametrize(
    ("name", "source", "field"),
    [("claim_pxe_boot", "discovery", "pxe_boot_initiated_at"),
     ("complete_validation", "validating", "validation_completed_at"),
     ("start_hardening", "validation_completed", None), ("complete_hardening", "hardening", "hardened_at"),
     ("fail_provisioning", "validating", None), ("time_out_validation", "validating", None)],
)  # fmt: skip
def test_each_transition_stamps_its_field(name: str, source: str, field: str | None) -> None:
    cf = plan(device(source), name).patch["custom_fields"]
    assert cf["lifecycle_changed_at"] == STAMP
    assert set(cf) == {"lifecycle_state", "lifecycle_changed_at"} | ({field} if field else set())


def test_monitoring_needs_hardened_and_discovery_needs_not_hardened() -> None:
    hardened = device(hardened_at=STAMP)
    assert plan(hardened, "start_monitoring").patch["custom_fields"]["last_monitored_at"] == STAMP
    assert plan(device(), "start_monitoring").refused == "hardened"
    assert plan(hardened).refused == "hardened"
    assert admits(device(), "discover", "baremetal-staging") and not admits(hardened, "discover", "baremetal-staging")


def test_reset_from_a_failure_does_not_stamp_hardened_at() -> None:
    reset = plan(device("provisioning_failed"), "reset")
    assert "hardened_at" not in reset.patch["custom_fields"]
    assert TRANSITIONS["reset"].journal_kind == "warning"


def test_wrong_state_changes_nothing_and_says_so() -> None:
    p = plan(device("validating"))
    assert p.refused == "state" and not p.moves
    assert "is in state 'validating', not 'staged'" in p.msg
    assert p.patch == {}


def test_expected_fields_are_compared_under_the_lock() -> None:
    since = "2026-11-25T04:00:00Z"
    dev = device("validating", lifecycle_changed_at=since)
    assert plan(dev, "time_out_validation", expected_fields={"lifecycle_changed_at": since}).refused is None
    late = plan(dev, "time_out_validation", expected_fields={"lifecycle_changed_at": STAMP})
    assert late.refused == "fields"


def test_foreign_tenant_is_refused() -> None:
    other = {"id": 2, "name": "production", "slug": "production"}
    for tenant in (other, None):
        assert plan(device(tenant=tenant)).refused == "tenant"


def test_custom_and_device_fields_go_in_the_same_patch() -> None:
    p = plan(
        device("hardening"),
        "complete_hardening",
        custom_fields={"hardened_at": "2026-01-01T00:00:00Z", "last_power_watts": 190},
        device_fields={"oob_ip": 7},
    )
    assert p.patch == {
        "oob_ip": 7,
        "custom_fields": {
            "lifecycle_state": "staged",
            "lifecycle_changed_at": STAMP,
            "hardened_at": "2026-01-01T00:00:00Z",
            "last_power_watts": 190,
        },
    }


def test_reset_of_a_staged_device_without_difference_is_a_noop() -> None:
    p = plan(device("staged"), "reset", custom_fields={"hardened_at": None})
    assert p.refused is None and not p.moves
    assert p.patch == {}


def routes_for(devices: list[dict[str, Any]], journal: list[Any]) -> dict[tuple[str, str], Any]:
    by_id = {d["id"]: d for d in devices}

    def listing(params: dict[str, Any], _: Any) -> dict[str, Any]:
        wanted = params.get("id") or []
        found = [by_id[int(i)] for i in wanted if int(i) in by_id]
        return {"count": len(found), "next": None, "results": found}

    def patch(_: dict[str, Any], rows: Any) -> list[dict[str, Any]]:
        for row in rows:
            for k, v in row.get("custom_fields", {}).items():
                by_id[row["id"]]["custom_fields"][k] = {"value": v, "label": v} if k == "lifecycle_state" else v
        return [by_id[row["id"]] for row in rows]

    def post_journal(_: dict[str, Any], rows: Any) -> list[dict[str, Any]]:
        journal.extend(rows)
        return [{"id": len(journal) - len(rows) + n + 1} for n in range(len(rows))]

    def find_journal(params: dict[str, Any], _: Any) -> dict[str, Any]:
        return {"count": sum(1 for j in journal if params["q"] in j["comments"]), "results": []}

    return {
        ("GET", "/api/dcim/devices/"): listing,
        ("PATCH", "/api/dcim/devices/"): patch,
        ("POST", "/api/extras/journal-entries/"): post_journal,
        ("GET", "/api/extras/journal-entries/"): find_journal,
    }


def apply(nb: Any, bus: RedisClient | None, name: str, *requests: _transition.Request, write: bool = True) -> Any:
    return _transition.apply(
        nb, bus, transition_named(name), list(requests), actor="test", tenant="baremetal-staging", write=write
    )


def test_batch_is_one_read_one_patch_one_journal_post(bus: RedisClient, fake_netbox: Callable[..., Any]) -> None:
    devices = [{**device(), "id": i, "name": f"srv00{i}"} for i in (1, 2, 3)]
    devices[2]["custom_fields"]["lifecycle_state"] = {"value": "validating", "label": "validating"}
    journal: list[Any] = []
    nb = fake_netbox(routes_for(devices, journal))
    out = apply(nb, bus, "discover", *(_transition.Request(i, "lease", f"ev-{i}") for i in (1, 2, 3)))
    assert [r["transitioned"] for r in out] == [True, True, False]
    assert out[2]["refused"] == "state"
    assert [(m, p) for m, p, _b in nb.writes()] == [
        ("PATCH", "/api/dcim/devices/"),
        ("POST", "/api/extras/journal-entries/"),
    ]
    assert nb.requests == 3
    assert [r["journal_entry"] for r in out] == [1, 2, None]
    assert "staged -> discovery" in journal[0]["comments"] and "ev-1" in journal[0]["comments"]
    assert journal[0]["assigned_object_type"] == "dcim.device"
    assert bus.call("KEYS", "bm:lock:*") == []  # released
    again = apply(nb, bus, "discover", _transition.Request(1, "lease", "ev-1"))
    assert not again[0]["changed"] and again[0]["refused"] == "state"
    assert len(journal) == 2


def test_missing_journal_entry_is_repaired_on_redelivery(bus: RedisClient, fake_netbox: Callable[..., Any]) -> None:
    journal: list[Any] = []  # a first run changed the state and died before its journal entry
    nb = fake_netbox(routes_for([device("discovery")], journal))
    [out] = apply(nb, bus, "discover", _transition.Request(1, "lease", "ev-9"))
    assert out["changed"] and not out["transitioned"]
    assert len(journal) == 1 and "ev-9" in journal[0]["comments"] and "written late" in journal[0]["comments"]


def test_a_locked_device_is_left_alone_and_its_batch_mates_go_on(
    bus: RedisClient, fake_netbox: Callable[..., Any]
) -> None:
    devices = [{**device(), "id": i, "name": f"srv00{i}"} for i in (1, 2)]
    nb = fake_netbox(routes_for(devices, []))
    bus.call("SET", "bm:lock:device:2", "another-run")
    out = _transition.apply(
        nb, bus, transition_named("discover"), [_transition.Request(1, "r"), _transition.Request(2, "r")],
        actor="test", tenant="baremetal-staging", lock_wait=0.2,
    )  # fmt: skip
    assert out[0]["transitioned"] and out[1]["refused"] == "locked"
    assert devices[1]["custom_fields"]["lifecycle_state"]["value"] == "staged"
    assert bus.call("GET", "bm:lock:device:2") == b"another-run"


def test_a_change_netbox_refuses_fails_that_device_alone(bus: RedisClient, fake_netbox: Callable[..., Any]) -> None:
    devices = [{**device(), "id": i, "name": f"srv00{i}"} for i in (1, 2)]
    journal: list[Any] = []
    routes = routes_for(devices, journal)
    bulk = routes[("PATCH", "/api/dcim/devices/")]
    refused = NetBoxError("NetBox PATCH: HTTP 400: {'serial': ['too long']}", 400)

    def all_or_nothing(params: dict[str, Any], rows: Any) -> Any:
        if any(row["id"] == 2 for row in rows):
            raise refused  # NetBox applies a bulk PATCH all or nothing
        return bulk(params, rows)

    routes.update({("PATCH", "/api/dcim/devices/"): all_or_nothing,
                   ("PATCH", "/api/dcim/devices/1/"): lambda p, row: bulk(p, [{"id": 1, **row}])[0],
                   ("PATCH", "/api/dcim/devices/2/"): refused})  # fmt: skip
    out = apply(fake_netbox(routes), bus, "discover", _transition.Request(1, "r", "ev-1"), _transition.Request(2, "r"))
    assert out[0]["transitioned"] and out[0]["journal_entry"] == 1
    assert (out[1]["refused"], out[1]["state"], out[1]["changed"]) == ("netbox_refused", "staged", False)
    assert "too long" in out[1]["msg"]
    assert [d["custom_fields"]["lifecycle_state"]["value"] for d in devices] == ["discovery", "staged"]
    assert len(journal) == 1  # no journal entry for a change that did not happen


def test_check_mode_writes_nothing_and_takes_no_lock(fake_netbox: Callable[..., Any]) -> None:
    nb = fake_netbox(routes_for([device()], []))
    [out] = apply(nb, None, "discover", _transition.Request("1", "r"), write=False)
    assert out["changed"] and out["transitioned"]
    assert out["diff"]["after"]["lifecycle_state"] == "discovery"
    assert nb.writes() == []


def test_unknown_device_is_refused_as_missing(bus: RedisClient, fake_netbox: Callable[..., Any]) -> None:
    [out] = apply(fake_netbox(routes_for([], [])), bus, "discover", _transition.Request(7, "r"))
    assert out["refused"] == "missing" and not out["changed"]


def test_request_needs_a_device_and_a_reason() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        _transition.Request.from_dict({"device": 1}, {})
    with pytest.raises(ValueError, match="unknown keys"):
        _transition.Request.from_dict({"device": 1, "state": "x"}, {"reason": "r"})


def test_locks_are_exclusive_and_released_only_by_their_holder(bus: RedisClient) -> None:
    with DeviceLocks(bus, [5], ttl=5, wait=0) as mine:
        assert mine.held == [5]
        started = time.monotonic()
        with DeviceLocks(bus, [5, 7], ttl=5, wait=0.2) as other:
            assert other.busy == [5] and other.held == [7]
            with pytest.raises(LockBusy):
                other.require()
        assert time.monotonic() - started < 2
        bus.call("SET", "bm:lock:device:6", "someone-else")
        with DeviceLocks(bus, [6], wait=0) as third:
            assert third.busy == [6]
        assert bus.call("GET", "bm:lock:device:6") == b"someone-else"
    assert bus.call("EXISTS", "bm:lock:device:5") == 0
    with DeviceLocks(bus, [5], ttl=5, wait=0):  # free again
        assert 0 < int(bus.call("PTTL", "bm:lock:device:5")) <= 5000


# --- lease matching --------------------------------------------------------------------------------------------------

MAC = "94:40:c9:5e:7a:b0"


def mac_row(iface: int, dev: int, name: str = "srv001", obj: str = "dcim.interface", mac: str = MAC) -> dict[str, Any]:
    return {
        "id": 100 + iface,
        "mac_address": mac.upper(),
        "assigned_object_type": obj,
        "assigned_object_id": iface,
        "assigned_object": {"id": iface, "name": f"if{iface}", "device": {"id": dev, "name": name}},
        "is_primary": True,
    }


def lease_routes(rows: list[dict[str, Any]], mgmt: bool = True, tenant: dict[str, Any] = TENANT) -> dict[Any, Any]:
    interfaces = [{"id": r["assigned_object_id"], "name": "ilo", "mgmt_only": mgmt} for r in rows]
    return {
        ("GET", "/api/dcim/mac-addresses/"): {"count": len(rows), "next": None, "results": rows},
        ("GET", "/api/dcim/interfaces/"): {"count": len(interfaces), "next": None, "results": interfaces},
        ("GET", "/api/dcim/devices/"): {"count": 1, "next": None, "results": [device(tenant=tenant)]},
    }


def test_unknown_mac(fake_netbox: Callable[..., Any]) -> None:
    nb = fake_netbox(lease_routes([]))
    found = match_leases(nb, ["9440.C95E.7AB0"])[MAC]
    assert found["match"] == "unknown"
    assert found["mac"] == MAC
    assert nb.calls[0][2]["mac_address"] == [MAC]
    assert nb.requests == 1


def test_mac_on_two_devices_is_ambiguous(fake_netbox: Callable[..., Any]) -> None:
    nb = fake_netbox(lease_routes([mac_row(1, 1), mac_row(2, 2, "srv002")]))
    found = match_leases(nb, [MAC])[MAC]
    assert found["match"] == "ambiguous"
    assert "srv001" in found["msg"] and "srv002" in found["msg"]


def test_data_nic_lease_is_not_a_bmc(fake_netbox: Callable[..., Any]) -> None:
    found = match_leases(fake_netbox(lease_routes([mac_row(3, 1)], mgmt=False)), [MAC])[MAC]
    assert found["match"] == "not_bmc"


def test_foreign_tenant(fake_netbox: Callable[..., Any]) -> None:
    nb = fake_netbox(lease_routes([mac_row(1, 1)], tenant={"id": 9, "name": "prod", "slug": "prod"}))
    assert match_leases(nb, [MAC])[MAC]["match"] == "foreign_tenant"


def test_bmc_match_is_three_requests_for_the_batch(fake_netbox: Callable[..., Any]) -> None:
    other = "94:40:c9:5e:7a:b1"
    nb = fake_netbox(lease_routes([mac_row(1, 1)]))
    found = match_leases(nb, ["94-40-C9-5E-7A-B0", other])
    assert found[MAC]["match"] == "bmc"
    assert found[MAC]["device"]["name"] == "srv001"
    assert found[MAC]["interface"] == {"id": 1, "name": "ilo"}
    assert found[other]["match"] == "unknown"
    assert nb.requests == 3


def test_vm_interface_mac_is_unknown(fake_netbox: Callable[..., Any]) -> None:
    nb = fake_netbox(lease_routes([mac_row(1, 1, obj="virtualization.vminterface")]))
    assert match_leases(nb, [MAC])[MAC]["match"] == "unknown"


# --- BMC IP -----------------------------------------------------------------------------------------------------------


def ip_routes(on_iface: list[dict[str, Any]], elsewhere: list[dict[str, Any]] | None = None) -> dict[Any, Any]:
    def listing(params: dict[str, Any], _: Any) -> dict[str, Any]:
        rows = [{**ip, "assigned_object_id": 1} for ip in on_iface] if "interface_id" in params else elsewhere or []
        return {"count": len(rows), "next": None, "results": rows}

    def prefixes(params: dict[str, Any], _: Any) -> dict[str, Any]:
        rows = [{"prefix": "10.1.0.0/16"}, {"prefix": "10.1.100.0/24"}]
        if "within_include" in params:
            rows = [{"prefix": "10.1.100.0/24"}, {"prefix": "10.1.100.128/25"}]
        return {"count": len(rows), "next": None, "results": rows}

    return {
        ("GET", "/api/ipam/ip-addresses/"): listing,
        ("GET", "/api/ipam/prefixes/"): prefixes,
        ("POST", "/api/ipam/ip-addresses/"): lambda _, rows: [{"id": 50 + n, **row} for n, row in enumerate(rows)],
        ("PATCH", "/api/dcim/devices/"): [],
        ("PATCH", "/api/ipam/ip-addresses/"): [],
    }


def recorded(results: list[dict[str, Any] | NetBoxError]) -> list[dict[str, Any]]:
    """The results of a batch in which no lease was refused."""
    assert all(isinstance(r, dict) for r in results), results
    return [r for r in results if isinstance(r, dict)]


def test_first_leases_create_the_ips_and_set_oob_in_bulk(fake_netbox: Callable[..., Any]) -> None:
    nb = fake_netbox(ip_routes([]))
    two = {**device(), "id": 2, "name": "srv002"}
    out = recorded(reconcile_bmc_ips(nb, [BmcLease(device(), 1, "10.1.100.21"), BmcLease(two, 1, "10.1.100.200")]))
    assert [o["ip"] for o in out] == ["10.1.100.21/24", "10.1.100.200/25"]  # the most specific prefix of each
    assert all(o["ip_changed"] and o["changed"] for o in out)
    writes = nb.writes()
    assert [(m, p) for m, p, _b in writes] == [("POST", "/api/ipam/ip-addresses/"), ("PATCH", "/api/dcim/devices/")]
    assert [row["status"] for row in writes[0][2]] == ["active", "active"]
    assert writes[1][2] == [{"id": 1, "oob_ip": 50}, {"id": 2, "oob_ip": 51}]
    assert nb.requests == 6  # IPs on the interfaces, IPs elsewhere, two prefix reads for both hosts, two writes


def test_same_lease_again_changes_nothing(fake_netbox: Callable[..., Any]) -> None:
    ip = {"id": 50, "address": "10.1.100.21/24", "status": {"value": "active", "label": "Active"}}
    dev = {**device(), "oob_ip": {"id": 50, "address": "10.1.100.21/24"}}
    nb = fake_netbox(ip_routes([ip]))
    [out] = recorded(reconcile_bmc_ips(nb, [BmcLease(dev, 1, "10.1.100.21")]))
    assert not out["changed"] and not out["ip_changed"]
    assert nb.writes() == []
    assert nb.requests == 1


def test_new_address_deprecates_the_old_one(fake_netbox: Callable[..., Any]) -> None:
    old = {"id": 50, "address": "10.1.100.21/24", "status": {"value": "active", "label": "Active"}}
    dev = {**device(), "oob_ip": {"id": 50, "address": "10.1.100.21/24"}}
    nb = fake_netbox(ip_routes([old]))
    [out] = recorded(reconcile_bmc_ips(nb, [BmcLease(dev, 1, "10.1.100.22/24")]))
    assert out["ip_changed"] and out["previous_ip"] == "10.1.100.21/24"
    assert ("PATCH", "/api/ipam/ip-addresses/", [{"id": 50, "status": "deprecated"}]) in nb.writes()


def test_address_held_elsewhere_is_not_moved_and_its_batch_mates_go_on(fake_netbox: Callable[..., Any]) -> None:
    other = {"id": 9, "address": "10.1.100.21/24", "assigned_object_id": 77,
             "assigned_object": {"name": "ilo", "device": {"name": "srv009"}}}  # fmt: skip
    nb = fake_netbox(ip_routes([], [other]))
    two = {**device(), "id": 2, "name": "srv002"}
    held, fine = reconcile_bmc_ips(nb, [BmcLease(device(), 1, "10.1.100.21"), BmcLease(two, 1, "10.1.100.30/24")])
    assert isinstance(held, NetBoxError) and "srv009" in str(held) and held.status == 409
    assert isinstance(fine, dict) and fine["ip"] == "10.1.100.30/24"
    assert all(row["oob_ip"] != 9 for _m, path, rows in nb.writes() if path == "/api/dcim/devices/" for row in rows)


def test_an_ip_netbox_refuses_fails_its_lease_alone(fake_netbox: Callable[..., Any]) -> None:
    def create(_: Any, body: Any) -> Any:
        rows = body if isinstance(body, list) else [body]  # the bulk chunk, then each row alone
        if any(row["address"].startswith("10.1.100.21/") for row in rows):
            raise NetBoxError("address: duplicate IP address found in global table", 400)
        return [{"id": 60, **row} for row in rows] if isinstance(body, list) else {"id": 60, **body}

    nb = fake_netbox({**ip_routes([]), ("POST", "/api/ipam/ip-addresses/"): create})
    two = {**device(), "id": 2, "name": "srv002"}
    refused, fine = reconcile_bmc_ips(nb, [BmcLease(device(), 1, "10.1.100.21"), BmcLease(two, 2, "10.1.100.30/24")])
    assert isinstance(refused, NetBoxError) and refused.status == 400 and "duplicate" in str(refused)
    assert isinstance(fine, dict) and fine["ip_id"] == 60
    assert ("PATCH", "/api/dcim/devices/", [{"id": 2, "oob_ip": 60}]) in nb.writes()  # none for the refused lease


def test_check_mode_reports_without_writing(fake_netbox: Callable[..., Any]) -> None:
    nb = fake_netbox(ip_routes([]))
    [out] = recorded(reconcile_bmc_ips(nb, [BmcLease(device(), 1, "10.1.100.21")], check_mode=True))
    assert out["changed"] and nb.writes() == []
