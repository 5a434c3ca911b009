"""iLO 6 profile, the DMTF power and thermal model, firmware gates, and failed fans and power supplies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bm_mock_ilo import Settings
from bm_mock_ilo.testing import FleetHandle, RedfishClient, message_ids, start_fleet

CHASSIS = "/redfish/v1/Chassis/1"
FANS = f"{CHASSIS}/ThermalSubsystem/Fans"
SUPPLIES = f"{CHASSIS}/PowerSubsystem/PowerSupplies"
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture
def mixed(cert_dir: Path) -> Iterator[FleetHandle]:
    """BMC 0 an iLO 5, BMC 1 an iLO 6 (default firmware), BMC 2 an iLO 6 without the deprecated Power/Thermal."""
    settings = [
        Settings(post_seconds=0.1),
        Settings(model="ilo6", post_seconds=0.1),
        Settings(model="ilo6", post_seconds=0.1, power_thermal=False),
    ]
    with start_fleet(3, settings=settings, state_dir=cert_dir) as fleet:
        yield fleet


def get(fleet: FleetHandle, index: int, path: str) -> requests.Response:
    return RedfishClient.admin(fleet[index]).get(path)


def test_inventory_and_identity_per_model(mixed: FleetHandle) -> None:
    assert [bmc.model for bmc in mixed] == ["ilo5", "ilo6", "ilo6"]
    five, six = get(mixed, 0, "/redfish/v1/Managers/1").json(), get(mixed, 1, "/redfish/v1/Managers/1").json()
    assert (five["Model"], five["FirmwareVersion"]) == ("iLO 5", "iLO 5 v2.55")
    assert (six["Model"], six["FirmwareVersion"]) == ("iLO 6", "iLO 6 v1.68")
    assert six["Oem"]["Hpe"]["Firmware"]["Current"]["MajorVersion"] == 1
    assert get(mixed, 1, "/redfish/v1/Systems/1").json()["Model"] == "ProLiant DL360 Gen11"
    assert "SessionTimeout" in get(mixed, 1, "/redfish/v1/SessionService").json()  # every iLO 6 firmware
    assert "SessionTimeout" not in get(mixed, 0, "/redfish/v1/SessionService").json()  # iLO 5 before 2.90
    snmp = get(mixed, 1, "/redfish/v1/Managers/1/SnmpService").json()
    assert {"SNMPv1Enabled", "SNMPv1RequestsEnabled", "SNMPv3TrapEnabled"} <= set(snmp)


def test_chassis_links_per_model_and_firmware(mixed: FleetHandle) -> None:
    new_model = {"PowerSubsystem", "ThermalSubsystem", "EnvironmentMetrics"}
    five = get(mixed, 0, CHASSIS).json()
    assert {"Power", "Thermal"} <= set(five) and not new_model & set(five)
    six = get(mixed, 1, CHASSIS).json()
    assert {"Power", "Thermal"} | new_model <= set(six)
    newer = get(mixed, 2, CHASSIS).json()
    assert new_model <= set(newer) and not {"Power", "Thermal"} & set(newer)
    for path in (f"{CHASSIS}/Power", f"{CHASSIS}/Thermal"):
        answer = get(mixed, 2, path)
        assert answer.status_code == 404
        assert message_ids(answer) == ["Base.1.4.ResourceMissingAtURI"]
    assert get(mixed, 0, f"{CHASSIS}/ThermalSubsystem").status_code == 404


@pytest.mark.parametrize(
    ("firmware", "thermal_subsystem", "energy", "power_watts"),
    [
        ("1.59", False, False, False),
        ("1.62", False, True, False),
        ("1.64", True, True, False),
        ("1.70", True, True, True),
    ],
)
def test_ilo6_firmware_gates(
    mixed: FleetHandle, firmware: str, thermal_subsystem: bool, energy: bool, power_watts: bool
) -> None:
    mixed.set_state(1, Settings={"firmware": firmware})
    chassis = get(mixed, 1, CHASSIS).json()
    assert ("ThermalSubsystem" in chassis, "EnvironmentMetrics" in chassis) == (thermal_subsystem, energy)
    assert (get(mixed, 1, FANS).status_code == 200) == thermal_subsystem
    metrics = get(mixed, 1, f"{CHASSIS}/EnvironmentMetrics")
    assert (metrics.status_code == 200) == energy
    if energy:
        assert ("PowerWatts" in metrics.json()) == power_watts


def test_both_models_carry_the_same_readings(mixed: FleetHandle) -> None:
    # host off: standby watts and still fans, so the two reads cannot straddle a change of the wobble
    thermal = get(mixed, 1, f"{CHASSIS}/Thermal").json()
    power = get(mixed, 1, f"{CHASSIS}/Power").json()
    fans = [get(mixed, 1, f"{FANS}/{n}").json() for n in range(1, 8)]
    assert [f["SpeedPercent"]["Reading"] for f in fans] == [f["Reading"] for f in thermal["Fans"]]
    metrics = get(mixed, 1, f"{CHASSIS}/ThermalSubsystem/ThermalMetrics").json()
    readings = [t["Reading"] for t in metrics["TemperatureReadingsCelsius"]]
    assert all(abs(a - b["ReadingCelsius"]) <= 1 for a, b in zip(readings, thermal["Temperatures"], strict=True))
    assert metrics["TemperatureSummaryCelsius"]["Ambient"]["Reading"] == readings[0]
    watts = get(mixed, 1, f"{CHASSIS}/EnvironmentMetrics").json()["PowerWatts"]["Reading"]
    assert watts == power["PowerControl"][0]["PowerConsumedWatts"] == 11
    supply = get(mixed, 1, f"{SUPPLIES}/1").json()
    assert supply["PowerCapacityWatts"] == power["PowerSupplies"][0]["PowerCapacityWatts"]
    assert get(mixed, 1, f"{SUPPLIES}/1/Metrics").json()["OutputPowerWatts"]["Reading"] == 5


@pytest.mark.parametrize("index", [0, 1])
def test_a_failed_fan_and_psu_show_in_both_models_and_roll_up(mixed: FleetHandle, index: int) -> None:
    mixed.set_state(index, PowerState="On")
    mixed.set_faults(index, failed_fans=[3], failed_psus=[2])
    thermal = get(mixed, index, f"{CHASSIS}/Thermal").json()
    assert [f["Status"]["Health"] for f in thermal["Fans"]] == ["OK", "OK", "Critical", "OK", "OK", "OK", "OK"]
    assert thermal["Fans"][2]["Reading"] == 0 and thermal["Fans"][1]["Reading"] > 0
    power = get(mixed, index, f"{CHASSIS}/Power").json()
    supplies = power["PowerSupplies"]
    assert [s["Status"]["Health"] for s in supplies] == ["OK", "Critical"]
    assert supplies[1]["LastPowerOutputWatts"] == 0 and supplies[0]["LastPowerOutputWatts"] > 0
    assert power["Redundancy"][0]["Status"]["Health"] == "Warning"
    assert get(mixed, index, CHASSIS).json()["Status"]["Health"] == "Warning"
    assert get(mixed, index, "/redfish/v1/Systems/1").json()["Status"]["HealthRollup"] == "Warning"
    if index == 1:
        assert get(mixed, 1, f"{FANS}/3").json()["Status"]["Health"] == "Critical"
        assert get(mixed, 1, f"{FANS}/3").json()["SpeedPercent"]["Reading"] == 0
        assert get(mixed, 1, f"{FANS}/1").json()["Status"]["Health"] == "OK"
        assert get(mixed, 1, f"{CHASSIS}/ThermalSubsystem").json()["Status"]["Health"] == "Warning"
        assert get(mixed, 1, f"{SUPPLIES}/2").json()["Status"]["Health"] == "Critical"
        assert get(mixed, 1, f"{SUPPLIES}/2/Metrics").json()["OutputPowerWatts"]["Reading"] == 0
        assert get(mixed, 1, f"{CHASSIS}/PowerSubsystem").json()["Status"]["Health"] == "Warning"
    mixed.clear_faults(index)
    assert get(mixed, index, CHASSIS).json()["Status"]["Health"] == "OK"
    assert get(mixed, index, "/redfish/v1/Systems/1").json()["Status"]["HealthRollup"] == "OK"


@pytest.mark.parametrize("body", [{"failed_fans": [8]}, {"failed_psus": [0]}, {"failed_fans": "3"}])
def test_failed_part_numbers_out_of_range_are_refused(mixed: FleetHandle, body: dict[str, object]) -> None:
    answer = RedfishClient(mixed[1]).request("PUT", "/_mock/faults", json=body)
    assert answer.status_code == 400
    assert mixed.state(1)["Faults"]["failed_fans"] == []


def test_unknown_model_is_refused(mixed: FleetHandle) -> None:
    answer = RedfishClient(mixed[0]).request("PATCH", "/_mock/state", json={"Settings": {"model": "ilo4"}})
    assert answer.status_code == 400
    with pytest.raises(ValueError, match="model"):
        Settings(model="ilo7")


def test_ilo6_account_can_be_disabled_ilo5_cannot(mixed: FleetHandle) -> None:
    bmc = mixed[1]
    admin = RedfishClient.admin(bmc)
    created = admin.post("/redfish/v1/AccountService/Accounts", {"UserName": "ops", "Password": "opspass123"})
    assert created.status_code == 201
    path = created.headers["Location"].removeprefix(bmc.base_url)
    assert created.json()["Enabled"] is True
    ops = RedfishClient(bmc, ("ops", "opspass123"))
    assert ops.get("/redfish/v1/Systems/1").status_code == 200
    assert admin.patch(path, {"Enabled": False}).status_code == 200
    refused = ops.get("/redfish/v1/Systems/1")
    assert refused.status_code == 401
    assert message_ids(refused) == ["iLO.2.15.UnauthorizedLoginAttempt"]
    assert admin.get(path).json()["Enabled"] is False
    five = RedfishClient.admin(mixed[0]).patch("/redfish/v1/AccountService/Accounts/1", {"Enabled": False})
    assert five.status_code == 400
    assert message_ids(five) == ["iLO.2.15.PropertyNotWritableOrUnknown"]


def test_cli_model_list_is_cycled_over_the_fleet(cert_dir: Path) -> None:
    with start_fleet(
        3, in_process=False, extra_args=["--model", "ilo5,ilo6", "--firmware", ""], state_dir=cert_dir
    ) as f:
        assert [bmc.model for bmc in f] == ["ilo5", "ilo6", "ilo5"]
        assert get(f, 1, "/redfish/v1/Managers/1").json()["FirmwareVersion"] == "iLO 6 v1.68"


def test_ilo6_http_port_zero_and_one_switch_for_http_and_https(mixed: FleetHandle) -> None:
    protocol = "/redfish/v1/Managers/1/NetworkProtocol"
    six = RedfishClient.admin(mixed[1])
    answer = six.patch(protocol, {"HTTP": {"Port": 0}})
    assert answer.status_code == 200
    assert message_ids(answer) == ["iLO.2.15.ResetRequired"]
    body = six.get(protocol).json()
    assert (body["HTTP"]["Port"], body["HTTPS"]["ProtocolEnabled"]) == (0, True)
    assert six.patch(protocol, {"HTTP": {"ProtocolEnabled": False}}).status_code == 200
    assert six.get(protocol).json()["HTTPS"]["ProtocolEnabled"] is False
    five = RedfishClient.admin(mixed[0]).patch(protocol, {"HTTP": {"Port": 0}})
    assert five.status_code == 400
    assert message_ids(five) == ["iLO.2.15.PropertyValueBadParam"]
