"""The iLO 5 baseline on recorded factory-state answers: the plan, its refusals, the licence rule, check mode."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils._redfish_baseline import (
    BASELINE_ARGUMENT_SPEC,
    BaselineError,
    plan,
    read_state,
    run,
)
from unit.redfish.conftest import body

MANAGER = "/redfish/v1/Managers/1"
PATHS = {
    MANAGER: "manager",
    "/redfish/v1/AccountService": "account_service",
    "/redfish/v1/AccountService/Accounts": "accounts",
    "/redfish/v1/AccountService/Accounts/1": "account_1",
    "/redfish/v1/AccountService/Accounts/2": "account_2",
    f"{MANAGER}/NetworkProtocol": "network_protocol",
    f"{MANAGER}/SnmpService": "snmp_service",
    f"{MANAGER}/SnmpService/SNMPUsers": "snmp_users",
    f"{MANAGER}/SnmpService/SNMPAlertDestinations": "snmp_alert_destinations",
    f"{MANAGER}/LicenseService": "license_service",
    f"{MANAGER}/LicenseService/1": "license_1",
}


def params(**overrides: Any) -> dict[str, Any]:
    values = {name: spec.get("default") for name, spec in BASELINE_ARGUMENT_SPEC.items()}
    values.update(
        admin_password="factory-pass",
        min_password_length=12,
        snmpv1_enabled=False,
        ipmi_enabled=False,
        virtual_media_enabled=False,
        syslog_server="10.1.100.10",
        snmpv3_users=[
            {
                "name": "monitoring",
                "auth_protocol": "SHA256",
                "auth_passphrase": "a" * 10,
                "privacy_protocol": "AES",
                "privacy_passphrase": "p" * 10,
                "engine_id": None,
            }
        ],
        snmp_alert_destinations=[
            {"address": "10.1.100.20", "protocol": "SNMPv3Trap", "security_name": None, "community": None}
        ],
    )
    values.update(overrides)
    return values


@pytest.fixture
def factory(transport):
    for path, name in PATHS.items():
        transport.add("GET", path, (200, {}, copy.deepcopy(body(name))))
    return transport


def test_factory_state_plan(factory, make_client) -> None:
    client = make_client()
    state = read_state(client, params())
    names = [s.name for s in plan(state, params(), client.username)]
    assert names == [
        "min_password_length",
        "virtual_media_enabled syslog",
        "snmpv3_user monitoring",
        "alert_destination 10.1.100.20",
        "snmpv1",
    ]
    assert factory.writes() == []


def test_check_mode_reports_with_diff_and_writes_nothing(factory, make_client) -> None:
    result = run(make_client(), params(admin_password="a-new-password-1"), check_mode=True)
    assert result["changed"] is True
    assert "admin_password" in result["changes"]
    assert result["diff"]["before"]["admin_password"] == "differs"
    assert result["diff"]["after"]["virtual_media_enabled"] is False
    assert result["diff"]["after"]["snmpv1"]["SNMPv1Enabled"] is False
    assert "a-new-password-1" not in repr(result)
    assert factory.writes() == []


def test_never_removes_the_account_in_use_or_a_service_account(factory, make_client) -> None:
    client = make_client()
    for name in ("Administrator", "_HPOneViewAdmin"):
        state = read_state(client, params(remove_accounts=[name]))
        with pytest.raises(BaselineError) as error:
            plan(state, params(remove_accounts=[name]), client.username)
        assert error.value.step == "accounts"


def test_no_remote_syslog_licence_is_a_clear_error_before_any_write(factory, make_client) -> None:
    licence = copy.deepcopy(body("license_1"))
    licence["LicenseFeatures"]["RemoteSyslog"] = False
    factory.routes[("GET", f"{MANAGER}/LicenseService/1")] = [(200, {}, licence)]
    with pytest.raises(BaselineError, match="RemoteSyslog") as error:
        run(make_client(), params(), check_mode=False)
    assert error.value.step == "syslog"
    assert factory.writes() == []


def test_hardened_state_plans_nothing(factory, make_client) -> None:
    routes = factory.routes
    routes[("GET", "/redfish/v1/AccountService")][0][2]["Oem"]["Hpe"]["MinPasswordLength"] = 12
    protocol = routes[("GET", f"{MANAGER}/NetworkProtocol")][0][2]
    protocol["VirtualMedia"]["ProtocolEnabled"] = False
    protocol["IPMI"]["ProtocolEnabled"] = False
    protocol["Oem"]["Hpe"].update(RemoteSyslogEnabled=True, RemoteSyslogServer="10.1.100.10", RemoteSyslogPort=514)
    snmp = routes[("GET", f"{MANAGER}/SnmpService")][0][2]
    snmp.update(SNMPv1Enabled=False, ReadCommunities=["", "", ""])
    snmp.pop("SNMPv1RequestsEnabled", None)
    snmp.pop("SNMPv1TrapEnabled", None)
    routes[("GET", f"{MANAGER}/SnmpService/SNMPUsers")][0][2]["Members"] = [
        {"@odata.id": f"{MANAGER}/SnmpService/SNMPUsers/1"}
    ]
    factory.add(
        "GET",
        f"{MANAGER}/SnmpService/SNMPUsers/1",
        (
            200,
            {},
            {"SecurityName": "monitoring", "AuthProtocol": "SHA256", "PrivacyProtocol": "AES", "UserEngineID": ""},
        ),
    )
    routes[("GET", f"{MANAGER}/SnmpService/SNMPAlertDestinations")][0][2]["Members"] = [
        {"@odata.id": f"{MANAGER}/SnmpService/SNMPAlertDestinations/1"}
    ]
    factory.add(
        "GET",
        f"{MANAGER}/SnmpService/SNMPAlertDestinations/1",
        (200, {}, {"AlertDestination": "10.1.100.20", "SNMPAlertProtocol": "SNMPv3Trap", "SecurityName": "monitoring"}),
    )
    result = run(make_client(), params(), check_mode=False)
    assert result["changed"] is False and result["changes"] == []
    assert factory.writes() == []
