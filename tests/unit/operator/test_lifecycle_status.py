"""module_utils._lifecycle_status.summarize: time in state, stuck and failed devices, on NetBox-shaped records."""

from __future__ import annotations

import datetime
from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle_status import since, summarize

NOW = datetime.datetime(2026, 11, 25, 12, 0, 0, tzinfo=datetime.UTC)


def device(name: str, state: str | None, last_updated: str = "2026-11-25T11:59:00.123456Z", **fields: Any) -> dict:
    cf = {"lifecycle_state": None if state is None else {"value": state, "label": state}, **fields}
    return {"id": hash(name) % 1000, "name": name, "last_updated": last_updated, "custom_fields": cf}


def test_since_prefers_lifecycle_changed_at_then_the_states_field_then_last_updated() -> None:
    changed = device(
        "a", "discovery", lifecycle_changed_at="2026-11-25T10:00:00Z", discovered_at="2026-11-25T09:00:00Z"
    )
    assert since(changed) == ("lifecycle_changed_at", datetime.datetime(2026, 11, 25, 10, tzinfo=datetime.UTC))
    own = device("b", "discovery", discovered_at="2026-11-25T09:00:00+00:00")
    assert since(own)[0] == "discovered_at"
    hardened = device("c", "staged", hardened_at="2026-11-24T12:00:00Z")
    assert since(hardened)[0] == "hardened_at"
    assert since(device("d", "staged"))[0] == "last_updated"


def test_monitored_is_not_timed_by_its_last_poll() -> None:
    polled = device("m", "monitored", last_monitored_at="2026-11-25T11:55:00Z")
    assert since(polled)[0] == "last_updated"


def test_summary_counts_stuck_and_failed() -> None:
    devices = [
        device("old-validating", "validating", lifecycle_changed_at="2026-11-25T10:00:00Z"),
        device("new-validating", "validating", lifecycle_changed_at="2026-11-25T11:50:00Z"),
        device("unknown-hardening", "hardening", last_updated=""),
        device("failed", "hardening_failed", lifecycle_changed_at="2026-11-20T00:00:00Z"),
        device("waiting", "staged", lifecycle_changed_at="2026-11-01T00:00:00Z"),
    ]
    out = summarize(devices, NOW, stuck_after=3600)
    assert out["states"] == {"validating": 2, "hardening": 1, "hardening_failed": 1, "staged": 1}
    assert [d["name"] for d in out["stuck"]] == ["unknown-hardening", "old-validating"]
    assert [d["name"] for d in out["failed_devices"]] == ["failed"]
    rows = {d["name"]: d for d in out["devices"]}
    assert rows["old-validating"]["age_seconds"] == 7200
    assert rows["new-validating"]["stuck"] is False
    assert rows["unknown-hardening"]["age_seconds"] is None and rows["unknown-hardening"]["since"] is None
    assert rows["waiting"]["stuck"] is False  # staged is not transient, however long
    assert [d["name"] for d in out["devices"] if d["state"] == "validating"] == ["old-validating", "new-validating"]
    assert out["checked_at"] == "2026-11-25T12:00:00Z"


def test_the_threshold_and_the_transient_states_are_the_callers() -> None:
    devices = [device("s", "staged", lifecycle_changed_at="2026-11-25T11:00:00Z")]
    assert summarize(devices, NOW, stuck_after=60, transient=["staged"])["stuck"][0]["name"] == "s"
    assert summarize(devices, NOW, stuck_after=7200, transient=["staged"])["stuck"] == []
