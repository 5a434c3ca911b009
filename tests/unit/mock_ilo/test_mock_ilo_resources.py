"""iLO 5 resource semantics: power and boot, manager, network protocol, SNMP, accounts, media, licence."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bm_mock_ilo.testing import FleetHandle, RedfishClient, message_ids

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
SYSTEM = "/redfish/v1/Systems/1"
RESET = f"{SYSTEM}/Actions/ComputerSystem.Reset"
NETWORK = "/redfish/v1/Managers/1/NetworkProtocol"
SNMP = "/redfish/v1/Managers/1/SnmpService"
ACCOUNTS = "/redfish/v1/AccountService/Accounts"


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    """Poll until ``predicate()`` is true (bounded)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_system_identity_matches_inventory(fleet: FleetHandle, client: RedfishClient) -> None:
    system = client.get(SYSTEM).json()
    assert system["SerialNumber"] == fleet[0].serial
    assert system["UUID"] == fleet[0].uuid
    assert system["Model"] == "ProLiant DL360 Gen10 Plus"
    nic = client.get(f"{SYSTEM}/EthernetInterfaces/2").json()
    assert nic["MACAddress"] == fleet[0].nic_macs[1]
    ilo_nic = client.get("/redfish/v1/Managers/1/EthernetInterfaces/1").json()
    assert ilo_nic["MACAddress"] == fleet[0].bmc_mac
    assert fleet[1].serial != fleet[0].serial


def test_one_time_pxe_boot_reverts_after_the_boot(fleet: FleetHandle, client: RedfishClient) -> None:
    boot = {"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}
    assert client.patch(SYSTEM, boot).status_code == 200
    assert client.post(RESET, {"ResetType": "On"}).status_code == 200
    system = client.get(SYSTEM).json()
    assert system["PowerState"] == "On"
    assert system["Oem"]["Hpe"]["PostState"] == "InPost"
    during = client.patch(SYSTEM, {"Boot": {"BootSourceOverrideTarget": "Hdd"}})
    assert message_ids(during) == ["iLO.2.15.UnableToModifyDuringSystemPOST"]
    wait_for(lambda: client.get(SYSTEM).json()["Oem"]["Hpe"]["PostState"] == "FinishedPost")
    after = client.get(SYSTEM).json()["Boot"]
    assert (after["BootSourceOverrideEnabled"], after["BootSourceOverrideTarget"]) == ("Disabled", "None")
    counters = fleet.counters(0)
    assert counters["pxe_boots"] == 1
    assert counters["boots"] == 1
    assert counters["resets"] == {"On": 1}
    assert counters["boot_override_history"][0]["BootSourceOverrideTarget"] == "Pxe"


def test_continuous_override_survives_boots(fleet: FleetHandle, client: RedfishClient) -> None:
    client.patch(SYSTEM, {"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Continuous"}})
    client.post(RESET, {"ResetType": "On"})
    wait_for(lambda: fleet.counters(0)["boots"] == 1)
    client.post(RESET, {"ResetType": "ForceRestart"})
    wait_for(lambda: fleet.counters(0)["boots"] == 2)
    assert fleet.counters(0)["pxe_boots"] == 2
    assert client.get(SYSTEM).json()["Boot"]["BootSourceOverrideEnabled"] == "Continuous"


def test_bad_boot_target_and_read_only_mode(client: RedfishClient) -> None:
    bad = client.patch(SYSTEM, {"Boot": {"BootSourceOverrideTarget": "Floppy"}})
    assert bad.status_code == 400
    assert bad.json()["error"]["@Message.ExtendedInfo"][0] == {
        "MessageId": "Base.1.4.PropertyValueNotInList",
        "MessageArgs": ["Floppy", "Boot/BootSourceOverrideTarget"],
    }
    mode = client.patch(SYSTEM, {"Boot": {"BootSourceOverrideMode": "Legacy"}})
    assert message_ids(mode) == ["iLO.2.15.PropertyNotWritableOrUnknown"]


