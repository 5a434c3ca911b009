#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module bm.lifecycle.lifecycle_info: the tenant's devices by lifecycle state, with how long each has been there."""

from __future__ import annotations

DOCUMENTATION = r"""
module: lifecycle_info
short_description: List the devices of the tenant by lifecycle state, with the time spent in it
version_added: 0.1.0
description:
  - Reads every device of O(tenant) from NetBox and returns, per device, its C(lifecycle_state), since when it is in
    it and how long that is; the number of devices per state; the devices stuck in a transient state for longer than
    O(stuck_minutes); and the devices in a C(*_failed) state.
  - "Since when: the custom field C(lifecycle_changed_at) (every transition sets it), else the state's own timestamp
    field (for example C(discovered_at), or C(hardened_at) for a hardened C(staged) device), else the device's
    C(last_updated)."
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
  stuck_minutes:
    description: A device in one of O(transient_states) for longer than this is stuck.
    type: int
    default: 60
  transient_states:
    description: The states a device should leave on its own; only these can be stuck.
    type: list
    elements: str
    default: [discovery, validating, validation_completed, hardening]
"""

EXAMPLES = r"""
- name: Where every server of the tenant is
  bm.lifecycle.lifecycle_info:
    stuck_minutes: 30
  register: lifecycle
"""

RETURN = r"""
devices:
  description: One item per device, sorted by state, then the longest in it first.
  returned: always
  type: list
  elements: dict
  sample:
    - {id: 1, name: srv001, state: validating, hardened: false, since: "2026-11-25T05:00:00Z",
       since_field: lifecycle_changed_at, age_seconds: 5400, stuck: true}
states:
  description: Number of devices per lifecycle state.
  returned: always
  type: dict
  sample: {staged: 12, validating: 1, monitored: 40}
stuck:
  description: The devices of RV(devices) with C(stuck=true).
  returned: always
  type: list
  elements: dict
failed_devices:
  description: The devices of RV(devices) in a C(*_failed) state (their journal says why).
  returned: always
  type: list
  elements: dict
checked_at:
  description: When NetBox was read (UTC).
  returned: always
  type: str
  sample: "2026-11-25T06:30:00Z"
"""

from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle_status import TRANSIENT_STATES, lifecycle_status
from ansible_collections.bm.lifecycle.plugins.module_utils._module import LifecycleModule


def report(module: LifecycleModule) -> dict[str, Any]:
    """The tenant's devices per state, and the stuck ones."""
    p = module.params
    return {
        "changed": False,
        **lifecycle_status(module.netbox, module.tenant, p["stuck_minutes"] * 60, p["transient_states"]),
    }


def main() -> None:
    """Run the module."""
    module = LifecycleModule(
        {
            "stuck_minutes": {"type": "int", "default": 60},
            "transient_states": {"type": "list", "elements": "str", "default": list(TRANSIENT_STATES)},
        },
        tenant=True,
    )
    module.run(report)


if __name__ == "__main__":
    main()
