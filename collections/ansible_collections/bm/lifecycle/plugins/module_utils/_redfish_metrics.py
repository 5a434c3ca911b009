# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redfish metrics of many BMCs, polled concurrently in one process: the logic behind ``bm.lifecycle.redfish_metrics``.

- :func:`collect` reads one BMC through an injected ``fetch(path)`` (the plan's three GETs, concurrently; falling back
  to ``PowerSubsystem``/``ThermalSubsystem``/``EnvironmentMetrics`` when ``Power``/``Thermal`` are absent) through
  the resource views of ``_redfish`` (ComputerSystem, Chassis, collection members) and returns the plan's metrics.
  Pure of I/O: unit tests give it recorded JSON.
- :func:`poll_fleet` runs :func:`collect` for every target with a ``_redfish.RedfishClient`` each (HTTP Basic auth:
  no session to leak), over one ``_redfish.HTTPPool`` (one aiohttp session, the TLS contexts): the collection's one
  Redfish transport, retry policy (bounded retries on 503/busy/connection errors, Retry-After) and TLS setup. Bounded
  concurrency (a semaphore and the pool's limit), a per-BMC deadline. One failing BMC is logged and counted; the
  others are unaffected.
- :func:`write_outputs`: the plan's JSON file per device per poll (retention bounded per device), a Prometheus
  textfile-collector file (written atomically), and the rows for NetBox's bulk PATCH.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._redfish import (
    CHASSIS,
    SYSTEMS,
    Chassis,
    ComputerSystem,
    HTTPPool,
    RedfishAuthError,
    RedfishClient,
    RedfishError,
    RedfishUnavailableError,
    link,
    members,
)

HEALTH_RANK = {"OK": 0, "Warning": 1, "Critical": 2}
HEALTH_NAMES = {v: k for k, v in HEALTH_RANK.items()}
INLET_WORDS = ("inlet", "ambient")

Fetch = Callable[[str], Awaitable[Any]]


class PollError(Exception):
    """One BMC could not be polled; the message says which request failed and how (no secrets)."""


# --- extraction (pure) -------------------------------------------------------------------------------------------


def _status_health(item: Mapping[str, Any] | None, rollup: bool = True) -> str | None:
    status = (item or {}).get("Status") or {}
    if status.get("State") in ("Absent", "Disabled"):
        return None
    value = status.get("HealthRollup") if rollup else None
    return value or status.get("Health")


def worst(values: Iterable[str | None]) -> str | None:
    """The worst Redfish health of ``values`` (None ignored; None if none)."""
    ranks = [HEALTH_RANK.get(v, 1) for v in values if v]
    return HEALTH_NAMES[max(ranks)] if ranks else None


def _present(items: Iterable[Any]) -> list[Mapping[str, Any]]:
    return [i for i in items if isinstance(i, Mapping) and ((i.get("Status") or {}).get("State") not in ("Absent",))]


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def same_path(a: str | None, b: str | None) -> bool:
    """Two Redfish paths name the same resource (a real iLO writes a trailing ``/``, others do not)."""
    return a is not None and b is not None and a.rstrip("/") == b.rstrip("/")


def system_metrics(system: ComputerSystem) -> dict[str, Any]:
    """CPU count and health, memory total and health, from the system (first member of ``Systems``)."""
    cpu = system.processor_summary
    memory = system.memory_summary
    return {
        "cpu": {"count": cpu.get("Count"), "health": _status_health(cpu)},
        "memory": {"total_gb": _num(memory.get("TotalSystemMemoryGiB")), "health": _status_health(memory)},
    }


def unknown_power() -> dict[str, Any]:
    """Neither ``Power`` nor ``PowerSubsystem``/``EnvironmentMetrics``: unknown, not zero."""
    return {
        "consumed_watts": None,
        "health": None,
        "power_supplies": None,
        "failed_power_supplies": None,
        "source": None,
    }


def _supplies(supplies: list[Mapping[str, Any]] | None) -> dict[str, Any]:
    if supplies is None:
        return {"health": None, "power_supplies": None, "failed_power_supplies": None}
    present = _present(supplies)
    healths = [_status_health(s, rollup=False) for s in present]
    return {
        "health": worst(healths),
        "power_supplies": len(present),
        "failed_power_supplies": sum(1 for h in healths if h and h != "OK"),
    }


