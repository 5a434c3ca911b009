"""schemathesis against the webhook's own OpenAPI document: no generated request (valid or not) gets a 5xx.

The webhook runs for real (aiohttp on a loopback port, private Redis, fake NetBox in which every device is in
validating). Before each call a real single-use token is issued and handed out for the generated device_id (when it is
one), bound to the identity the generated report (or token request) claims, so the generated reports get past
authentication and the identity check and are written to the stream, not just refused at the door; generated token
requests meet that handed-out token (a second request: a theft)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis

from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient, RedisSettings
from ansible_collections.bm.lifecycle.plugins.module_utils._validation_token import Identity
from helpers import NetBoxCall
from unit.validation_webhook.webhook_support import PLUGIN, FakeNetBox, device, token_for

DOC_CONFIG = PLUGIN["Config"]({"netbox_url": "http://netbox.invalid", "netbox_token": "nbt_x.y", "plain_http": True})
schema = schemathesis.openapi.from_dict(PLUGIN["openapi"](DOC_CONFIG))
STATUSES: dict[int, int] = {}


class EveryDeviceValidating(FakeNetBox):
    def answer(self, call: NetBoxCall) -> Any:
        parts = call.path.strip("/").split("/")
        if call.method == "GET" and len(parts) == 4 and parts[3].isdigit():
            return device(int(parts[3]))
        return super().answer(call)


@pytest.fixture(scope="module")
def server(redis_server: Any) -> Iterator[tuple[str, RedisClient]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = PLUGIN["Config"](
        {
            "port": port,
            "redis_url": redis_server.url,
            "netbox_url": "http://netbox.invalid",
            "netbox_token": "nbt_x",
            "plain_http": True,
        }
    )
    cfg.netbox = EveryDeviceValidating
    loop = asyncio.new_event_loop()
    ready = asyncio.Event()
    task = loop.create_task(PLUGIN["serve"](cfg, ready))

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    for _ in range(200):
        if ready.is_set():
            break
        threading.Event().wait(0.025)
    bus = RedisClient(RedisSettings(redis_server.url), timeout=5)
    bus.call("FLUSHALL")
    yield f"http://127.0.0.1:{port}", bus
    loop.call_soon_threadsafe(task.cancel)
    thread.join(10)
    bus.close()
    loop.close()
    print(f"schemathesis: responses by status {dict(sorted(STATUSES.items()))}")


def claimed(body: dict[str, Any]) -> Identity | None:
    """The identity a generated report claims (so that its token is bound to it), None if it claims none."""
    try:
        hardware = PLUGIN["_validation_report"].summarize(body)["hardware"] if "hardware" in body else body["system"]
        identity = PLUGIN["presented_identity"](hardware)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return identity or None


@schema.parametrize()
@hypothesis.settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case: Any, server: tuple[str, RedisClient]) -> None:
    base_url, bus = server
    body = case.body
    device_id = body.get("device_id") if isinstance(body, dict) else None
    if isinstance(device_id, str) and re.fullmatch(r"[1-9][0-9]{0,9}", device_id):
        token = token_for(bus, int(device_id), claimed(body))
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
    response = case.call(base_url=base_url)
    STATUSES[response.status_code] = STATUSES.get(response.status_code, 0) + 1
    assert response.status_code < 500, response.text[:500]
    ctype = {k.lower(): v for k, v in response.headers.items()}["content-type"]
    assert str(ctype[0] if isinstance(ctype, list) else ctype).startswith("application/json")
