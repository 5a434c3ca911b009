#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module bm.lifecycle.stage_batch: the first step of every stage, its batch as items."""

from __future__ import annotations

DOCUMENTATION = r"""
module: stage_batch
short_description: Turn a stage's batch (from the rulebook, or named by hand) into items, reading its devices at once
version_added: 0.2.0
description:
  - The first step of every stage playbook. Makes one item per entry of O(rulebook_batch) (the batch the rulebook
    passes, C(bm_batch)), or, run by hand, one item for O(device) or O(data) with a new envelope of O(event_type)
    (nothing to acknowledge). Returns them as RV(batch), the option every later step takes.
  - With O(select), the items are instead devices of the tenant the state machine picks (docs/ARCHITECTURE.md, "The
    state machine"), read in one NetBox list request; with O(device), only that one if it is picked. Their entries
    name no bus entry (nothing to acknowledge). V(polled) - the devices the monitoring cycle polls (monitored, or
    staged and hardened), active. V(validation_overdue) - the devices in validating for more than
    O(overdue_minutes) (or since an unknown time), already C(failed) with reason C(validation_timeout); their C(facts)
    carry C(expected_fields) (the C(lifecycle_changed_at) read) so that their failure is recorded only if no report
    landed in between.
  - With O(admits), reads every device of the batch in one NetBox request and lets on only those the named lifecycle
    transition admits (tenant, state, C(hardened_at)); the others are C(skipped) with the reason (a duplicate or late
    event is acknowledged and changes nothing). Items whose event names no device are C(skipped) too.
  - An event its producer refused (its data a C(refused) mapping with C(reason) and C(msg), for example the
    validation webhook's token requested twice) makes a C(failed) item with that reason, which the stage's failure
    transition records (M(bm.lifecycle.stage_finish)).
author: bm-lifecycle developers (@bm-lifecycle)
extends_documentation_fragment:
  - bm.lifecycle.tenant
  - bm.lifecycle.netbox
options:
  rulebook_batch:
    description:
      - The rulebook's batch (a mapping whose C(entries) are C(stream), C(id), C(group), C(delivery_count) and
        C(envelope)), or its list of entries.
      - Empty or absent when run by hand.
    type: raw
  event_type:
    description: The event type this stage consumes (the type of the envelope made for a run by hand).
    type: str
    required: true
  device:
    description: Run by hand for this device (id or name).
    type: raw
  data:
    description: Run by hand with this event payload (for example a lease, C({mac, ip, hostname})).
    type: dict
  admits:
    description:
      - A lifecycle transition, by name (see M(bm.lifecycle.lifecycle_transition)), the devices must admit to go on.
    type: str
  select:
    description: Devices the state machine picks, instead of a batch (O(rulebook_batch) is not read).
    type: str
    choices: [polled, validation_overdue]
  overdue_minutes:
    description: With O(select=validation_overdue), the minutes a device may stay in validating without a report.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
    description: Reads only, in any mode.
  diff_mode:
    support: none
    description: Nothing to compare.
"""

EXAMPLES = r"""
- name: Read the batch's devices (only those in discovery go on)
  bm.lifecycle.stage_batch:
    rulebook_batch: "{{ bm_batch | default(omit) }}"
    event_type: device_discovered
    device: "{{ device | default(omit) }}"
    admits: claim_pxe_boot
  register: bm_read

- name: Devices to poll - monitored, or staged and hardened
  bm.lifecycle.stage_batch:
    event_type: hardening_completed
    select: polled
  register: bm_fleet
"""

RETURN = r"""
batch:
  description: One item per entry (see docs/ARCHITECTURE.md, "The stage shape").
  returned: always
  type: list
  elements: dict
summary:
  description: How many items are in each status.
  returned: always
  type: dict
  sample: {active: 9, skipped: 1, deferred: 0, failed: 0, done: 0}
netbox_requests:
  description: HTTP requests sent to NetBox.
  returned: always
  type: int
"""

import datetime
import os
from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._batch import fail, fail_refused, new_item, skip, summary
from ansible_collections.bm.lifecycle.plugins.module_utils._envelope import new_event
from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle import (
    CHANGED_AT,
    OVERDUE_STATES,
    POLLED_STATES,
    UTC,
    custom_field,
    overdue,
    polled,
    refusal,
    state_of,
    transition_named,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._module import LifecycleModule
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import (
    bmc_facts,
    device_ref,
    read_devices,
    resolve_device_ids,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._time import netbox_time


def entries_of(batch: Any) -> list[dict[str, Any]]:
    """The entries of a rulebook batch (a mapping with ``entries``, or the list itself)."""
    if not batch:
        return []
    entries = batch.get("entries") if isinstance(batch, dict) else batch
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("envelope"), dict)
                                                for e in entries):  # fmt: skip
        raise ValueError("batch must be the rulebook's batch: {entries: [{stream, id, group, envelope}, ...]}")
    return entries


