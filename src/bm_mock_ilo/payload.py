"""Checking request bodies the way iLO does: every problem becomes a MessageId, never an exception."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .messages import BASE, ILO, RedfishError

MAX_BODY = 64 * 1024
"""Largest request body accepted (bytes); bigger ones are refused with a 400 before they are read."""


@dataclass(frozen=True)
class Field:
    """A writable property: its JSON type, optional allowed values and an optional extra check."""

    kind: type | tuple[type, ...]
    enum: tuple[str, ...] | None = None
    nullable: bool = False
    check: Callable[[Any], str | None] | None = None


type Spec = Mapping[str, "Field | Spec"]


def parse_json(raw: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object; anything else is iLO's MalformedJSON."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise RedfishError(400, f"{BASE}.MalformedJSON") from None
    if not isinstance(body, dict):
        raise RedfishError(400, f"{BASE}.MalformedJSON")
    return body


def _type_ok(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return any(k is not bool and isinstance(value, k) for k in kinds)


def _problems(body: Mapping[str, Any], spec: Spec, prefix: str) -> list[tuple[str, list[Any]]]:
    found: list[tuple[str, list[Any]]] = []
    for name, value in body.items():
        if name.startswith("@odata."):
            continue
        path = f"{prefix}{name}"
        rule = spec.get(name)
        if rule is None:
            found.append((f"{ILO}.PropertyNotWritableOrUnknown", [path]))
        elif not isinstance(rule, Field):
            if isinstance(value, dict):
                found.extend(_problems(value, rule, f"{path}/"))
            else:
                found.append((f"{BASE}.PropertyValueTypeError", [json.dumps(value), path]))
        elif value is None:
            if not rule.nullable:
                found.append((f"{BASE}.PropertyValueTypeError", ["null", path]))
        elif not _type_ok(value, rule.kind):
            found.append((f"{BASE}.PropertyValueTypeError", [json.dumps(value), path]))
        elif rule.enum is not None and value not in rule.enum:
            found.append((f"{BASE}.PropertyValueNotInList", [value, path]))
        elif rule.check is not None and (reason := rule.check(value)) is not None:
            found.append((f"{ILO}.PropertyValueBadParam", [path, reason]))
    return found


def check(body: Mapping[str, Any], spec: Spec) -> None:
    """Raise one 400 listing every unknown, read-only, mistyped or out-of-range property of ``body``."""
    problems = _problems(body, spec, "")
    if problems:
        error = RedfishError(400, problems[0][0], *problems[0][1])
        error.messages.extend(problems[1:])
        raise error


def between(low: int, high: int) -> Callable[[Any], str | None]:
    """A check that a number (or a string's length) lies in ``low..high``."""

    def check(value: Any) -> str | None:
        size = len(value) if isinstance(value, str) else value
        return None if low <= size <= high else f"must be within {low}..{high}"

    return check


def one_of(*allowed: int) -> Callable[[Any], str | None]:
    """A check that a number is one of ``allowed``."""

    def check(value: Any) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(map(str, allowed))}"

    return check


port_number = between(1, 65535)


def require(body: Mapping[str, Any], *names: str) -> None:
    """Refuse a create request that lacks a required property (iLO's PropertyMissing)."""
    for name in names:
        if name not in body:
            raise RedfishError(400, f"{BASE}.PropertyMissing", name)
