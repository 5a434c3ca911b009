#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module bm.lifecycle.bmc_lease: match a DHCP lease to a device's BMC in NetBox and record the BMC's IP."""

from __future__ import annotations

DOCUMENTATION = r"""
module: bmc_lease
short_description: Match a batch of DHCP leases to NetBox devices' BMCs and record the leased IPs
version_added: 0.1.0
description:
  - Takes the items of a discovery batch (each entry a C(dhcp_lease) event, C(data) C({mac, ip, hostname})), looks all
    their MACs up at once (three NetBox requests for the batch - MAC addresses, interfaces, devices) and decides each.
  - V(unknown) (no device has the MAC) - C(done), event C(unknown_mac), a warning, nothing changed.
    V(ambiguous) (several devices have it) - C(failed) (C(stage_failed)), nothing changed.
    V(not_bmc) (a data NIC's MAC; the validation image asks for leases too) - C(skipped).
    V(foreign_tenant) (not a device of O(tenant)) - C(skipped), a warning.
  - V(bmc) - the IP is recorded on the BMC interface (IPAM, status C(active)) and made the device's C(oob_ip) (other
    IPs left on that interface become C(deprecated)), under the device's lock. An address NetBox holds on another
    object is never moved (the item fails, nothing changed). Then a staged, not yet hardened device stays C(active)
    for the discovery transition (so does a device already in C(discovery) when the lease is delivered again - its first
    run died after the transition); any other is C(done), with the event C(bmc_ip_changed) when its IP changed.
  - Two leases of one BMC in a batch are one lease, the later one; the earlier is C(skipped).
  - It never changes the lifecycle state; the discovery stage does that with M(bm.lifecycle.lifecycle_transition).
author: bm-lifecycle developers (@bm-lifecycle)
extends_documentation_fragment:
  - bm.lifecycle.batch
  - bm.lifecycle.tenant
  - bm.lifecycle.netbox
  - bm.lifecycle.redis
"""

EXAMPLES = r"""
- name: Match every lease of the batch and record the BMCs' IPs
  bm.lifecycle.bmc_lease:
    batch: "{{ bm_read.batch }}"
  register: bm_match
"""

RETURN = r"""
batch:
  description:
    - The items after this step; each matched item's C(facts) gain C(match), C(mac), C(ip), C(bmc_ip), C(previous_ip),
      C(ip_changed), C(hostname) and C(transition_reason).
  returned: always
  type: list
  elements: dict
summary:
  description: How many items are in each status after this step.
  returned: always
  type: dict
netbox_requests:
  description: HTTP requests sent to NetBox.
  returned: always
  type: int
"""

from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._batch import (
    active,
    check_items,
    defer,
    done,
    fail,
    skip,
    summary,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle import HARDENED_AT, custom_field, state_of
from ansible_collections.bm.lifecycle.plugins.module_utils._mac import MacError, normalize_mac
from ansible_collections.bm.lifecycle.plugins.module_utils._module import LifecycleModule, run_batch_step
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import (
    BmcLease,
    DeviceLocks,
    NetBoxError,
    device_ref,
    host_of,
    match_leases,
    reconcile_bmc_ips,
)


def lease_of(item: dict[str, Any]) -> dict[str, Any]:
    """The lease of an item's dhcp_lease entry, its MAC normalised (MacError for a MAC that is not one)."""
    data = item["entry"]["envelope"].get("data") or {}
    return {"mac": normalize_mac(str(data.get("mac"))), "ip": data.get("ip"), "hostname": data.get("hostname")}


def decide(module: LifecycleModule, item: dict[str, Any], found: dict[str, Any]) -> None:
    """What an unmatched lease means for its item."""
    facts = item["facts"]
    if found["match"] == "unknown":
        module.warn(found["msg"])
        done(item, "unknown_mac", {"stage": "discovery", **{k: facts[k] for k in ("mac", "ip", "hostname")}},
             found["msg"])  # fmt: skip
    elif found["match"] == "ambiguous":
        fail(item, "ambiguous_mac", found["msg"] + ": fix NetBox (nothing was changed)")
    elif found["match"] == "foreign_tenant":
        module.warn(found["msg"])
        skip(item, found["msg"])
    else:
        skip(item, found["msg"])


def record(item: dict[str, Any], found: dict[str, Any], ip: dict[str, Any]) -> None:
    """With its IP recorded, decide whether the lease's device goes on to the discovery transition."""
    device, facts = found["device"], item["facts"]
    state, hardened = state_of(device), bool(custom_field(device, HARDENED_AT))
    facts.update(
        ip=ip["ip"], bmc_ip=host_of(ip["ip"]), previous_ip=ip["previous_ip"], ip_changed=ip["ip_changed"], state=state,
        transition_reason=f"DHCP lease of its BMC: {facts['mac']} got {ip['ip']}",
    )  # fmt: skip
    redelivered = int(item["entry"].get("delivery_count") or 1) > 1
    if not hardened and (state == "staged" or (redelivered and state == "discovery")):
        return  # on to the discovery transition
    event = "bmc_ip_changed" if ip["ip_changed"] else None
    data = {"stage": "discovery", **{k: facts[k] for k in ("mac", "ip", "bmc_ip", "previous_ip", "hostname")}}
    done(item, event, data, f"{device.get('name')} is {state}: only its BMC IP is reconciled ({found['msg']})")


def match(module: LifecycleModule) -> dict[str, Any]:
    """Match, record and decide every lease of the batch."""
    items = check_items(module.params["batch"])
    todo = []
    for item in active(items):
        try:
            item["facts"].update(lease_of(item))
        except MacError as exc:
            fail(item, "bad_lease", f"lease {item['entry']['envelope'].get('data')!r:.200}: {exc}")
            continue
        if not item["facts"]["ip"]:
            fail(item, "bad_lease", "the lease has no ip")
            continue
        todo.append(item)
    matches = match_leases(module.netbox, [i["facts"]["mac"] for i in todo], module.tenant)
    latest: dict[int, dict[str, Any]] = {}  # device id -> the batch's last lease of its BMC
    for item in todo:
        found = matches[item["facts"]["mac"]]
        item["facts"]["match"] = found["match"]
        if found["device"]:
            item["device"] = device_ref(found["device"])
        if found["match"] != "bmc":
            decide(module, item, found)
            continue
        earlier = latest.get(int(found["device"]["id"]))
        if earlier is not None:
            skip(earlier, f"superseded by a later lease of the same BMC in this batch ({item['facts']['ip']})")
        latest[int(found["device"]["id"])] = item
    if latest:
        with DeviceLocks(module.redis, [] if module.check_mode else list(latest)) as locks:
            for device_id in locks.busy:
                defer(latest.pop(device_id), f"device {device_id}: another stage holds its lock (delivered again)")
            matched = [matches[item["facts"]["mac"]] for item in latest.values()]
            leases = [
                BmcLease(m["device"], int(m["interface"]["id"]), i["facts"]["ip"])
                for m, i in zip(matched, latest.values(), strict=True)
            ]
            ips = reconcile_bmc_ips(module.netbox, leases, check_mode=module.check_mode)
        for item, one, ip in zip(latest.values(), matched, ips, strict=True):
            if isinstance(ip, NetBoxError):
                fail(item, "ip_conflict" if ip.status == 409 else "netbox_refused", str(ip))
            else:
                record(item, one, ip)
    return {"changed": any(i["facts"].get("ip_changed") for i in items), "batch": items, "summary": summary(items)}


def main() -> None:
    """Run the module."""
    run_batch_step({}, match)


if __name__ == "__main__":
    main()
