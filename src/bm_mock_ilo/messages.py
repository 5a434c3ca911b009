"""iLO 5 response envelopes: success and error bodies built from registry MessageIds."""

from __future__ import annotations

from typing import Any

BASE = "Base.1.4"
ILO = "iLO.2.15"


def extended_info(*messages: tuple[str, list[Any]]) -> dict[str, Any]:
    """The iLO ``error`` envelope carrying one ``@Message.ExtendedInfo`` entry per (MessageId, MessageArgs)."""
    info = []
    for message_id, args in messages:
        entry: dict[str, Any] = {"MessageId": message_id}
        if args:
            entry["MessageArgs"] = [str(arg) for arg in args]
        info.append(entry)
    return {
        "error": {
            "code": "iLO.0.10.ExtendedInfo",
            "message": "See @Message.ExtendedInfo for more information.",
            "@Message.ExtendedInfo": info,
        }
    }


def success(message_id: str = f"{BASE}.Success") -> dict[str, Any]:
    """The body iLO returns for a successful PATCH, POST or DELETE."""
    return extended_info((message_id, []))


class RedfishError(Exception):
    """An error answered with an iLO envelope; ``messages`` are (MessageId, MessageArgs) pairs."""

    def __init__(self, status: int, message_id: str, *args: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(message_id)
        self.status = status
        self.messages: list[tuple[str, list[Any]]] = [(message_id, list(args))]
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        return extended_info(*self.messages)


def bad_request(message_id: str, *args: Any) -> RedfishError:
    """A 400 with one message."""
    return RedfishError(400, message_id, *args)


def not_found(path: str) -> RedfishError:
    """iLO's 404 for an unknown URI."""
    return RedfishError(404, f"{BASE}.ResourceMissingAtURI", path)


def method_not_allowed(method: str, allow: str) -> RedfishError:
    """iLO's 405, with the Allow header of the resource."""
    return RedfishError(405, f"{ILO}.MethodNotAllowed", method, headers={"Allow": allow})
