"""Fixtures of the stage unit tests: a private redis-server (session), a clean client per test, a fake NetBox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import NetBoxClient, NetBoxError

Route = Any  # a response body, or a callable(params, body) -> body; NetBoxError instances are raised


class FakeNetBox(NetBoxClient):
    """A NetBoxClient whose ``request`` answers from a table of (method, path) -> body, recording every call."""

    def __init__(self, routes: dict[tuple[str, str], Route]) -> None:
        super().__init__("http://netbox.invalid", "nbt_testkey00001.secret")
        self.routes = routes
        self.calls: list[tuple[str, str, dict[str, Any] | None, Any]] = []

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = None,
    ) -> Any:
        self.requests += 1
        self.calls.append((method, path, params, body))
        if (method, path) not in self.routes:
            raise NetBoxError(f"unexpected {method} {path}", 404)
        answer = self.routes[(method, path)]
        if isinstance(answer, NetBoxError):
            raise answer
        if callable(answer):
            return answer(params or {}, body)
        return answer

    def writes(self) -> list[tuple[str, str, Any]]:
        return [(m, p, b) for m, p, _, b in self.calls if m != "GET"]


@pytest.fixture
def fake_netbox() -> Callable[[dict[tuple[str, str], Route]], FakeNetBox]:
    return FakeNetBox
