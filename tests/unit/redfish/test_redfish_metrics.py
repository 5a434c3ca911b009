"""Metrics extraction on recorded iLO 5 answers and on the new (iLO 6) model; files, retention, textfile, rows."""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
import os
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils import _redfish_metrics as m
from ansible_collections.bm.lifecycle.plugins.module_utils._redfish import (
    RedfishAuthError,
    RedfishError,
    RedfishUnavailableError,
)

MOMENT = datetime.datetime(2026, 2, 11, 10, 10, tzinfo=datetime.UTC)


RECORDED = Path(__file__).parents[2] / "fixtures" / "redfish_metrics"


def recorded_pages(model: str) -> dict[str, Any]:
    """Every recorded answer of one generation, keyed by its resource path (as the BMC writes it)."""
    pages: dict[str, Any] = {}
    for path in sorted((RECORDED / model).glob("*.json")):
        data = json.loads(path.read_text())
        if "error" not in data["body"]:
            pages[data["resource"]] = data["body"]
    return pages


def fetcher(pages: dict[str, Any]):
    """GET by path, with or without the trailing slash (a real iLO accepts both)."""
    by_path = {p.rstrip("/"): b for p, b in pages.items()}
    seen: list[str] = []

    async def fetch(path: str) -> Any:
        seen.append(path)
        if path.rstrip("/") not in by_path:
            raise RedfishError(f"BMC test: GET {path} failed with HTTP 404", 404, None, "GET", path)
        return copy.deepcopy(by_path[path.rstrip("/")])

    fetch.seen = seen  # type: ignore[attr-defined]
    return fetch


