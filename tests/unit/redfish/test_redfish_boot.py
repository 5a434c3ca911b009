"""One-time PXE boot on recorded iLO 5 answers: the reset follows the power state, check mode writes nothing."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils._redfish_boot import PxeBootError, pxe_boot
from unit.redfish.conftest import SUCCESS, body

SYSTEM = "/redfish/v1/Systems/1"
RESET = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"


def system(power: str, post: str = "FinishedPost") -> dict:
    data = copy.deepcopy(body("system"))
    data["PowerState"] = power
    data["Oem"]["Hpe"]["PostState"] = post
    return data


@pytest.mark.parametrize(("power", "reset"), [("Off", "On"), ("On", "ForceRestart")])
def test_override_then_reset_as_two_calls(transport, make_client, power, reset) -> None:
    transport.add("GET", SYSTEM, (200, {}, system(power))).add("PATCH", SYSTEM, SUCCESS).add("POST", RESET, SUCCESS)
    result = pxe_boot(make_client(), check_mode=False)
    assert result["changed"] and result["reset_type"] == reset and result["power_state_before"] == power
    assert transport.writes() == [
        ("PATCH", SYSTEM, {"Boot": {"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe"}}),
        ("POST", RESET, {"ResetType": reset}),
    ]


def test_check_mode_only_reads(transport, make_client) -> None:
    transport.add("GET", SYSTEM, (200, {}, system("Off")))
    result = pxe_boot(make_client(), check_mode=True)
    assert (
        result["reset_type"] == "On" and result["diff"]["after"]["boot_override"]["BootSourceOverrideTarget"] == "Pxe"
    )
    assert transport.writes() == []


def test_waits_out_post_before_the_boot_patch(transport, make_client) -> None:
    transport.add("GET", SYSTEM, (200, {}, system("On", "InPost")), (200, {}, system("On")))
    transport.add("PATCH", SYSTEM, SUCCESS).add("POST", RESET, SUCCESS)
    client = make_client()
    pxe_boot(client, check_mode=False, sleep=lambda _s: None)
    assert [c[0] for c in transport.calls] == ["GET", "GET", "PATCH", "POST"]


def test_a_missing_boot_target_is_refused(transport, make_client) -> None:
    data = system("Off")
    data["Boot"]["BootSourceOverrideTarget@Redfish.AllowableValues"] = ["None", "Hdd"]
    transport.add("GET", SYSTEM, (200, {}, data))
    with pytest.raises(PxeBootError, match="Pxe"):
        pxe_boot(make_client(), check_mode=False)
    assert transport.writes() == []
