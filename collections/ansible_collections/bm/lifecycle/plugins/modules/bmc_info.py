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
  - bm.lifecycle.tenant
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

from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle import (
    TRANSITIONS,
    admits,
    custom_field,
    tenant_matches,
    tenant_name,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._module import LifecycleModule
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import device_bmc, device_ref


def read(module: LifecycleModule) -> dict[str, Any]:
    """The device's BMC lease, state and the transitions it admits; another tenant's device fails."""
    found = device_bmc(module.netbox, module.params["device"])
    device = found.pop("device")
    if not tenant_matches(device, module.tenant):
        raise ValueError(
            f"device {device.get('name')} belongs to {tenant_name(device)}, not {module.tenant}: not touched"
        )
    return {
        "changed": False,
        "device": device_ref(device),
        "lifecycle_state": custom_field(device, "lifecycle_state"),
        "hardened_at": custom_field(device, "hardened_at"),
        "admits": [name for name in TRANSITIONS if admits(device, name, module.tenant)],
        **found,
    }


def main() -> None:
    """Run the module."""
    LifecycleModule({"device": {"type": "str", "required": True}}, tenant=True).run(read)


if __name__ == "__main__":
    main()
