"""bm.lifecycle.ilo_baseline against a factory-state mock iLO 5 and iLO 6, verified through raw Redfish GETs and mock
state."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from integration.redfish.conftest import bmc_args, ca_path, run_module

pytestmark = pytest.mark.slow


@pytest.fixture(params=["ilo5", "ilo6"])
def fleet(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One factory-state mock iLO of each generation (in this process, fast Manager.Reset)."""
    from bm_mock_ilo import testing  # noqa: PLC0415
    from bm_mock_ilo.bmc import Settings  # noqa: PLC0415

    settings = Settings(model=request.param, manager_reset_seconds=1.0, post_seconds=0.5)
    with testing.start_fleet(1, settings=settings) as handle:
        yield handle


NEW_PASSWORD = "N3w-Adm1n-Passw0rd!"
BASELINE: dict[str, Any] = {
    "admin_password": NEW_PASSWORD,
    "remove_accounts": ["olduser"],
    "min_password_length": 12,
    "snmpv1_enabled": False,
    "snmpv3_users": [{"name": "monitoring", "auth_passphrase": "auth-secret-1", "privacy_passphrase": "priv-secret-1"}],
    "snmp_alert_destinations": [{"address": "10.1.100.20"}],
    "ipmi_enabled": False,
    "virtual_media_enabled": False,
    "syslog_server": "10.1.100.10",
    "syslog_port": 514,
    "reset_interval": 0.5,
    "reset_timeout": 60,
}