@pytest.mark.parametrize(
    ("reset_type", "power", "message"),
    [
        ("ForceRestart", "Off", "Power is off"),
        ("GracefulShutdown", "Off", "Power is off"),
        ("On", "On", "Power is on"),
    ],
)
def test_reset_invalid_for_power_state(
    fleet: FleetHandle, client: RedfishClient, reset_type: str, power: str, message: str
) -> None:
    fleet.set_state(0, PowerState=power)
    refused = client.post(RESET, {"ResetType": reset_type})
    assert refused.status_code == 400
    assert refused.json()["error"]["@Message.ExtendedInfo"] == [
        {"MessageId": "iLO.2.15.InvalidOperationForSystemState", "MessageArgs": [message]}
    ]


def test_reset_types_and_power_off(fleet: FleetHandle, client: RedfishClient) -> None:
    allowed = client.get(SYSTEM).json()["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"]
    assert allowed == [
        "On",
        "ForceOff",
        "GracefulShutdown",
        "ForceRestart",
        "Nmi",
        "PushPowerButton",
        "GracefulRestart",
    ]
    assert message_ids(client.post(RESET, {"ResetType": "PowerCycle"})) == ["Base.1.4.PropertyValueNotInList"]
    assert message_ids(client.post(RESET, {})) == ["Base.1.4.PropertyMissing"]
    client.post(RESET, {"ResetType": "PushPowerButton"})
    assert client.get(SYSTEM).json()["PowerState"] == "On"
    client.post(RESET, {"ResetType": "ForceOff"})
    assert client.get(SYSTEM).json()["PowerState"] == "Off"
    assert client.get(SYSTEM).json()["Oem"]["Hpe"]["PostState"] == "PowerOff"


def test_long_post_fault(fleet: FleetHandle, client: RedfishClient) -> None:
    fleet.set_faults(0, long_post_seconds=30)
    client.post(RESET, {"ResetType": "On"})
    time.sleep(0.4)
    assert client.get(SYSTEM).json()["Oem"]["Hpe"]["PostState"] == "InPost"


def test_power_and_thermal_move_and_follow_power_state(fleet: FleetHandle, client: RedfishClient) -> None:
    off = client.get("/redfish/v1/Chassis/1/Power").json()["PowerControl"][0]["PowerConsumedWatts"]
    fleet.set_state(0, PowerState="On")
    power = client.get("/redfish/v1/Chassis/1/Power").json()
    assert power["PowerControl"][0]["PowerConsumedWatts"] > off
    assert power["PowerControl"][0]["@odata.id"] == "/redfish/v1/Chassis/1/Power/#/PowerControl/0"
    thermal = client.get("/redfish/v1/Chassis/1/Thermal").json()
    assert thermal["Temperatures"][0]["Name"] == "01-Inlet Ambient"
    assert len(thermal["Fans"]) == 7
    assert all(fan["ReadingUnits"] == "Percent" and fan["Reading"] > 0 for fan in thermal["Fans"])


def test_network_protocol_reset_required_and_manager_reset(fleet: FleetHandle, client: RedfishClient) -> None:
    hardening = {"IPMI": {"ProtocolEnabled": False}, "VirtualMedia": {"ProtocolEnabled": False}}
    assert message_ids(client.patch(NETWORK, hardening)) == ["Base.1.4.Success"]
    pending = client.patch(NETWORK, {"SNMP": {"ProtocolEnabled": False}})
    assert message_ids(pending) == ["iLO.2.15.ResetRequired"]
    assert client.get(NETWORK).json()["Oem"]["Hpe"]["ConfigurationSettings"] == "SomePendingReset"
    assert client.post("/redfish/v1/Managers/1/Actions/Manager.Reset", {"ResetType": "ForceRestart"}).ok
    wait_for(lambda: client.get(NETWORK).status_code == 200)
    protocol = client.get(NETWORK).json()
    assert protocol["Oem"]["Hpe"]["ConfigurationSettings"] == "Current"
    assert protocol["IPMI"]["ProtocolEnabled"] is False
    assert protocol["SNMP"]["ProtocolEnabled"] is False