def power_metrics(power: Mapping[str, Any]) -> dict[str, Any]:
    """Consumed watts (``PowerControl[0].PowerConsumedWatts``) and PSU health, from the deprecated ``Power``."""
    control = power.get("PowerControl") or [{}]
    supplies = power.get("PowerSupplies")
    return {
        "consumed_watts": _num((control[0] or {}).get("PowerConsumedWatts")),
        **_supplies(list(supplies) if isinstance(supplies, list) else None),
        "source": "Power",
    }


def _fan_summary(readings: list[tuple[float | None, str | None, str | None]] | None) -> dict[str, Any]:
    if readings is None:
        return {"count": None, "failed": None, "avg_reading": None, "max_reading": None, "units": None, "health": None}
    values = [r for r, _u, _h in readings if r is not None]
    units = next((u for _r, u, _h in readings if u), None)
    return {
        "count": len(readings),
        "failed": sum(1 for _r, _u, h in readings if h and h != "OK"),
        "avg_reading": round(sum(values) / len(values), 1) if values else None,
        "max_reading": max(values) if values else None,
        "units": units,
        "health": worst(h for _r, _u, h in readings),
    }


def _is_inlet_name(name: Any) -> bool:
    return isinstance(name, str) and any(word in name.lower() for word in INLET_WORDS)


def inlet_reading(sensors: Iterable[Mapping[str, Any]], value_key: str, name_keys: Sequence[str]) -> float | None:
    """The inlet temperature: the sensor whose ``PhysicalContext`` is ``Intake``, else the one named inlet/ambient."""
    sensors = [s for s in sensors if _num(s.get(value_key)) is not None]
    for sensor in sensors:
        if sensor.get("PhysicalContext") == "Intake":
            return _num(sensor.get(value_key))
    for sensor in sensors:
        if any(_is_inlet_name(sensor.get(key)) for key in name_keys):
            return _num(sensor.get(value_key))
    return None


def _temps(values: list[float], health: str | None, inlet: float | None) -> dict[str, Any]:
    return {
        "inlet_temp_celsius": inlet,
        "avg_temp_celsius": round(sum(values) / len(values), 1) if values else None,
        "max_temp_celsius": max(values) if values else None,
        "sensors": len(values),
        "temperature_health": health,
    }


def unknown_thermal() -> dict[str, Any]:
    """Neither ``Thermal`` nor ``ThermalSubsystem``: unknown, not zero."""
    result = _temps([], None, None)
    result.update(sensors=None, fans=_fan_summary(None), health=None, source=None)
    return result


def thermal_metrics(thermal: Mapping[str, Any]) -> dict[str, Any]:
    """Inlet, average and maximum temperature and the fans, from the deprecated ``Thermal``; a failed fan makes the
    thermal health (and so the overall health) Warning or Critical."""
    temps = _present(thermal.get("Temperatures") or [])
    readings = [v for v in (_num(t.get("ReadingCelsius")) for t in temps) if v is not None]
    raw_fans = thermal.get("Fans")
    fans = _present(raw_fans) if isinstance(raw_fans, list) else None
    result = _temps(
        readings,
        worst(_status_health(t, rollup=False) for t in temps),
        inlet_reading(temps, "ReadingCelsius", ("Name",)),
    )
    result["fans"] = _fan_summary(
        None
        if fans is None
        else [(_num(f.get("Reading")), f.get("ReadingUnits"), _status_health(f, rollup=False)) for f in fans]
    )
    result["health"] = worst([result["temperature_health"], result["fans"]["health"]])
    result["source"] = "Thermal"
    return result


async def _optional(fetch: Fetch, path: str | None) -> Any:
    """The resource at ``path``; None when there is no link or the BMC has no such resource (HTTP 404)."""
    if not path:
        return None
    try:
        return await fetch(path)
    except RedfishError as error:
        if error.status == 404:
            return None
        raise


async def _members(fetch: Fetch, path: str | None) -> list[Mapping[str, Any]] | None:
    """The members of a linked collection; None when the collection is not linked or not there (unknown)."""
    collection = await _optional(fetch, path)
    if not isinstance(collection, Mapping):
        return None
    bodies = await asyncio.gather(*(_optional(fetch, p) for p in members(collection)))
    return [b for b in bodies if isinstance(b, Mapping)]


