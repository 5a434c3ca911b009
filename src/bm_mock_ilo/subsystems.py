"""iLO 6's DMTF power and thermal model: PowerSubsystem, ThermalSubsystem (fans, metrics) and EnvironmentMetrics.

They carry the same readings as the deprecated ``Chassis/1/Power`` and ``Thermal`` of the same BMC (one source of
truth in :mod:`.resources`), so a client may read either model and get the same numbers. iLO 6 firmware gates, from
HPE's resource definitions: ThermalSubsystem, its Fans and ThermalMetrics from 1.64, EnvironmentMetrics' EnergyJoules
from 1.61 and its PowerWatts from 1.68. A failed fan or power supply (``/_mock/faults``) reads 0 with Health Critical.
"""

from __future__ import annotations

import re
import time

from .bmc import Bmc
from .messages import BASE, RedfishError
from .resources import (
    FAILED,
    FANS,
    OK,
    SENSORS,
    V1,
    Ctx,
    Json,
    Resource,
    _watts,
    collection,
    fan_failed,
    fan_percent,
    link,
    psu_failed,
    psu_output,
    resource,
    rollup,
    temperature,
)

CHASSIS = f"{V1}/Chassis/1"
BAYS = (1, 2)


def _require(ctx: Ctx, path: str, ilo6: tuple[int, int] = (1, 64)) -> None:
    if not ctx.bmc.at_least((99, 0), ilo6):
        raise RedfishError(404, f"{BASE}.ResourceMissingAtURI", path)


def _member(ctx: Ctx, path: str, count: int) -> int:
    number = int(ctx.params[0])
    if not 1 <= number <= count:
        raise RedfishError(404, f"{BASE}.ResourceMissingAtURI", f"{path}/{number}")
    return number


def _part_location(label: str, kind: str, ordinal: int) -> Json:
    return {"PartLocation": {"ServiceLabel": label, "LocationType": kind, "LocationOrdinalValue": ordinal}}


# --- power ----------------------------------------------------------------------------------------------------------


def power_subsystem(ctx: Ctx) -> Json:
    """GET Chassis/1/PowerSubsystem."""
    path = f"{CHASSIS}/PowerSubsystem"
    _require(ctx, path)
    bmc = ctx.bmc
    return resource(
        path,
        bmc.profile.odata_type("PowerSubsystem"),
        "PowerSubsystem",
        "Power Subsystem",
        CapacityWatts=800 * len(BAYS),
        PowerSupplies=link(f"{path}/PowerSupplies"),
        Status={"State": "Enabled", "Health": rollup(bmc)},
    )


def power_supplies(ctx: Ctx) -> Json:
    """GET PowerSubsystem/PowerSupplies."""
    path = f"{CHASSIS}/PowerSubsystem/PowerSupplies"
    _require(ctx, path)
    return collection(path, "PowerSupplyCollection", "Power Supplies", [f"{path}/{bay}" for bay in BAYS])


def power_supply(ctx: Ctx) -> Json:
    """GET one power supply (the deprecated model's PowerSupplies[bay - 1])."""
    base = f"{CHASSIS}/PowerSubsystem/PowerSupplies"
    _require(ctx, base)
    bmc = ctx.bmc
    bay = _member(ctx, base, len(BAYS))
    return resource(
        f"{base}/{bay}",
        bmc.profile.odata_type("PowerSupply"),
        str(bay),
        f"Power Supply {bay}",
        Manufacturer="HPE",
        Model="865414-B21",
        SerialNumber=f"5WBXT0{bmc.identity.serial[-4:]}{bay}",
        SparePartNumber="866730-001",
        FirmwareVersion="1.00",
        PowerSupplyType="AC",
        PowerCapacityWatts=800,
        HotPluggable=True,
        Location=_part_location(f"Power Supply {bay}", "Bay", bay),
        Metrics=link(f"{base}/{bay}/Metrics"),
        Status=FAILED if psu_failed(bmc, bay) else OK,
    )


def power_supply_metrics(ctx: Ctx) -> Json:
    """GET PowerSupplies/{bay}/Metrics: input voltage and output watts."""
    base = f"{CHASSIS}/PowerSubsystem/PowerSupplies"
    _require(ctx, base)
    bmc = ctx.bmc
    bay = _member(ctx, base, len(BAYS))
    failed = psu_failed(bmc, bay)
    return resource(
        f"{base}/{bay}/Metrics",
        "PowerSupplyMetrics.v1_0_1.PowerSupplyMetrics",
        "Metrics",
        f"Power Supply {bay} Metrics",
        InputVoltage={"Reading": 0 if failed else 230 + bay},
        OutputPowerWatts={"Reading": psu_output(bmc, bay)},
        Status=FAILED if failed else OK,
    )


