"""Recorded iLO 5 answers replayed through a fake transport of the Redfish client."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils._redfish import NotSent, RedfishClient

FIXTURES = Path(__file__).parent / "fixtures"


def recorded(name: str) -> dict[str, Any]:
    """A recorded iLO 5 answer (``{status, etag?, body}``) from fixtures/ilo5."""
    data: dict[str, Any] = json.loads((FIXTURES / "ilo5" / f"{name}.json").read_text())
    return data


def body(name: str, folder: str = "ilo5") -> dict[str, Any]:
    """Only the JSON body of a recorded answer (fixtures/ilo5) or of a fixture file (other folders)."""
    data: dict[str, Any] = json.loads((FIXTURES / folder / f"{name}.json").read_text())
    return data["body"] if folder == "ilo5" else data


class FakeTransport:
    """Answers by (method, path): a list of answers consumed in order (the last one repeats); records every call."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Any]] = {}
        self.calls: list[tuple[str, str, dict[str, str], Any]] = []

    def add(self, method: str, path: str, *answers: Any) -> FakeTransport:
        self.routes.setdefault((method, path.rstrip("/")), []).extend(answers)
        return self

    def add_recorded(self, path: str, name: str) -> FakeTransport:
        data = recorded(name)
        headers = {"ETag": data["etag"]} if data.get("etag") else {}
        return self.add("GET", path, (data["status"], headers, data["body"]))

    def __call__(
        self, method: str, path: str, headers: dict[str, str], data: bytes | None, timeout: float
    ) -> tuple[int, dict[str, str], bytes]:
        self.calls.append((method, path, dict(headers), json.loads(data) if data else None))
        answers = self.routes.get((method, path.rstrip("/")))
        if not answers:
            return (
                404,
                {},
                json.dumps(
                    {"error": {"@Message.ExtendedInfo": [{"MessageId": "Base.1.4.ResourceMissingAtURI"}]}}
                ).encode(),
            )
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, BaseException):
            raise answer
        status, headers_out, payload = answer
        return status, headers_out, json.dumps(payload).encode() if payload is not None else b""

    def writes(self) -> list[tuple[str, str, Any]]:
        return [(m, p, b) for m, p, _h, b in self.calls if m in ("PATCH", "POST", "DELETE")]


SUCCESS: tuple[int, dict[str, str], Any] = (
    200,
    {},
    {"error": {"@Message.ExtendedInfo": [{"MessageId": "Base.1.18.Success"}]}},
)


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def make_client(transport: FakeTransport) -> Callable[..., RedfishClient]:
    slept: list[float] = []

    def make(**kwargs: Any) -> RedfishClient:
        options: dict[str, Any] = {"transport": transport, "sleep": slept.append, "retries": 3}
        options.update(kwargs)
        client = RedfishClient("127.0.0.1:8443", "Administrator", "factory-pass", **options)
        client.slept = slept  # type: ignore[attr-defined]
        return client

    return make


__all__ = ["SUCCESS", "FakeTransport", "NotSent", "body", "recorded"]
