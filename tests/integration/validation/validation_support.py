"""Support of the validation integration tests (conftest.py re-exports the fixtures): the webhook serving for real
(stack NetBox and Redis; TLS with the stack's certificate, as by default), switches in NetBox for the report's LLDP
neighbours, the report as the validation image builds it, and a raw NetBox reader."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import runpy
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pynetbox
import pytest
import redis

from helpers import COLLECTION, ROOT

SOURCE = COLLECTION / "extensions/eda/plugins/event_source/validation_webhook.py"
REPORT = ROOT / "tests/fixtures/validation/report_qemu.json"
GROUP = "bm-lifecycle"
STREAM = "bm:events:validation_report"

# The server's data NICs as the report names them, with their MACs (eth0/eth1 get the mock BMC's NIC MACs).
NICS = ["eth0", "eth1", "eth2", "eth3", "eth4", "eth5"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def webhook(stack: dict[str, str], redis_client: redis.Redis) -> Iterator[str]:
    """The bm.lifecycle.validation_webhook source serving HTTPS on a loopback port (the stack's certificate, from
    BM_WEBHOOK_CERTFILE/KEYFILE as the service gets it); yields the report URL."""
    plugin = runpy.run_path(str(SOURCE))
    port = free_port()
    cfg = plugin["Config"](
        {
            "port": port,
            "redis_url": stack["BM_REDIS_URL"],
            "netbox_url": stack["NETBOX_API"],
            "netbox_token": stack["NETBOX_TOKEN"],
        }
    )
    loop = asyncio.new_event_loop()
    ready = asyncio.Event()
    task = loop.create_task(plugin["serve"](cfg, ready))

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not ready.is_set() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ready.is_set(), "the webhook did not start"
    assert cfg.ssl is not None, "TLS is the webhook's default"
    yield f"https://127.0.0.1:{port}/api/v1/validation/report"
    loop.call_soon_threadsafe(task.cancel)
    thread.join(10)
    loop.close()


def ask_token(report_url: str, report: dict[str, Any], request_id: str = "request-of-the-image-1") -> tuple[int, Any]:
    """The image's token request (POST .../token next to the report URL) with the identity its report names."""
    system = {k: report["hardware"].get(k) for k in ("uuid", "serial")}
    body = {"device_id": report["device_id"], "request_id": request_id, "system": system}
    return post(report_url.rsplit("/", 1)[0] + "/token", json.dumps(body).encode(), None)


def hand_out(report_url: str, report: dict[str, Any]) -> str:
    """The token the webhook hands the image of the report's server (asserted: handed out)."""
    code, answer = ask_token(report_url, report)
    assert code == 200, answer
    return str(answer["token"])


def tls() -> ssl.SSLContext:
    """What the image verifies the webhook with: the stack's CA (bm.ca=, BM_VALIDATION_CALLBACK_CA)."""
    return ssl.create_default_context(cafile=os.environ["BM_VALIDATION_CALLBACK_CA"])


def post(url: str, body: bytes, token: str | None, content_type: str = "application/json") -> tuple[int, Any]:
    """One POST as the image sends it (curl, verifying the webhook with the CA): status and decoded JSON answer."""
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30, context=tls()) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


# --- NetBox: switches the report's neighbours are cabled to ---------------------------------------------------------


def _get_or_create(endpoint: Any, lookup: dict[str, Any], extra: dict[str, Any] | None = None) -> Any:
    found = endpoint.get(**lookup)
    return found or endpoint.create({**lookup, **(extra or {})})


@pytest.fixture(autouse=True)
def _leave_netbox_clean(netbox: pynetbox.api) -> Iterator[None]:
    """Reset NetBox after the test too: the session fixture templates whatever the database holds when a session
    starts, so leftovers of a failed test would become every later test's starting point."""
    yield
    subprocess.run([ROOT / "scripts" / "stack.sh", "reset"], check=False, capture_output=True)