def test_ssh_change_resets_the_ilo(fleet: FleetHandle, client: RedfishClient) -> None:
    client.patch(NETWORK, {"SSH": {"Port": 2222}})
    assert client.get(NETWORK).status_code == 503
    assert fleet.counters(0)["manager_resets"] == 1


def test_remote_syslog_rules(fleet: FleetHandle, client: RedfishClient) -> None:
    no_server = client.patch(NETWORK, {"Oem": {"Hpe": {"RemoteSyslogEnabled": True}}})
    assert message_ids(no_server) == ["iLO.2.15.PropertyValueBadParam"]
    syslog = {"RemoteSyslogServer": "192.0.2.10", "RemoteSyslogPort": 514, "RemoteSyslogEnabled": True}
    assert client.patch(NETWORK, {"Oem": {"Hpe": syslog}}).ok
    assert client.get(NETWORK).json()["Oem"]["Hpe"]["RemoteSyslogServer"] == "192.0.2.10"
    test_syslog = f"{NETWORK}/Actions/Oem/Hpe/HpeiLOManagerNetworkService.SendTestSyslog"
    assert client.post(test_syslog, {}).ok
    fleet.set_state(0, Settings={"license": "standard"})
    assert message_ids(client.patch(NETWORK, {"Oem": {"Hpe": syslog}})) == ["iLO.2.15.LicenseKeyRequired"]
    assert client.get("/redfish/v1/Managers/1/LicenseService/1").json()["LicenseFeatures"]["RemoteSyslog"] is False


def test_snmpv3_hardening_sequence(fleet: FleetHandle, client: RedfishClient) -> None:
    user = {
        "SecurityName": "monitor",
        "AuthProtocol": "SHA256",
        "AuthPassphrase": "authpass123",
        "PrivacyProtocol": "AES",
        "PrivacyPassphrase": "privpass123",
    }
    created = client.post(f"{SNMP}/SNMPUsers", user)
    assert created.status_code == 201
    assert created.headers["Location"].endswith("/SNMPUsers/1/")
    assert "AuthPassphrase" not in client.get(f"{SNMP}/SNMPUsers/1").json()
    assert message_ids(client.post(f"{SNMP}/SNMPUsers", user)) == ["iLO.2.15.UserAlreadyExist"]
    short = client.post(f"{SNMP}/SNMPUsers", {**user, "SecurityName": "x", "AuthPassphrase": "short"})
    assert message_ids(short) == ["iLO.2.15.PropertyValueBadParam"]
    destination = {"AlertDestination": "192.0.2.20", "SNMPAlertProtocol": "SNMPv3Trap", "SecurityName": "monitor"}
    dest = client.post(f"{SNMP}/SNMPAlertDestinations", destination)
    assert dest.status_code == 201
    assert dest.json()["Links"]["SNMPv3User"]["@odata.id"].endswith("/SNMPUsers/1/")
    assert message_ids(client.patch(SNMP, {"SNMPv1Enabled": False})) == ["iLO.2.15.ResetRequired"]
    assert client.request("DELETE", f"{SNMP}/SNMPUsers/1").ok
    assert client.get(f"{SNMP}/SNMPUsers").json()["Members@odata.count"] == 0
    client.patch(NETWORK, {"SNMP": {"ProtocolEnabled": False}})
    assert message_ids(client.post(f"{SNMP}/SNMPUsers", user)) == ["iLO.2.15.SNMPDisabled"]


