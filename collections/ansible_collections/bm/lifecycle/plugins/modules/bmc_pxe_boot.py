#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module bm.lifecycle.bmc_pxe_boot: one-time PXE boot and reset through Redfish."""

from __future__ import annotations

DOCUMENTATION = r"""
module: bmc_pxe_boot
short_description: Set a one-time PXE boot on HPE iLO 5 BMCs and reset their hosts, one BMC or a whole batch at once
version_added: 0.1.0
description:
  - Works on one BMC (O(address)) or on the BMCs of a stage's batch (O(batch)), all at once (at most O(concurrency) in
    flight, each with its own deadline and retries); a BMC that fails fails its item alone (C(status=failed) with
    C(failure.reason) and C(failure.msg)), its batch-mates go on.
  - Verifies the BMC (C(GET /redfish/v1/Systems/1)), sets a one-time boot override
    (C(BootSourceOverrideEnabled=Once), C(BootSourceOverrideTarget=Pxe)) and then resets the host, as two separate
    calls, the way iLO 5 needs them.
  - The reset type follows the power state. C(On) when the host is Off (iLO answers C(InvalidOperationForSystemState)
    to a restart of a powered-off host), O(restart_type) when it is On.
  - Waits (bounded by O(post_timeout)) while the host is in POST, where iLO refuses Boot changes
    (C(UnableToModifyDuringSystemPOST)).
  - On failure the result carries RV(failure_reason) (V(wrong_credentials), V(unreachable), V(tls) or V(bmc_error)) so a
    stage can write a clear journal entry.
author:
  - bm-lifecycle developers (@bm-lifecycle)
extends_documentation_fragment:
  - bm.lifecycle.bmc
options:
  target:
    description:
      - The boot source of the one-time override.
    type: str
    default: Pxe
    choices: [Pxe, UefiHttp, Cd, Usb, Hdd]
  reset:
    description:
      - Whether to reset the host after setting the override. V(false) only sets the override (idempotent).
    type: bool
    default: true
  restart_type:
    description:
      - The ResetType used when the host is On. iLO 5 carries out V(GracefulRestart) as a forced restart anyway.
    type: str
    default: ForceRestart
    choices: [ForceRestart, GracefulRestart]
  post_timeout:
    description:
      - Seconds to wait for a host in POST to finish before the boot override is set.
    type: float
    default: 120
  verify:
    description:
      - Read only, in any mode. Verifies that each BMC answers with these credentials and reports the host's identity
        and power state in each item's C(facts.system).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reads the system and reports the override and the reset it would make.
  diff_mode:
    support: full
    description: Shows the boot override and power state before and after.
"""

EXAMPLES = r"""
- name: Verify every BMC of the batch (read only, concurrently)
  bm.lifecycle.bmc_pxe_boot:
    batch: "{{ bm_read.batch }}"
    verify: true
  register: bm_verify

- name: PXE-boot the server once (credentials from BM_BMC_USERNAME / BM_BMC_PASSWORD)
  bm.lifecycle.bmc_pxe_boot:
    address: "{{ bmc_ip }}"
    ca_path: /etc/bm/ilo-ca.pem

- name: Lab BMC with a factory self-signed certificate (logs a warning on every use)
  bm.lifecycle.bmc_pxe_boot:
    address: 127.0.0.1:18443
    username: Administrator
    password: "{{ vault_bmc_password }}"
    validate_certs: false
  register: pxe
"""

RETURN = r"""
batch:
  description:
    - With O(batch), the items after this step; each active item's C(facts) gains C(bmc_address), C(system),
      C(power_state_before) and C(reset_type) (the per-BMC results below), a failed BMC's item C(status=failed).
  returned: when O(batch) is given
  type: list
  elements: dict
power_state_before:
  description: The host's PowerState read before anything was done.
  returned: with O(address)
  type: str
  sample: "Off"
reset_type:
  description: The ResetType posted (or that would be posted in check mode); null when O(reset=false).
  returned: with O(address)
  type: str
  sample: "On"
boot_override:
  description: The boot override set (or that would be set).
  returned: with O(address)
  type: dict
  sample: {"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe"}
boot_override_before:
  description: The boot override read before anything was done.
  returned: with O(address)
  type: dict
  sample: {"BootSourceOverrideEnabled": "Disabled", "BootSourceOverrideTarget": "None"}
system:
  description: Identity of the host as the BMC reports it.
  returned: with O(address)
  type: dict
  sample: {"model": "ProLiant DL360 Gen10 Plus", "serial": "CZ2D1Y0ABC", "uuid": "...", "power_state": "Off"}
bmc_requests:
  description: HTTP requests sent to the BMC, retries included.
  returned: with O(address)
  type: int
  sample: 3
failure_reason:
  description: On failure, why; V(wrong_credentials), V(unreachable), V(tls) or V(bmc_error).
  returned: failure
  type: str
  sample: wrong_credentials
message_ids:
  description: On failure, the MessageIds of the BMC's C(@Message.ExtendedInfo).
  returned: failure
  type: list
  elements: str
  sample: ["iLO.2.15.InvalidOperationForSystemState"]
"""

from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._batch import check_items, summary
from ansible_collections.bm.lifecycle.plugins.module_utils._module import LifecycleModule
from ansible_collections.bm.lifecycle.plugins.module_utils._redfish import RedfishClient, on_bmcs
from ansible_collections.bm.lifecycle.plugins.module_utils._redfish_boot import pxe_boot

FACTS = ("power_state_before", "reset_type", "system", "boot_override")


def boot(module: LifecycleModule, client: RedfishClient) -> dict[str, Any]:
    """The one-time boot (and reset) of one BMC; read only in check mode and with O(verify)."""
    p = module.params
    return pxe_boot(
        client,
        check_mode=module.check_mode or p["verify"],
        reset=p["reset"],
        restart_type=p["restart_type"],
        target=p["target"],
        post_timeout=p["post_timeout"],
    )


def boot_all(module: LifecycleModule) -> dict[str, Any]:
    """The BMC at O(address), or every active item's BMC at once (a BMC that fails fails its item)."""
    p = module.params
    if p["batch"] is None:
        return boot(module, module.bmc)
    items = check_items(p["batch"])

    def work(client: RedfishClient, item: dict[str, Any]) -> None:
        result = boot(module, client)
        item["facts"].update({k: result[k] for k in FACTS})

    on_bmcs(p, items, work, module.warn)
    changed = not p["verify"] and any("reset_type" in i["facts"] and i["status"] == "active" for i in items)
    return {"changed": changed, "batch": items, "summary": summary(items)}


def main() -> None:
    """Run the module."""
    options = {
        "target": {"type": "str", "default": "Pxe", "choices": ["Pxe", "UefiHttp", "Cd", "Usb", "Hdd"]},
        "reset": {"type": "bool", "default": True},
        "restart_type": {"type": "str", "default": "ForceRestart", "choices": ["ForceRestart", "GracefulRestart"]},
        "post_timeout": {"type": "float", "default": 120.0},
        "verify": {"type": "bool", "default": False},
    }
    LifecycleModule(options, netbox=False, bmc=True).run(boot_all)


if __name__ == "__main__":
    main()
