"""event_publish (check -> apply -> apply again) and `ansible-playbook bm.lifecycle.events` (event_info, event_replay),
run with the real ansible-playbook and verified with a separate Redis reader."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils import _envelope as env
from ansible_collections.bm.lifecycle.plugins.module_utils import _redis_events as ev
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient, text
from integration.events.redis_server import RedisServer
from integration.events.rulebook import ROOT, VENV_BIN, service_env

pytestmark = pytest.mark.slow

PLAY = """---
- name: Publish and acknowledge
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Publish the follow-up and acknowledge the entry
      bm.lifecycle.event_publish:
        source: test.module
        events:
          - event_type: device_discovered
            cause: "{{ entry.envelope }}"
            device: {id: 42, name: srv-42}
            data: {bmc_ip: "{{ entry.envelope.data.ip }}"}
        ack: ["{{ entry }}"]
      register: out
    - name: Show
      ansible.builtin.debug:
        var: out
"""


def playbook(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(ROOT / "inventory/local.yml"), *args]
    environ = service_env(redis_url, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    return subprocess.run(cmd, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)


def task_results(out: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    doc = json.loads(out.stdout[out.stdout.index("{") :])
    return [task["hosts"]["localhost"] for play in doc["plays"] for task in play["tasks"]]


def test_event_publish_check_apply_apply_again(bus: RedisClient, redis_server: RedisServer, tmp_path: Path) -> None:
    lease = env.new_event("dhcp_lease", {"ip": "192.0.2.77"}, source="t")
    ev.publish(bus, [lease])
    bus.call("XGROUP", "CREATE", "bm:events:dhcp_lease", "bm-lifecycle", "0")
    rows = bus.call("XREADGROUP", "GROUP", "bm-lifecycle", "c", "COUNT", 1, "STREAMS", "bm:events:dhcp_lease", ">")
    entry = {"stream": "bm:events:dhcp_lease", "id": text(rows[0][1][0][0]), "group": "bm-lifecycle",
             "delivery_count": 1, "envelope": lease}  # fmt: skip
    (tmp_path / "play.yml").write_text(PLAY)
    extra = ["-e", json.dumps({"entry": entry}), str(tmp_path / "play.yml")]

    check = task_results(playbook(redis_server.url, "--check", *extra))[0]
    assert check["changed"] is True and bus.call("EXISTS", "bm:events:device_discovered") == 0
    assert bus.call("XPENDING", "bm:events:dhcp_lease", "bm-lifecycle")[0] == 1

    first = task_results(playbook(redis_server.url, *extra))[0]
    assert first["changed"] is True
    [published] = first["published"]
    assert published["entry_id"] and not published["duplicate"]
    assert bus.call("XPENDING", "bm:events:dhcp_lease", "bm-lifecycle")[0] == 0
    [row] = bus.call("XRANGE", "bm:events:device_discovered", "-", "+")
    follow = env.decode(row[1][1])
    assert follow["causation_id"] == lease["event_id"] and follow["device"] == {"id": 42, "name": "srv-42"}

    again = task_results(playbook(redis_server.url, *extra))[0]
    assert again["changed"] is False and again["published"][0]["duplicate"] is True
    assert bus.call("XLEN", "bm:events:device_discovered") == 1


def test_events_playbook_shows_and_replays(bus: RedisClient, redis_server: RedisServer) -> None:
    lease = env.new_event("dhcp_lease", {"ip": "192.0.2.78"}, source="t")
    ev.publish(bus, [lease])
    bus.call("XGROUP", "CREATE", "bm:events:dhcp_lease", "bm-lifecycle", "0")
    rows = bus.call("XREADGROUP", "GROUP", "bm-lifecycle", "c", "COUNT", 1, "STREAMS", "bm:events:dhcp_lease", ">")
    entry_id = text(rows[0][1][0][0])
    bus.pipeline([
        ("MULTI",),
        *ev.dead_letter(
            "bm:events:dhcp_lease", entry_id, "bm-lifecycle", reason="delivered 6 times, more than max_deliveries 5",
            fields={b"envelope": env.encode(lease).encode()}, delivery_count=6,
        ),
        ("EXEC",),
    ])  # fmt: skip
    shown = task_results(playbook(redis_server.url, "bm.lifecycle.events"))
    lines = json.dumps(shown)
    assert "bm:events:dhcp_lease: 1 entries; bm-lifecycle pending 0" in lines
    assert "delivered 6x  delivered 6 times, more than max_deliveries 5" in lines
    dead_id = text(bus.call("XRANGE", env.DEAD_LETTER_STREAM, "-", "+")[0][0])

    replayed = task_results(playbook(redis_server.url, "bm.lifecycle.events", "-e", f"replay={dead_id}"))
    assert replayed[3]["changed"] is True and bus.call("XLEN", "bm:events:dhcp_lease") == 2
    again = task_results(playbook(redis_server.url, "bm.lifecycle.events", "-e", f"replay={dead_id}"))
    assert again[3]["changed"] is False and "was replayed before" in json.dumps(again[4])
    assert bus.call("XLEN", "bm:events:dhcp_lease") == 2
