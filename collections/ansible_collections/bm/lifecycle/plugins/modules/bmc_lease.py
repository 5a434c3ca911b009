#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module bm.lifecycle.bmc_lease: match a DHCP lease to a device's BMC in NetBox and record the BMC's IP."""

from __future__ import annotations

DOCUMENTATION = r"""
module: bmc_lease
short_description: Match a DHCP lease's MAC to a NetBox device's BMC interface and record the leased IP
version_added: 0.1.0
description:
  - Looks the MAC up through C(/api/dcim/mac-addresses/?mac_address=) (any common spelling; see the C(bm.lifecycle.mac)
    filter) and classifies the lease as RV(match).
  - V(unknown) (no device has the MAC), V(ambiguous) (several devices have it), V(not_bmc) (a data NIC's MAC; such a
    lease never starts anything), V(foreign_tenant) (the device is not in O(tenant)) or V(bmc).
  - Only for V(bmc) and O(record_ip=true) it records the IP on the BMC interface (IPAM, status C(active)) and makes it
    the device's C(oob_ip); other IPs left on that interface become C(deprecated). An address NetBox holds on another
    object is never moved (the module fails, nothing changed).
  - It never changes the lifecycle state; the discovery stage does that with M(bm.lifecycle.lifecycle_transition).
author: bm-lifecycle developers (@bm-lifecycle)
extends_documentation_fragment:
  - bm.lifecycle.netbox
attributes:
  check_mode:
    support: full
    description: Matches and reports the IP changes it would make, writes nothing.
  diff_mode:
    support: full
    description: Shows the device's oob_ip before and after.
options:
  mac:
    description: The MAC of the lease, in any common spelling.
    type: str
    required: true
  ip:
    description:
      - The leased address, C(a.b.c.d) or C(a.b.c.d/len). Without a length, the most specific NetBox prefix containing
        it gives one (/32 without a prefix).
    type: str
  record_ip:
    description: Record O(ip) when the MAC is a BMC of the tenant. Needs O(ip).
    type: bool
    default: true
  tenant:
    description: Only devices of this tenant (slug or name) are touched. Environment E(BM_TENANT) if not set.
    type: str
"""

EXAMPLES = r"""
- name: Match the lease and record the BMC's IP
  bm.lifecycle.bmc_lease:
    mac: 94:40:C9:5E:7A:B0
    ip: 10.1.100.21
  register: lease

- name: Only a BMC lease of our tenant goes on
  ansible.builtin.debug:
    msg: "{{ lease.device.name }} is in {{ lease.lifecycle_state }}"
  when: lease.match == 'bmc'
"""

RETURN = r"""
match:
  description: V(unknown), V(ambiguous), V(not_bmc), V(foreign_tenant) or V(bmc).
  returned: always
  type: str
  sample: bmc
mac:
  description: The MAC in canonical form.
  returned: always
  type: str
  sample: 94:40:c9:5e:7a:b0
device:
  description: The matched device's id and name (null when V(unknown) or V(ambiguous) over several devices).
  returned: always
  type: dict
  sample: {id: 1, name: srv001}
interface:
  description: The BMC interface's id and name.
  returned: when match is bmc or foreign_tenant
  type: dict
lifecycle_state:
  description: The device's lifecycle state as read.
  returned: when match is bmc
  type: str
hardened_at:
  description: The device's hardened_at (null when not hardened).
  returned: when match is bmc
  type: str
matches:
  description: Every MAC object found (id, interface, device, is_primary).
  returned: always
  type: list
  elements: dict
ip:
  description: The BMC address as recorded, with its length.
  returned: when match is bmc and record_ip
  type: str
  sample: 10.1.100.21/24
previous_ip:
  description: The device's oob_ip before.
  returned: when match is bmc and record_ip
  type: str
ip_changed:
  description: Whether the device's oob_ip changed (it was empty or another address).
  returned: when match is bmc and record_ip
  type: bool
changes:
  description: The NetBox changes made (or to be made, in check mode).
  returned: always
  type: list
  elements: str
msg:
  description: What was found, in words.
  returned: always
  type: str
netbox_requests:
  description: HTTP requests sent to NetBox (including retries).
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.bm.lifecycle.plugins.module_utils._mac import MacError
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import (
    DEFAULT_TENANT,
    NetBoxError,
    client_from_params,
    custom_field,
    device_ref,
    match_lease,
    netbox_argument_spec,
    reconcile_bmc_ip,
)


def main() -> None:
    argument_spec = netbox_argument_spec()
    argument_spec.update(
        mac={"type": "str", "required": True},
        ip={"type": "str"},
        record_ip={"type": "bool", "default": True},
        tenant={"type": "str", "fallback": (env_fallback, ["BM_TENANT"])},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("record_ip", True, ("ip",))],
    )
    p = module.params
    try:
        client = client_from_params(p, warn=module.warn)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    result: dict = {"changed": False, "changes": []}
    try:
        found = match_lease(client, p["mac"], p["tenant"] or DEFAULT_TENANT)
        device = found["device"]
        result.update(
            match=found["match"],
            mac=found["mac"],
            matches=found["matches"],
            interface=found["interface"],
            msg=found["msg"],
            device=None if device is None else device_ref(device),
        )
        if found["match"] in ("unknown", "foreign_tenant"):
            module.warn(found["msg"])
        if found["match"] == "bmc":
            result.update(
                lifecycle_state=custom_field(device, "lifecycle_state"),
                hardened_at=custom_field(device, "hardened_at"),
            )
            if p["record_ip"]:
                ip = reconcile_bmc_ip(
                    client, device, int(found["interface"]["id"]), p["ip"], check_mode=module.check_mode
                )
                result.update(ip)
                result["diff"] = {"before": {"oob_ip": ip["previous_ip"]}, "after": {"oob_ip": ip["ip"]}}
    except MacError as exc:
        module.fail_json(msg=str(exc), netbox_requests=client.requests, retryable=False)
    except NetBoxError as exc:
        module.fail_json(msg=str(exc), netbox_requests=client.requests, retryable=exc.retryable, status=exc.status)
    except OSError as exc:
        module.fail_json(msg=str(exc), netbox_requests=client.requests, retryable=True)
    finally:
        client.close()
    result["netbox_requests"] = client.requests
    module.exit_json(**result)


if __name__ == "__main__":
    main()
