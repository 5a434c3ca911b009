# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lifecycle state machine, declared once (docs/ARCHITECTURE.md, "The state machine").

Every writer of the custom field ``lifecycle_state`` (the stages, the monitoring poller, an operator's reset) names a
:class:`Transition` of :data:`TRANSITIONS` and goes through :func:`plan`, for one device or a batch
(``_lifecycle_apply``): the guard (tenant, source states, ``hardened_at``, extra compare-and-set fields), the one PATCH
body (state, ``lifecycle_changed_at``, the target's timestamp field) and the journal text all come from here. Readers
ask :func:`admits` instead of comparing states by hand. Pure: no I/O.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._time import netbox_time as now

STATE_FIELD = "lifecycle_state"
CHANGED_AT = "lifecycle_changed_at"
HARDENED_AT = "hardened_at"
UTC = datetime.timezone.utc  # noqa: UP017 - module_utils also run on targets older than Python 3.11

STATES = (
    "staged",
    "discovery",
    "validating",
    "validation_completed",
    "hardening",
    "monitored",
    "provisioning_failed",
    "validation_failed",
    "hardening_failed",
)
TRANSIENT_STATES = ("discovery", "validating", "validation_completed", "hardening")  # a stage owns the device
FAILED_STATES = ("provisioning_failed", "validation_failed", "hardening_failed")


@dataclass(frozen=True)
class Transition:
    """One allowed move: from any of ``sources`` to ``target``.

    ``stamp`` is the custom field set to the time of the move (``lifecycle_changed_at`` is always set). ``hardened``
    guards ``hardened_at``: False = must be empty, True = must be set, None = either.
    """

    name: str
    sources: tuple[str, ...]
    target: str
    stamp: str | None = None
    hardened: bool | None = None
    journal_kind: str = "info"
    meaning: str = ""


TRANSITIONS: dict[str, Transition] = {
    t.name: t
    for t in (
        Transition("discover", ("staged",), "discovery", "discovered_at", False, meaning="its BMC's lease matched"),
        Transition("claim_pxe_boot", ("discovery",), "validating", "pxe_boot_initiated_at",
                   meaning="claimed for the one-time PXE boot of the validation image"),
        Transition("fail_provisioning", ("discovery", "validating"), "provisioning_failed", journal_kind="danger",
                   meaning="BMC unusable, token or PXE boot failed"),
        Transition("complete_validation", ("validating",), "validation_completed", "validation_completed_at",
                   meaning="NetBox holds the validation report"),
        Transition("time_out_validation", ("validating",), "validation_failed", journal_kind="danger",
                   meaning="no validation report in time"),
        Transition("fail_validation", ("validating",), "validation_failed", journal_kind="danger",
                   meaning="validation report refused or not recorded (token requested twice, NetBox refused it)"),
        Transition("start_hardening", ("validation_completed",), "hardening", meaning="BMC baseline being applied"),
        Transition("complete_hardening", ("hardening",), "staged", HARDENED_AT, meaning="BMC baseline applied"),
        Transition("fail_hardening", ("hardening",), "hardening_failed", journal_kind="danger",
                   meaning="BMC baseline not applied"),
        Transition("start_monitoring", ("staged",), "monitored", "last_monitored_at", True, "success",
                   meaning="first successful Redfish metrics poll"),
        Transition("reset", STATES, "staged", journal_kind="warning", meaning="an operator starts it over"),
    )
}  # fmt: skip


def transition_named(name: str) -> Transition:
    """The transition called ``name``; ValueError listing the known ones otherwise."""
    try:
        return TRANSITIONS[name]
    except KeyError:
        raise ValueError(f"unknown lifecycle transition {name!r}; known: {', '.join(TRANSITIONS)}") from None


# --- reading NetBox records (select custom fields come as {value, label}) ---------------------------------------------


def unwrap(value: Any) -> Any:
    """A select field as read (``{"value": "staged", "label": "staged"}``) as it must be written (``"staged"``)."""
    if isinstance(value, dict) and "value" in value and "label" in value:
        return value["value"]
    return value


def custom_field(record: Mapping[str, Any], name: str) -> Any:
    """A custom field of a NetBox record, select fields unwrapped."""
    return unwrap((record.get("custom_fields") or {}).get(name))


def state_of(record: Mapping[str, Any]) -> Any:
    """The device's lifecycle state."""
    return custom_field(record, STATE_FIELD)


def parse_time(value: Any) -> datetime.datetime | None:
    """A NetBox datetime (``2026-11-25T05:00:00Z`` / ``+00:00``) as an aware datetime; None if empty or invalid."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def same_value(a: Any, b: Any) -> bool:
    """Custom-field equality that treats equal instants written differently as equal, and null as empty."""
    a, b = unwrap(a), unwrap(b)
    if a in (None, "") and b in (None, ""):
        return True
    ta, tb = parse_time(a), parse_time(b)
    if ta is not None and tb is not None:
        return ta == tb
    return bool(a == b)


def tenant_matches(record: Mapping[str, Any], tenant: str) -> bool:
    """Whether the record belongs to ``tenant`` (slug or name)."""
    t = record.get("tenant") or {}
    return bool(t) and tenant in (t.get("slug"), t.get("name"))


def tenant_name(record: Mapping[str, Any]) -> str:
    """The record's tenant, for messages."""
    t = record.get("tenant") or {}
    return str(t.get("slug") or t.get("name") or "no tenant")


# --- the guard and the plan -------------------------------------------------------------------------------------------


def refusal(
    device: Mapping[str, Any], transition: Transition, tenant: str, expected_fields: Mapping[str, Any] | None = None
) -> tuple[str, str] | None:
    """Why ``transition`` may not happen to ``device`` now, as ``(reason, message)``; None if it may.

    ``reason`` is ``tenant`` (another tenant's device), ``state`` (not in a source state), ``hardened`` or ``fields``
    (an extra compare-and-set field differs).
    """
    name = device.get("name")
    if not tenant_matches(device, tenant):
        return "tenant", f"refused: device {name} belongs to {tenant_name(device)}, not {tenant}"
    current = state_of(device)
    if current not in transition.sources:
        wanted = " or ".join(map(repr, transition.sources))
        return "state", f"device {name} is in state {current!r}, not {wanted}: nothing changed"
    hardened = bool(custom_field(device, HARDENED_AT))
    if transition.hardened is not None and hardened != transition.hardened:
        return "hardened", f"device {name} is {'' if hardened else 'not '}hardened: {transition.name} does not apply"
    for name_, want in (expected_fields or {}).items():
        have = custom_field(device, name_)
        if not same_value(have, want):
            return "fields", f"device {name} has {name_}={have!r}, expected {want!r}: nothing changed"
    return None


def admits(device: Mapping[str, Any], transition: str, tenant: str) -> bool:
    """Whether ``device`` may take ``transition`` now (the question readers ask instead of comparing states)."""
    return refusal(device, transition_named(transition), tenant) is None


_FIRST_POLL = TRANSITIONS["start_monitoring"]
POLLED_STATES = (_FIRST_POLL.target, *_FIRST_POLL.sources)  # a NetBox filter's first cut of polled()


def polled(device: Mapping[str, Any], tenant: str) -> bool:
    """Whether the monitoring cycle polls ``device``: monitored, or hardened and staged (its first successful poll is
    ``start_monitoring``)."""
    if state_of(device) == _FIRST_POLL.target:
        return tenant_matches(device, tenant)
    return refusal(device, _FIRST_POLL, tenant) is None


OVERDUE_STATES = TRANSITIONS["time_out_validation"].sources


def overdue(device: Mapping[str, Any], tenant: str, cutoff: datetime.datetime) -> bool:
    """Whether ``device``'s validation timed out: it may take ``time_out_validation`` and has been in its state since
    before ``cutoff`` (or since an unknown time)."""
    if not admits(device, "time_out_validation", tenant):
        return False
    since = parse_time(custom_field(device, CHANGED_AT))
    return since is None or since < cutoff


@dataclass
class Plan:
    """What one transition of one device writes, or why it does not."""

    device: Mapping[str, Any]
    transition: Transition
    refused: str | None = None
    msg: str = ""
    patch: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)

    @property
    def current(self) -> Any:
        """The state found."""
        return state_of(self.device)

    @property
    def moves(self) -> bool:
        """Whether the state changes."""
        return self.refused is None and self.current != self.transition.target

    @property
    def already_there(self) -> bool:
        """Refused only because the device is already in the target state (a redelivered event)."""
        return self.refused == "state" and self.current == self.transition.target


def _top_value(value: Any) -> Any:
    """A top-level device field as written: nested objects by id, choices by value."""
    if isinstance(value, dict):
        return value["id"] if "id" in value else unwrap(value)
    return value


def plan(
    device: Mapping[str, Any],
    transition: Transition,
    *,
    tenant: str,
    expected_fields: Mapping[str, Any] | None = None,
    custom_fields: Mapping[str, Any] | None = None,
    device_fields: Mapping[str, Any] | None = None,
    timestamp: str | None = None,
) -> Plan:
    """The one PATCH body of ``transition`` on ``device`` (a device record), or why not (``Plan.refused``).

    ``custom_fields`` and ``device_fields`` are written in the same PATCH; only what differs from the record is in it.
    """
    why = refusal(device, transition, tenant, expected_fields)
    if why is not None:
        return Plan(device, transition, refused=why[0], msg=why[1])
    stamp = timestamp or now()
    cf: dict[str, Any] = {}
    if state_of(device) != transition.target:
        cf = {STATE_FIELD: transition.target, CHANGED_AT: stamp}
        if transition.stamp:
            cf[transition.stamp] = stamp
    cf.update(custom_fields or {})
    cf_diff = {k: v for k, v in cf.items() if not same_value(custom_field(device, k), v)}
    top_diff = {k: v for k, v in (device_fields or {}).items() if not same_value(_top_value(device.get(k)), v)}
    patch: dict[str, Any] = dict(top_diff)
    if cf_diff:
        patch["custom_fields"] = cf_diff
    before = {k: custom_field(device, k) for k in cf_diff}
    before.update({k: _top_value(device.get(k)) for k in top_diff})
    name = device.get("name")
    if not patch:
        msg = f"device {name} is already in state {transition.target} with these fields: nothing to do"
    elif state_of(device) != transition.target:
        msg = f"device {name}: {state_of(device)} -> {transition.target}"
    else:
        msg = f"device {name}: fields updated in state {transition.target}"
    return Plan(device, transition, msg=msg, patch=patch, before=before, after={**cf_diff, **top_diff})


def journal_text(
    *, name: str, before: Any, state: str, reason: str, actor: str, event_id: str | None, changed: Mapping[str, Any]
) -> str:
    """The journal entry of a transition: what, why, who, which event, which fields."""
    what = f"lifecycle_state {before} -> {state}" if before != state else f"lifecycle_state stays {state}"
    fields = ", ".join(f"{k}={v}" for k, v in sorted(changed.items()) if k != STATE_FIELD)
    lines = [f"**{what}** ({name})", f"why: {reason}", f"by: {actor}", f"event: {event_id or 'none (run by hand)'}"]
    if fields:
        lines.append(f"set: {fields}")
    return "\n\n".join(lines)
