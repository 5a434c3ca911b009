"""bm.lifecycle.netbox_webhook (loaded as ansible-rulebook loads it) with aiohttp's test client, and the pure parts of
the operator's console: NetBox's signature, the device change, the BMC lease a device would ask for."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import runpy
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import bmc_of
from helpers import COLLECTION

PLUGIN = runpy.run_path(str(COLLECTION / "extensions/eda/plugins/event_source/netbox_webhook.py"))
SECRET = "s3cret-for-the-test"
PATH = "/api/v1/netbox/event"


def payload(before: str | None = "provisioning_failed", after: str = "staged", **data: Any) -> dict[str, Any]:
    """A NetBox 4.7 webhook body (default body template) for a device update."""
    return {
        "event": "updated",
        "timestamp": "2026-12-01T19:00:00.000000+00:00",
        "object_type": "dcim.device",
        "data": {
            "id": 7,
            "name": "srv007",
            "tenant": {"id": 1, "slug": "baremetal-staging"},
            "custom_fields": {"lifecycle_state": {"value": after, "label": after}, "hardened_at": None},
            **data,
        },
        "request": {"id": "0b9c5f6e-1d2a-4c3b-9e8f-7a6b5c4d3e2f", "user": "alice", "method": "PATCH"},
        "snapshots": {
            "prechange": {"custom_fields": {} if before is None else {"lifecycle_state": before}},
            "postchange": {"custom_fields": {"lifecycle_state": after, "hardened_at": None}},
        },
    }


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()


def test_signature_is_netbox_hex_hmac_sha512() -> None:
    body = b'{"a": 1}'
    assert PLUGIN["signature"](SECRET, body) == sign(body)
    PLUGIN["check_signature"](SECRET, body, sign(body).upper())  # hex in any case
    for header, status in ((None, 401), ("", 401), (sign(body, "other"), 403), (sign(b"{}"), 403), ("zz\u00e9", 403)):
        with pytest.raises(PLUGIN["Refused"]) as refused:
            PLUGIN["check_signature"](SECRET, body, header)
        assert refused.value.status == status


def test_device_change_from_the_snapshots() -> None:
    change = PLUGIN["device_change"](payload())["netbox_change"]
    assert change == {
        "event": "updated",
        "object_type": "dcim.device",
        "request_id": "0b9c5f6e-1d2a-4c3b-9e8f-7a6b5c4d3e2f",
        "username": "alice",
        "timestamp": "2026-12-01T19:00:00.000000+00:00",
        "device": {"id": 7, "name": "srv007"},
        "tenant": "baremetal-staging",
        "lifecycle_state": {"before": "provisioning_failed", "after": "staged"},
        "hardened_at": {"before": "", "after": ""},
    }
    assert PLUGIN["device_change"](payload(before=None))["netbox_change"]["lifecycle_state"]["before"] == ""


@pytest.mark.parametrize(
    "body",
    [[], {"object_type": "dcim.interface", "data": {"id": 1}, "snapshots": {}}, {"object_type": "dcim.device"},
     {"object_type": "dcim.device", "data": {"id": "7"}, "snapshots": {}}],
)  # fmt: skip
def test_anything_but_a_device_change_is_422(body: Any) -> None:
    with pytest.raises(PLUGIN["Refused"]) as refused:
        PLUGIN["device_change"](body)
    assert refused.value.status == 422


def test_arguments_are_checked_up_front() -> None:
    for args in ({"port": "5001"}, {"bogus": 1}, {"path": "no-slash"}, {"max_body_bytes": 10}):
        with pytest.raises(ValueError, match="netbox_webhook"):
            PLUGIN["Config"](args)


async def _exchange(cfg_args: dict[str, Any], requests: list[tuple[bytes, dict[str, str]]]) -> tuple[list[int], list]:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    webhook = PLUGIN["Webhook"](PLUGIN["Config"](cfg_args), queue)
    statuses = []
    async with TestClient(TestServer(webhook.app())) as client:
        for body, headers in requests:
            answer = await client.post(PATH, data=body, headers={"Content-Type": "application/json", **headers})
            statuses.append(answer.status)
    events = []
    while not queue.empty():
        events.append(queue.get_nowait())
    return statuses, events


def test_only_a_signed_device_change_reaches_the_rulebook() -> None:
    good = json.dumps(payload()).encode()
    not_json = b"{not json"
    statuses, events = asyncio.run(
        _exchange(
            {"secret": SECRET},
            [
                (good, {}),
                (good, {"X-Hook-Signature": sign(good, "wrong")}),
                (not_json, {"X-Hook-Signature": sign(not_json)}),
                (b"[]", {"X-Hook-Signature": sign(b"[]")}),
                (good, {"X-Hook-Signature": sign(good)}),
            ],
        )
    )
    assert statuses == [401, 403, 400, 422, 202]
    assert [e["netbox_change"]["device"] for e in events] == [{"id": 7, "name": "srv007"}]


def test_too_large_is_413() -> None:
    big = json.dumps(payload(padding="x" * 4096)).encode()
    statuses, events = asyncio.run(
        _exchange({"secret": SECRET, "max_body_bytes": 1024}, [(big, {"X-Hook-Signature": sign(big)})])
    )
    assert (statuses, events) == ([413], [])


def test_without_a_secret_everything_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BM_NETBOX_WEBHOOK_SECRET", raising=False)
    good = json.dumps(payload()).encode()
    statuses, events = asyncio.run(_exchange({}, [(good, {"X-Hook-Signature": sign(good, "")})]))
    assert (statuses, events) == ([503], [])


def test_the_secret_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BM_NETBOX_WEBHOOK_SECRET", SECRET)
    good = json.dumps(payload()).encode()
    statuses, events = asyncio.run(_exchange({}, [(good, {"X-Hook-Signature": sign(good)})]))
    assert statuses == [202] and len(events) == 1


# --- the lease a BMC would ask for ------------------------------------------------------------------------------------

DEVICE = {"id": 7, "name": "srv007", "oob_ip": {"id": 3, "address": "10.1.100.21/24"}}


def iface(name: str, mgmt: bool, mac: str | None) -> dict[str, Any]:
    return {"id": hash(name) % 1000, "name": name, "mgmt_only": mgmt,
            "primary_mac_address": {"id": 1, "mac_address": mac} if mac else None, "mac_address": mac}  # fmt: skip


def test_bmc_of_the_one_mgmt_interface_with_a_mac() -> None:
    found = bmc_of(DEVICE, [iface("eno1", False, "94:40:C9:00:00:01"), iface("ilo", True, "94-40-C9-5E-7A-B0")])
    assert (found["mac"], found["ip"], found["interface"]["name"]) == ("94:40:c9:5e:7a:b0", "10.1.100.21", "ilo")
    # NetBox 4.2+: a MAC assigned to the interface but not made primary (as bm.lifecycle.demo_data registers it)
    unprimary: dict[str, Any] = {"id": 1, "name": "ilo", "mgmt_only": True, "primary_mac_address": None,
                 "mac_addresses": [{"id": 9, "mac_address": "94:40:C9:5E:7A:B0"}]}  # fmt: skip
    assert bmc_of(DEVICE, [unprimary])["mac"] == "94:40:c9:5e:7a:b0"
    assert bmc_of(DEVICE, [{**unprimary, "mac_addresses": unprimary["mac_addresses"] * 2}])["mac"] is None


@pytest.mark.parametrize(
    ("device", "interfaces", "why"),
    [
        (DEVICE, [iface("ilo", True, None)], "0 management-only interfaces"),
        (DEVICE, [iface("ilo", True, "94:40:c9:00:00:01"), iface("bmc2", True, "94:40:c9:00:00:02")], "2 management"),
        ({**DEVICE, "oob_ip": None}, [iface("ilo", True, "94:40:c9:00:00:01")], "no oob_ip"),
    ],
)
def test_bmc_of_says_why_there_is_no_lease(device: dict[str, Any], interfaces: list[dict[str, Any]], why: str) -> None:
    found = bmc_of(device, interfaces)
    assert found["mac"] is None and found["ip"] is None
    assert why in found["msg"]
