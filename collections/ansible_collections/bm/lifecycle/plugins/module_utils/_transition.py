# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state machine's writer: one transition of ``_lifecycle`` applied to a batch of devices in NetBox, in bulk.

Compare-and-set for a batch: the devices' Redis locks are taken in one pipeline, the devices re-read under them in one
list GET, every device planned by ``_lifecycle.plan``, the changes written with one bulk PATCH and the journal entries
with one bulk POST, then the locks released. A device whose lock another run holds is left alone (``refused:
locked``); its batch-mates go on. A device already in the target state whose journal lacks the event's entry (a run
that died between its PATCH and its journal) gets the entry now, marked late. One device is a batch of one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle import (
    Plan,
    Transition,
    journal_text,
    plan,
    state_of,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import (
    DEVICE_OBJECT_TYPE,
    DeviceLocks,
    NetBoxClient,
    NetBoxError,
    bulk_write,
    journal_has,
    oob_host,
    read_devices,
    resolve_device_ids,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient


@dataclass
class Request:
    """One device's part of a batch transition."""

    device: int | str  # id or unique name
    reason: str
    event_id: str | None = None
    expected_fields: Mapping[str, Any] | None = None
    custom_fields: Mapping[str, Any] | None = None
    device_fields: Mapping[str, Any] | None = None
    journal_kind: str | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> Request:
        """A request from a ``devices`` entry (a mapping, or an id or name), the module's values as defaults."""
        item = dict(raw) if isinstance(raw, Mapping) else {"device": raw}
        merged = {k: v for k, v in defaults.items() if v is not None}
        merged.update({k: v for k, v in item.items() if v is not None})
        if merged.get("device") in (None, ""):
            raise ValueError(f"a transition request needs a device (id or name): {dict(item)!r}")
        if not merged.get("reason"):
            raise ValueError(f"a transition request needs a reason: device {merged['device']!r}")
        unknown = set(merged) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown keys in a transition request: {', '.join(sorted(unknown))}")
        return cls(**merged)


def _outcome(request: Request, record: Mapping[str, Any] | None, the_plan: Plan | None) -> dict[str, Any]:
    """The module's per-device result (before any write)."""
    if record is None or the_plan is None:
        return {
            "changed": False,
            "transitioned": False,
            "refused": "missing",
            "device": {"id": None, "name": str(request.device)},
            "state_before": None,
            "state": None,
            "oob_ip": None,
            "journal_entry": None,
            "custom_fields": {},
            "msg": f"device {request.device!r} does not exist in NetBox",
            "diff": {"before": {}, "after": {}},
        }
    state = state_of(record)
    return {
        "changed": bool(the_plan.patch) and the_plan.refused is None,
        "transitioned": the_plan.moves,
        "refused": the_plan.refused,
        "device": {"id": record.get("id"), "name": record.get("name")},
        "state_before": state,
        "state": the_plan.transition.target if the_plan.refused is None else state,
        "oob_ip": oob_host(dict(record)),
        "journal_entry": None,
        "custom_fields": the_plan.patch.get("custom_fields", {}),
        "msg": the_plan.msg,
        "diff": {"before": the_plan.before, "after": the_plan.after},
    }


def apply(
    client: NetBoxClient,
    redis: RedisClient | None,
    transition: Transition,
    requests: Sequence[Request],
    *,
    actor: str,
    tenant: str,
    write: bool = True,
    journal: bool = True,
    lock_ttl: float = 30.0,
    lock_wait: float = 10.0,
) -> list[dict[str, Any]]:
    """Apply ``transition`` to every request's device; one result per request, in order (see the module docs)."""
    ids = resolve_device_ids(client, [r.device for r in requests])
    wanted = [i for i in ids if i is not None]
    if not write:
        records = read_devices(client, wanted)
        return [
            _outcome(r, records.get(i) if i else None, _plan(r, records.get(i) if i else None, transition, tenant))
            for r, i in zip(requests, ids, strict=True)
        ]
    if redis is None:
        raise ValueError("a Redis client is needed for the device locks")
    with DeviceLocks(redis, wanted, ttl=lock_ttl, wait=lock_wait) as locks:
        records = read_devices(client, locks.held)
        results: list[dict[str, Any]] = []
        plans: list[Plan | None] = []
        for request, device_id in zip(requests, ids, strict=True):
            if device_id is not None and device_id in locks.busy:
                results.append(_locked(request, device_id))
                plans.append(None)
                continue
            record = records.get(device_id) if device_id is not None else None
            the_plan = _plan(request, record, transition, tenant)
            results.append(_outcome(request, record, the_plan))
            plans.append(the_plan)
        _write(client, requests, plans, results, actor=actor, journal=journal)
    return results


def _plan(request: Request, record: Mapping[str, Any] | None, transition: Transition, tenant: str) -> Plan | None:
    """The state machine's plan of one request (None: the device does not exist)."""
    if record is None:
        return None
    return plan(
        record, transition, tenant=tenant, expected_fields=request.expected_fields,
        custom_fields=request.custom_fields, device_fields=request.device_fields,
    )  # fmt: skip


def _locked(request: Request, device_id: int) -> dict[str, Any]:
    """The result of a device whose lock another run holds."""
    out = _outcome(request, None, None)
    out.update(
        refused="locked",
        device={"id": device_id, "name": str(request.device)},
        msg=f"device {request.device}: another stage holds its lock; nothing changed (the event is redelivered)",
    )
    return out


def _write(
    client: NetBoxClient,
    requests: Sequence[Request],
    plans: Sequence[Plan | None],
    results: list[dict[str, Any]],
    *,
    actor: str,
    journal: bool,
) -> None:
    """One bulk PATCH of every change, one bulk POST of their journal entries (and the late ones of redeliveries).
    A device whose change NetBox refuses is ``refused: netbox_refused`` and gets no journal entry; the others go on."""
    patches: list[tuple[int, dict[str, Any]]] = []  # (result index, device PATCH row)
    entries: list[tuple[int, dict[str, Any]]] = []  # (result index, journal row)
    for index, (request, the_plan) in enumerate(zip(requests, plans, strict=True)):
        if the_plan is None:
            continue
        device_id = int(the_plan.device["id"])
        words: dict[str, Any] = {
            "name": str(the_plan.device.get("name")),
            "state": the_plan.transition.target,
            "reason": request.reason,
            "actor": actor,
            "event_id": request.event_id,
        }
        kind = request.journal_kind or the_plan.transition.journal_kind
        if the_plan.refused is None and the_plan.patch:
            patches.append((index, {"id": device_id, **the_plan.patch}))
            if journal:
                text = journal_text(before=the_plan.current, changed=the_plan.after, **words)
                entries.append((index, _journal_row(device_id, text, kind)))
        elif (
            the_plan.already_there and request.event_id and journal
            and not journal_has(client, device_id, request.event_id)
        ):  # fmt: skip
            results[index]["msg"] += f"; the journal entry of event {request.event_id} was missing"
            results[index]["changed"] = True
            late = journal_text(before="?", changed={}, **words) + "\n\n(journal entry written late)"
            entries.append((index, _journal_row(device_id, late, kind)))
    refused: set[int] = set()
    answers = bulk_write(client, "PATCH", "/api/dcim/devices/", [row for _i, row in patches])
    for (index, _row), answer in zip(patches, answers, strict=True):
        if isinstance(answer, NetBoxError):
            refused.add(index)
            result = results[index]
            result.update(
                changed=False, transitioned=False, refused="netbox_refused", state=result["state_before"],
                msg=f"device {result['device']['name']}: NetBox refused the change: {answer}",
            )  # fmt: skip
    entries = [(index, row) for index, row in entries if index not in refused]
    made = bulk_write(client, "POST", "/api/extras/journal-entries/", [row for _i, row in entries])
    for (index, _row), answer in zip(entries, made, strict=True):
        if isinstance(answer, NetBoxError):
            results[index]["msg"] += f"; NetBox refused its journal entry: {answer}"
        else:
            results[index]["journal_entry"] = answer.get("id")


def _journal_row(device_id: int, comments: str, kind: str) -> dict[str, Any]:
    return {"assigned_object_type": DEVICE_OBJECT_TYPE, "assigned_object_id": device_id, "kind": kind,
            "comments": comments}  # fmt: skip
