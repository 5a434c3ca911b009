#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module bm.lifecycle.stage_finish: the last step of every stage."""

from __future__ import annotations

DOCUMENTATION = r"""
module: stage_finish
short_description: Record a batch's failures in NetBox, publish its follow-up events and acknowledge its entries at once
version_added: 0.2.0
description:
  - The last step of every stage playbook. Every item still C(active) is C(done), and its follow-up event is
    O(follow_up) with the item's O(follow_up_facts) as data.
  - Every C(failed) item whose device is known takes the stage's failure transition O(fail_transition) (compare-and-set
    under the device lock, with a journal entry saying why), for the whole batch in one bulk write. An item whose
    C(facts.expected_fields) no longer match its device (it moved on, for example a validation report landed while
    its timeout was decided) is not failed but C(skipped), with no C(stage_failed).
  - Then, in one Redis transaction, publishes every C(done) item's follow-up event and a C(stage_failed) event for
    every C(failed) item (each envelope's id derived from its cause, so a re-run publishes nothing twice), and
    acknowledges the entries of every item but the C(deferred) ones.
author: bm-lifecycle developers (@bm-lifecycle)
extends_documentation_fragment:
  - bm.lifecycle.batch
  - bm.lifecycle.tenant
  - bm.lifecycle.netbox
  - bm.lifecycle.redis
options:
  stage:
    description: The stage's name (C(stage_failed) events and the envelopes' C(source) say it).
    type: str
    required: true
  follow_up:
    description: The event type published for every item still active (for example V(pxe_boot_initiated)).
    type: str
  follow_up_facts:
    description: The items' C(facts) carried as the follow-up event's data (and, those known, as a C(stage_failed)'s).
    type: list
    elements: str
    default: []
  fail_transition:
    description: The lifecycle transition that records a failed device (for example V(fail_provisioning)).
    type: str
"""

EXAMPLES = r"""
- name: Record failures, publish pxe_boot_initiated and stage_failed, acknowledge the batch
  bm.lifecycle.stage_finish:
    batch: "{{ bm_pxe.batch }}"
    stage: provisioning
    follow_up: pxe_boot_initiated
    follow_up_facts: [bmc_address, reset_type, power_state_before, boot_files, token_expires_at]
    fail_transition: fail_provisioning
  register: bm_finish
"""

RETURN = r"""
batch:
  description: The items, as given.
  returned: always
  type: list
  elements: dict
failed_devices:
  description: The devices that failed the stage, with why.
  returned: always
  type: list
  elements: dict
  sample: [{name: srv003, reason: unreachable, msg: "BMC 10.1.100.23: no answer after 5 tries"}]
published:
  description: The events published (C(duplicate) when published before).
  returned: always
  type: list
  elements: dict
acked:
  description: How many entries were acknowledged.
  returned: always
  type: int
summary:
  description: How many items are in each status.
  returned: always
  type: dict
netbox_requests:
  description: HTTP requests sent to NetBox.
  returned: always
  type: int
"""

from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils import _transition
from ansible_collections.bm.lifecycle.plugins.module_utils._batch import (
    active,
    check_items,
    done,
    event_id,
    skip,
    summary,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._envelope import new_event
from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle import transition_named
from ansible_collections.bm.lifecycle.plugins.module_utils._module import LifecycleModule, run_batch_step
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_events import publish


def record_failures(module: LifecycleModule, failed: list[dict[str, Any]]) -> None:
    """The failure transition of every failed item with a device, in one batch."""
    p = module.params
    with_device = [i for i in failed if i["device"] and i["device"].get("id") is not None]
    if not p["fail_transition"] or not with_device:
        return
    requests = [
        _transition.Request(
            device=int(i["device"]["id"]),
            reason=f"{i['failure']['reason']}: {i['failure']['msg']}",
            event_id=event_id(i),
            expected_fields=i["facts"].get("expected_fields"),
        )
        for i in with_device
    ]
    transition = transition_named(p["fail_transition"])
    results = _transition.apply(
        module.netbox, None if module.check_mode else module.redis, transition, requests,
        actor=f"bm.lifecycle.{p['stage']}", tenant=module.tenant, write=not module.check_mode,
    )  # fmt: skip
    for item, result in zip(with_device, results, strict=True):
        item["facts"]["failure_recorded"] = result["transitioned"] or result["state"] == result["state_before"]
        if item["facts"].get("expected_fields") and not result["transitioned"] and result["state"] != transition.target:
            # A compare-and-set failure (a timeout) that lost the race: the device moved on, it did not fail.
            skip(item, f"not recorded as failed: {result['msg']}")


def finish(module: LifecycleModule) -> dict[str, Any]:
    """Failures, then one publish-and-acknowledge transaction for the batch."""
    p = module.params
    items = check_items(p["batch"])
    for item in active(items):
        done(item, p["follow_up"], {"stage": p["stage"], **{k: item["facts"].get(k) for k in p["follow_up_facts"]}})
    record_failures(module, [i for i in items if i["status"] == "failed"])
    failed = [i for i in items if i["status"] == "failed"]
    source = f"bm.lifecycle.{p['stage']}"
    envelopes = []
    for item in items:
        cause = item["entry"]["envelope"]
        device = item["device"] if item["device"] and item["device"].get("id") is not None else None
        if item["status"] == "done" and item["follow_up"]:
            follow = item["follow_up"]
            envelopes.append(new_event(follow["event_type"], follow["data"], source=source, device=device, cause=cause))
        elif item["status"] == "failed":
            known = {k: item["facts"][k] for k in p["follow_up_facts"] if k in item["facts"]}
            data = {**known, "stage": p["stage"], **item["failure"]}
            envelopes.append(new_event("stage_failed", data, source=source, device=device, cause=cause))
    acks = [i["entry"] for i in items if i["entry"].get("id") and i["status"] in ("skipped", "failed", "done")]
    bus = publish(module.redis, envelopes, acks, check_mode=module.check_mode)
    return {
        "changed": bool(bus["changed"] or failed),
        "batch": items,
        "failed_devices": [{"name": (i["device"] or {}).get("name"), **(i["failure"] or {})} for i in failed],
        "published": bus["published"],
        "acked": len(bus["acked"]),
        "summary": summary(items),
    }


def main() -> None:
    """Run the module."""
    run_batch_step(
        {
            "stage": {"type": "str", "required": True},
            "follow_up": {"type": "str"},
            "follow_up_facts": {"type": "list", "elements": "str", "default": []},
            "fail_transition": {"type": "str"},
        },
        finish,
    )


if __name__ == "__main__":
    main()
