"""NetBox as the operator's console, on the real stack: a device set back to staged through NetBox's REST API (as the
UI does) reaches the real ansible-rulebook through NetBox's signed webhook (delivered by netbox rqworker), and the
rule's bm.lifecycle.rerun puts its BMC's dhcp_lease on the bus, which discovery handles. Read back through pynetbox and
redis-py; an unsigned or wrongly signed POST is refused and changes nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pynetbox
import pytest
import redis
import yaml

from helpers import COLLECTION, ROOT
from integration.events.redis_server import free_port
from integration.events.rulebook import Rulebook

pytestmark = [pytest.mark.stack]

SRV001_BMC_MAC = "94:40:c9:5e:7a:b0"
BMC_IP = "10.1.100.21/24"
PATH = "/api/v1/netbox/event"


def cf(device: Any, name: str) -> Any:
    value = device.custom_fields.get(name)
    return value["value"] if isinstance(value, dict) and "value" in value else value


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def service_rulebook(port: int) -> str:
    """The service's own rules for NetBox changes and leases, with sources on a free port and the test's consumer."""
    [ruleset] = yaml.safe_load((COLLECTION / "extensions/eda/rulebooks/lifecycle.yml").read_text())
    rules = [r for r in ruleset["rules"] if "netbox_change" in r["condition"] or '"dhcp_lease"' in r["condition"]]
    assert len(rules) == 2, rules
    return yaml.safe_dump(
        [
            {
                "name": "operator console",
                "hosts": "all",
                "sources": [
                    {"bm.lifecycle.netbox_webhook": {"port": port}},
                    {
                        "bm.lifecycle.redis_streams": {
                            "event_types": ["dhcp_lease"],
                            "consumer": "pytest-console",
                            "batch_wait_ms": 100,
                        }
                    },
                ],
                "rules": rules,
            }
        ]
    )


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def console(
    stack: dict[str, str], netbox: pynetbox.api, redis_client: redis.Redis, tmp_path: Path
) -> Iterator[tuple[Rulebook, str]]:
    """The rulebook serving the NetBox webhook on a free port, NetBox's webhook pointed at it."""
    assert stack.get("BM_NETBOX_WEBHOOK_SECRET"), "stack.sh up writes the webhook secret to stack.env"
    port = free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    webhook = netbox.extras.webhooks.get(name="bm-lifecycle-operator")
    webhook.update({"payload_url": url})
    rulebook = tmp_path / "console.yml"
    rulebook.write_text(service_rulebook(port))
    service = Rulebook(rulebook, tmp_path / "rulebook.log", stack["BM_REDIS_URL"]).start()
    try:
        service.wait_for(r"netbox_webhook: listening on", timeout=120)
        service.wait_for(r"consuming bm:events:dhcp_lease", timeout=60)
        yield service, url
    finally:
        service.stop()
        subprocess.run([ROOT / "scripts" / "stack.sh", "reset"], check=False, capture_output=True)


def test_setting_a_device_back_to_staged_reruns_discovery(
    console: tuple[Rulebook, str], netbox: pynetbox.api, redis_client: redis.Redis, stack: dict[str, str]
) -> None:
    service, url = console
    srv = netbox.dcim.devices.get(name="srv001")
    ilo = netbox.dcim.interfaces.get(device_id=srv.id, name="ilo")
    ip = netbox.ipam.ip_addresses.create(
        address=BMC_IP, status="active", assigned_object_type="dcim.interface", assigned_object_id=ilo.id
    )
    srv.update({"oob_ip": ip.id, "custom_fields": {"lifecycle_state": "provisioning_failed"}})
    time.sleep(2)  # that change fires nothing (not to staged); give the worker time to prove it
    assert redis_client.xlen("bm:events:dhcp_lease") == 0

    # Unsigned and wrongly signed requests: refused, nothing on the bus, no playbook run.
    body = json.dumps({"object_type": "dcim.device", "data": {"id": srv.id}, "snapshots": {}}).encode()
    assert post(url, body, {}) == 401
    assert post(url, body, {"X-Hook-Signature": hmac.new(b"wrong", body, hashlib.sha512).hexdigest()}) == 403
    assert post(url, body, {"X-Hook-Signature": "not-hex"}) == 403

    # The operator sets it back to staged in NetBox (the REST API, as the UI's edit form does).
    answer = netbox.http_session.patch(
        f"{netbox.base_url}/dcim/devices/{srv.id}/",
        json={"custom_fields": {"lifecycle_state": "staged"}},
        headers={"Authorization": f"Bearer {stack['NETBOX_TOKEN']}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text

    def discovered() -> bool:
        return cf(netbox.dcim.devices.get(srv.id), "lifecycle_state") == "discovery"

    assert wait_until(discovered, 180), service.text()[-4000:]
    entries: Any = redis_client.xrange("bm:events:dhcp_lease")
    [(_entry_id, fields)] = entries
    lease = json.loads(fields["envelope"])
    assert lease["source"] == "bm.lifecycle.rerun"
    assert (lease["data"]["mac"], lease["data"]["ip"]) == (SRV001_BMC_MAC, BMC_IP.split("/", maxsplit=1)[0])
    assert lease["device"] == {"id": srv.id, "name": "srv001"}
    assert lease["data"]["rerun_by"] == "admin"
    assert wait_until(lambda: redis_client.xpending("bm:events:dhcp_lease", "bm-lifecycle")["pending"] == 0, 60)
    followed: Any = redis_client.xrange("bm:events:device_discovered")
    [discovered_event] = [json.loads(f["envelope"]) for _i, f in followed]
    assert discovered_event["causation_id"] == lease["event_id"]
    assert service.text().count("netbox_webhook: refused") == 3
