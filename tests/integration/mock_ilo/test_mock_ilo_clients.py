"""Real Redfish clients against the mock: community.general, the DMTF redfish library and Tacklebox, sushy."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redfish
import redfish_utilities
import sushy
import sushy.resources.chassis.thermal.constants as thermal_constants
import yaml

from bm_mock_ilo import Settings
from bm_mock_ilo.testing import FleetHandle, start_fleet
from helpers import ansible_playbook

REGISTERED = (
    "redfish_info_GetSystemInventory",
    "redfish_info_info",
    "redfish_info_ListUsers",
    "redfish_info_GetNetworkProtocols",
    "redfish_command_PowerOn",
    "redfish_command_AddUser",
    "redfish_config_SetNetworkProtocols",
)
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")]


def wait_for_pxe_boot(fleet: FleetHandle, count: int) -> None:
    """Wait (bounded) until the simulated host has PXE-booted ``count`` times."""
    deadline = time.monotonic() + 10
    while fleet.counters(0)["pxe_boots"] < count:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_dmtf_redfish_library(fleet: FleetHandle) -> None:
    bmc = fleet[0]
    client = redfish.redfish_client(base_url=bmc.base_url, username=bmc.username, password=bmc.password)
    client.login(auth="session")
    try:
        assert fleet.state(0)["Sessions"] == 1
        system = client.get("/redfish/v1/Systems/1")
        assert system.dict["SerialNumber"] == bmc.serial
        boot = {"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}
        assert client.patch("/redfish/v1/Systems/1", body=boot).status == 200
        reset = client.post("/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", body={"ResetType": "On"})
        assert reset.status == 200
        refused = client.post("/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", body={"ResetType": "On"})
        assert refused.status == 400
        assert refused.dict["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith("InvalidOperationForSystemState")
    finally:
        client.logout()
    assert fleet.state(0)["Sessions"] == 0
    wait_for_pxe_boot(fleet, 1)


def test_sushy(fleet: FleetHandle) -> None:
    bmc = fleet[0]
    root = sushy.Sushy(bmc.base_url, username=bmc.username, password=bmc.password, verify=False)
    try:
        system = root.get_system("/redfish/v1/Systems/1")
        assert system.power_state == sushy.SYSTEM_POWER_STATE_OFF
        assert sushy.RESET_FORCE_RESTART in system.get_allowed_reset_system_values()
        assert sushy.BOOT_SOURCE_TARGET_PXE in system.get_allowed_system_boot_source_values()
        system.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_PXE, enabled=sushy.BOOT_SOURCE_ENABLED_ONCE)
        system.reset_system(sushy.RESET_ON)
        system.refresh()
        assert system.power_state == sushy.SYSTEM_POWER_STATE_ON
        wait_for_pxe_boot(fleet, 1)
        manager = root.get_manager("/redfish/v1/Managers/1")
        assert manager.firmware_version == "iLO 5 v2.55"
        chassis = root.get_chassis("/redfish/v1/Chassis/1")
        assert chassis.power.power_supplies[0].power_capacity_watts == 800
        assert chassis.thermal.fans[0].reading_units == thermal_constants.FAN_READING_UNIT_PERCENTAGE
        assert [m.identity for m in manager.virtual_media.get_members()] == ["1", "2"]
    finally:
        # sushy ends its session only in __del__, retrying 10 times with sleeps; left to the garbage collector after
        # this fleet is gone, that blocks whichever later test happens to be running (seen: a 17 s stall in CI).
        root.__del__()
    assert fleet.state(0)["Sessions"] == 0


def test_community_general_modules(fleet: FleetHandle, tmp_path: Path) -> None:
    bmc = fleet[0]
    connection = {"baseuri": bmc.baseuri, "username": bmc.username, "password": bmc.password}

    def task(module: str, category: str, command: str | list[str], **options: object) -> dict[str, object]:
        return {
            "name": f"{module} {command}",
            f"community.general.{module}": {"category": category, "command": command, **connection, **options},
            "register": f"{module}_{command if isinstance(command, str) else 'info'}",
        }

    play = {
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "tasks": [
            task("redfish_info", "Systems", "GetSystemInventory"),
            task("redfish_info", "Chassis", ["GetChassisPower", "GetChassisThermals"]),
            task("redfish_info", "Accounts", "ListUsers"),
            task("redfish_info", "Manager", "GetNetworkProtocols"),
            task("redfish_command", "Systems", "SetOneTimeBoot", bootdevice="Pxe"),
            task("redfish_command", "Systems", "PowerOn"),
            task("redfish_command", "Systems", "PowerForceRestart"),
            task(
                "redfish_command",
                "Accounts",
                "AddUser",
                new_username="ops",
                new_password="opspass123",
                roleid="Operator",
            ),
            task(
                "redfish_command",
                "Accounts",
                "UpdateUserPassword",
                account_username="ops",
                account_password="newpass456",
            ),
            task(
                "redfish_config",
                "Manager",
                "SetNetworkProtocols",
                network_protocols={"IPMI": {"ProtocolEnabled": False}, "SNMP": {"ProtocolEnabled": True}},
            ),
            task(
                "redfish_config",
                "Manager",
                "SetNetworkProtocols",
                network_protocols={"IPMI": {"ProtocolEnabled": False}},
            ),
            {
                "name": "save what the modules returned",
                "ansible.builtin.copy": {
                    "dest": str(tmp_path / "results.json"),
                    "content": "{{ {" + ", ".join(f"'{n}': {n}" for n in REGISTERED) + "} | to_json }}",
                    "mode": "0600",
                },
            },
            task("redfish_command", "Accounts", "DeleteUser", account_username="ops"),
        ],
    }
    playbook = tmp_path / "cg.yml"
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    result = ansible_playbook(str(playbook), "-i", "localhost,", timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    inventory = results["redfish_info_GetSystemInventory"]["redfish_facts"]["system"]["entries"][0][1]
    assert inventory["SerialNumber"] == bmc.serial
    chassis = results["redfish_info_info"]["redfish_facts"]
    assert chassis["chassis_power"]["entries"][0]["PowerConsumedWatts"] > 0
    assert chassis["thermals"]["entries"][0]["Name"] == "01-Inlet Ambient"
    users = results["redfish_info_ListUsers"]["redfish_facts"]["user"]["entries"]
    assert {u["UserName"] for u in users} == {"Administrator", "_HPOneViewAdmin"}
    protocols = results["redfish_info_GetNetworkProtocols"]["redfish_facts"]["network_protocols"]["entries"]
    assert protocols["IPMI"]["ProtocolEnabled"] is False
    assert results["redfish_command_PowerOn"]["changed"] is True
    assert results["redfish_command_AddUser"]["changed"] is True
    assert results["redfish_config_SetNetworkProtocols"]["changed"] is False
    state = fleet.state(0)
    assert [a["UserName"] for a in state["Accounts"]] == ["Administrator", "_HPOneViewAdmin"]
    assert state["NetworkProtocol"]["IPMI"]["ProtocolEnabled"] is False
    assert state["PowerState"] == "On"
    counters = fleet.counters(0)
    assert counters["resets"] == {"On": 1, "ForceRestart": 1}
    assert counters["boot_override_history"][0]["BootSourceOverrideTarget"] == "Pxe"
    wait_for_pxe_boot(fleet, 1)


def readings(sensors: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The DMTF Tacklebox's sensor list by reading name (one chassis)."""
    assert len(sensors) == 1
    return {str(r["Name"]): r for r in sensors[0]["Readings"]}