@pytest.fixture
def switches(netbox: pynetbox.api) -> dict[str, Any]:
    """tor-a (found by name), tor-b (by chassis MAC), tor-c (by management IP) with ports, plus a peer server
    holding a cable on tor-a Ethernet4 (the conflict)."""
    site = netbox.dcim.sites.get(slug="dc1")
    maker = _get_or_create(netbox.dcim.manufacturers, {"name": "Lab Switches", "slug": "lab-switches"})
    dtype = _get_or_create(netbox.dcim.device_types, {"model": "LS-48", "slug": "ls-48"}, {"manufacturer": maker.id})
    role = _get_or_create(netbox.dcim.device_roles, {"name": "Switch", "slug": "switch"}, {"color": "9e9e9e"})
    out: dict[str, Any] = {}
    for name in ("tor-a", "tor-b", "tor-c", "peer01"):
        dev = netbox.dcim.devices.create(
            {"name": name, "device_type": dtype.id, "role": role.id, "site": site.id, "status": "active"}
        )
        ports = {
            n: netbox.dcim.interfaces.create({"device": dev.id, "name": n, "type": "10gbase-t"})
            for n in ("Ethernet1", "Ethernet2", "Ethernet3", "Ethernet4", "Ethernet7", "mgmt0")
        }
        out[name] = {"device": dev, "ports": ports}
    # tor-b: chassis MAC on its mgmt0, Ethernet2 has its own MAC (the port id it announces)
    netbox.dcim.interfaces.update([
        {"id": out["tor-b"]["ports"]["mgmt0"].id, "mac_address": "0c:b0:00:00:02:00"},
        {"id": out["tor-b"]["ports"]["Ethernet2"].id, "mac_address": "0c:b0:00:00:02:02"},
    ])  # fmt: skip
    # tor-c: management IP on mgmt0; Ethernet7 is what its port description names (port id is a local number)
    netbox.ipam.ip_addresses.create(
        {"address": "192.0.2.13/24", "assigned_object_type": "dcim.interface",
         "assigned_object_id": out["tor-c"]["ports"]["mgmt0"].id}
    )  # fmt: skip
    # the conflict: tor-a Ethernet4 is already cabled to peer01 Ethernet1
    netbox.dcim.cables.create(
        {
            "a_terminations": [{"object_type": "dcim.interface", "object_id": out["tor-a"]["ports"]["Ethernet4"].id}],
            "b_terminations": [{"object_type": "dcim.interface", "object_id": out["peer01"]["ports"]["Ethernet1"].id}],
            "status": "connected",
        }
    )
    return out


# --- the report, as the image builds it -------------------------------------------------------------------------------


def _neighbour(local: str, chassis_name: str, chassis_id: tuple[str, str], port_id: tuple[str, str], descr: str,
               mgmt: list[str]) -> dict[str, Any]:  # fmt: skip
    return {
        local: {
            "via": "LLDP",
            "chassis": {chassis_name: {"id": {"type": chassis_id[0], "value": chassis_id[1]}, "mgmt-ip": mgmt}},
            "port": {"id": {"type": port_id[0], "value": port_id[1]}, "descr": descr, "ttl": "120"},
        }
    }


