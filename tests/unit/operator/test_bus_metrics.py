"""The service's own counters for bm.lifecycle.status: stage_failed events by stage, stage durations from the event
chain (pure functions on envelopes and stream entry ids)."""

from __future__ import annotations

from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._envelope import new_event
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_events import (
    entry_seconds,
    failures_by_stage,
    handling_seconds,
)

DEVICE = {"id": 1, "name": "srv001"}


def chain() -> list[tuple[str, dict[str, Any]]]:
    """A lease, its device_discovered 2.5 s later and that one's pxe_boot_initiated 10 s after; a second lease whose
    follow-up came 0.5 s later; an event whose cause is not among the entries (trimmed) counts for nothing."""
    lease = new_event("dhcp_lease", {"mac": "94:40:c9:5e:7a:b0"}, source="pytest")
    found = new_event("device_discovered", {"stage": "discovery"}, source="pytest", cause=lease, device=DEVICE)
    booted = new_event("pxe_boot_initiated", {"stage": "provisioning"}, source="pytest", cause=found)
    lease2 = new_event("dhcp_lease", {"mac": "94:40:c9:5e:7a:b1"}, source="pytest")
    unknown = new_event("unknown_mac", {"stage": "discovery"}, source="pytest", cause=lease2)
    orphan = new_event("validation_completed", {}, source="pytest", cause="6f9f4c9e-0000-4a57-9a64-1d1f3c3f5b0e")
    return [
        ("1764000000000-0", lease),
        ("1764000002500-0", found),
        ("1764000012500-3", booted),
        ("1764000100000-0", lease2),
        ("1764000100500-0", unknown),
        ("1764000200000-0", orphan),
    ]


def test_entry_seconds_is_the_ids_milliseconds() -> None:
    assert entry_seconds("1764000002500-7") == 1764000002.5


def test_handling_seconds_from_cause_to_follow_up() -> None:
    assert handling_seconds(chain()) == {
        "dhcp_lease": {"count": 2, "sum": 3.0, "max": 2.5},
        "device_discovered": {"count": 1, "sum": 10.0, "max": 10.0},
    }
    assert handling_seconds(reversed(chain())) == handling_seconds(chain())  # order of streams does not matter
    assert handling_seconds([]) == {}


def test_failures_by_stage() -> None:
    failed = [
        new_event("stage_failed", {"stage": stage, "reason": "x"}, source="pytest")
        for stage in ("provisioning", "hardening", "provisioning")
    ]
    failed.append(new_event("stage_failed", {"reason": "no stage"}, source="pytest"))
    assert failures_by_stage(failed) == {"provisioning": 2, "hardening": 1, "unknown": 1}
