#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module bm.lifecycle.lifecycle_transition: compare-and-set of a device's lifecycle state in NetBox."""

from __future__ import annotations

DOCUMENTATION = r"""
module: lifecycle_transition
short_description: Move a NetBox device from an expected lifecycle state to a new one (compare-and-set)
version_added: 0.1.0
description:
  - Moves one device from one of O(expected) to O(state) in the NetBox custom field C(lifecycle_state), sets the
    state's timestamp custom field and C(lifecycle_changed_at), and writes a NetBox journal entry on the device
    (what, why, who, event id).
  - "Compare-and-set: NetBox has no atomic CAS, so the module takes a short per-device lock in Redis
    (C(SET bm:lock:device:<id> NX PX)), re-reads the device under it, checks the tenant, the state and
    O(expected_fields), and changes it with one C(PATCH). If the device is not in an expected state it changes nothing,
    returns C(changed=false) with RV(refused=state) and a message saying so: a duplicate or late event is harmless."
  - "Timestamps: C(discovery) sets C(discovered_at), C(validating) C(pxe_boot_initiated_at), C(validation_completed)
    C(validation_completed_at), C(monitored) C(last_monitored_at), and C(staged) coming from C(hardening) sets
    C(hardened_at). O(custom_fields) are written in the same C(PATCH) and win over these."
  - If the device is already in O(state) and no journal entry mentions O(event_id) (an earlier run died between its
    C(PATCH) and its journal entry), the entry is written now.
  - Only devices of O(tenant) are touched; any other device is refused with a warning (RV(refused=tenant)), nothing
    changed.
author: bm-lifecycle developers (@bm-lifecycle)
extends_documentation_fragment:
  - bm.lifecycle.netbox
  - bm.lifecycle.redis
attributes:
  check_mode:
    support: full
    description: Reads the device and reports what would change; takes no lock and writes nothing.
  diff_mode:
    support: full
    description: Shows the custom fields and device fields before and after.
options:
  device:
    description: The NetBox device, by id or by (unique) name.
    type: raw
    required: true
  expected:
    description:
      - The states the device must be in for the transition to happen.
      - Listing O(state) too makes the call an update within the state (no state change, fields only).
    type: list
    elements: str
    required: true
  state:
    description: The new lifecycle state.
    type: str
    required: true
  expected_fields:
    description:
      - Custom fields that must also hold these values under the lock (null or an empty string mean empty).
      - "For example C({hardened_at: null}) for staged and not hardened yet, or the C(lifecycle_changed_at) a caller
        read, so that the transition happens only if nobody moved the device in between."
    type: dict
  custom_fields:
    description: More custom fields to set (or clear with null) in the same C(PATCH).
    type: dict
  device_fields:
    description: Top-level device fields to set in the same C(PATCH) (for example C(oob_ip) by id).
    type: dict
  timestamp_field:
    description:
      - The custom field stamped with the current time when the state changes. V(auto) uses the table above; an empty
        string stamps only C(lifecycle_changed_at).
    type: str
    default: auto
  reason:
    description: Why, for the journal entry.
    type: str
    required: true
  event_id:
    description: The event that caused this transition (journal entry; repairs a missing journal entry on redelivery).
    type: str
  actor:
    description: Who, for the journal entry (a stage name, an operator).
    type: str
    default: bm.lifecycle
  journal:
    description: Write a journal entry when something changes.
    type: bool
    default: true
  journal_kind:
    description: Journal entry kind; default C(danger) for C(*_failed) states, else C(info).
    type: str
    choices: [info, success, warning, danger]
  tenant:
    description: Only devices of this tenant (slug or name) are touched. Environment E(BM_TENANT) if not set.
    type: str
  lock_ttl:
    description: Seconds the device lock lives at most (it is released as soon as the transition is done).
    type: float
    default: 30
  lock_wait:
    description: Seconds to wait for a lock another stage holds before failing.
    type: float
    default: 10
"""

