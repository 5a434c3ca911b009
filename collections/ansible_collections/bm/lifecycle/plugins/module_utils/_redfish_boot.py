# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One-time PXE boot and reset of an iLO 5 host: the logic behind ``bm.lifecycle.bmc_pxe_boot``.

iLO 5 needs the boot override and the reset as two calls. The reset type follows the power state: ``On`` when the host
is Off (``ForceRestart`` would answer ``InvalidOperationForSystemState``), a restart when it is On. A Boot PATCH during
POST answers ``UnableToModifyDuringSystemPOST``: wait (bounded) for POST to end first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._redfish import (
    SYSTEM,
    ComputerSystem,
    RedfishClient,
    RedfishError,
)

ON_STATES = ("On", "PoweringOn")
OFF_STATES = ("Off", "PoweringOff")


class PxeBootError(RedfishError):
    """The host cannot be PXE-booted as asked (a state or capability the BMC reports)."""


def wait_out_post(
    client: RedfishClient,
    system: ComputerSystem,
    timeout: float,
    interval: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> ComputerSystem:
    """Wait (bounded) while the host is in POST, where iLO refuses Boot changes."""
    deadline = time.monotonic() + timeout
    while system.post_state == "InPost":
        if time.monotonic() + interval > deadline:
            raise PxeBootError(
                f"host of BMC {client.display} still in POST after {timeout:.0f} s; boot override refused"
            )
        sleep(interval)
        system = ComputerSystem(client.get(SYSTEM))
    return system


def pxe_boot(  # noqa: PLR0912 - the iLO 5 rules read best in one place
    client: RedfishClient,
    *,
    check_mode: bool,
    reset: bool = True,
    restart_type: str = "ForceRestart",
    target: str = "Pxe",
    post_timeout: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Verify the BMC, set a one-time boot override to ``target`` and reset the host (On when Off, else a restart).

    Returns the module result (``changed``, ``power_state_before``, ``reset_type``, ``boot_override``, ``diff``...).
    """
    system = ComputerSystem(client.get(SYSTEM))
    before = system.boot_override()
    power_before = system.power_state
    if system.boot_targets is not None and target not in system.boot_targets:
        raise PxeBootError(
            f"BMC {client.display} does not offer boot target {target!r} (allowed: {', '.join(system.boot_targets)})"
        )
    reset_type: str | None = None
    if reset:
        if power_before in OFF_STATES:
            reset_type = "On"
        elif power_before in ON_STATES:
            reset_type = restart_type
        else:
            raise PxeBootError(f"host of BMC {client.display} is in power state {power_before!r}; not resetting it")
        if system.reset_types is not None and reset_type not in system.reset_types:
            if reset_type == "GracefulRestart" and "ForceRestart" in system.reset_types:
                reset_type = "ForceRestart"
            else:
                raise PxeBootError(
                    f"BMC {client.display} does not offer ResetType {reset_type!r} "
                    f"(allowed: {', '.join(system.reset_types)})"
                )
    wanted = {"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": target}
    override_changes = before != wanted
    changed = override_changes or reset_type is not None
    result: dict[str, Any] = {
        "changed": changed,
        "power_state_before": power_before,
        "reset_type": reset_type,
        "boot_override_before": before,
        "boot_override": wanted,
        "system": {"model": system.model, "serial": system.serial, "uuid": system.uuid, "power_state": power_before},
        "diff": {
            "before": {"boot_override": before, "power_state": power_before},
            "after": {
                "boot_override": wanted,
                "power_state": "On" if reset_type else power_before,
                "reset": reset_type,
            },
        },
    }
    if check_mode or not changed:
        result["bmc_requests"] = client.requests
        return result
    if override_changes:
        system = wait_out_post(client, system, post_timeout, sleep=sleep)
        client.patch(SYSTEM, {"Boot": wanted})
    if reset_type is not None:
        try:
            client.post(system.reset_target, {"ResetType": reset_type})
        except RedfishError as error:
            if not error.has("InvalidOperationForSystemState"):
                raise
            # the power state changed between our GET and the POST: read it again and choose once more
            now = ComputerSystem(client.get(SYSTEM))
            reset_type = "On" if now.power_state in OFF_STATES else restart_type
            client.post(now.reset_target, {"ResetType": reset_type})
            result["reset_type"] = reset_type
    result["bmc_requests"] = client.requests
    return result
