# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Event envelope v1 of the bm-lifecycle bus: its JSON Schema (single home) and the helpers around it.

An envelope is what one Redis stream entry carries, JSON-encoded in the entry's single field ``envelope``::

    {"version": 1, "event_id": "<uuid>", "event_type": "dhcp_lease", "timestamp": "2026-11-25T04:52:07.123456Z",
     "source": "dhcpd@dhcp1", "causation_id": null, "device": null, "data": {...}}

``ENVELOPE_SCHEMA`` below is the JSON Schema (draft 2020-12) and the only definition of the format. It lives in Python
because modules ship through AnsiballZ, which bundles module_utils and nothing else. Modules run on the controller
with the playbook's own Python, so ``schema_errors`` checks it with the ``jsonschema`` library and words each violation
as one line naming its path (``device.id: 0 is less than 1``). Only the DHCP hook (``files/bm_lease_hook.py``, the DHCP
server's system Python) stays standard-library-only: it builds envelopes without this module (its tests decode them).
``validate`` adds what a schema cannot say (a real calendar date, bounded nesting of ``data``) and ``decode`` adds the
size limit and strict JSON (no NaN/Infinity).

Idempotency: ``new_event`` derives the ``event_id`` of a follow-up event from its cause (``uuid5`` of causation id,
event type and an optional dedupe key), so a stage that runs twice for the same cause produces the same ``event_id``,
and the publisher stores each ``event_id`` at most once (see ``_redis_events.py``).
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jsonschema

from ansible_collections.bm.lifecycle.plugins.module_utils._text import loads_strict, short
from ansible_collections.bm.lifecycle.plugins.module_utils._time import event_time

VERSION = 1
STREAM_PREFIX = "bm:events:"
DEAD_LETTER_STREAM = STREAM_PREFIX + "dead_letter"
ENTRY_FIELD = "envelope"
MAX_ENVELOPE_BYTES = 64 * 1024
MAX_DATA_DEPTH = 32
EVENT_TYPES = (
    "dhcp_lease",
    "device_discovered",
    "pxe_boot_initiated",
    "validation_report",
    "validation_completed",
    "hardening_completed",
    "bmc_ip_changed",
    "unknown_mac",
    "stage_failed",
)
# uuid5 namespace of follow-up event ids (a fixed, random uuid4; never change it: ids would stop matching).
EVENT_ID_NAMESPACE = uuid.UUID("6f9f4c9e-2a0b-4a57-9a64-1d1f3c3f5b0e")

# Patterns end in "(?!\n)$" so that Python's "$" (which also matches before a final newline) means the end of string.
_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?!\n)$"
_EVENT_TYPE = r"^[a-z][a-z0-9_]{0,62}(?!\n)$"
_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})(?!\n)$"

ENVELOPE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://bm-lifecycle.invalid/schemas/event-envelope-v1.json",
    "title": "bm-lifecycle event envelope, version 1",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "event_id", "event_type", "timestamp", "source", "causation_id", "device", "data"],
    "properties": {
        "version": {"const": VERSION, "description": "Envelope format version."},
        "event_id": {"type": "string", "pattern": _UUID, "description": "Lower-case UUID of this event."},
        "event_type": {
            "type": "string",
            "pattern": _EVENT_TYPE,
            "description": "The stream is bm:events:<event_type>.",
        },
        "timestamp": {"type": "string", "pattern": _TIMESTAMP, "description": "RFC 3339 time of creation."},
        "source": {"type": "string", "minLength": 1, "maxLength": 128, "description": "Who published it."},
        "causation_id": {
            "type": ["string", "null"],
            "pattern": _UUID,
            "description": "event_id of the event that caused this one; null for events from outside (DHCP).",
        },
        "device": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "required": ["id", "name"],
            "properties": {
                "id": {"type": ["integer", "null"], "minimum": 1, "description": "NetBox dcim.device id."},
                "name": {"type": ["string", "null"], "minLength": 1, "maxLength": 64},
            },
            "description": "The NetBox device once known, else null.",
        },
        "data": {"type": "object", "description": "Event-type specific payload."},
    },
}


class EnvelopeError(ValueError):
    """An envelope is invalid; ``str(exc)`` is the reason, fit for the dead-letter stream."""


# --- schema violations, as readable lines -------------------------------------------------------------------------


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    """The schema's validator, built on first use: importing jsonschema takes 0.1-0.3 s of CPU, and some importers
    of this module (the module base, for EnvelopeError) never validate."""
    import jsonschema  # noqa: PLC0415

    return jsonschema.Draft202012Validator(ENVELOPE_SCHEMA)


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def _describe(error: jsonschema.ValidationError) -> list[str]:  # noqa: PLR0911  (one return per keyword)
    """One readable line per problem of a ``jsonschema`` error, named by its path in the envelope."""
    where = ".".join(str(part) for part in error.absolute_path) or "envelope"
    value, rule, keyword = error.instance, error.validator_value, error.validator
    if keyword == "type":
        names = rule if isinstance(rule, list) else [rule]
        got = "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)
        return [f"{where}: expected {' or '.join(names)}, got {got}"]
    if keyword == "const":
        return [f"{where}: must be {json.dumps(rule)}, got {short(value, 48)}"]
    if keyword == "required":  # one error per missing field, each with the whole object as instance
        return [f"{where}: missing field {key!r}" for key in rule if key not in value]
    if keyword == "additionalProperties":
        extra = sorted(str(k) for k in value if k not in error.schema.get("properties", {}))
        return [f"{where}: unexpected field(s) {', '.join(repr(k) for k in extra[:5])}"]
    if keyword == "minLength":
        return [f"{where}: shorter than {rule} characters"]
    if keyword == "maxLength":
        return [f"{where}: longer than {rule} characters"]
    if keyword == "pattern":
        return [f"{where}: {short(json.dumps(value), 48)} does not match {rule}"]
    if keyword == "minimum":
        return [f"{where}: {value} is less than {rule}"]
    return [f"{where}: {error.message}"]