def manual_entry(module: LifecycleModule) -> dict[str, Any]:
    """The entry of a run by hand: a new envelope, no stream id (nothing to acknowledge)."""
    p = module.params
    device: dict[str, Any] | None = None
    if p["device"] not in (None, ""):
        found = resolve_device_ids(module.netbox, [p["device"]])[0]
        if found is None:
            raise ValueError(f"device {p['device']!r}: no single NetBox device has that id or name")
        device = {"id": found, "name": None}
    envelope = new_event(
        p["event_type"], p["data"] or {}, source="manual:" + os.environ.get("USER", "operator"), device=device
    )
    return {"stream": None, "id": None, "group": None, "delivery_count": 1, "envelope": envelope}


def selected_items(module: LifecycleModule) -> list[dict[str, Any]]:
    """One item per device of the tenant that ``select`` picks (``device``: only that one)."""
    p = module.params
    states = POLLED_STATES if p["select"] == "polled" else OVERDUE_STATES
    query: dict[str, Any] = {"tenant": module.tenant, "cf_lifecycle_state": list(states)}
    cutoff = datetime.datetime.now(UTC) - datetime.timedelta(minutes=p["overdue_minutes"])
    if p["select"] == "validation_overdue":
        query[f"cf_{CHANGED_AT}__lt"] = netbox_time(cutoff)  # NetBox's range filters also match a null value
    if p["device"] not in (None, ""):
        found = resolve_device_ids(module.netbox, [p["device"]])[0]
        if found is None:
            raise ValueError(f"device {p['device']!r}: no single NetBox device has that id or name")
        query["id"] = found
    entry = {"stream": None, "id": None, "group": None, "delivery_count": 0, "envelope": None}
    items = []
    keep = polled if p["select"] == "polled" else lambda r, tenant: overdue(r, tenant, cutoff)
    for record in sorted(module.netbox.list("/api/dcim/devices/", **query), key=lambda r: str(r.get("name"))):
        if not keep(record, module.tenant):
            continue
        item = new_item(entry, device_ref(record))
        item["facts"].update(state=state_of(record), **bmc_facts(record))
        items.append(item)
        if p["select"] == "validation_overdue":
            since = custom_field(record, CHANGED_AT)
            item["facts"].update(expected_fields={CHANGED_AT: since}, boot_files=[],
                                 system={"serial": record.get("serial") or ""})  # fmt: skip
            fail(item, "validation_timeout", f"no validation report within {p['overdue_minutes']} minutes (in "
                 f"validating since {since or 'an unknown time'})")  # fmt: skip
    return items


def read(module: LifecycleModule) -> dict[str, Any]:
    """The items of the batch, filtered by ``admits`` (or, with ``select``, the devices the state machine picks)."""
    p = module.params
    if p["select"]:
        items = selected_items(module)
        return {"changed": False, "batch": items, "summary": summary(items)}
    entries = entries_of(p["rulebook_batch"])
    if not entries and (p["device"] not in (None, "") or p["data"]):
        entries = [manual_entry(module)]
    items = [new_item(e, e["envelope"].get("device")) for e in entries]
    for item in items:
        fail_refused(item)
    if p["admits"]:
        transition = transition_named(p["admits"])
        for item in items:
            if not item["device"] or item["device"].get("id") is None:
                skip(item, "the event names no device: nothing to do")
        records = read_devices(module.netbox, [i["device"]["id"] for i in items if i["status"] == "active"])
        for item in items:
            if item["status"] != "active":
                continue
            record = records.get(int(item["device"]["id"]))
            if record is None:
                skip(item, f"device {item['device']['id']} does not exist in NetBox: nothing to do")
                continue
            item["device"] = device_ref(record)
            item["facts"].update(state=state_of(record), **bmc_facts(record))
            why = refusal(record, transition, module.tenant)
            if why is not None:
                if why[0] == "tenant":
                    module.warn(why[1])
                skip(item, why[1])
    return {"changed": False, "batch": items, "summary": summary(items)}


def main() -> None:
    """Run the module."""
    module = LifecycleModule(
        {
            "rulebook_batch": {"type": "raw"},
            "event_type": {"type": "str", "required": True},
            "device": {"type": "raw"},
            "data": {"type": "dict"},
            "admits": {"type": "str"},
            "select": {"type": "str", "choices": ["polled", "validation_overdue"]},
            "overdue_minutes": {"type": "int", "default": 30},
        },
        tenant=True,
    )
    module.run(read)


if __name__ == "__main__":
    main()