async def _new_power(fetch: Fetch, chassis: Chassis) -> dict[str, Any] | None:
    """Power from EnvironmentMetrics + PowerSubsystem (iLO 6, other vendors); None if neither answers."""
    env, sub = await asyncio.gather(
        _optional(fetch, chassis.environment_metrics_path), _optional(fetch, chassis.power_subsystem_path)
    )
    if env is None and sub is None:
        return None
    supplies = await _members(fetch, link(sub, "PowerSupplies"))
    return {
        "consumed_watts": _num(((env or {}).get("PowerWatts") or {}).get("Reading")),
        **_supplies(supplies),
        "source": "EnvironmentMetrics/PowerSubsystem" if sub is not None else "EnvironmentMetrics",
    }


async def _new_thermal(fetch: Fetch, chassis: Chassis) -> dict[str, Any] | None:
    """Temperatures and fans from ThermalSubsystem (ThermalMetrics, Fans); None if it does not answer."""
    sub = await _optional(fetch, chassis.thermal_subsystem_path)
    if not isinstance(sub, Mapping):
        return None
    metrics, fans = await asyncio.gather(
        _optional(fetch, link(sub, "ThermalMetrics")), _members(fetch, link(sub, "Fans"))
    )
    metrics = metrics or {}
    sensors = [r for r in metrics.get("TemperatureReadingsCelsius") or [] if isinstance(r, Mapping)]
    readings = [v for v in (_num(r.get("Reading")) for r in sensors) if v is not None]
    ambient = _num(((metrics.get("TemperatureSummaryCelsius") or {}).get("Ambient") or {}).get("Reading"))
    inlet = ambient if ambient is not None else inlet_reading(sensors, "Reading", ("DeviceName", "DataSourceUri"))
    present = _present(fans) if fans is not None else None
    fan_summary = _fan_summary(
        None
        if present is None
        else [
            (_num((f.get("SpeedPercent") or {}).get("Reading")), "Percent", _status_health(f, rollup=False))
            for f in present
        ]
    )
    result = _temps(readings, _status_health(sub, rollup=False), inlet)
    result["fans"] = fan_summary
    result["health"] = worst([_status_health(sub), fan_summary["health"]])
    result["source"] = "ThermalSubsystem"
    return result


def _pick(paths: list[str], wanted: Iterable[str]) -> str | None:
    for path in wanted:
        for candidate in paths:
            if same_path(candidate, path):
                return candidate
    return paths[0] if paths else None


async def collect(fetch: Fetch) -> dict[str, Any]:
    """The metrics of one BMC. Follows the service's collections: the first member of ``Systems``, and the chassis
    that system links (else the first member of ``Chassis``). The DMTF model (``PowerSubsystem``,
    ``ThermalSubsystem``, ``EnvironmentMetrics``) is read when the chassis links it, the deprecated ``Power`` and
    ``Thermal`` otherwise; what neither gives stays unknown (None)."""
    systems, chassis_collection = await asyncio.gather(fetch(SYSTEMS), fetch(CHASSIS))
    system_paths, chassis_paths = members(systems), members(chassis_collection)
    if not system_paths:
        raise PollError(f"GET {SYSTEMS}: no member in the Systems collection")
    first_chassis = chassis_paths[0] if chassis_paths else None
    system_body, chassis_body = await asyncio.gather(fetch(system_paths[0]), _optional(fetch, first_chassis))
    system = ComputerSystem(system_body)
    wanted = _pick(chassis_paths, system.chassis_paths)
    if wanted is not None and not same_path(wanted, first_chassis):
        chassis_body = await _optional(fetch, wanted)
    chassis = Chassis(chassis_body if isinstance(chassis_body, Mapping) else {})
    metrics = system_metrics(system)
    new_power, new_thermal = await asyncio.gather(_new_power(fetch, chassis), _new_thermal(fetch, chassis))
    # The deprecated resources as fallback; also for the watts alone where EnvironmentMetrics has no PowerWatts
    # (iLO 6 firmware before 1.68).
    want_power = new_power is None or new_power["consumed_watts"] is None
    old_power, old_thermal = await asyncio.gather(
        _optional(fetch, chassis.power_path if want_power else None),
        _optional(fetch, chassis.thermal_path if new_thermal is None else None),
    )
    old = power_metrics(old_power) if isinstance(old_power, Mapping) else None
    if new_power is None:
        metrics["power"] = old or unknown_power()
    else:
        if new_power["consumed_watts"] is None and old is not None and old["consumed_watts"] is not None:
            new_power.update(consumed_watts=old["consumed_watts"], source=f"{new_power['source']}+Power")
        metrics["power"] = new_power
    if new_thermal is not None:
        metrics["thermal"] = new_thermal
    else:
        metrics["thermal"] = thermal_metrics(old_thermal) if isinstance(old_thermal, Mapping) else unknown_thermal()
    metrics["health"] = worst(
        [
            metrics["cpu"]["health"],
            metrics["memory"]["health"],
            metrics["power"]["health"],
            metrics["thermal"]["health"],
        ]
    )
    return metrics


