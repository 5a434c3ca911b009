#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module bm.lifecycle.lifecycle_transition: compare-and-set of a device's lifecycle state in NetBox."""

from __future__ import annotations

DOCUMENTATION = r"""
module: lifecycle_transition
short_description: Apply a named lifecycle transition to a batch of NetBox devices (compare-and-set, in bulk)
version_added: 0.1.0
description:
  - Applies the lifecycle transition O(transition) of the state machine (docs/ARCHITECTURE.md, "The state machine") to
    every device of O(batch) (a stage's batch) or O(devices) (named by hand). C(lifecycle_state) moves from one of the
    transition's source states to its target, C(lifecycle_changed_at) and the target's timestamp field are set, and a
    NetBox journal entry on each device says what, why, who and which event.
  - "Compare-and-set, for the whole batch at once: the devices' Redis locks (C(SET bm:lock:device:<id> NX PX)) are
    taken in one pipeline, the devices re-read under them in one NetBox request, each checked (tenant, source state,
    the C(hardened_at) guard, O(expected_fields)), the changes written with one bulk C(PATCH) and the journal entries
    with one bulk C(POST). A device not in a source state is refused (RV(results[].refused=state)), nothing changed: a
    duplicate or late event is harmless. A device whose lock another run holds past O(lock_wait) is left alone
    (C(refused=locked)); in O(batch) it becomes C(deferred), its entry not acknowledged."
  - With O(batch), a refused device's item is C(skipped) (acknowledged, nothing more), unless O(resume) is set and the
    device is already in the target state; then a redelivered event goes on (a run that died after its C(PATCH)), and a
    missing journal entry is written late.
  - Only devices of O(tenant) are touched; any other device is refused with a warning (C(refused=tenant)).
author: bm-lifecycle developers (@bm-lifecycle)
extends_documentation_fragment:
  - bm.lifecycle.tenant
  - bm.lifecycle.netbox
  - bm.lifecycle.redis
attributes:
  check_mode:
    support: full
    description: Reads the devices and reports what would change; takes no lock and writes nothing.
  diff_mode:
    support: full
    description: Shows each device's custom fields and device fields before and after.
options:
  transition:
    description: The transition, by name; its source states, target, timestamp field and guard are the state machine's.
    type: str
    required: true
    choices: [discover, claim_pxe_boot, fail_provisioning, complete_validation, time_out_validation, fail_validation,
              start_hardening, complete_hardening, fail_hardening, start_monitoring, reset]
  batch:
    description:
      - A stage's batch (the previous step's RV(batch)); the transition is applied to the devices of its active items.
      - An item's C(facts.transition_reason) and C(facts.journal_kind), when a step set them, are the journal entry's
        reason and kind for that device. Its C(facts.bmc_identity_learned) (the BMC's certificate and service UUID,
        learned on first contact) is recorded in the same C(PATCH), in the custom fields C(bmc_tls_sha256) and
        C(bmc_uuid).
    type: list
    elements: dict
  devices:
    description:
      - Devices named by hand, each an id, a unique name, or a mapping with C(device) and any of O(reason),
        C(event_id), O(expected_fields), O(custom_fields), O(device_fields), O(journal_kind) for that device alone.
    type: list
    elements: raw
  reason:
    description: Why, for the journal entries (a O(devices) entry may give its own).
    type: str
    required: true
  expected_fields:
    description:
      - Custom fields that must also hold these values under the lock (null or an empty string mean empty), for
        example the C(lifecycle_changed_at) a caller read, so that the move happens only if nobody moved the device.
    type: dict
  custom_fields:
    description: More custom fields to set (or clear with null) in the same C(PATCH).
    type: dict
  device_fields:
    description: Top-level device fields to set in the same C(PATCH) (for example C(oob_ip) by id).
    type: dict
  resume:
    description: With O(batch), an item whose device is already in the target state goes on (see above).
    type: bool
    default: false
  actor:
    description: Who, for the journal entries (a stage, an operator).
    type: str
    default: bm.lifecycle
  journal:
    description: Write a journal entry when something changes.
    type: bool
    default: true
  journal_kind:
    description: Journal entry kind; the transition's own by default (C(danger) for failures).
    type: str
    choices: [info, success, warning, danger]
  lock_ttl:
    description: Seconds a device lock lives at most (released as soon as the batch is written).
    type: float
    default: 30
  lock_wait:
    description: Seconds to wait for locks another stage holds.
    type: float
    default: 10
"""

EXAMPLES = r"""
- name: Claim every device of the batch - discovery -> validating (compare-and-set)
  bm.lifecycle.lifecycle_transition:
    batch: "{{ bm_verify.batch }}"
    transition: claim_pxe_boot
    reason: one-time PXE boot of the validation image
    actor: bm.lifecycle.provisioning
  register: bm_claim

- name: An operator resets a failed server to the start (clears hardened_at in the same PATCH)
  bm.lifecycle.lifecycle_transition:
    devices: [srv001]
    transition: reset
    custom_fields: {hardened_at: null}
    reason: BMC cable replaced (ticket 1234)
    actor: jdoe
"""