def raw_get(bmc: Any, path: str, password: str) -> dict[str, Any]:
    """An independent reader: urllib, Basic auth, the fleet's CA."""
    context = ssl.create_default_context(cafile=ca_path())
    token = base64.b64encode(f"{bmc.username}:{password}".encode()).decode()
    request = urllib.request.Request(f"{bmc.base_url}{path}", headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:
        return json.load(answer)


def add_old_user(bmc: Any) -> None:
    context = ssl.create_default_context(cafile=ca_path())
    token = base64.b64encode(f"{bmc.username}:{bmc.password}".encode()).decode()
    body = json.dumps({"UserName": "olduser", "Password": "olduser-pass", "RoleId": "Operator"}).encode()
    request = urllib.request.Request(
        f"{bmc.base_url}/redfish/v1/AccountService/Accounts",
        data=body,
        method="POST",
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:
        assert answer.status == 201


def writes(counters: dict[str, Any]) -> int:
    return sum(n for m, n in counters["requests"].items() if m in ("PATCH", "POST", "DELETE"))


def test_factory_state_hardened_with_one_reset_idempotent_and_check_mode_is_read_only(fleet) -> None:
    bmc = fleet[0]
    add_old_user(bmc)
    fleet.reset_counters(0)
    state_before = fleet.state(0)

    check = run_module("ilo_baseline", bmc_args(bmc, **BASELINE), "--check", "--diff")
    assert check["changed"] is True, check
    assert "admin_password" in check["changes"] and "snmpv1" in check["changes"]
    assert NEW_PASSWORD not in json.dumps(check)
    assert writes(fleet.counters(0)) == 0
    assert fleet.counters(0)["manager_resets"] == 0
    assert fleet.state(0) == {**state_before, "Faults": fleet.state(0)["Faults"]}

    applied = run_module("ilo_baseline", bmc_args(bmc, **BASELINE), "--diff")
    assert applied["changed"] is True, applied
    assert applied["reset_performed"] is True
    assert NEW_PASSWORD not in json.dumps(applied) and "auth-secret-1" not in json.dumps(applied)
    counters = fleet.counters(0)
    assert counters["manager_resets"] == 1
    assert counters["sessions_created"] == 0  # Basic auth: no session to leak

    # verify through raw GETs with the new password (the old one is refused)
    with pytest.raises(urllib.error.HTTPError):
        raw_get(bmc, "/redfish/v1/Managers/1", bmc.password)
    accounts = raw_get(bmc, "/redfish/v1/AccountService/Accounts", NEW_PASSWORD)
    names = {raw_get(bmc, m["@odata.id"], NEW_PASSWORD)["UserName"] for m in accounts["Members"]}
    assert names == {"Administrator", "_HPOneViewAdmin"}
    assert raw_get(bmc, "/redfish/v1/AccountService", NEW_PASSWORD)["Oem"]["Hpe"]["MinPasswordLength"] == 12
    protocol = raw_get(bmc, "/redfish/v1/Managers/1/NetworkProtocol", NEW_PASSWORD)
    assert protocol["IPMI"]["ProtocolEnabled"] is False
    assert protocol["VirtualMedia"]["ProtocolEnabled"] is False
    assert protocol["SNMP"]["ProtocolEnabled"] is True
    hpe = protocol["Oem"]["Hpe"]
    syslog = (hpe["RemoteSyslogEnabled"], hpe["RemoteSyslogServer"], hpe["RemoteSyslogPort"])
    assert syslog == (True, "10.1.100.10", 514)
    assert hpe["ConfigurationSettings"] == "Current"
    snmp = raw_get(bmc, "/redfish/v1/Managers/1/SnmpService", NEW_PASSWORD)
    assert snmp["SNMPv1Enabled"] is False
    assert not any(snmp["ReadCommunities"])
    users = raw_get(bmc, "/redfish/v1/Managers/1/SnmpService/SNMPUsers", NEW_PASSWORD)["Members"]
    assert [raw_get(bmc, m["@odata.id"], NEW_PASSWORD)["SecurityName"] for m in users] == ["monitoring"]
    alerts = raw_get(bmc, "/redfish/v1/Managers/1/SnmpService/SNMPAlertDestinations", NEW_PASSWORD)["Members"]
    assert len(alerts) == 1

    # second run, with the new credential (as the stored one): nothing to do, no reset
    fleet.reset_counters(0)
    again = run_module("ilo_baseline", bmc_args(bmc, password=NEW_PASSWORD, **BASELINE))
    assert again["changed"] is False, again
    assert writes(fleet.counters(0)) == 0 and fleet.counters(0)["manager_resets"] == 0

    # a re-run still given the factory password logs in with the desired one and changes nothing
    rerun = run_module("ilo_baseline", bmc_args(bmc, **BASELINE))
    assert rerun["changed"] is False, rerun


def test_no_syslog_licence_is_a_clear_error_before_any_change(fleet) -> None:
    fleet.set_state(0, Settings={"license": "standard"})
    fleet.reset_counters(0)
    result = run_module("ilo_baseline", bmc_args(fleet[0], **BASELINE))
    assert result.get("failed") is True
    assert result["failed_step"] == "syslog"
    assert "RemoteSyslog" in result["msg"] and "licence" in result["msg"]
    assert writes(fleet.counters(0)) == 0


def test_503_bursts_are_retried(fleet) -> None:
    fleet.set_faults(0, unavailable_count=4)
    result = run_module("ilo_baseline", bmc_args(fleet[0], ipmi_enabled=False, virtual_media_enabled=False))
    assert result["changed"] is True, result
    assert fleet.counters(0)["injected_503"] == 4
    assert fleet.state(0)["NetworkProtocol"]["VirtualMedia"]["ProtocolEnabled"] is False


def test_bmc_slow_to_return_from_reset(fleet) -> None:
    fleet.set_state(0, Settings={"manager_reset_seconds": 6.0})
    args = bmc_args(fleet[0], snmpv1_enabled=False, reset_interval=0.5)
    slow = run_module("ilo_baseline", {**args, "reset_timeout": 3})
    assert slow.get("failed") is True
    assert slow["failed_step"] == "wait_for_reset"
    assert "did not come back" in slow["msg"]
    # the re-run (retrying while the BMC is still down) finds everything applied by the one reset: no change
    ok = run_module("ilo_baseline", {**args, "reset_timeout": 30})
    assert ok.get("failed") is not True, ok
    assert ok["changed"] is False
    assert fleet.counters(0)["manager_resets"] == 1


def test_refuses_to_remove_the_account_in_use_or_a_service_account(fleet) -> None:
    for name in ("Administrator", "_HPOneViewAdmin"):
        result = run_module("ilo_baseline", bmc_args(fleet[0], remove_accounts=[name]))
        assert result.get("failed") is True and result["failed_step"] == "accounts", result
    assert writes(fleet.counters(0)) == 0


def test_session_auth_sessions_are_always_deleted_even_across_the_reset(fleet) -> None:
    result = run_module(
        "ilo_baseline", bmc_args(fleet[0], auth="session", snmpv1_enabled=False, ipmi_enabled=False, reset_interval=0.5)
    )
    assert result["changed"] is True and result["reset_performed"] is True, result
    assert fleet.counters(0)["sessions_created"] >= 2  # one before the reset, one after it
    assert fleet.state(0)["Sessions"] == 0


def test_firmware_2_90_v1_request_and_trap_flags_are_turned_off(fleet) -> None:
    fleet.set_state(0, Settings={"firmware": "2.90"})
    result = run_module("ilo_baseline", bmc_args(fleet[0], snmpv1_enabled=False, reset_interval=0.5), "--diff")
    assert result["changed"] is True, result
    assert result["diff"]["before"]["snmpv1"] == {
        "SNMPv1Enabled": True,
        "SNMPv1RequestsEnabled": True,
        "SNMPv1TrapEnabled": True,
    }
    snmp = fleet.state(0)["SnmpService"]
    assert (snmp["SNMPv1Enabled"], snmp["SNMPv1RequestsEnabled"], snmp["SNMPv1TrapEnabled"]) == (False, False, False)
    assert run_module("ilo_baseline", bmc_args(fleet[0], snmpv1_enabled=False))["changed"] is False