# --- thermal --------------------------------------------------------------------------------------------------------


def thermal_subsystem(ctx: Ctx) -> Json:
    """GET Chassis/1/ThermalSubsystem."""
    path = f"{CHASSIS}/ThermalSubsystem"
    _require(ctx, path)
    bmc = ctx.bmc
    return resource(
        path,
        bmc.profile.odata_type("ThermalSubsystem"),
        "ThermalSubsystem",
        "Thermal Subsystem",
        Fans=link(f"{path}/Fans"),
        ThermalMetrics=link(f"{path}/ThermalMetrics"),
        Status={"State": "Enabled", "Health": "Warning" if bmc.faults.failed_fans else "OK"},
    )


def fans(ctx: Ctx) -> Json:
    """GET ThermalSubsystem/Fans."""
    path = f"{CHASSIS}/ThermalSubsystem/Fans"
    _require(ctx, path)
    return collection(path, "FanCollection", "Fans", [f"{path}/{n}" for n in range(1, FANS + 1)])


def fan(ctx: Ctx) -> Json:
    """GET one fan (the deprecated model's Fans[n - 1]): speed in percent, Status.Health."""
    base = f"{CHASSIS}/ThermalSubsystem/Fans"
    _require(ctx, base)
    bmc = ctx.bmc
    number = _member(ctx, base, FANS)
    return resource(
        f"{base}/{number}",
        bmc.profile.odata_type("Fan"),
        str(number),
        f"Fan {number}",
        HotPluggable=True,
        PhysicalContext="SystemBoard",
        Location=_part_location(f"Fan {number}", "Bay", number),
        SpeedPercent={"Reading": fan_percent(bmc, number - 1)},
        Status=FAILED if fan_failed(bmc, number) else OK,
    )


def thermal_metrics(ctx: Ctx) -> Json:
    """GET ThermalSubsystem/ThermalMetrics: every temperature sensor, and the ambient (inlet) summary."""
    path = f"{CHASSIS}/ThermalSubsystem/ThermalMetrics"
    _require(ctx, path)
    bmc = ctx.bmc
    readings = [
        {"DeviceName": name, "PhysicalContext": context, "Reading": temperature(bmc, n)}
        for n, (name, context, *_) in enumerate(SENSORS)
    ]
    return resource(
        path,
        bmc.profile.odata_type("ThermalMetrics"),
        "ThermalMetrics",
        "Thermal Metrics",
        TemperatureSummaryCelsius={"Ambient": {"Reading": temperature(bmc, 0)}},
        TemperatureReadingsCelsius=readings,
        **{"TemperatureReadingsCelsius@odata.count": len(readings)},
    )


# --- environment ----------------------------------------------------------------------------------------------------


def environment_metrics(ctx: Ctx) -> Json:
    """GET Chassis/1/EnvironmentMetrics: energy since the BMC started (1.61+) and power now (1.68+)."""
    path = f"{CHASSIS}/EnvironmentMetrics"
    _require(ctx, path, (1, 61))
    bmc: Bmc = ctx.bmc
    watts = _watts(bmc)
    body = resource(path, bmc.profile.odata_type("EnvironmentMetrics"), "EnvironmentMetrics", "Environment Metrics")
    body["EnergyJoules"] = {"Reading": round(watts * (time.time() - bmc.started))}
    if bmc.at_least((99, 0), (1, 68)):
        body["PowerWatts"] = {"Reading": watts}
    return body


def _r(pattern: str, **methods: object) -> Resource:
    return Resource(re.compile(pattern.lower()), **methods)  # type: ignore[arg-type]


_BASE = f"{V1}/chassis/1"
RESOURCES = (
    _r(f"{_BASE}/powersubsystem", get=power_subsystem),
    _r(f"{_BASE}/powersubsystem/powersupplies", get=power_supplies),
    _r(f"{_BASE}/powersubsystem/powersupplies/(\\d+)", get=power_supply),
    _r(f"{_BASE}/powersubsystem/powersupplies/(\\d+)/metrics", get=power_supply_metrics),
    _r(f"{_BASE}/thermalsubsystem", get=thermal_subsystem),
    _r(f"{_BASE}/thermalsubsystem/fans", get=fans),
    _r(f"{_BASE}/thermalsubsystem/fans/(\\d+)", get=fan),
    _r(f"{_BASE}/thermalsubsystem/thermalmetrics", get=thermal_metrics),
    _r(f"{_BASE}/environmentmetrics", get=environment_metrics),
)
"""The DMTF subsystems' URIs (lower case, no trailing slash); each answers 404 where the firmware lacks it."""
