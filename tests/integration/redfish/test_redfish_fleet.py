"""Monitoring at fleet scale: one bounded cycle over 1,000 mock iLOs (iLO 5 and iLO 6 cycled) in one process; failing
BMCs stay isolated, a failed fan or PSU reaches the health, each generation is read through its own model."""

from __future__ import annotations

import time

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils._redfish_metrics import run_poll
from helpers import poll_targets
from integration.redfish.conftest import ca_path, testing

pytestmark = pytest.mark.slow

COUNT = 1000
BOUND_SECONDS = 180


def test_one_cycle_over_1000_bmcs_with_failures_isolated() -> None:
    with testing.start_fleet(COUNT, in_process=False, timeout=120, extra_args=["--model", "ilo5,ilo6"]) as fleet:
        fleet.set_faults(3, unavailable_count=1000)  # answers 503 whatever we do
        fleet.set_faults(5, latency_ms=90000)  # slower than the per-BMC deadline
        fleet.set_faults(7, unavailable_count=1)  # one 503, then fine: retried
        fleet.set_faults(10, failed_psus=[2])  # an iLO 5
        fleet.set_faults(11, failed_fans=[3])  # an iLO 6
        targets = poll_targets(fleet, ca_path())
        targets[9]["password"] = "wrong"
        started = time.monotonic()
        results = run_poll(targets, concurrency=50, deadline=45, retries=2, backoff=0.2)
        wall = time.monotonic() - started
        failed = {r["name"]: r["error"] for r in results if not r["ok"]}
        assert len(results) == COUNT
        assert set(failed) == {fleet[3].name, fleet[5].name, fleet[9].name}, failed
        assert failed[fleet[3].name].startswith("GET /redfish/v1/") and "HTTP 503" in failed[fleet[3].name]
        assert "within" in failed[fleet[5].name]
        assert "HTTP 401" in failed[fleet[9].name] and "wrong credentials" in failed[fleet[9].name]
        by_name = {r["name"]: r["metrics"] for r in results if r["ok"]}
        ilo5, ilo6 = by_name[fleet[0].name], by_name[fleet[1].name]
        assert ilo5["thermal"]["source"] == "Thermal" and ilo6["thermal"]["source"] == "ThermalSubsystem"
        assert ilo5["power"]["source"] == "Power" and ilo6["power"]["source"].startswith("EnvironmentMetrics")
        for metrics in (ilo5, ilo6):
            assert metrics["thermal"]["inlet_temp_celsius"] is not None and metrics["health"] == "OK"
            assert metrics["thermal"]["fans"]["count"] and metrics["power"]["power_supplies"]
        psu, fan = by_name[fleet[10].name], by_name[fleet[11].name]
        assert psu["power"]["failed_power_supplies"] == 1 and psu["health"] in ("Warning", "Critical")
        assert fan["thermal"]["fans"]["failed"] == 1 and fan["health"] in ("Warning", "Critical")
        assert wall < BOUND_SECONDS, wall
        assert fleet.counters(7)["injected_503"] == 1
        assert all(fleet.state(i)["Sessions"] == 0 for i in (0, 500, 999))  # Basic auth: nothing to leak
        print(f"1,000 BMCs: one cycle in {wall:.1f} s, {sum(r['requests'] for r in results)} requests")