# --- polling (aiohttp) --------------------------------------------------------------------------------------------


def poll_error(error: RedfishError) -> str:
    """What failed, for the journal and the log: the request and how (no secrets)."""
    where = f"{error.method} {error.path}: " if error.path else ""
    if isinstance(error, RedfishAuthError):
        return f"{where}HTTP 401: wrong credentials"
    if isinstance(error, RedfishUnavailableError):
        return f"{where}{error.last}"
    return str(error)


def _quiet(_message: str) -> None:
    """validate_certs=false is warned about once per cycle by the module, not once per BMC."""


async def _poll_one(
    pool: HTTPPool,
    target: Mapping[str, Any],
    *,
    semaphore: asyncio.Semaphore,
    deadline: float,
    retries: int,
    backoff: float,
) -> dict[str, Any]:
    client = RedfishClient(
        target["address"],
        target["username"],
        target["password"],
        port=target.get("port") or 443,
        ca_path=target.get("ca_path"),
        validate_certs=bool(target.get("validate_certs", True)),
        timeout=deadline,
        retries=retries,
        backoff=backoff,
        warn=_quiet,
        pool=pool,
    )
    started = time.monotonic()
    result: dict[str, Any] = {"name": target["name"], "device_id": target.get("device_id"), "ok": False}
    async with semaphore:
        started = time.monotonic()
        try:
            async with asyncio.timeout(deadline):
                learned = await client.identify_async(target.get("bmc_identity"))
                if learned:
                    result["bmc_identity_learned"] = learned
                result["metrics"] = await collect(client.get_async)
                result["ok"] = True
        except TimeoutError:
            result["error"] = f"no complete answer within {deadline:g} s"
        except RedfishError as error:
            result["error"] = poll_error(error)
        except PollError as error:
            result["error"] = str(error)
        except (ValueError, KeyError, TypeError) as error:
            result["error"] = f"unexpected answer: {type(error).__name__}: {error}"
    result["seconds"] = round(time.monotonic() - started, 3)
    result.update(requests=client.requests, retries=client.retried)
    return result


async def poll_fleet(
    targets: Sequence[Mapping[str, Any]],
    *,
    concurrency: int = 100,
    deadline: float = 20.0,
    retries: int = 2,
    backoff: float = 0.5,
) -> list[dict[str, Any]]:
    """Poll every target (``name, address, port, username, password, ca_path, validate_certs, device_id``)."""
    semaphore = asyncio.Semaphore(max(1, concurrency))
    pool = HTTPPool(concurrency)
    try:
        return list(
            await asyncio.gather(
                *(
                    _poll_one(pool, t, semaphore=semaphore, deadline=deadline, retries=retries, backoff=backoff)
                    for t in targets
                )
            )
        )
    finally:
        await pool.aclose()


