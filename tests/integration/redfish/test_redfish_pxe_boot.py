"""bm.lifecycle.bmc_pxe_boot against a mock iLO 5: check mode, Off -> On, On -> ForceRestart, 503 bursts, 401."""

from __future__ import annotations

import time

import pytest

from integration.redfish.conftest import bmc_args, run_module

pytestmark = pytest.mark.slow


def test_check_mode_changes_nothing_then_pxe_boot_from_off(fleet) -> None:
    before = fleet.counters(0)
    result = run_module("bmc_pxe_boot", bmc_args(fleet[0]), "--check", "--diff")
    assert result["changed"] is True and result["reset_type"] == "On"
    after = fleet.counters(0)
    assert after["requests"] == {**before["requests"], "GET": before["requests"].get("GET", 0) + 1}
    assert after["resets"] == {} and after["boot_override_history"] == []

    result = run_module("bmc_pxe_boot", bmc_args(fleet[0]))
    assert result["changed"] is True, result
    assert result["power_state_before"] == "Off"
    assert result["reset_type"] == "On"
    assert result["boot_override"] == {"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe"}
    counters = fleet.counters(0)
    assert counters["resets"] == {"On": 1}
    history = counters["boot_override_history"]
    assert [(h["BootSourceOverrideEnabled"], h["BootSourceOverrideTarget"]) for h in history] == [("Once", "Pxe")]
    deadline = time.monotonic() + 20
    while fleet.counters(0)["pxe_boots"] < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fleet.counters(0)["pxe_boots"] == 1


def test_powered_on_host_gets_force_restart_through_503_bursts(fleet) -> None:
    fleet.set_state(0, PowerState="On")
    fleet.set_faults(0, unavailable_count=3)
    result = run_module("bmc_pxe_boot", bmc_args(fleet[0]))
    assert result["changed"] is True, result
    assert result["power_state_before"] == "On"
    assert result["reset_type"] == "ForceRestart"
    counters = fleet.counters(0)
    assert counters["injected_503"] == 3
    assert counters["resets"] == {"ForceRestart": 1}


def test_wrong_password_fails_at_once_with_a_clear_reason(fleet) -> None:
    result = run_module("bmc_pxe_boot", bmc_args(fleet[0], password="not-the-password"))
    assert result.get("failed") is True
    assert result["failure_reason"] == "wrong_credentials"
    assert "wrong username or password" in result["msg"]
    assert "not-the-password" not in str(result)
    counters = fleet.counters(0)
    assert counters["auth_failures"] == 1  # no retry on 401
    assert counters["resets"] == {}


def test_unreachable_bmc_is_reported_as_unreachable(fleet) -> None:
    args = bmc_args(fleet[0], address="127.0.0.1:1", retries=1)
    result = run_module("bmc_pxe_boot", args)
    assert result.get("failed") is True
    assert result["failure_reason"] == "unreachable"
