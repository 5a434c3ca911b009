"""Fixtures of the stage unit tests: a private redis-server (session), a clean client per test, a fake NetBox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import NetBoxError
from helpers import FakeNetBoxClient, NetBoxCall

Route = Any  # a response body, or a callable(params, body) -> body; NetBoxError instances are raised


class FakeNetBox(FakeNetBoxClient):
    """A NetBox client that answers from a table of (method, path) -> body, recording every call."""

    def __init__(self, routes: dict[tuple[str, str], Route]) -> None:
        super().__init__()
        self.routes = routes
        self.calls: list[tuple[str, str, dict[str, Any] | None, Any]] = []

    def answer(self, call: NetBoxCall) -> Any:
        self.calls.append((call.method, call.path, call.params, call.body))
        if (call.method, call.path) not in self.routes:
            raise NetBoxError(f"unexpected {call.method} {call.path}", 404)
        answer = self.routes[(call.method, call.path)]
        if isinstance(answer, NetBoxError):
            raise answer
        if callable(answer):
            return answer(call.params or {}, call.body)
        return answer

    def writes(self) -> list[tuple[str, str, Any]]:
        return [(m, p, b) for m, p, _, b in self.calls if m != "GET"]


@pytest.fixture
def fake_netbox() -> Callable[[dict[tuple[str, str], Route]], FakeNetBox]:
    return FakeNetBox
