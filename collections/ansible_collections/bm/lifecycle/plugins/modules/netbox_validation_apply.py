#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module bm.lifecycle.netbox_validation_apply: a validation report's hardware, NICs, MACs and cables into NetBox."""

from __future__ import annotations

DOCUMENTATION = r"""
module: netbox_validation_apply
short_description: Record a validation report in NetBox (device type, serial, interfaces, MACs, cables)
version_added: 0.1.0
description:
  - Applies the summary of a validation report (the C(data) of a C(validation_report) event, as the
    C(bm.lifecycle.validation_webhook) event source writes it) to one NetBox device, only if the device is in
    O(expected_state) and belongs to O(tenant); otherwise nothing is changed and RV(refused) says why.
  - "Hardware: the manufacturer and the device type (model) are looked up (case-insensitive) and created if missing;
    the device gets that device type and the reported serial."
  - "Interfaces: each reported physical NIC is the device's interface holding its MAC (any MAC of the NetBox 4.2+
    MAC model), else the interface of that name, else a new interface of type O(interface_type). Its MAC is set as
    the primary MAC with the NetBox 4.7 interface C(mac_address) shortcut. Management-only interfaces are never
    matched."
  - "Cables: for each LLDP neighbour, the switch is the NetBox device found by name (then short name), then by
    chassis MAC, then by management IP; the port is its interface by name (the port id), then by name or description
    equal to the port description, then by MAC when the port id is a MAC. A cable is created when neither end has one.
    An existing cable that contradicts LLDP is never changed: it is returned in RV(conflicts)."
  - Neighbours that cannot be matched are returned in RV(unmatched_neighbors); NICs with link but no LLDP neighbour in
    RV(no_neighbor_links). RV(summary) puts all of it in words, for the journal entry of the lifecycle transition.
  - Idempotent - the same report applied twice writes nothing the second time. Runs under the device's Redis lock
    (the one M(bm.lifecycle.lifecycle_transition) takes).
author: bm-lifecycle developers (@bm-lifecycle)
extends_documentation_fragment:
  - bm.lifecycle.netbox
  - bm.lifecycle.redis
attributes:
  check_mode:
    support: full
    description: Reads NetBox and reports what would be created or changed; takes no lock and writes nothing.
  diff_mode:
    support: full
    description: Device type, serial, interface MACs and cables before and after.
  platform:
    support: full
    platforms: posix
    description: Runs where NetBox and Redis are reachable, usually C(localhost) of the rulebook host.
options:
  device:
    description: NetBox id of the device.
    type: int
    required: true
  report:
    description:
      - The report summary - C({hardware, interfaces, neighbors, warnings, ...}), the C(data) of a
        C(validation_report) event.
    type: dict
    required: true
  expected_state:
    description: The lifecycle state the device must be in.
    type: str
    default: validating
  tenant:
    description: Only devices of this tenant (slug or name) are touched; default the environment variable BM_TENANT,
      then C(baremetal-staging).
    type: str
  interface_type:
    description: NetBox interface type of interfaces created for reported NICs.
    type: str
    default: other
  lock_ttl:
    description: Seconds the device lock lives at most.
    type: float
    default: 120.0
  lock_wait:
    description: Seconds to wait for the device lock.
    type: float
    default: 10.0
"""

EXAMPLES = r"""
- name: Apply the report of one validation_report entry
  bm.lifecycle.netbox_validation_apply:
    device: "{{ bm_entry.envelope.device.id }}"
    report: "{{ bm_entry.envelope.data }}"
  register: bm_apply

- name: What would change (no lock, no write)
  bm.lifecycle.netbox_validation_apply:
    device: 42
    report: "{{ lookup('ansible.builtin.file', 'summary.json') | from_json }}"
  check_mode: true
  diff: true
"""

RETURN = r"""
refused:
  description: Why nothing was done - C(state) (not in O(expected_state)), C(tenant), or null.
  returned: always
  type: str
state:
  description: The device's lifecycle state as read.
  returned: always
  type: str
device:
  description: The device C({id, name}).
  returned: always
  type: dict
hardware:
  description: Manufacturer, model, serial and device type id recorded.
  returned: always
  type: dict
  sample: {manufacturer: HPE, model: ProLiant DL360 Gen10, serial: CZJ0000000, device_type_id: 3}
interfaces:
  description: One item per reported NIC - C({name, netbox_name, mac, interface_id, action}) with C(action) one of
    C(created), C(updated), C(unchanged).
  returned: always
  type: list
  elements: dict
cables:
  description: Cables matching LLDP - C({interface, switch, port, matched_by, cable_id, action}), C(action) C(created)
    or C(exists).
  returned: always
  type: list
  elements: dict
conflicts:
  description: Existing cables that contradict LLDP (left unchanged) - C({interface, switch, port, reason}).
  returned: always
  type: list
  elements: dict
unmatched_neighbors:
  description: LLDP neighbours without a switch or port in NetBox - C({local_interface, chassis_name, chassis_id,
    port_id, port_descr, mgmt_ips, reason}).
  returned: always
  type: list
  elements: dict
no_neighbor_links:
  description: Reported NICs with link (carrier) but no LLDP neighbour.
  returned: always
  type: list
  elements: str
skipped:
  description: What of the report was not used, and why.
  returned: always
  type: list
  elements: dict
warnings_report:
  description: Parser warnings carried by the report.
  returned: always
  type: list
  elements: str
changes:
  description: What was (or would be) written, in words.
  returned: always
  type: list
  elements: str
summary:
  description: Everything above in words, for a journal entry.
  returned: always
  type: str
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
)
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisError
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_ansible import REDIS_ARGUMENT_SPEC
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_ansible import client_from_params as redis_client
from ansible_collections.bm.lifecycle.plugins.module_utils._validation_apply import apply_report


def main() -> None:
    argument_spec = netbox_argument_spec()
    argument_spec.update(REDIS_ARGUMENT_SPEC)
    argument_spec.update(
        device={"type": "int", "required": True},
        report={"type": "dict", "required": True},
        expected_state={"type": "str", "default": "validating"},
        tenant={"type": "str", "fallback": (env_fallback, ["BM_TENANT"])},
        interface_type={"type": "str", "default": "other"},
        lock_ttl={"type": "float", "default": 120.0},
        lock_wait={"type": "float", "default": 10.0},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    try:
        client = client_from_params(p, warn=module.warn)
        redis = None if module.check_mode else redis_client(p)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    try:
        result = apply_report(
            client,
            redis,
            p["device"],
            p["report"],
            expected_state=p["expected_state"],
            tenant=p["tenant"] or DEFAULT_TENANT,
            interface_type=p["interface_type"],
            check_mode=module.check_mode,
            lock_ttl=p["lock_ttl"],
            lock_wait=p["lock_wait"],
        )
    except (NetBoxError, RedisError, LockBusy, OSError) as exc:
        module.fail_json(msg=str(exc), netbox_requests=client.requests, retryable=getattr(exc, "retryable", True))
    finally:
        client.close()
        if redis is not None:
            redis.close()
    result["warnings_report"] = result.pop("warnings")
    result["netbox_requests"] = client.requests
    if result.get("refused") == "tenant":
        module.warn(result["msg"])
    for conflict in result["conflicts"]:
        module.warn(f"cable conflict on {conflict['interface']}: {conflict['reason']}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