RETURN = r"""
results:
  description: One result per device, in order.
  returned: always
  type: list
  elements: dict
  contains:
    transitioned:
      description: Whether the state changed (or would, in check mode).
      type: bool
    refused:
      description:
        - Why nothing was done, null if done.
        - V(state), V(hardened), V(fields), V(tenant), V(locked), V(missing) or V(netbox_refused) (NetBox refused
          the change; in O(batch) the item fails, its batch-mates go on).
      type: str
    state_before:
      description: The state found under the lock.
      type: str
    state:
      description: The state after the module.
      type: str
    device:
      description: The device's id and name.
      type: dict
    custom_fields:
      description: The custom fields written (or to be written).
      type: dict
    oob_ip:
      description: The device's out-of-band (BMC) address without its length, null if none.
      type: str
    journal_entry:
      description: Id of the journal entry written, if any.
      type: int
    msg:
      description: What happened, in words.
      type: str
batch:
  description: With O(batch), the items after this step.
  returned: when O(batch) is given
  type: list
  elements: dict
transitioned:
  description: How many devices changed state.
  returned: always
  type: int
netbox_requests:
  description: HTTP requests sent to NetBox (including retries).
  returned: always
  type: int
"""

from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils import _transition
from ansible_collections.bm.lifecycle.plugins.module_utils._batch import (
    active,
    check_items,
    defer,
    event_id,
    fail,
    skip,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle import TRANSITIONS, transition_named
from ansible_collections.bm.lifecycle.plugins.module_utils._module import LifecycleModule
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import bmc_identity_fields

PER_DEVICE = ("reason", "expected_fields", "custom_fields", "device_fields", "journal_kind")


def move(module: LifecycleModule) -> dict[str, Any]:
    """Plan and apply the transition for the batch; items follow their device's result."""
    p = module.params
    defaults = {k: p[k] for k in PER_DEVICE}
    items = check_items(p["batch"]) if p["batch"] is not None else None
    todo = active(items) if items is not None else []
    if items is not None:
        raw: list[Any] = [
            {
                "device": int(i["device"]["id"]),
                "event_id": event_id(i),
                "reason": i["facts"].get("transition_reason"),
                "journal_kind": i["facts"].get("journal_kind"),
                "custom_fields": {
                    **(p["custom_fields"] or {}),
                    **bmc_identity_fields(i["facts"].get("bmc_identity_learned") or {}),
                }
                or None,
            }
            for i in todo
        ]
    else:
        raw = list(p["devices"] or [])
    requests = [_transition.Request.from_dict(r, defaults) for r in raw]
    results = _transition.apply(
        module.netbox, None if module.check_mode else module.redis, transition_named(p["transition"]), requests,
        actor=p["actor"], tenant=module.tenant, write=not module.check_mode, journal=p["journal"],
        lock_ttl=p["lock_ttl"], lock_wait=p["lock_wait"],
    )  # fmt: skip
    for result in results:
        if result["refused"] == "tenant":
            module.warn(result["msg"])
    for item, result in zip(todo, results if items is not None else [], strict=True):
        item["facts"]["transition"] = {k: result[k] for k in ("transitioned", "refused", "state_before", "state")}
        item["msg"] = result["msg"]
        if result["refused"] == "locked":
            defer(item, result["msg"])
        elif result["refused"] == "netbox_refused":
            fail(item, "netbox_refused", result["msg"])
        elif result["refused"] and not (p["resume"] and result["state"] == TRANSITIONS[p["transition"]].target):
            skip(item, result["msg"])
    out: dict[str, Any] = {
        "changed": any(r["changed"] for r in results),
        "results": results,
        "transitioned": sum(1 for r in results if r["transitioned"]),
        "diff": {
            "before": {r["device"]["name"]: r["diff"]["before"] for r in results if r["changed"]},
            "after": {r["device"]["name"]: r["diff"]["after"] for r in results if r["changed"]},
        },
    }
    if items is not None:
        out["batch"] = items
    return out


def main() -> None:
    """Run the module."""
    module = LifecycleModule(
        {
            "transition": {"type": "str", "required": True, "choices": list(TRANSITIONS)},
            "batch": {"type": "list", "elements": "dict"},
            "devices": {"type": "list", "elements": "raw"},
            "reason": {"type": "str", "required": True},
            "expected_fields": {"type": "dict"},
            "custom_fields": {"type": "dict"},
            "device_fields": {"type": "dict"},
            "resume": {"type": "bool", "default": False},
            "actor": {"type": "str", "default": "bm.lifecycle"},
            "journal": {"type": "bool", "default": True},
            "journal_kind": {"type": "str", "choices": ["info", "success", "warning", "danger"]},
            "lock_ttl": {"type": "float", "default": 30.0},
            "lock_wait": {"type": "float", "default": 10.0},
        },
        redis=True,
        tenant=True,
        required_one_of=[("batch", "devices")],
        mutually_exclusive=[("batch", "devices")],
    )
    module.run(move)


if __name__ == "__main__":
    main()
