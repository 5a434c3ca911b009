"""Metrics extraction on recorded iLO 5 answers and on the new (iLO 6) model; files, retention, textfile, rows."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils import _redfish_metrics as m
from unit.redfish.conftest import body

MOMENT = datetime.datetime(2026, 2, 11, 10, 10, tzinfo=datetime.UTC)


def fetcher(pages: dict[str, Any]):
    seen: list[str] = []

    async def fetch(path: str) -> Any:
        seen.append(path)
        if path not in pages:
            raise m.NotFound(path)
        return pages[path]

    fetch.seen = seen  # type: ignore[attr-defined]
    return fetch


def test_ilo5_metrics_from_the_plans_three_gets() -> None:
    fetch = fetcher(
        {
            "/redfish/v1/Systems/1": body("system"),
            "/redfish/v1/Chassis/1/Power": body("power"),
            "/redfish/v1/Chassis/1/Thermal": body("thermal"),
        }
    )
    metrics = asyncio.run(m.collect(fetch))
    system = body("system")
    assert metrics["cpu"] == {"count": system["ProcessorSummary"]["Count"], "health": "OK"}
    assert metrics["memory"]["total_gb"] == system["MemorySummary"]["TotalSystemMemoryGiB"]
    assert metrics["power"]["consumed_watts"] == body("power")["PowerControl"][0]["PowerConsumedWatts"]
    temps = [t["ReadingCelsius"] for t in body("thermal")["Temperatures"] if t.get("ReadingCelsius") is not None]
    assert metrics["thermal"]["max_temp_celsius"] == max(temps)
    assert metrics["thermal"]["fans"]["count"] == len(body("thermal")["Fans"])
    assert sorted(fetch.seen) == sorted(
        ["/redfish/v1/Systems/1", "/redfish/v1/Chassis/1/Power", "/redfish/v1/Chassis/1/Thermal"]
    )


def test_fallback_to_power_and_thermal_subsystems() -> None:
    base = "/redfish/v1/Chassis/1"
    folder = "new_model"
    pages = {
        "/redfish/v1/Systems/1": body("system"),
        base: body("chassis", folder),
        f"{base}/EnvironmentMetrics": body("environment_metrics", folder),
        f"{base}/PowerSubsystem": body("power_subsystem", folder),
        f"{base}/PowerSubsystem/PowerSupplies": body("power_supplies", folder),
        f"{base}/PowerSubsystem/PowerSupplies/1": body("power_supply_1", folder),
        f"{base}/PowerSubsystem/PowerSupplies/2": body("power_supply_2", folder),
        f"{base}/ThermalSubsystem": body("thermal_subsystem", folder),
        f"{base}/ThermalSubsystem/ThermalMetrics": body("thermal_metrics", folder),
        f"{base}/ThermalSubsystem/Fans": body("fans", folder),
        f"{base}/ThermalSubsystem/Fans/1": body("fan_1", folder),
        f"{base}/ThermalSubsystem/Fans/2": body("fan_2", folder),
    }
    metrics = asyncio.run(m.collect(fetcher(pages)))
    assert metrics["power"] == {
        "consumed_watts": 312.0,
        "health": "Warning",
        "power_supplies": 2,
        "source": "EnvironmentMetrics/PowerSubsystem",
    }
    assert metrics["thermal"]["avg_temp_celsius"] == 35.7 and metrics["thermal"]["max_temp_celsius"] == 45
    assert metrics["thermal"]["fans"]["avg_reading"] == 35.0
    assert metrics["health"] == "Warning"


def ok_result(name: str, watts: float | None = 250.4, device_id: int | None = 7) -> dict[str, Any]:
    return {
        "name": name,
        "device_id": device_id,
        "ok": True,
        "seconds": 0.2,
        "metrics": {
            "cpu": {"count": 2, "health": "OK"},
            "memory": {"total_gb": 384.0, "health": "OK"},
            "power": {"consumed_watts": watts, "health": "OK"},
            "thermal": {
                "avg_temp_celsius": 32.0,
                "max_temp_celsius": 45.0,
                "health": "OK",
                "fans": {"avg_reading": 30.0, "units": "Percent"},
            },
            "health": "OK",
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
    assert "bm_redfish_cycle_seconds 1.5" in text
    path = tmp_path / "bm.prom"
    m.write_textfile(str(path), text)
    assert path.read_text() == text and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


class FakeNetBox:
    def __init__(self, devices: list[dict[str, Any]]) -> None:
        self.devices = devices
        self.calls: list[tuple[str, str, Any]] = []

    def list(self, path: str, **params: Any) -> list[dict[str, Any]]:
        self.calls.append(("GET", path, params))
        return [d for d in self.devices if d["id"] in params["id"]]

    def patch(self, path: str, rows: Any) -> None:
        self.calls.append(("PATCH", path, rows))

    def post(self, path: str, rows: Any) -> None:
        self.calls.append(("POST", path, rows))


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
