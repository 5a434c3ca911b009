#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module bm.lifecycle.bmc_info: a device's BMC as NetBox records it (the lease its BMC would ask for)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: bmc_info
short_description: Read a device's BMC from NetBox - the MAC of its management-only interface and its oob_ip
version_added: 0.1.0
description:
  - Reads the device (by id or name) and its management-only interfaces from NetBox and returns the DHCP lease its BMC
    would ask for - RV(mac) (the one management-only interface with a MAC) and RV(ip) (the device's C(oob_ip), without
    its length) - with the device's lifecycle state. M(bm.lifecycle.rerun) publishes that lease to re-run discovery.
  - RV(mac) and RV(ip) are null, and RV(msg) says why, when the device has no or several management-only interfaces
    with a MAC, or no C(oob_ip).
  - Fails for a device of another tenant than O(tenant).
author: bm-lifecycle developers (@bm-lifecycle)
extends_documentation_fragment:
  - bm.lifecycle.netbox
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed.
options:
  device:
    description: The device's NetBox id or name.
    type: str
    required: true
  tenant:
    description: The tenant (slug) the device must belong to. Environment E(BM_TENANT) if not set.
    type: str
"""

EXAMPLES = r"""
- name: The lease the BMC of srv001 would ask for
  bm.lifecycle.bmc_info:
    device: srv001
  register: bmc
"""

RETURN = r"""
device:
  description: The device's id and name.
  returned: success
  type: dict
  sample: {id: 1, name: srv001}
lifecycle_state:
  description: The device's lifecycle state.
  returned: success
  type: str
  sample: staged
admits:
  description: The lifecycle transitions the device may take now (see docs/ARCHITECTURE.md, "The state machine").
  returned: success
  type: list
  elements: str
  sample: [discover, reset]
hardened_at:
  description: The device's hardened_at (null when not hardened).
  returned: success
  type: str
mac:
  description: The BMC interface's MAC in canonical form, or null.
  returned: success
  type: str
  sample: 94:40:c9:5e:7a:b0
ip:
  description: The device's oob_ip without its length, or null.
  returned: success
  type: str
  sample: 10.1.100.21
interface:
  description: The BMC interface's id and name, or null.
  returned: success
  type: dict
msg:
  description: What was found, in words.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle import (
    TRANSITIONS,
    admits,
    custom_field,
    tenant_matches,
    tenant_name,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._mac import MacError
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import (
    DEFAULT_TENANT,
    NetBoxError,
    client_from_params,
    device_bmc,
    device_ref,
    netbox_argument_spec,
)


def main() -> None:
    argument_spec = netbox_argument_spec()
    argument_spec.update(
        device={"type": "str", "required": True},
        tenant={"type": "str", "fallback": (env_fallback, ["BM_TENANT"])},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    tenant = p["tenant"] or DEFAULT_TENANT
    try:
        client = client_from_params(p, warn=module.warn)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    try:
        found = device_bmc(client, p["device"])
    except (NetBoxError, MacError, OSError) as exc:
        module.fail_json(msg=str(exc))
    finally:
        client.close()
    device = found.pop("device")
    if not tenant_matches(device, tenant):
        module.fail_json(msg=f"device {device.get('name')} belongs to {tenant_name(device)}, not {tenant}: not touched")
    module.exit_json(
        changed=False,
        device=device_ref(device),
        lifecycle_state=custom_field(device, "lifecycle_state"),
        hardened_at=custom_field(device, "hardened_at"),
        admits=[name for name in TRANSITIONS if admits(device, name, tenant)],
        **found,
    )


if __name__ == "__main__":
    main()