def collect(pages: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(m.collect(fetcher(pages)))


C6 = "/redfish/v1/Chassis/1/"


def test_ilo5_reads_the_deprecated_power_and_thermal_through_the_collections() -> None:
    pages = recorded_pages("ilo5")
    fetch = fetcher(pages)
    metrics = asyncio.run(m.collect(fetch))
    assert metrics["cpu"] == {"count": 2, "health": "OK"}
    assert metrics["memory"] == {"total_gb": 384.0, "health": "OK"}
    assert metrics["power"] == {
        "consumed_watts": 196.0,
        "health": "OK",
        "power_supplies": 2,
        "failed_power_supplies": 0,
        "source": "Power",
    }
    thermal = metrics["thermal"]
    assert thermal["inlet_temp_celsius"] == 21.0  # the Intake sensor, not the average or the maximum
    assert thermal["sensors"] == 6 and thermal["max_temp_celsius"] == 44.0  # absent sensors (reading 0) left out
    assert thermal["fans"]["count"] == 6 and thermal["fans"]["failed"] == 0 and thermal["fans"]["units"] == "Percent"
    assert thermal["source"] == "Thermal" and metrics["health"] == "OK"
    assert fetch.seen[:2] == ["/redfish/v1/Systems/", "/redfish/v1/Chassis/"]
    assert "/redfish/v1/Systems/1" in [p.rstrip("/") for p in fetch.seen]  # the member's link


def test_ilo5_inlet_by_name_when_no_sensor_says_intake() -> None:
    pages = recorded_pages("ilo5")
    for sensor in pages["/redfish/v1/Chassis/1/Thermal/"]["Temperatures"]:
        sensor.pop("PhysicalContext")
    assert collect(pages)["thermal"]["inlet_temp_celsius"] == 21.0
    pages["/redfish/v1/Chassis/1/Thermal/"]["Temperatures"][0]["Name"] = "01-Front"
    assert collect(pages)["thermal"]["inlet_temp_celsius"] is None  # unknown, not a guess


@pytest.mark.parametrize("health", ["Warning", "Critical"])
def test_ilo5_failed_fan_reaches_the_overall_health(health: str) -> None:
    pages = recorded_pages("ilo5")
    pages["/redfish/v1/Chassis/1/Thermal/"]["Fans"][3]["Status"]["Health"] = health
    metrics = collect(pages)
    assert metrics["thermal"]["fans"]["health"] == health and metrics["thermal"]["fans"]["failed"] == 1
    assert metrics["thermal"]["temperature_health"] == "OK"
    assert metrics["thermal"]["health"] == health and metrics["health"] == health


def test_ilo5_failed_psu_reaches_the_overall_health() -> None:
    pages = recorded_pages("ilo5")
    pages["/redfish/v1/Chassis/1/Power/"]["PowerSupplies"][1]["Status"]["Health"] = "Critical"
    metrics = collect(pages)
    assert metrics["power"]["health"] == "Critical" and metrics["power"]["failed_power_supplies"] == 1
    assert metrics["health"] == "Critical"


def test_ilo6_reads_the_dmtf_model_when_the_chassis_links_it() -> None:
    fetch = fetcher(recorded_pages("ilo6"))
    metrics = asyncio.run(m.collect(fetch))
    assert metrics["memory"]["total_gb"] == 512.0
    assert metrics["power"] == {
        "consumed_watts": 248.0,  # EnvironmentMetrics.PowerWatts, not the deprecated Power's 251
        "health": "OK",
        "power_supplies": 2,
        "failed_power_supplies": 0,
        "source": "EnvironmentMetrics/PowerSubsystem",
    }
    thermal = metrics["thermal"]
    assert thermal["inlet_temp_celsius"] == 23.0 and thermal["max_temp_celsius"] == 46.0
    assert thermal["fans"]["count"] == 6 and thermal["fans"]["avg_reading"] == 34.7
    assert thermal["source"] == "ThermalSubsystem" and metrics["health"] == "OK"
    seen = fetch.seen
    assert not [p for p in seen if p.rstrip("/").endswith(("/Power", "/Thermal"))]  # the deprecated ones: not read
    assert not [p for p in seen if "DE00A000" in p]  # the storage enclosure is not the system's chassis


def test_ilo6_follows_the_chassis_the_system_links() -> None:
    pages = recorded_pages("ilo6")
    collection = pages["/redfish/v1/Chassis/"]
    collection["Members"].reverse()  # the enclosure first: the system's Links.Chassis decides
    pages["/redfish/v1/Chassis/DE00A000/"] = {"@odata.id": "/redfish/v1/Chassis/DE00A000/", "Id": "DE00A000"}
    assert collect(pages)["power"]["consumed_watts"] == 248.0


def test_ilo6_inlet_from_the_readings_when_no_ambient_summary() -> None:
    pages = recorded_pages("ilo6")
    del pages[C6 + "ThermalSubsystem/ThermalMetrics/"]["TemperatureSummaryCelsius"]
    assert collect(pages)["thermal"]["inlet_temp_celsius"] == 23.0


def test_ilo6_failed_fan_and_psu() -> None:
    pages = recorded_pages("ilo6")
    pages[C6 + "ThermalSubsystem/Fans/4/"]["Status"]["Health"] = "Critical"
    pages[C6 + "PowerSubsystem/PowerSupplies/2/"]["Status"]["Health"] = "Warning"
    metrics = collect(pages)
    assert metrics["thermal"]["fans"]["failed"] == 1 and metrics["thermal"]["health"] == "Critical"
    assert metrics["power"]["health"] == "Warning" and metrics["power"]["failed_power_supplies"] == 1
    assert metrics["health"] == "Critical"


def test_ilo6_before_1_68_takes_the_watts_from_the_deprecated_power() -> None:
    pages = recorded_pages("ilo6")
    del pages[C6 + "EnvironmentMetrics/"]["PowerWatts"]
    power = collect(pages)["power"]
    assert power["consumed_watts"] == 251.0 and power["power_supplies"] == 2
    assert power["source"] == "EnvironmentMetrics/PowerSubsystem+Power"


def test_ilo6_firmware_without_power_and_thermal_still_reads_the_dmtf_model() -> None:
    pages = recorded_pages("ilo6")
    for name in ("Power", "Thermal"):
        del pages[C6][name]
        pages.pop(C6 + f"{name}/", None)
    metrics = collect(pages)
    assert metrics["power"]["consumed_watts"] == 248.0 and metrics["thermal"]["inlet_temp_celsius"] == 23.0


@pytest.mark.parametrize("model", ["ilo5", "ilo6"])
def test_neither_model_is_unknown_not_zero(model: str) -> None:
    pages = recorded_pages(model)
    chassis = next(p for p in pages if p.rstrip("/") == "/redfish/v1/Chassis/1")
    for name in ("Power", "Thermal", "PowerSubsystem", "ThermalSubsystem", "EnvironmentMetrics"):
        pages[chassis].pop(name, None)
    metrics = collect(pages)
    assert metrics["power"] == m.unknown_power()
    assert metrics["thermal"]["fans"]["count"] is None and metrics["thermal"]["sensors"] is None
    assert metrics["thermal"]["inlet_temp_celsius"] is None and metrics["thermal"]["health"] is None
    assert metrics["health"] == "OK"  # CPU and memory are known
    text = m.prometheus_text([{"name": "s1", "ok": True, "seconds": 0.1, "metrics": metrics}], 1.0, MOMENT)
    for absent in ("bm_power_supplies", "bm_fans", "bm_temperature_inlet_celsius", "bm_power_consumed_watts"):
        assert f"{absent}{{" not in text
    assert 'bm_health{device="s1",component="fans"}' not in text


def test_poll_errors_name_the_request_and_how_it_failed() -> None:
    body = json.loads((RECORDED / "ilo6" / "error_500.json").read_text())["body"]
    error = RedfishError("BMC h:443: GET /redfish/v1/Systems/ failed with HTTP 500", 500, body, "GET", "/x")
    assert "Base.1.18.InternalError" in m.poll_error(error) and "HTTP 500" in m.poll_error(error)
    wrong = RedfishAuthError("BMC h:443 rejected the credentials of user 'u'", 401, None, "GET", "/redfish/v1/Systems/")
    assert m.poll_error(wrong) == "GET /redfish/v1/Systems/: HTTP 401: wrong credentials"
    busy = RedfishUnavailableError("BMC h:443: ...", 503, None, "GET", "/redfish/v1/Chassis/", last="HTTP 503 after 3")
    assert m.poll_error(busy) == "GET /redfish/v1/Chassis/: HTTP 503 after 3"


def ok_result(name: str, watts: float | None = 250.4, device_id: int | None = 7) -> dict[str, Any]:
    return {
        "name": name,
        "device_id": device_id,
        "ok": True,
        "seconds": 0.2,
        "metrics": {
            "cpu": {"count": 2, "health": "OK"},
            "memory": {"total_gb": 384.0, "health": "OK"},
            "power": {"consumed_watts": watts, "health": "OK", "power_supplies": 2, "failed_power_supplies": 0},
            "thermal": {
                "inlet_temp_celsius": 21.0,
                "avg_temp_celsius": 32.0,
                "max_temp_celsius": 45.0,
                "temperature_health": "OK",
                "health": "Critical",
                "fans": {"count": 6, "failed": 1, "avg_reading": 30.0, "units": "Percent", "health": "Critical"},
            },
            "health": "Critical",
        },
    }


def test_plan_json_file_and_bounded_retention(tmp_path: Path) -> None:
    for minute in range(5):
        moment = MOMENT + datetime.timedelta(minutes=minute)
        m.write_json_files(str(tmp_path), [ok_result("srv001"), {"name": "srv002", "ok": False}], moment, 3)
    files = sorted(os.listdir(tmp_path))
    assert files == [f"srv001-20260211T10{n:02d}00Z.json" for n in (12, 13, 14)]
    document = json.loads((tmp_path / files[-1]).read_text())
    assert document["device_name"] == "srv001" and document["device_id"] == 7
    assert document["timestamp"] == "2026-02-11T10:14:00Z"
    assert set(document["metrics"]) == {"cpu", "memory", "power", "thermal"}


def test_prometheus_textfile_is_well_formed_and_atomic(tmp_path: Path) -> None:
    text = m.prometheus_text([ok_result("srv001"), {"name": 'we"ird', "ok": False, "seconds": 1.0}], 1.5, MOMENT)
    assert 'bm_power_consumed_watts{device="srv001"} 250.4' in text
    assert 'bm_redfish_up{device="we\\"ird"} 0' in text
    assert "bm_redfish_cycle_duration_seconds 1.5" in text
    for line in (
        'bm_temperature_inlet_celsius{device="srv001"} 21.0',
        'bm_fans{device="srv001"} 6',
        'bm_fans_failed{device="srv001"} 1',
        'bm_power_supplies{device="srv001"} 2',
        'bm_fan_speed_avg_percent{device="srv001"} 30.0',
        'bm_memory_bytes{device="srv001"} 412316860416',
        'bm_health{device="srv001",component="fans"} 2',
        'bm_health{device="srv001",component="overall"} 2',
        'bm_health{device="srv001",component="temperatures"} 0',
    ):
        assert line in text, line
    documented = (Path(__file__).parents[3] / "README.md").read_text()
    for metric in m.PROM_HELP:
        assert f"`{metric}`" in documented, metric
    path = tmp_path / "bm.prom"
    m.write_textfile(str(path), text)
    assert path.read_text() == text and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


class FakeNetBox:
    def __init__(self, devices: list[dict[str, Any]]) -> None:
        self.devices = devices
        self.calls: list[tuple[str, str, Any]] = []
        self.timeout = 10.0

    def list(self, path: str, **params: Any) -> list[dict[str, Any]]:
        self.calls.append(("GET", path, params))
        return [d for d in self.devices if d["id"] in params["id"]]

    def patch(self, path: str, rows: Any, timeout: float | None = None) -> Any:
        self.calls.append(("PATCH", path, rows))
        return list(rows)  # NetBox answers the records of a bulk write

    def post(self, path: str, rows: Any, timeout: float | None = None) -> Any:
        self.calls.append(("POST", path, rows))
        return [{"id": n, **row} for n, row in enumerate(rows, 1)]


def test_first_successful_poll_moves_hardened_staged_to_monitored_and_nothing_else_is_written(bus: Any) -> None:
    tenant = {"slug": "baremetal-staging"}
    devices = [
        {
            "id": 1,
            "name": "a",
            "tenant": tenant,
            "custom_fields": {
                "lifecycle_state": {"value": "staged", "label": "s"},
                "hardened_at": "2026-02-11T10:00:00Z",
            },
        },
        {"id": 2, "name": "b", "tenant": tenant, "custom_fields": {"lifecycle_state": "monitored"}},
        {"id": 3, "name": "c", "tenant": tenant, "custom_fields": {"lifecycle_state": "staged", "hardened_at": None}},
    ]
    netbox = FakeNetBox(devices)
    targets = {"a": {"state": "staged"}, "b": {"state": "monitored"}, "c": {"state": "staged"}}
    polled = [ok_result("a", 100.4, 1), ok_result("b", 200, 2), ok_result("c", 50, 3), {"name": "d", "ok": False}]
    synced = m.sync_netbox(netbox, bus, polled, targets, tenant="baremetal-staging")
    assert synced == {"monitored": ["a"], "updated": 1}  # c is not hardened: the state machine refuses it
    patches = [c for c in netbox.calls if c[0] == "PATCH"]
    assert len(patches) == 1 and patches[0][1] == "/api/dcim/devices/"
    [row] = patches[0][2]
    assert row["id"] == 1 and row["custom_fields"]["lifecycle_state"] == "monitored"
    assert row["custom_fields"]["last_power_watts"] == 100 and row["custom_fields"]["last_monitored_at"]
    journals = [c for c in netbox.calls if c[0] == "POST"]
    assert journals and [j["assigned_object_id"] for j in journals[0][2]] == [1]
    assert m.sync_netbox(netbox, bus, [ok_result("b", 200, 2)], targets, tenant="baremetal-staging")["updated"] == 0
    assert len(netbox.calls) == 3  # one read, one PATCH, one journal POST: a monitored device's readings stay out


@pytest.mark.parametrize("health", [["OK", None, "Warning"], ["Critical", "OK"]])
def test_worst_health(health: list[str | None]) -> None:
    assert m.worst(health) == ("Warning" if "Critical" not in health else "Critical")


class FakeRedis:
    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}

    def call(self, *args: Any) -> Any:
        if args[0] == "HSET":
            self.hashes.setdefault(args[1], {}).update(dict(zip(args[2::2], args[3::2], strict=True)))
            return None
        assert args[0] == "HGETALL"
        return [item for pair in self.hashes.get(args[1], {}).items() for item in pair]


