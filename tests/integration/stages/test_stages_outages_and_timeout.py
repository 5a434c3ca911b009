"""NetBox down for 20 s, the validation timeout, and the whole path through the real ansible-rulebook."""

from __future__ import annotations

import contextlib
import datetime
import json
import select
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from typing import Any

import pynetbox
import pytest

from helpers import COLLECTION, ansible_playbook
from integration.events.redis_server import free_port
from integration.events.rulebook import Rulebook
from integration.stages.conftest import SRV001_BMC_MAC, Stages, cf, journal, snapshot

pytestmark = [pytest.mark.stack, pytest.mark.slow]

LEASE_IP = "10.1.100.21"


class TcpProxy:
    """A loopback TCP forwarder we start and stop: NetBox "goes down" for the stages without touching the shared
    NetBox. Stopped, its port refuses connections."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self.server: socketserver.ThreadingTCPServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        target = self.target

        class Pipe(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with socket.create_connection(target, timeout=30) as upstream:
                    sockets = [self.request, upstream]
                    for _ in range(100_000):
                        readable, _, _ = select.select(sockets, [], [], 30)
                        if not readable:
                            return
                        for s in readable:
                            data = s.recv(65536)
                            if not data:
                                return
                            (upstream if s is self.request else self.request).sendall(data)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Pipe)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@contextlib.contextmanager
def proxy_to(netbox_url: str) -> Iterator[TcpProxy]:
    host, port = netbox_url.split("://", 1)[1].rstrip("/").split(":")
    proxy = TcpProxy(free_port(), (host, int(port)))
    try:
        yield proxy
    finally:
        proxy.stop()


def test_netbox_down_for_20_s_leaves_nothing_half_written_and_the_entry_pending(
    netbox: pynetbox.api, stages: Stages, stack: dict[str, str]
) -> None:
    with proxy_to(stack["NETBOX_API"]) as proxy:
        via_proxy = f"http://127.0.0.1:{proxy.port}"
        stages.publish("dhcp_lease", {"mac": SRV001_BMC_MAC, "ip": LEASE_IP, "hostname": "ilo-srv001"})
        batch = stages.batch_file(stages.take("dhcp_lease"))
        before = snapshot(netbox)
        down_since = time.monotonic()
        run = stages.run("discovery", "-e", batch, NETBOX_API=via_proxy)  # NetBox unreachable: 3 tries, then fail
        assert run.rc != 0
        assert "after 3 tries" in run.output()
        assert snapshot(netbox) == before
        assert stages.pending("dhcp_lease") == 1  # not acknowledged: the event source hands it over again
        assert stages.events("device_discovered") == []
        time.sleep(max(0.0, 20 - (time.monotonic() - down_since)))
        proxy.start()  # NetBox is back
        run = stages.run("discovery", "-e", batch, NETBOX_API=via_proxy)  # the redelivered entry
        assert run.rc == 0, run.output()
    srv = netbox.dcim.devices.get(name="srv001")
    assert cf(srv, "lifecycle_state") == "discovery"
    assert len(journal(netbox, srv)) == 1
    assert stages.pending("dhcp_lease") == 0
    assert len(stages.events("device_discovered")) == 1


def test_validation_timeout_moves_only_stale_devices(netbox: pynetbox.api, stages: Stages) -> None:
    old = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fresh = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    srv = netbox.dcim.devices.get(name="srv001")
    srv.custom_fields.update(lifecycle_state="validating", lifecycle_changed_at=old, pxe_boot_initiated_at=old)
    srv.save()
    srv002 = netbox.dcim.devices.create(
        name="srv002",
        device_type=srv.device_type.id,
        role=srv.role.id,
        site=srv.site.id,
        tenant=srv.tenant.id,
        status="active",
        custom_fields={"lifecycle_state": "validating", "lifecycle_changed_at": fresh},
    )
    queued = netbox.dcim.devices.create(
        name="srv003",
        device_type=srv.device_type.id,
        role=srv.role.id,
        site=srv.site.id,
        tenant=srv.tenant.id,
        status="active",
        custom_fields={"lifecycle_state": "validating", "lifecycle_changed_at": old},
    )
    stages.bus.set(f"bm:validation_token:{srv.id}", "sha256:x")
    stages.bus.set(f"bm:validation_token:{queued.id}", f"accepted:{int(time.time()) - 60}", ex=3600)  # report queued
    run = stages.run("validation_timeout")
    assert run.rc == 0, run.output()
    assert cf(netbox.dcim.devices.get(queued.id), "lifecycle_state") == "validating"
    assert not journal(netbox, queued)
    assert stages.bus.exists(f"bm:validation_token:{queued.id}") == 1
    srv = netbox.dcim.devices.get(name="srv001")
    assert cf(srv, "lifecycle_state") == "validation_failed"
    [entry] = journal(netbox, srv)
    assert "validating -> validation_failed" in entry and "no validation report within 30 minutes" in entry
    assert cf(netbox.dcim.devices.get(srv002.id), "lifecycle_state") == "validating"
    assert stages.bus.exists(f"bm:validation_token:{srv.id}") == 0
    [failed] = stages.events("stage_failed")
    assert failed["data"]["reason"] == "validation_timeout"
    assert stages.run("validation_timeout").rc == 0  # again: nothing more
    assert len(journal(netbox, netbox.dcim.devices.get(name="srv001"))) == 1


RACE = """
- name: A validation report lands between the timeout's read and its write
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Overdue devices
      bm.lifecycle.stage_batch:
        event_type: validation_report
        select: validation_overdue
      register: overdue
    - name: The report's transition, as the validation_report stage writes it
      bm.lifecycle.lifecycle_transition:
        devices: "{{ overdue.batch | map(attribute='device.id') | list }}"
        transition: complete_validation
        reason: the report landed
    - name: The timeout's failure, compare-and-set on what it read
      bm.lifecycle.stage_finish:
        batch: "{{ overdue.batch }}"
        stage: validation
        fail_transition: time_out_validation
      register: finish
    - name: Its outcome
      ansible.builtin.debug:
        msg: "RACE {{ finish.summary | to_json }} {{ finish.published }}"