EXAMPLES = r"""
- name: A matched BMC lease moves a staged, not yet hardened server to discovery
  bm.lifecycle.lifecycle_transition:
    device: srv001
    expected: [staged]
    expected_fields: {hardened_at: null}
    state: discovery
    reason: DHCP lease 94:40:c9:5e:7a:b0 -> 10.1.100.21
    event_id: "{{ envelope.event_id }}"
    actor: bm.lifecycle.discovery

- name: Hardening done, back to staged with hardened_at (set automatically when coming from hardening)
  bm.lifecycle.lifecycle_transition:
    device: 42
    expected: [hardening]
    state: staged
    reason: BMC baseline applied

- name: An operator resets a failed server to the start (clears hardened_at in the same PATCH)
  bm.lifecycle.lifecycle_transition:
    device: srv001
    expected: [provisioning_failed, validation_failed, hardening_failed]
    state: staged
    custom_fields: {hardened_at: null}
    reason: BMC cable replaced (ticket 1234)
    actor: jdoe
"""

RETURN = r"""
transitioned:
  description: Whether the state changed (or would, in check mode).
  returned: always
  type: bool
refused:
  description:
    - Why nothing was done, null if done.
    - C(state) (not in an expected state), C(fields) (O(expected_fields) differ) or C(tenant) (another tenant's).
  returned: always
  type: str
state_before:
  description: The state found under the lock.
  returned: always
  type: str
  sample: staged
state:
  description: The state after the module.
  returned: always
  type: str
  sample: discovery
device:
  description: The device's id and name.
  returned: always
  type: dict
  sample: {id: 1, name: srv001}
custom_fields:
  description: The custom fields written (or to be written).
  returned: when not refused
  type: dict
  sample: {lifecycle_state: discovery, discovered_at: "2026-11-25T05:00:00Z"}
oob_ip:
  description: The device's out-of-band (BMC) address without its length, null if none.
  returned: always
  type: str
  sample: 10.1.100.21
journal_entry:
  description: Id of the journal entry written, if any.
  returned: always
  type: int
msg:
  description: What happened, in words.
  returned: always
  type: str
netbox_requests:
  description: HTTP requests sent to NetBox (including retries).
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import (
    DEFAULT_TENANT,
    LockBusy,
    NetBoxError,
    client_from_params,
    netbox_argument_spec,
    transition,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisError
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_ansible import REDIS_ARGUMENT_SPEC
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_ansible import client_from_params as redis_client


def main() -> None:
    argument_spec = netbox_argument_spec()
    argument_spec.update(REDIS_ARGUMENT_SPEC)
    argument_spec.update(
        device={"type": "raw", "required": True},
        expected={"type": "list", "elements": "str", "required": True},
        state={"type": "str", "required": True},
        expected_fields={"type": "dict"},
        custom_fields={"type": "dict"},
        device_fields={"type": "dict"},
        timestamp_field={"type": "str", "default": "auto"},
        reason={"type": "str", "required": True},
        event_id={"type": "str"},
        actor={"type": "str", "default": "bm.lifecycle"},
        journal={"type": "bool", "default": True},
        journal_kind={"type": "str", "choices": ["info", "success", "warning", "danger"]},
        tenant={"type": "str", "fallback": (env_fallback, ["BM_TENANT"])},
        lock_ttl={"type": "float", "default": 30.0},
        lock_wait={"type": "float", "default": 10.0},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    try:
        client = client_from_params(p, warn=module.warn)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    redis = None
    if not module.check_mode:
        try:
            redis = redis_client(p)
        except ValueError as exc:
            module.fail_json(msg=str(exc))
    timestamp_field = p["timestamp_field"]
    try:
        result = transition(
            client,
            redis,
            p["device"],
            expected=p["expected"],
            state=p["state"],
            reason=p["reason"],
            event_id=p["event_id"],
            actor=p["actor"],
            tenant=p["tenant"] or DEFAULT_TENANT,
            expected_fields=p["expected_fields"],
            custom_fields=p["custom_fields"],
            device_fields=p["device_fields"],
            timestamp_field=None if timestamp_field == "" else timestamp_field,
            journal_kind=p["journal_kind"],
            write_journal=p["journal"],
            lock_ttl=p["lock_ttl"],
            lock_wait=p["lock_wait"],
            check_mode=module.check_mode,
        )
    except (NetBoxError, RedisError, LockBusy, OSError) as exc:
        module.fail_json(msg=str(exc), netbox_requests=client.requests, retryable=getattr(exc, "retryable", True))
    finally:
        client.close()
        if redis is not None:
            redis.close()
    result["netbox_requests"] = client.requests
    if result.get("refused") == "tenant":
        module.warn(result["msg"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
