"""Fixtures of the validation webhook unit tests: the source loaded as ansible-rulebook loads it (on the session's
private redis-server), a fake NetBox (device records by id), and a report in the image's shape."""

from __future__ import annotations

import copy
import json
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils import _validation_token
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import NetBoxError, NetBoxUnreachable
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient
from ansible_collections.bm.lifecycle.plugins.module_utils._validation_token import Identity
from helpers import FakeNetBoxClient, NetBoxCall
from integration.events.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "collections/ansible_collections/bm/lifecycle/extensions/eda/plugins/event_source/validation_webhook.py"
REPORT = ROOT / "tests/fixtures/validation/report_qemu.json"
PLUGIN = runpy.run_path(str(SOURCE))  # how ansible-rulebook loads it


def device(device_id: int, state: str = "validating", tenant: str = "baremetal-staging") -> dict[str, Any]:
    return {
        "id": device_id,
        "name": f"srv{device_id:03d}",
        "tenant": {"id": 1, "name": tenant, "slug": tenant},
        "custom_fields": {"lifecycle_state": {"value": state, "label": state}},
    }


class FakeNetBox(FakeNetBoxClient):
    """Answers GET /api/dcim/devices/<id>/ from ``devices`` and keeps the journal entries POSTed in ``journal``;
    ``down`` makes every request fail as unreachable."""

    devices: dict[int, dict[str, Any]] = {}  # noqa: RUF012 - replaced per test
    journal: list[dict[str, Any]] = []  # noqa: RUF012 - replaced per test
    down = False
    calls = 0

    def answer(self, call: NetBoxCall) -> Any:
        type(self).calls += 1
        if type(self).down:
            raise NetBoxUnreachable("NetBox at http://netbox.invalid did not answer", retryable=True)
        parts = call.path.strip("/").split("/")
        if call.method == "GET" and parts[:3] == ["api", "dcim", "devices"] and len(parts) == 4:
            record = type(self).devices.get(int(parts[3]))
            if record is None:
                raise NetBoxError("NetBox GET: HTTP 404: not found", 404)
            return copy.deepcopy(record)
        if call.method == "POST" and call.path.rstrip("/") == "/api/extras/journal-entries":
            type(self).journal.append(call.body)
            return {"id": len(type(self).journal), **call.body}
        raise NetBoxError(f"unexpected {call.method} {call.path}", 400)


@pytest.fixture
def netbox() -> Iterator[type[FakeNetBox]]:
    FakeNetBox.devices = {7: device(7)}
    FakeNetBox.journal = []
    FakeNetBox.down = False
    FakeNetBox.calls = 0
    yield FakeNetBox


@pytest.fixture
def cfg(redis_server: RedisServer, netbox: type[FakeNetBox], bus: RedisClient) -> Any:
    """The webhook's configuration on the private Redis, with the fake NetBox."""
    config = PLUGIN["Config"](
        {
            "redis_url": redis_server.url,
            "netbox_url": "http://netbox.invalid",
            "netbox_token": "nbt_x.y",
            "plain_http": True,
        }
    )
    config.netbox = netbox
    return config


@pytest.fixture
def report() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REPORT.read_text())
    data["device_id"] = "7"
    return data


def identity_of(report: dict[str, Any]) -> Identity:
    """The server's identity in a report (what its BMC states, too)."""
    return Identity.of(report["hardware"])


def token_for(bus: RedisClient, device_id: int = 7, identity: Identity | None = None) -> str:
    """What provisioning and then the image do: issue (bound to the identity), hand out; the token."""
    identity = identity or identity_of(json.loads(REPORT.read_text()))
    _validation_token.issue(bus, device_id, identity, 600)
    got = _validation_token.handout(bus, device_id, identity, f"request-of-the-image-{device_id}")
    assert got.token is not None, got
    return got.token
