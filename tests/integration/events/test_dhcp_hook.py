"""The DHCP hook run as the DHCP servers run it, Debian's /usr/bin/python3 and a real Redis: ISC dhcpd's entry point
(files/dhcp_hook.py, arguments) and Kea's (files/kea-hook.sh -> kea_hook.py, the hook point and Kea's environment)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils import _envelope as env
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient, RedisSettings, pairs
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_events import publish
from integration.events.redis_server import RedisServer

C = Path(__file__).resolve().parents[3] / "collections/ansible_collections/bm/lifecycle"
HOOK = C / "files/dhcp_hook.py"
KEA_HOOK = C / "files/kea-hook.sh"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def run_hook(url: str, spool: Path, *args: str, **env_more: str) -> subprocess.CompletedProcess[str]:
    environ = {
        "PATH": "/usr/bin:/bin",
        "BM_REDIS_URL": url,
        "BM_HOOK_SPOOL": str(spool),
        "BM_HOOK_CONFIG": "/nonexistent",
        **env_more,
    }
    return subprocess.run([PYTHON, "-S", str(HOOK), *args], env=environ, capture_output=True, text=True, timeout=10)


def leases(bus: RedisClient) -> list[dict[str, object]]:
    rows = bus.call("XRANGE", "bm:events:dhcp_lease", "-", "+")
    return [env.decode(pairs(r[1])["envelope"]) for r in rows]


def test_publishes_a_normalised_lease(bus: RedisClient, redis_server: RedisServer, tmp_path: Path) -> None:
    out = run_hook(redis_server.url, tmp_path, "192.0.2.10", "94:40:c9:5e:7:b0", "ilo-7")
    assert out.returncode == 0, out.stderr
    [lease] = leases(bus)
    assert lease["data"] == {
        "ip": "192.0.2.10",
        "mac": "94:40:c9:5e:07:b0",
        "hostname": "ilo-7",
        "dhcp_server": os.uname().nodename,
    }
    assert lease["causation_id"] is None and str(lease["source"]).startswith("dhcpd@")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("300.1.1.1", "94:40:c9:5e:07:b0"), "invalid IP address"),
        (("192.0.2.1", "94:40:c9:5e:07"), "invalid MAC address"),
        (("192.0.2.1",), "usage"),
        ((), "usage"),
    ],
)
def test_invalid_input_is_logged_and_dropped(
    bus: RedisClient, redis_server: RedisServer, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    out = run_hook(redis_server.url, tmp_path, *args)
    assert out.returncode == 0 and message in out.stderr
    assert not leases(bus)


def test_bad_hostname_is_left_out(bus: RedisClient, redis_server: RedisServer, tmp_path: Path) -> None:
    out = run_hook(redis_server.url, tmp_path, "192.0.2.11", "9440.c95e.07b1", "bad host;rm -rf")
    assert out.returncode == 0 and "invalid host name" in out.stderr
    assert leases(bus)[0]["data"]["hostname"] is None  # type: ignore[index]


def test_redis_down_spools_then_flushes_in_order_once(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    spool = tmp_path / "spool"
    macs = [f"52:54:00:00:00:{n:02x}" for n in range(6)]
    try:
        for n, mac in enumerate(macs[:4]):  # Redis down
            started = time.monotonic()
            out = run_hook(server.url, spool, f"192.0.2.{n + 1}", mac, "", BM_HOOK_RETRY_AFTER="0.5")
            assert out.returncode == 0 and time.monotonic() - started < 1.5
        assert len(list(spool.glob("*.json"))) == 4
        server.start()
        time.sleep(0.6)  # past the retry-after window
        # A spooled event whose publish had in fact reached Redis before the timeout: stored once all the same.
        first = json.loads(sorted(spool.glob("*.json"))[0].read_text())
        with RedisClient(RedisSettings(server.url)) as bus:
            publish(bus, [first])
        out = run_hook(server.url, spool, "192.0.2.5", macs[4], "")
        assert out.returncode == 0, out.stderr
        out = run_hook(server.url, spool, "192.0.2.6", macs[5], "")
        out = run_hook(server.url, spool, "--flush")
        assert not list(spool.glob("*.json"))
        with RedisClient(RedisSettings(server.url)) as bus:
            got = [lease["data"]["mac"] for lease in leases(bus)]  # type: ignore[index]
        # `first` went in early by hand; everything else in the order the leases happened, nothing twice.
        assert got == [macs[0], *macs[1:]]
    finally:
        server.stop()


def test_dhcpd_accepts_the_snippet(tmp_path: Path) -> None:
    dhcpd = shutil.which("dhcpd") or "/usr/sbin/dhcpd"
    if not os.path.exists(dhcpd):
        pytest.skip("isc-dhcp-server is not installed")
    conf = tmp_path / "dhcpd.conf"
    conf.write_text(
        "ddns-update-style none;\n"
        "subnet 192.0.2.0 netmask 255.255.255.0 { range 192.0.2.100 192.0.2.200; }\n"
        f'include "{C / "files/dhcpd-hook.conf"}";\n'
    )
    out = subprocess.run([dhcpd, "-t", "-cf", str(conf)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


def test_cost_per_call_is_small(bus: RedisClient, redis_server: RedisServer, tmp_path: Path) -> None:
    times = []
    for n in range(5):
        started = time.monotonic()
        run_hook(redis_server.url, tmp_path, f"192.0.2.{n + 20}", f"52:54:00:aa:00:{n:02x}")
        times.append(time.monotonic() - started)
    assert statistics.median(times) < 0.5
    assert len(leases(bus)) == 5


def run_kea_hook(settings: Path, point: str, **kea_env: str) -> subprocess.CompletedProcess[str]:
    """As Kea's run_script does: the hook point as the only argument, Kea's variables as the whole environment (the
    settings file's path is the one thing added: the installed hook reads /etc/bm-lifecycle/dhcp-hook.conf)."""
    environ = {"BM_HOOK_CONFIG": str(settings), **kea_env}
    return subprocess.run([str(KEA_HOOK), point], env=environ, capture_output=True, text=True, timeout=10)


def kea_settings(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "dhcp-hook.conf"
    path.write_text(f"# as install_dhcp_hook writes it\nBM_REDIS_URL={url}\nBM_HOOK_SPOOL={tmp_path / 'spool'}\n")
    return path


def test_kea_committed_leases_are_published(bus: RedisClient, redis_server: RedisServer, tmp_path: Path) -> None:
    settings = kea_settings(tmp_path, redis_server.url)
    out = run_kea_hook(
        settings, "leases4_committed", QUERY4_TYPE="DHCPREQUEST", LEASES4_SIZE="2", DELETED_LEASES4_SIZE="0",
        LEASES4_AT0_ADDRESS="192.0.2.30", LEASES4_AT0_HWADDR="94:40:c9:5e:07:b0", LEASES4_AT0_HOSTNAME="ilo-30",
        LEASES4_AT1_ADDRESS="192.0.2.31", LEASES4_AT1_HWADDR="94:40:C9:5E:07:B1", LEASES4_AT1_HOSTNAME="",
    )  # fmt: skip
    assert out.returncode == 0 and "published dhcp_lease 94:40:c9:5e:07:b0 192.0.2.30" in out.stderr, out.stderr
    got = leases(bus)
    assert [lease["data"] for lease in got] == [
        {"ip": "192.0.2.30", "mac": "94:40:c9:5e:07:b0", "hostname": "ilo-30", "dhcp_server": os.uname().nodename},
        {"ip": "192.0.2.31", "mac": "94:40:c9:5e:07:b1", "hostname": None, "dhcp_server": os.uname().nodename},
    ]
    assert all(str(lease["source"]).startswith("kea-dhcp4@") for lease in got)


@pytest.mark.parametrize("point", ["lease4_renew", "lease4_expire", "lease4_release", "lease4_decline", "unknown"])
def test_kea_other_hook_points_publish_nothing(
    bus: RedisClient, redis_server: RedisServer, tmp_path: Path, point: str
) -> None:
    """A renewal reaches leases4_committed too: publishing lease4_renew as well would send its lease twice."""
    settings = kea_settings(tmp_path, redis_server.url)
    mac = "94:40:c9:5e:07:b0"
    out = run_kea_hook(settings, point, LEASE4_ADDRESS="192.0.2.40", LEASE4_HWADDR=mac, LEASES4_SIZE="1",
                       LEASES4_AT0_ADDRESS="192.0.2.40", LEASES4_AT0_HWADDR=mac)  # fmt: skip
    assert out.returncode == 0 and not out.stderr
    assert not leases(bus) and not (tmp_path / "spool").exists()


def test_kea_invalid_lease_is_dropped_and_redis_down_spools(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    settings = kea_settings(tmp_path, server.url)
    out = run_kea_hook(settings, "leases4_committed", LEASES4_SIZE="2",
                       LEASES4_AT0_ADDRESS="192.0.2.50", LEASES4_AT0_HWADDR="not-a-mac",
                       LEASES4_AT1_ADDRESS="192.0.2.51", LEASES4_AT1_HWADDR="94:40:c9:5e:07:b3")  # fmt: skip
    assert out.returncode == 0 and "invalid MAC address 'not-a-mac'" in out.stderr
    [spooled] = (tmp_path / "spool").glob("*.json")
    assert json.loads(spooled.read_text())["data"]["mac"] == "94:40:c9:5e:07:b3"
