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

from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import NetBoxError, NetBoxUnreachable
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient
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
    """Answers GET /api/dcim/devices/<id>/ from ``devices``; ``down`` makes every request fail as unreachable."""

    devices: dict[int, dict[str, Any]] = {}  # noqa: RUF012 - replaced per test
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
        raise NetBoxError(f"unexpected {call.method} {call.path}", 400)


@pytest.fixture
def netbox() -> Iterator[type[FakeNetBox]]:
    FakeNetBox.devices = {7: device(7)}
    FakeNetBox.down = False
    FakeNetBox.calls = 0
    yield FakeNetBox


@pytest.fixture
def cfg(redis_server: RedisServer, netbox: type[FakeNetBox], bus: RedisClient) -> Any:
    """The webhook's configuration on the private Redis, with the fake NetBox."""
    config = PLUGIN["Config"](
        {"redis_url": redis_server.url, "netbox_url": "http://netbox.invalid", "netbox_token": "nbt_x.y"}
    )
    config.netbox = netbox
    return config


@pytest.fixture
def report() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REPORT.read_text())
    data["device_id"] = "7"
    return data
