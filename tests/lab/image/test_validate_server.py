"""iso/validate_server.sh for real: in a network namespace, a real lldpd "switch" on a veth, a real HTTP receiver on
the namespace's loopback, run by dash and by busybox ash. Only the kernel command line, the work directory, the
debugfs root and the power-off command are redirected (environment overrides the script documents)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils._validation_parsers import ip_links, lldp_neighbors
from bm_lab.netns import IP
from lab.image.labkit import Lab, needs

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "iso" / "validate_server.sh"
TOKEN = "tok-3f9a1c77e2-0123456789abcdef"  # what receiver.py hands out
SHELLS = {"dash": ["sh"], "busybox": ["busybox", "sh"]}


def run_script(
    lab: Lab, ns: str, shell: str, cmdline: str, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    (lab.workdir / "cmdline").write_text(cmdline + "\n")
    environment = dict(
        os.environ,
        BM_CMDLINE_FILE=str(lab.workdir / "cmdline"),
        BM_WORKDIR=str(lab.workdir / "run"),
        BM_DEBUGFS=str(lab.workdir / "debugfs"),
        BM_POWEROFF_CMD=f"echo powered-off >> {lab.workdir / 'poweroff'}",
        BM_BACKOFF_MAX="1",
        **env,
    )
    return subprocess.run(
        [IP, "netns", "exec", ns, *SHELLS[shell], str(SCRIPT)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def requests(directory: Path, kind: str = "request") -> list[dict[str, Any]]:
    files = sorted(directory.glob(f"{kind}-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    return [json.loads(f.read_text()) for f in files]


@pytest.mark.slow
@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_report_with_lldp_retries_until_2xx_then_powers_off(lab: Lab, shell: str) -> None:
    needs("/usr/sbin/lldpd", "/usr/sbin/lldpctl", "curl", "jq", "busybox")
    srv, sw = lab.netns("srv"), lab.netns("sw")
    lab.veth(srv, "eno1", sw, "swp1", mac_a="94:40:C9:5E:7A:B0")
    lab.switch(sw, "swp1", "tor-a.lab.example", mgmt="192.0.2.11")
    received = lab.receiver(srv, 18080, 503, 502, 200, "token=503", "token=200")
    i40e = lab.workdir / "debugfs" / "i40e" / "0000:3b:00.0"
    i40e.mkdir(parents=True)
    (i40e / "command").write_text("")

    result = run_script(
        lab,
        srv,
        shell,
        "BOOT_IMAGE=vmlinuz quiet bm.device_id=42 "
        "bm.callback=http://127.0.0.1:18080/api/v1/validation/report bm.nics=eno1 bm.lldp_wait=20 bm.poweroff_delay=0",
    )
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stderr + result.stdout
    assert not (lab.workdir / "run" / "auth.header").exists()
    assert (lab.workdir / "poweroff").read_text() == "powered-off\n"
    assert (i40e / "command").read_text() == "lldp stop\n"

    asked = requests(received, "token")
    assert len(asked) == 2  # a 503, then the token
    assert all(a["path"] == "/api/v1/validation/token" for a in asked)
    assert "Authorization" not in asked[-1]["headers"]
    request = json.loads(asked[-1]["body"])
    assert request["device_id"] == "42"
    assert request["request_id"] == json.loads(asked[0]["body"])["request_id"]  # a retry, not a second request
    assert len(request["request_id"]) >= 16 and request["request_id"] not in result.stderr
    assert set(request["system"]) == {"uuid", "serial"}
    posts = requests(received)
    assert len(posts) == 3  # 503, 502, then 200
    assert all(p["path"] == "/api/v1/validation/report" for p in posts)
    assert posts[-1]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert posts[-1]["headers"]["Content-Type"] == "application/json"
    report = json.loads(posts[-1]["body"])
    assert report["schema_version"] == 1 and report["device_id"] == "42"
    assert report["timestamp"].endswith("Z")
    assert set(report["hardware"]) >= {"manufacturer", "model", "serial", "uuid", "cpu_count", "memory_total_kib"}
    assert report["agent"]["listened_on"] == ["eno1"]
    assert report["agent"]["firmware_lldp_stopped"] == ["i40e:0000:3b:00.0"]
    assert report["agent"]["lldp_waited_s"] < 20  # stopped waiting as soon as every linked NIC had a neighbour

    (neighbor,) = lldp_neighbors(report["lldp"])["neighbors"]
    assert neighbor["local_interface"] == "eno1"
    assert (neighbor["chassis_name"], neighbor["port_id"], neighbor["port_id_type"]) == (
        "tor-a.lab.example",
        "swp1",
        "ifname",
    )
    assert neighbor["mgmt_ips"] == ["192.0.2.11"]
    eno1 = next(i for i in report["interfaces"] if i["name"] == "eno1")
    assert eno1["mac"] == "94:40:c9:5e:7a:b0" and eno1["carrier"] is True
    # the raw outputs are there for the webhook's own parsing
    why = {e["name"]: e["reason"] for e in ip_links(report["raw"]["ip_link"])["excluded"]}
    assert why["eno1"] == "virtual interface (veth)"  # a veth stands in for the NIC here
    assert isinstance(report["raw"]["ip_addr"], list) and isinstance(report["raw"]["dmidecode"], str)


def test_refusals_stop_after_three(lab: Lab) -> None:
    needs("curl", "jq")
    srv = lab.netns("srv")
    received = lab.receiver(srv, 18081, 401)
    result = run_script(
        lab, srv, "dash", "bm.device_id=7 bm.callback=http://127.0.0.1:18081/v/report bm.nics= bm.poweroff_delay=0"
    )
    assert result.returncode == 3
    assert len(requests(received)) == 3
    assert "report refused (HTTP 401)" in result.stderr
    assert (lab.workdir / "poweroff").exists()


def test_a_refused_token_request_is_final_and_nothing_is_reported(lab: Lab) -> None:
    needs("curl", "jq")
    srv = lab.netns("srv")
    received = lab.receiver(srv, 18082, 200, "token=403")
    result = run_script(
        lab, srv, "dash", "bm.device_id=7 bm.callback=http://127.0.0.1:18082/v/report bm.nics= bm.poweroff_delay=0"
    )
    assert result.returncode == 3
    assert len(requests(received, "token")) == 1
    assert requests(received) == []
    assert "token refused (HTTP 403)" in result.stderr
    assert (lab.workdir / "poweroff").exists()


def test_gives_up_at_the_deadline(lab: Lab) -> None:
    needs("curl", "jq")
    srv = lab.netns("srv")
    result = run_script(lab, srv, "dash", "bm.device_id=7 bm.callback=http://127.0.0.1:9/r bm.post_deadline=3")
    assert result.returncode == 3
    assert "giving up after" in result.stderr
    assert "no network interface to listen on" in result.stderr


@pytest.mark.parametrize(
    ("cmdline", "missing"),
    [
        ("quiet", "bm.device_id bm.callback"),
        ("bm.device_id=1 bm.callback=ftp://h/", "bm.callback"),
        ("bm.device_id=1;reboot bm.callback=http://h/", "bm.device_id(characters)"),
        ("bm.device_id=1 bm.callback=http://h/ bm.lldp_wait=soon", "number:soon"),
        ("bm.device_id=1 bm.callback=https://h/ bm.ca=/nonexistent/ca.pem", "bm.ca(unreadable"),
    ],
)
def test_bad_command_line_reports_nothing_and_powers_off(lab: Lab, cmdline: str, missing: str) -> None:
    srv = lab.netns("srv")
    result = run_script(lab, srv, "dash", cmdline, timeout=20)
    assert result.returncode == 2
    assert f"missing or invalid on the kernel command line: {missing}" in result.stderr
    assert (lab.workdir / "poweroff").exists()
