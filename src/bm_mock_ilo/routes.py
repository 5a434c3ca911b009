"""The URI table of a BMC: every resource module's patterns, and the lookup of a request path."""

from __future__ import annotations

from . import registries, resources, subsystems
from .resources import Resource

TABLE: tuple[Resource, ...] = resources.RESOURCES + subsystems.RESOURCES + registries.RESOURCES
_STATIC = {r.pattern.pattern: r for r in TABLE if "(" not in r.pattern.pattern}
_DYNAMIC = [r for r in TABLE if "(" in r.pattern.pattern]


def route(path: str) -> tuple[Resource, tuple[str, ...]] | None:
    """The resource for a normalised (lower-case, no trailing slash) path, and the ids in it."""
    found = _STATIC.get(path)
    if found is not None:
        return found, ()
    for candidate in _DYNAMIC:
        match = candidate.pattern.fullmatch(path)
        if match:
            return candidate, match.groups()
    return None
