# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the tenant's devices are in the lifecycle, and for how long (the operator's status view).

:func:`summarize` is pure (device records and a moment in, rows and counts out); :func:`lifecycle_status` reads the
devices from NetBox and calls it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle import (
    CHANGED_AT,
    STATE_FIELD,
    TRANSIENT_STATES,
    TRANSITIONS,
    UTC,
    custom_field,
    parse_time,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import NetBoxClient
from ansible_collections.bm.lifecycle.plugins.module_utils._time import netbox_time

# The timestamp field each state's entry sets, from the state machine.
STATE_TIMESTAMPS = {t.target: t.stamp for t in TRANSITIONS.values() if t.stamp and t.target != "staged"}


def since(device: dict[str, Any]) -> tuple[str, datetime.datetime | None]:
    """Since when the device is in its state, and which field says so.

    ``lifecycle_changed_at`` (every transition sets it), else the state's own timestamp (``hardened_at`` for a hardened
    ``staged`` device), else the device's ``last_updated``. ``last_monitored_at`` is not used for ``monitored``: every
    poll moves it.
    """
    state = custom_field(device, STATE_FIELD)
    own = "hardened_at" if state == "staged" else STATE_TIMESTAMPS.get(str(state))
    for field in [CHANGED_AT] + ([own] if own and own != "last_monitored_at" else []):
        moment = parse_time(custom_field(device, field))
        if moment is not None:
            return field, moment
    return "last_updated", parse_time(device.get("last_updated"))


def summarize(
    devices: Iterable[dict[str, Any]],
    moment: datetime.datetime,
    stuck_after: float,
    transient: Sequence[str] = TRANSIENT_STATES,
) -> dict[str, Any]:
    """Rows (sorted by state, then oldest first), counts per state, the stuck devices and those in a ``*_failed`` state
    (``failed_devices``: ``failed`` is a reserved result key of Ansible).

    A device is stuck when it is in one of ``transient`` for more than ``stuck_after`` seconds (or for an unknown time).
    """
    rows = []
    for device in devices:
        state = custom_field(device, STATE_FIELD)
        field, started = since(device)
        age = None if started is None else max(0, int((moment - started).total_seconds()))
        rows.append(
            {
                "id": device.get("id"),
                "name": device.get("name"),
                "state": state,
                "hardened": bool(custom_field(device, "hardened_at")),
                "since": None if started is None else netbox_time(started),
                "since_field": field,
                "age_seconds": age,
                "stuck": state in transient and (age is None or age > stuck_after),
            }
        )
    rows.sort(key=lambda r: (str(r["state"]), -(r["age_seconds"] or 0), str(r["name"])))
    states: dict[str, int] = {}
    for row in rows:
        states[str(row["state"])] = states.get(str(row["state"]), 0) + 1
    return {
        "devices": rows,
        "states": states,
        "stuck": [r for r in rows if r["stuck"]],
        "failed_devices": [r for r in rows if str(r["state"]).endswith("_failed")],
        "checked_at": netbox_time(moment),
    }


def lifecycle_status(
    client: NetBoxClient, tenant: str, stuck_after: float, transient: Sequence[str] = TRANSIENT_STATES
) -> dict[str, Any]:
    """:func:`summarize` over every device of ``tenant`` (slug), now."""
    devices = client.list("/api/dcim/devices/", tenant=tenant)
    return summarize(devices, datetime.datetime.now(UTC), stuck_after, transient)