def build_report(device_id: int, serial: str, macs: list[str]) -> dict[str, Any]:
    """report_qemu.json with this server's id, serial and NICs, and LLDP neighbours of every kind:
    eth0 tor-a by (short) name / port by name; eth1 tor-b by chassis MAC / port by MAC; eth2 tor-c by management IP /
    port by description; eth3 a switch NetBox does not know; eth4 link but no neighbour; eth5 the conflicting port."""
    report: dict[str, Any] = copy.deepcopy(json.loads(REPORT.read_text()))
    report["device_id"] = str(device_id)
    report["hardware"]["serial"] = serial
    report["raw"]["dmidecode"] = report["raw"]["dmidecode"].replace("CZJ0000000", serial)
    template = report["interfaces"][1]
    physical = [{**template, "name": n, "mac": m, "parentdev": f"0000:00:0{i + 3}.0"} for i, (n, m) in
                enumerate(zip(NICS, macs, strict=True))]  # fmt: skip
    virtual = [i for i in report["interfaces"] if i["kind"] or i["parentbus"] == "usb"]
    report["interfaces"] = physical + virtual
    report["raw"]["ip_link"] = []  # the summary uses the interfaces list
    report["lldp"] = {
        "lldp": {
            "interface": [
                _neighbour("eth0", "tor-a.lab.example", ("mac", "0c:a0:00:00:01:01"), ("ifname", "Ethernet1"),
                           "srv eth0", ["192.0.2.11"]),
                _neighbour("eth1", "switch-without-that-name", ("mac", "0C-B0-00-00-02-00"),
                           ("mac", "0c:b0:00:00:02:02"), "", []),
                _neighbour("eth2", "tor-c-sysname", ("local", "tc-1"), ("local", "7"), "Ethernet7", ["192.0.2.13"]),
                _neighbour("eth3", "ghost-switch", ("mac", "0c:ff:00:00:00:01"), ("ifname", "swp9"), "", []),
                _neighbour("eth5", "tor-a", ("mac", "0c:a0:00:00:01:01"), ("ifname", "Ethernet4"), "", []),
            ]
        }
    }  # fmt: skip
    return report


def server_macs(first_two: list[str]) -> list[str]:
    return [*first_two, "94:40:c9:aa:00:02", "94:40:c9:aa:00:03", "94:40:c9:aa:00:04", "94:40:c9:aa:00:05"]


# --- the bus, as bm.lifecycle.redis_streams hands it over -----------------------------------------------------------


def take(bus: redis.Redis, count: int = 50) -> dict[str, Any]:
    with contextlib.suppress(redis.ResponseError):
        bus.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    rows: Any = bus.xreadgroup(GROUP, "pytest", {STREAM: ">"}, count=count) or []
    entries = [
        {"stream": STREAM, "id": entry_id, "group": GROUP, "delivery_count": 1, "envelope": json.loads(f["envelope"])}
        for _, items in rows
        for entry_id, f in items
    ]
    return {"event_type": "validation_report", "stream": STREAM, "group": GROUP, "consumer": "pytest",
            "batch_size": len(entries), "entries": entries}  # fmt: skip


# --- the raw reader: pynetbox, never the module under test ------------------------------------------------------------


def cf(record: Any, name: str) -> Any:
    value = record.custom_fields.get(name)
    return value["value"] if isinstance(value, dict) and "value" in value else value


def snapshot(nb: pynetbox.api) -> dict[str, Any]:
    """Everything the webhook or the stage could write."""
    return {
        "devices": sorted(
            (d.id, d.name, d.serial, d.device_type.id, json.dumps(dict(d.custom_fields), sort_keys=True))
            for d in nb.dcim.devices.all()
        ),
        "interfaces": sorted((i.device.id, i.name, str(i.mac_address)) for i in nb.dcim.interfaces.all()),
        "macs": sorted((str(m.mac_address), m.assigned_object_id) for m in nb.dcim.mac_addresses.all()),
        "cables": sorted(
            tuple(sorted(t.object_id for t in [*c.a_terminations, *c.b_terminations])) for c in nb.dcim.cables.all()
        ),
        "device_types": sorted((t.manufacturer.name, t.model) for t in nb.dcim.device_types.all()),
        "manufacturers": sorted(m.name for m in nb.dcim.manufacturers.all()),
        "journal": len(list(nb.extras.journal_entries.all())),
    }


def pxe_callback_file(path: Path) -> dict[str, str]:
    """The kernel parameters of a rendered boot file (bm.device_id=, bm.callback=), as the image reads its
    /proc/cmdline."""
    words = path.read_text().split()
    return {w.split("=", 1)[0][3:]: w.split("=", 1)[1] for w in words if w.startswith("bm.") and "=" in w}
