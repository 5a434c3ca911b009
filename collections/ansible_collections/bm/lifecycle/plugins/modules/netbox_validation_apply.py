#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module bm.lifecycle.netbox_validation_apply: a validation report's hardware, NICs, MACs and cables into NetBox."""

from __future__ import annotations

DOCUMENTATION = r"""
module: netbox_validation_apply
short_description: Record a batch of validation reports in NetBox (device type, serial, interfaces, MACs, cables)
version_added: 0.1.0
description:
  - Applies the summary of every validation report of a stage's batch (each item's entry is a C(validation_report)
    event, as the C(bm.lifecycle.validation_webhook) event source writes it) to its NetBox device, under the device's
    Redis lock, only if the device is in C(validating) and belongs to O(tenant).
  - "Hardware: the manufacturer and the device type (model) are looked up (case-insensitive) and created if missing;
    the device gets that device type and the reported serial."
  - "Interfaces: each reported physical NIC is the device's interface holding its MAC (any MAC of the NetBox 4.2+
    MAC model), else the interface of that name, else a new interface of type O(interface_type). Its MAC is set as
    the primary MAC with the NetBox 4.7 interface C(mac_address) shortcut. Management-only interfaces are never
    matched."
  - "Cables: for each LLDP neighbour, the switch is the NetBox device found by name (then short name), then by
    chassis MAC, then by management IP; the port is its interface by name (the port id), then by name or description
    equal to the port description, then by MAC when the port id is a MAC. A cable is created when neither end has one.
    An existing cable that contradicts LLDP is never changed: it is reported in C(facts.conflicts)."
  - Neighbours that cannot be matched are reported in C(facts.unmatched_neighbors); NICs with link but no LLDP
    neighbour in C(facts.no_neighbor_links); C(facts.transition_reason) puts all of it in words for the journal entry of
    the transition, and C(facts.journal_kind) is V(warning) when something needs a person, else V(success).
  - "Batch-wide: one list GET for the devices, one per 100 devices for their interfaces, one per switch for its ports,
    and one bulk request per kind of write (device PATCH, interface POST, interface PATCH, cable POST). Two reports
    of one batch naming the same switch port - the first gets the cable, the second a conflict."
  - A device gone from NetBox fails its item (C(unknown_device)); so does a device whose write NetBox refuses
    (C(netbox_refused)), alone - its batch-mates go on. NetBox unreachable fails the module (nothing is acknowledged,
    the batch is delivered again).
  - A device whose lock another run holds past O(lock_wait) is C(deferred) (not acknowledged, delivered again). Of two
    reports of one device in one batch, the later is applied and the earlier skipped.
  - A device no longer in C(validating) is C(skipped) (duplicate, late or timed out), except one already in
    C(validation_completed), which stays active so that its event is published again (same id, so deduplicated); that
    repairs a run that died between the transition and the publish.
  - Idempotent - the same report applied twice writes nothing the second time.
author: bm-lifecycle developers (@bm-lifecycle)
extends_documentation_fragment:
  - bm.lifecycle.batch
  - bm.lifecycle.tenant
  - bm.lifecycle.netbox
  - bm.lifecycle.redis
options:
  interface_type:
    description: NetBox interface type of interfaces created for reported NICs.
    type: str
    default: other
  lock_ttl:
    description: Seconds a device lock lives at most.
    type: float
    default: 120.0
  lock_wait:
    description: Seconds to wait for a device lock.
    type: float
    default: 10.0
"""

EXAMPLES = r"""
- name: Apply the batch's reports to NetBox (only while the devices are in validating)
  bm.lifecycle.netbox_validation_apply:
    batch: "{{ bm_read.batch }}"
  register: bm_apply
"""

RETURN = r"""
batch:
  description:
    - The items after this step; each applied item's C(facts) gain C(hardware), C(interfaces), C(cables),
      C(conflicts), C(unmatched_neighbors), C(no_neighbor_links), C(skipped), C(warnings_report), C(changes),
      C(transition_reason) and C(journal_kind).
  returned: always
  type: list
  elements: dict
summary:
  description: How many items are in each status after this step.
  returned: always
  type: dict
netbox_requests:
  description: HTTP requests sent to NetBox (including retries).
  returned: always
  type: int
"""

from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._batch import (
    active,
    check_items,
    defer,
    fail,
    skip,
    summary,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._module import LifecycleModule, run_batch_step
from ansible_collections.bm.lifecycle.plugins.module_utils._validation_apply import apply_reports

REPORTED = ("hardware", "interfaces", "cables", "conflicts", "unmatched_neighbors", "no_neighbor_links", "skipped",
            "changes")  # fmt: skip


def apply_all(module: LifecycleModule) -> dict[str, Any]:
    """Apply the active items' reports, batch-wide (one read and one bulk write per kind of object)."""
    p = module.params
    items = check_items(p["batch"])
    todo = []
    for item in active(items):
        if (item["device"] or {}).get("id") is None:
            skip(item, "the report names no device: nothing to do")
        else:
            todo.append(item)
    results = apply_reports(
        module.netbox, None if module.check_mode else module.redis,
        [(int(i["device"]["id"]), i["entry"]["envelope"].get("data") or {}) for i in todo], tenant=module.tenant,
        interface_type=p["interface_type"], check_mode=module.check_mode, lock_ttl=p["lock_ttl"],
        lock_wait=p["lock_wait"],
    )  # fmt: skip
    changed = False
    for item, result in zip(todo, results, strict=True):
        item["device"] = result["device"] if result["device"].get("name") else item["device"]
        item["msg"] = result["msg"]
        if result["error"]:
            fail(item, result["error"]["reason"], result["error"]["msg"])
            continue
        if result["refused"] == "locked":
            defer(item, result["msg"])
            continue
        if result["refused"] == "tenant":
            module.warn(result["msg"])
        if result["refused"] == "superseded" or (result["refused"] and result["state"] != "validation_completed"):
            skip(item, result["msg"])
            continue
        if result["refused"]:  # a redelivery after the transition: its event again (same id, deduplicated)
            item["facts"]["redelivered"] = True
            continue
        changed = changed or result["changed"]
        name = item["device"].get("name")
        for conflict in result["conflicts"]:
            module.warn(f"{name}: cable conflict on {conflict['interface']}: {conflict['reason']}")
        needs_a_person = result["conflicts"] or result["unmatched_neighbors"] or result["no_neighbor_links"]
        item["facts"].update(
            {k: result[k] for k in REPORTED},
            warnings_report=result["warnings"],
            redelivered=False,
            transition_reason=result["summary"],
            journal_kind="warning" if needs_a_person else "success",
        )
    return {"changed": changed, "batch": items, "summary": summary(items)}


def main() -> None:
    """Run the module."""
    run_batch_step(
        {
            "interface_type": {"type": "str", "default": "other"},
            "lock_ttl": {"type": "float", "default": 120.0},
            "lock_wait": {"type": "float", "default": 10.0},
        },
        apply_all,
    )


if __name__ == "__main__":
    main()