def schema_errors(envelope: object) -> list[str]:
    """Every violation of ``ENVELOPE_SCHEMA`` by ``envelope`` (empty if it conforms), one readable line each."""
    lines: list[str] = []
    for error in sorted(_validator().iter_errors(envelope), key=lambda e: [str(p) for p in e.absolute_path]):
        lines.extend(line for line in _describe(error) if line not in lines)
    return lines


# --- validation, encoding -----------------------------------------------------------------------------------------


def _depth(value: object, limit: int) -> int:
    """Nesting depth of containers in ``value``, counting no further than ``limit + 1``."""
    if limit < 0:
        return 1
    if isinstance(value, dict):
        return 1 + max((_depth(v, limit - 1) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v, limit - 1) for v in value), default=0)
    return 0


def validate(envelope: object) -> dict[str, Any]:
    """Return ``envelope`` if it is a valid v1 envelope, else raise :class:`EnvelopeError` with the reason."""
    errors = schema_errors(envelope)
    if errors:
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        raise EnvelopeError("; ".join(errors[:3]) + more)
    if not isinstance(envelope, dict):  # schema_errors guarantees it; this tells the type checker
        raise EnvelopeError("envelope: expected object")
    try:
        datetime.datetime.fromisoformat(envelope["timestamp"].replace("Z", "+00:00"))
    except ValueError as exc:
        raise EnvelopeError(f"timestamp: {envelope['timestamp']!r} is not a real date and time ({exc})") from None
    if _depth(envelope["data"], MAX_DATA_DEPTH) > MAX_DATA_DEPTH:
        raise EnvelopeError(f"data: nested deeper than {MAX_DATA_DEPTH} levels")
    return envelope


def encode(envelope: dict[str, Any]) -> str:
    """Compact JSON of a valid envelope; raises :class:`EnvelopeError` if invalid or too large."""
    validate(envelope)
    try:
        text = json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise EnvelopeError(f"data: not JSON-serialisable ({exc})") from None
    size = len(text.encode("utf-8"))
    if size > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"envelope is {size} bytes, more than {MAX_ENVELOPE_BYTES}")
    return text


def decode(raw: bytes | str | None) -> dict[str, Any]:
    """Parse and validate one stream entry's envelope; raises :class:`EnvelopeError` with the reason."""
    if raw is None:
        raise EnvelopeError(f"entry has no {ENTRY_FIELD!r} field")
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"envelope is {size} bytes, more than {MAX_ENVELOPE_BYTES}")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = loads_strict(text)
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"envelope is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise EnvelopeError("envelope is nested too deeply to parse") from None
    except ValueError as exc:
        raise EnvelopeError(f"envelope is not JSON ({exc})") from None
    return validate(value)


# --- construction -------------------------------------------------------------------------------------------------


def follow_up_id(causation_id: str, event_type: str, dedupe_key: str = "") -> str:
    """The deterministic event id of the ``event_type`` event caused by ``causation_id``."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{causation_id}:{event_type}:{dedupe_key}"))


def new_event(
    event_type: str,
    data: dict[str, Any] | None = None,
    *,
    source: str,
    device: dict[str, Any] | None = None,
    cause: dict[str, Any] | str | None = None,
    dedupe_key: str = "",
    event_id: str | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """Build and validate a v1 envelope.

    ``cause`` is the envelope (or the ``event_id``) of the event being handled. With a cause, ``causation_id`` is set,
    ``device`` defaults to the cause's device, and ``event_id`` is derived from (cause, ``event_type``, ``dedupe_key``)
    so that re-running a stage yields the same id; give distinct ``dedupe_key`` values to publish several events of one
    type for one cause. Without a cause the event gets a random id.
    """
    causation_id: str | None
    if isinstance(cause, dict):
        causation_id = cause.get("event_id")
        if device is None:
            device = cause.get("device")
    else:
        causation_id = cause
    if event_id is None:
        event_id = follow_up_id(str(causation_id), event_type, dedupe_key) if causation_id else str(uuid.uuid4())
    envelope = {
        "version": VERSION,
        "event_id": event_id,
        "event_type": event_type,
        "timestamp": timestamp or event_time(),
        "source": source,
        "causation_id": causation_id,
        "device": None if device is None else {"id": device.get("id"), "name": device.get("name")},
        "data": {} if data is None else data,
    }
    return validate(envelope)


def stream_for(event_type: str) -> str:
    """Redis stream key of an event type: ``bm:events:<event_type>``."""
    if not re.search(_EVENT_TYPE, event_type):
        raise EnvelopeError(f"event_type {event_type!r} does not match {_EVENT_TYPE}")
    return STREAM_PREFIX + event_type
