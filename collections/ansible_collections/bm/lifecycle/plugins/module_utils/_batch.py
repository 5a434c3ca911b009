# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stage's batch as it flows through the stage's modules (docs/ARCHITECTURE.md, "The stage shape").

Every step of a stage is one module call over the whole batch: it takes the ``items`` the previous step returned, works
on the active ones, and returns them all. An item is one bus entry and what the stage learned about it so far (plain
JSON, so it passes between tasks as a registered variable):

``entry``     the bus entry ``{stream, id, group, delivery_count, envelope}`` (``id`` null: run by hand, no ack)
``device``    ``{id, name}`` or null
``status``    ``active`` (goes on), ``skipped`` (acknowledged, nothing else: duplicate, late, lost a claim),
              ``deferred`` (not acknowledged: another run holds the device, the bus redelivers it), ``failed``
              (recorded in NetBox by the stage's failure transition, ``stage_failed`` published, acknowledged) or
              ``done`` (its ``follow_up`` event published with the acknowledgement)
``msg``       what happened last, in words
``failure``   ``{reason, msg}`` when failed
``follow_up`` ``{event_type, data}``: the event to publish when the entry is acknowledged, if any
``facts``     the stage's own findings (BMC address, system identity, token expiry...)

A device that fails a step drops out of the later steps with its own failure; its batch-mates go on. An event whose
producer already refused it (its data is only ``{"refused": {reason, msg}}``, :func:`refusal_data`: the validation
webhook's token requested twice) fails its item from the first step on (:func:`fail_refused`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

STATUSES = ("active", "skipped", "deferred", "failed", "done")
DEFAULT_CONCURRENCY = 32  # BMCs talked to at once by one step


def new_item(entry: Mapping[str, Any], device: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A fresh, active item for a bus entry."""
    return {
        "entry": dict(entry),
        "device": None if device is None else {"id": device.get("id"), "name": device.get("name")},
        "status": "active",
        "msg": "",
        "failure": None,
        "follow_up": None,
        "facts": {},
    }


def check_items(items: Iterable[Any]) -> list[dict[str, Any]]:
    """The items a module was given, checked: ValueError naming the first malformed one."""
    out = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "entry" not in item or item.get("status") not in STATUSES:
            raise ValueError(
                f"items[{index}] is not a batch item (entry, status in {', '.join(STATUSES)}): {item!r:.200}"
            )
        out.append(item)
    return out


def active(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items still going on."""
    return [item for item in items if item["status"] == "active"]


def event_id(item: Mapping[str, Any]) -> str | None:
    """The event id of the item's entry."""
    return (item["entry"].get("envelope") or {}).get("event_id")


def skip(item: dict[str, Any], msg: str) -> None:
    """Acknowledge only: nothing (more) to do for this entry."""
    item.update(status="skipped", msg=msg)


def defer(item: dict[str, Any], msg: str) -> None:
    """Leave the entry unacknowledged: the bus delivers it again."""
    item.update(status="deferred", msg=msg)


def fail(item: dict[str, Any], reason: str, msg: str) -> None:
    """The device failed this stage: recorded by the stage's failure transition and ``stage_failed``."""
    item.update(status="failed", msg=msg, failure={"reason": reason, "msg": msg})


def refusal_data(reason: str, msg: str) -> dict[str, Any]:
    """The data of an event its producer refused: the consuming stage fails the device with this reason."""
    return {"refused": {"reason": reason, "msg": msg}}


def fail_refused(item: dict[str, Any]) -> bool:
    """Fail the item if its event is a refusal (:func:`refusal_data`); True if it was."""
    refused = ((item["entry"].get("envelope") or {}).get("data") or {}).get("refused")
    if not isinstance(refused, dict) or item["status"] != "active":
        return False
    fail(item, str(refused.get("reason") or "refused"), str(refused.get("msg") or "refused by the event's producer"))
    return True


def done(item: dict[str, Any], event_type: str | None, data: Mapping[str, Any] | None = None, msg: str = "") -> None:
    """The stage finished this entry; ``event_type`` (if any) is published with its acknowledgement."""
    item.update(status="done", msg=msg or item["msg"])
    item["follow_up"] = None if not event_type else {"event_type": event_type, "data": dict(data or {})}


def concurrently(
    items: list[dict[str, Any]], work: Callable[[dict[str, Any]], None], limit: int = DEFAULT_CONCURRENCY
) -> None:
    """Run ``work(item)`` for every item, at most ``limit`` at once (each BMC has its own deadline and retries)."""
    if len(items) <= 1:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(max_workers=max(1, min(limit, len(items)))) as pool:
        list(pool.map(work, items))


def summary(items: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many items are in each status."""
    counts = dict.fromkeys(STATUSES, 0)
    for item in items:
        counts[item["status"]] += 1
    return counts