def test_netbox_hears_of_a_change_of_standing_only() -> None:
    failed_fan = ok_result("srv001")
    healthy = ok_result("srv001")
    healthy["metrics"]["health"] = healthy["metrics"]["thermal"]["fans"]["health"] = "OK"
    healthy["metrics"]["thermal"]["health"] = "OK"
    down = {"name": "srv001", "device_id": 7, "ok": False, "error": "GET /redfish/v1/Systems/: ClientConnectorError"}

    standing, changes = m.standing_changes({}, [healthy])
    assert changes == [] and standing == {"srv001": {"up": True, "health": "OK"}}  # first poll: recorded only
    redis = FakeRedis()
    m.write_standing(redis, "t1", standing, ["srv001"])
    assert m.read_standing(redis, "t1") == standing and m.read_standing(redis, "t2") == {}
    watts = ok_result("srv001", watts=999.0)
    watts["metrics"] = healthy["metrics"] | {"power": {**healthy["metrics"]["power"], "consumed_watts": 999.0}}
    assert m.standing_changes(standing, [watts])[1] == []  # readings never make a change

    standing, changes = m.standing_changes(standing, [failed_fan])
    assert changes == [
        {
            "device_id": 7,
            "name": "srv001",
            "kind": "danger",
            "comments": "Redfish health OK -> Critical (fans Critical)",
        }
    ]
    standing, changes = m.standing_changes(standing, [down])
    assert changes[0]["kind"] == "danger" and "stopped answering" in changes[0]["comments"]
    assert "ClientConnectorError" in changes[0]["comments"]
    assert standing["srv001"] == {"up": False, "health": "Critical"}
    assert m.standing_changes(standing, [down])[1] == []  # still down: nothing new
    standing, changes = m.standing_changes(standing, [healthy])
    assert changes[0]["kind"] == "success" and "again" in changes[0]["comments"]

    netbox = FakeNetBox([])
    assert m.journal_changes(netbox, []) == 0 and netbox.calls == []
    assert m.journal_changes(netbox, changes) == 1
    assert netbox.calls == [
        (
            "POST",
            "/api/extras/journal-entries/",
            [
                {
                    "assigned_object_type": "dcim.device",
                    "assigned_object_id": 7,
                    "kind": "success",
                    "comments": changes[0]["comments"],
                }
            ],
        )
    ]