@pytest.mark.parametrize("power_thermal", [True, False])
def test_dmtf_tacklebox_reads_ilo6_fans_and_supplies(tmp_path: Path, power_thermal: bool) -> None:
    """redfish_utilities.get_sensors reads the DMTF subsystems when a chassis has them: a failed fan shows."""
    settings = Settings(model="ilo6", post_seconds=0.1, power_thermal=power_thermal)
    with start_fleet(1, settings=settings, state_dir=tmp_path) as fleet:
        bmc = fleet[0]  # host off: standby watts, so the power readings cannot move between two requests
        fleet.set_faults(0, failed_fans=[3], failed_psus=[2])
        client = redfish.redfish_client(base_url=bmc.base_url, username=bmc.username, password=bmc.password)
        client.login(auth="session")
        try:
            found = readings(redfish_utilities.get_sensors(client))
        finally:
            client.logout()
    assert found["Fan 3 State"]["Health"] == "Critical"
    assert (found["Fan 3 SpeedPercent"]["Reading"], found["Fan 1 State"]["Health"]) == (0, "OK")
    assert found["Fan 1 SpeedPercent"]["Units"] == "%"
    assert found["Power Supply 2 State"]["Health"] == "Critical"
    assert found["Power Supply 2 OutputPowerWatts"]["Reading"] == 0
    assert (
        found["Power Supply 1 OutputPowerWatts"]["Reading"]
        == found["Computer System Chassis PowerWatts"]["Reading"]
        == 11
    )
    assert found["Computer System Chassis Ambient"]["Units"] == "Cel"


def test_sushy_and_dmtf_library_on_ilo6(tmp_path: Path) -> None:
    with start_fleet(1, settings=Settings(model="ilo6", post_seconds=0.1), state_dir=tmp_path) as fleet:
        bmc = fleet[0]
        root = sushy.Sushy(bmc.base_url, username=bmc.username, password=bmc.password, verify=False)
        try:
            systems = root.get_system_collection().get_members()
            assert [s.serial_number for s in systems] == [bmc.serial]
            managers = root.get_manager_collection().get_members()
            assert managers[0].firmware_version == "iLO 6 v1.68"
            chassis = root.get_chassis_collection().get_members()[0]
            assert chassis.thermal.fans[0].reading_units == thermal_constants.FAN_READING_UNIT_PERCENTAGE
        finally:
            root.__del__()
        client = redfish.redfish_client(base_url=bmc.base_url, username=bmc.username, password=bmc.password)
        client.login(auth="session")
        try:
            fans = client.get("/redfish/v1/Chassis/1/ThermalSubsystem/Fans/")
            members = [client.get(m["@odata.id"]).dict for m in fans.dict["Members"]]
            assert len(members) == 7 and all(m["Status"]["Health"] == "OK" for m in members)
        finally:
            client.logout()
        assert fleet.state(0)["Sessions"] == 0