def run_poll(targets: Sequence[Mapping[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`poll_fleet` from synchronous code."""
    return asyncio.run(poll_fleet(targets, **kwargs))


# --- outputs ------------------------------------------------------------------------------------------------------


def utc_now() -> datetime.datetime:
    """Now, in UTC."""
    return datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 - module_utils may run on older Pythons


def iso(moment: datetime.datetime) -> str:
    """``2026-02-11T10:10:00Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def safe_name(name: str) -> str:
    """A device name usable in a file name."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "device"


def metrics_document(result: Mapping[str, Any], moment: datetime.datetime) -> dict[str, Any]:
    """The plan's JSON document of one poll."""
    metrics = result["metrics"]
    return {
        "device_id": result.get("device_id") if result.get("device_id") is not None else result["name"],
        "device_name": result["name"],
        "timestamp": iso(moment),
        "metrics": {
            "cpu": metrics["cpu"],
            "memory": metrics["memory"],
            "power": metrics["power"],
            "thermal": metrics["thermal"],
        },
    }


def write_json_files(
    directory: str, results: Sequence[Mapping[str, Any]], moment: datetime.datetime, retention: int
) -> list[str]:
    """One file per successfully polled device (``<name>-<YYYYmmddTHHMMSSZ>.json``); keep the newest ``retention``."""
    os.makedirs(directory, exist_ok=True)
    stamp = moment.strftime("%Y%m%dT%H%M%SZ")
    written = []
    for result in results:
        if not result.get("ok"):
            continue
        path = os.path.join(directory, f"{safe_name(result['name'])}-{stamp}.json")
        _atomic_write(path, json.dumps(metrics_document(result, moment), indent=1) + "\n")
        written.append(path)
    prune(directory, retention)
    return written


def prune(directory: str, retention: int) -> int:
    """Delete all but the newest ``retention`` files of each device (one directory scan); returns how many."""
    per_device: dict[str, list[str]] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            if not name.endswith(".json") or "-" not in name:
                continue
            device, _sep, stamp = name[:-5].rpartition("-")
            if len(stamp) == 16 and stamp.endswith("Z"):
                per_device.setdefault(device, []).append(name)
    removed = 0
    for names in per_device.values():
        names.sort()
        for name in names[: max(0, len(names) - max(1, retention))]:
            try:
                os.unlink(os.path.join(directory, name))
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def _atomic_write(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


PROM_HELP = {
    "bm_redfish_up": ("gauge", "1 if the BMC answered the last poll, else 0"),
    "bm_redfish_poll_duration_seconds": ("gauge", "Seconds the last poll of the BMC took"),
    "bm_health": (
        "gauge",
        "Redfish health per component (overall, cpu, memory, power_supplies, temperatures, fans): "
        "0 OK, 1 Warning, 2 Critical; absent when unknown",
    ),
    "bm_cpu_count": ("gauge", "Processors (ProcessorSummary.Count)"),
    "bm_memory_bytes": ("gauge", "Installed memory (MemorySummary.TotalSystemMemoryGiB), in bytes"),
    "bm_power_consumed_watts": (
        "gauge",
        "Power drawn (EnvironmentMetrics.PowerWatts, else Power PowerControl[0].PowerConsumedWatts)",
    ),
    "bm_power_supplies": ("gauge", "Power supplies present; absent when the BMC does not say"),
    "bm_power_supplies_failed": ("gauge", "Power supplies present whose health is not OK"),
    "bm_temperature_inlet_celsius": (
        "gauge",
        "Inlet (ambient) temperature: ThermalMetrics TemperatureSummaryCelsius.Ambient, else the Intake sensor, "
        "else the sensor named inlet/ambient",
    ),
    "bm_temperature_avg_celsius": ("gauge", "Average of the temperature sensors"),
    "bm_temperature_max_celsius": ("gauge", "Maximum of the temperature sensors"),
    "bm_fans": ("gauge", "Fans present; absent when the BMC does not say"),
    "bm_fans_failed": ("gauge", "Fans present whose health is not OK"),
    "bm_fan_speed_avg_percent": ("gauge", "Average fan speed, in percent of full speed"),
    "bm_fan_speed_avg_rpm": ("gauge", "Average fan speed, in RPM (BMCs that report RPM)"),
    "bm_redfish_poll_devices": ("gauge", "Devices in the last monitoring cycle, by result"),
    "bm_redfish_cycle_duration_seconds": ("gauge", "Wall time of the last monitoring cycle"),
    "bm_redfish_last_cycle_timestamp_seconds": ("gauge", "Unix time of the last monitoring cycle"),
}
GIB = 1024**3


def prometheus_text(results: Sequence[Mapping[str, Any]], cycle_seconds: float, moment: datetime.datetime) -> str:
    """The textfile-collector exposition of one cycle; an unknown value is an absent series, never 0."""
    samples: dict[str, list[str]] = {name: [] for name in PROM_HELP}

    def add(metric: str, labels: dict[str, Any], value: Any) -> None:
        if value is None:
            return
        text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        number = value if isinstance(value, int) and not isinstance(value, bool) else float(value)
        samples[metric].append(f"{metric}{{{text}}} {number!r}")

    for result in results:
        device = {"device": result["name"]}
        add("bm_redfish_up", device, 1 if result.get("ok") else 0)
        add("bm_redfish_poll_duration_seconds", device, result.get("seconds"))
        metrics = result.get("metrics")
        if not metrics:
            continue
        power, thermal = metrics["power"], metrics["thermal"]
        fans = thermal.get("fans") or {}
        memory_gib = metrics["memory"]["total_gb"]
        add("bm_cpu_count", device, metrics["cpu"]["count"])
        add("bm_memory_bytes", device, None if memory_gib is None else int(memory_gib * GIB))
        add("bm_power_consumed_watts", device, power["consumed_watts"])
        add("bm_power_supplies", device, power.get("power_supplies"))
        add("bm_power_supplies_failed", device, power.get("failed_power_supplies"))
        add("bm_temperature_inlet_celsius", device, thermal.get("inlet_temp_celsius"))
        add("bm_temperature_avg_celsius", device, thermal["avg_temp_celsius"])
        add("bm_temperature_max_celsius", device, thermal["max_temp_celsius"])
        add("bm_fans", device, fans.get("count"))
        add("bm_fans_failed", device, fans.get("failed"))
        unit = {"Percent": "bm_fan_speed_avg_percent", "RPM": "bm_fan_speed_avg_rpm"}.get(fans.get("units") or "")
        if unit:
            add(unit, device, fans.get("avg_reading"))
        components = {
            "overall": metrics.get("health"),
            "cpu": metrics["cpu"].get("health"),
            "memory": metrics["memory"].get("health"),
            "power_supplies": power.get("health"),
            "temperatures": thermal.get("temperature_health"),
            "fans": fans.get("health"),
        }
        for component, health in components.items():
            if health:
                add("bm_health", {**device, "component": component}, HEALTH_RANK.get(health, 1))
    ok = sum(1 for r in results if r.get("ok"))
    add("bm_redfish_poll_devices", {"result": "ok"}, ok)
    add("bm_redfish_poll_devices", {"result": "failed"}, len(results) - ok)
    add("bm_redfish_cycle_duration_seconds", {}, round(cycle_seconds, 3))
    add("bm_redfish_last_cycle_timestamp_seconds", {}, int(moment.timestamp()))
    lines: list[str] = []
    for metric, (kind, text) in PROM_HELP.items():
        if samples[metric]:
            lines += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}", *samples[metric]]
    return "\n".join(lines).replace("{}", "") + "\n"


def write_textfile(path: str, text: str) -> None:
    """Atomic write (the node exporter never reads half a file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _atomic_write(path, text)


def _health_detail(metrics: Mapping[str, Any]) -> str:
    parts = []
    for label, health in (
        ("CPU", metrics["cpu"].get("health")),
        ("memory", metrics["memory"].get("health")),
        ("power supplies", metrics["power"].get("health")),
        ("temperatures", metrics["thermal"].get("temperature_health")),
        ("fans", (metrics["thermal"].get("fans") or {}).get("health")),
    ):
        if health and health != "OK":
            parts.append(f"{label} {health}")
    return ", ".join(parts)


def standing_changes(
    previous: Mapping[str, Mapping[str, Any]], results: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The standing of each polled device (``{"up", "health"}``, by name) and what changed since ``previous``: the BMC
    stopped answering or answers again, the overall health changed. A device seen for the first time is recorded, not
    reported (its first poll is the ``start_monitoring`` transition). Readings never make a change."""
    standing = {name: dict(value) for name, value in previous.items()}
    changes: list[dict[str, Any]] = []
    for result in results:
        name, device_id = result["name"], result.get("device_id")
        before = previous.get(name)
        up = bool(result.get("ok"))
        health = result["metrics"].get("health") if up else (before or {}).get("health")
        standing[name] = {"up": up, "health": health}
        if before is None or device_id is None:
            continue
        if before.get("up") and not up:
            text, kind = f"BMC stopped answering the metrics poll: {result.get('error') or 'no answer'}", "danger"
        elif up and not before.get("up"):
            text, kind = f"BMC answers the metrics poll again (health {health or 'unknown'})", "success"
        elif up and health != before.get("health"):
            worse = HEALTH_RANK.get(health or "", -1) > HEALTH_RANK.get(before.get("health") or "", -1)
            detail = _health_detail(result["metrics"])
            text = f"Redfish health {before.get('health') or 'unknown'} -> {health or 'unknown'}"
            text += f" ({detail})" if detail else ""
            kind = ("danger" if health == "Critical" else "warning") if worse else "success"
        else:
            continue
        changes.append({"device_id": int(device_id), "name": name, "kind": kind, "comments": text})
    return standing, changes


def standing_key(tenant: str) -> str:
    """The Redis hash of the last standing per device name (``{"up", "health"}`` as JSON)."""
    return f"bm:monitoring:standing:{tenant}"


def read_standing(redis: Any, tenant: str) -> dict[str, dict[str, Any]]:
    """The standing recorded by the last cycles (unreadable entries ignored)."""
    from ansible_collections.bm.lifecycle.plugins.module_utils._redis import pairs, text  # noqa: PLC0415

    standing: dict[str, dict[str, Any]] = {}
    for name, value in pairs(redis.call("HGETALL", standing_key(tenant))).items():
        try:
            data = json.loads(text(value))
        except ValueError:
            continue
        if isinstance(data, dict):
            standing[name] = data
    return standing


def write_standing(redis: Any, tenant: str, standing: Mapping[str, Mapping[str, Any]], names: Iterable[str]) -> None:
    """Record the standing of the devices polled this cycle (``names``) for the next one."""
    flat = [item for name in sorted(set(names)) for item in (name, json.dumps(standing[name], sort_keys=True))]
    if flat:
        redis.call("HSET", standing_key(tenant), *flat)


def journal_changes(client: Any, changes: Sequence[Mapping[str, Any]]) -> int:
    """One bulk POST of a journal entry per change of standing (nothing when nothing changed); returns how many."""
    if not changes:
        return 0
    client.post(
        "/api/extras/journal-entries/",
        [
            {
                "assigned_object_type": "dcim.device",
                "assigned_object_id": change["device_id"],
                "kind": change["kind"],
                "comments": change["comments"],
            }
            for change in changes
        ],
    )
    return len(changes)


def sync_netbox(
    client: Any,
    redis: Any,
    results: Sequence[Mapping[str, Any]],
    targets: Mapping[str, Mapping[str, Any]],
    *,
    tenant: str,
    actor: str = "bm.lifecycle.redfish_metrics",
) -> dict[str, Any]:
    """A hardened ``staged`` device's first successful poll moves it to ``monitored``: the state machine's
    ``start_monitoring`` (compare-and-set under the device locks, one bulk PATCH with ``last_power_watts``, journal
    entries). A BMC identity learned on first contact is recorded (in that PATCH, or in one bulk PATCH for the devices
    already monitored). Nothing else goes to NetBox: readings belong in the JSON files and Prometheus, not in the
    change log."""
    from ansible_collections.bm.lifecycle.plugins.module_utils import _transition  # noqa: PLC0415
    from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle import TRANSITIONS  # noqa: PLC0415
    from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import (  # noqa: PLC0415
        bmc_identity_fields,
        bulk_write,
    )

    requests, identities = [], []
    for result in results:
        if not result.get("ok") or result.get("device_id") is None:
            continue
        identity = bmc_identity_fields(result.get("bmc_identity_learned") or {})
        if (targets.get(result["name"]) or {}).get("state") != "staged":
            if identity:
                identities.append({"id": int(result["device_id"]), "custom_fields": identity})
            continue
        watts = result["metrics"]["power"]["consumed_watts"]
        fields = identity | ({} if watts is None else {"last_power_watts": round(watts)})
        requests.append(
            _transition.Request(
                device=int(result["device_id"]),
                reason="first successful Redfish metrics poll",
                custom_fields=fields or None,
            )
        )
    recorded = bulk_write(client, "PATCH", "/api/dcim/devices/", identities) if identities else []
    moved = (
        _transition.apply(client, redis, TRANSITIONS["start_monitoring"], requests, actor=actor, tenant=tenant)
        if requests
        else []
    )
    return {
        "updated": sum(1 for m in moved if m["changed"]) + sum(1 for r in recorded if isinstance(r, dict)),
        "monitored": sorted(str(m["device"]["name"]) for m in moved if m["transitioned"]),
    }