"""


def test_a_report_that_lands_during_the_timeout_wins(netbox: pynetbox.api, stages: Stages) -> None:
    """The timeout read srv001 as overdue, then its report moved it on: no validation_failed, no stage_failed."""
    old = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M:%SZ")
    srv = netbox.dcim.devices.get(name="srv001")
    srv.custom_fields.update(lifecycle_state="validating", lifecycle_changed_at=old)
    srv.save()
    playbook = stages.tmp / "race.yml"
    playbook.write_text(RACE)
    run = ansible_playbook(str(playbook), timeout=300, **stages.env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    line = next(x for x in run.stdout.splitlines() if "RACE " in x)
    assert '\\"skipped\\": 1' in line or '"skipped": 1' in line, line
    assert cf(netbox.dcim.devices.get(name="srv001"), "lifecycle_state") == "validation_completed"
    assert not stages.events("stage_failed")


def test_lease_to_validating_through_the_real_rulebook(
    netbox: pynetbox.api, stages: Stages, fleet: Any, stack: dict[str, str], tmp_path: Any, monkeypatch: Any
) -> None:
    for key, value in stages.env.items():
        monkeypatch.setenv(key, value)
    rulebook = COLLECTION / "extensions" / "eda" / "rulebooks" / "lifecycle.yml"
    service = Rulebook(rulebook, tmp_path / "rulebook.log", stack["BM_REDIS_URL"]).start()
    try:
        stages.publish("dhcp_lease", {"mac": SRV001_BMC_MAC, "ip": LEASE_IP, "hostname": "ilo-srv001"})
        deadline = time.monotonic() + 180
        state = None
        while time.monotonic() < deadline:
            state = cf(netbox.dcim.devices.get(name="srv001"), "lifecycle_state")
            if state == "validating" and stages.pending("device_discovered") == 0:
                break
            time.sleep(1)
        assert state == "validating", service.text()[-4000:]
    finally:
        service.stop()
    counters = fleet.counters(0)
    assert counters["resets"] == {"On": 1}
    assert len(counters["boot_override_history"]) == 1
    assert len(journal(netbox, netbox.dcim.devices.get(name="srv001"))) == 2
    assert stages.pending("dhcp_lease") == 0
    assert json.dumps(stages.events("pxe_boot_initiated"))
