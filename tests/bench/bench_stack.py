"""The local stack: warm `make up`, per-test NetBox reset, the stack's memory, NetBox's read and write latency."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from pathlib import Path

import psutil
import requests

from helpers import ROOT, read_env_file

STACK_SH = ROOT / "scripts" / "stack.sh"
LAB = Path(os.environ.get("BM_LAB_DIR") or ROOT / ".lab")


def _timed(command: list[str | Path]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def _stack_processes() -> dict[str, list[psutil.Process]]:
    roots = {
        "netbox": int((LAB / "run" / "netbox.pid").read_text()),
        "redis": int((LAB / "run" / "redis.pid").read_text()),
        "postgresql": int((LAB / "postgres" / "postmaster.pid").read_text().split()[0]),
    }
    groups = {}
    for name, pid in roots.items():
        root = psutil.Process(pid)
        groups[name] = [root, *root.children(recursive=True)]
    return groups


def _memory_mib(processes: list[psutil.Process]) -> tuple[float, float]:
    rss = pss = 0
    for process in processes:
        info = process.memory_full_info()
        rss += info.rss
        pss += info.pss
    return rss / 2**20, pss / 2**20


def run(large: bool) -> None:
    """Print warm up, reset, memory and NetBox latency numbers (bounded: a few dozen requests)."""
    del large
    ups = [_timed([STACK_SH, "up"]) for _ in range(3)]
    print(f"warm `stack.sh up` (already running): median {statistics.median(ups):.2f} s")
    env = read_env_file(LAB / "stack.env")
    has_template = "netbox_template" in subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", env["BM_PG_PORT"], "-U", "netbox", "-d", "postgres", "-tAc",
         "SELECT datname FROM pg_database"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    if has_template:
        resets = [_timed([STACK_SH, "reset"]) for _ in range(5)]
        print(f"NetBox reset to the template (drop + clone + flush): median {statistics.median(resets) * 1000:.0f} ms")
    else:
        print("NetBox reset: no template database yet (the test session creates it)")
    total_rss = total_pss = 0.0
    for name, processes in _stack_processes().items():
        rss, pss = _memory_mib(processes)
        total_rss, total_pss = total_rss + rss, total_pss + pss
        print(f"memory {name:<11} RSS {rss:6.0f} MiB  PSS {pss:6.0f} MiB  ({len(processes)} processes)")
    print(f"memory stack total  RSS {total_rss:6.0f} MiB  PSS {total_pss:6.0f} MiB")

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {env['NETBOX_TOKEN']}"
    api = env["NETBOX_API"]
    devices = session.get(f"{api}/api/dcim/devices/?limit=1", timeout=30).json()["results"]
    device_url = f"{api}/api/dcim/devices/{devices[0]['id']}/" if devices else None
    requests_by_label = {
        "GET /api/status/": lambda: session.get(f"{api}/api/status/", timeout=30),
        "GET device": lambda: session.get(str(device_url), timeout=30),
        "PATCH device custom field": lambda: session.patch(
            str(device_url), json={"custom_fields": {"last_power_watts": 100}}, timeout=30
        ),
    }
    for label, call in requests_by_label.items():
        if device_url is None and label != "GET /api/status/":
            continue
        samples = []
        for _ in range(20):
            started = time.perf_counter()
            call().raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
        samples.sort()
        print(f"NetBox {label:<26} p50 {statistics.median(samples):6.1f} ms  p95 {samples[18]:6.1f} ms")