def test_accounts_lifecycle(fleet: FleetHandle, client: RedfishClient) -> None:
    collection = client.get(ACCOUNTS)
    assert "POST" in collection.headers["Allow"]
    names = {client.get(m["@odata.id"]).json()["UserName"] for m in collection.json()["Members"]}
    assert names == {"Administrator", "_HPOneViewAdmin"}
    created = client.post(ACCOUNTS, {"UserName": "ops", "Password": "opspass123", "RoleId": "Operator"})
    assert created.status_code == 201
    path = created.headers["Location"].removeprefix(fleet[0].base_url)
    account = client.get(path)
    assert "DELETE" in account.headers["Allow"]
    assert account.json()["RoleId"] == "Operator"
    assert account.json()["Password"] is None
    assert message_ids(client.post(ACCOUNTS, {"UserName": "ops", "Password": "opspass123"})) == [
        "iLO.2.15.UserAlreadyExist"
    ]
    assert message_ids(client.post(ACCOUNTS, {"UserName": "x", "Password": "short"})) == [
        "iLO.2.15.InvalidPasswordLength"
    ]
    assert client.patch(path, {"Password": "newpass123"}).ok
    ops = RedfishClient(fleet[0], ("ops", "newpass123"))
    assert ops.get(SYSTEM).status_code == 200
    assert ops.patch("/redfish/v1/Managers/1/NetworkProtocol", {"IPMI": {"ProtocolEnabled": True}}).status_code == 403
    readonly = client.patch(
        path, {"Oem": {"Hpe": {"Privileges": {"VirtualPowerAndResetPriv": False, "RemoteConsolePriv": False}}}}
    )
    assert readonly.ok
    assert client.request("DELETE", path).ok
    assert ops.get(SYSTEM).status_code == 401
    service = client.request("DELETE", f"{ACCOUNTS}/2")
    assert message_ids(service) == ["Base.1.4.ResourceCannotBeDeleted"]


def test_role_is_derived_from_privileges(client: RedfishClient) -> None:
    created = client.post(
        ACCOUNTS, {"UserName": "viewer", "Password": "viewpass1", "Oem": {"Hpe": {"Privileges": {"LoginPriv": True}}}}
    )
    assert created.json()["RoleId"] == "ReadOnly"
    path = created.json()["@odata.id"]
    client.patch(path, {"Oem": {"Hpe": {"Privileges": {"UserConfigPriv": True}}}})
    assert client.get(path).json()["RoleId"] == "Administrator"
    assert client.get("/redfish/v1/AccountService/Roles/Operator").json()["RoleId"] == "Operator"


def test_password_policy(client: RedfishClient) -> None:
    assert client.patch("/redfish/v1/AccountService", {"Oem": {"Hpe": {"MinPasswordLength": 12}}}).ok
    assert client.get("/redfish/v1/AccountService").json()["MinPasswordLength"] == 12
    assert message_ids(client.post(ACCOUNTS, {"UserName": "y", "Password": "elevenchars"})) == [
        "iLO.2.15.InvalidPasswordLength"
    ]


def test_virtual_media(fleet: FleetHandle, client: RedfishClient) -> None:
    cd = "/redfish/v1/Managers/1/VirtualMedia/2"
    insert = f"{cd}/Actions/VirtualMedia.InsertMedia"
    assert client.post(insert, {"Image": "http://192.0.2.1/boot.iso"}).ok
    assert client.get(cd).json()["Inserted"] is True
    assert message_ids(client.post(insert, {"Image": "http://x/y.iso"})) == ["iLO.2.15.MediaAlreadyInserted"]
    assert client.post(f"{cd}/Actions/VirtualMedia.EjectMedia", {}).ok
    assert client.get(cd).json()["Inserted"] is False
    client.patch(NETWORK, {"VirtualMedia": {"ProtocolEnabled": False}})
    assert message_ids(client.post(insert, {"Image": "http://x/y.iso"})) == ["iLO.2.15.VirtualMediaIsDisabled"]


def test_firmware_gated_properties(fleet: FleetHandle, client: RedfishClient) -> None:
    assert "SessionTimeout" not in client.get("/redfish/v1/SessionService").json()
    assert "SNMPv3TrapEnabled" not in client.get(SNMP).json()
    fleet.set_state(0, Settings={"firmware": "3.09"})
    assert client.get("/redfish/v1/SessionService").json()["SessionTimeout"] == 1800
    assert client.get(SNMP).json()["SNMPv3TrapEnabled"] is True
    assert client.get("/redfish/v1/Managers/1").json()["FirmwareVersion"] == "iLO 5 v3.09"
