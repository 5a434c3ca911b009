"""Mock iLO fleet: GET /redfish/v1/Systems/1 throughput and latency at 1 and 100 BMCs vs sushy-tools' emulator,
and the start time and memory of a 200-BMC fleet. Bounded: a few seconds per scenario and a request cap."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bm_mock_ilo.tlscert import ensure_certificate

VENV_BIN = Path(sys.executable).parent
CONCURRENCY = 16


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_fleet(count: int, workdir: Path, cert: Path, key: Path) -> tuple[subprocess.Popen[bytes], list[Any], float]:
    """Start ``bm-mock-ilo`` and wait (bounded) for its inventory; return the process, inventory and start time."""
    inventory = workdir / f"fleet-{count}.json"
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bm_mock_ilo",
            "--count",
            str(count),
            "--inventory",
            str(inventory),
            "--cert",
            str(cert),
            "--key",
            str(key),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not inventory.exists():
        if proc.poll() is not None or time.monotonic() - started > 60:
            raise RuntimeError("bm-mock-ilo did not start")
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    return proc, json.loads(inventory.read_text()), elapsed


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _load(urls: list[str], auth: aiohttp.BasicAuth | None, seconds: float, cap: int) -> dict[str, float]:
    """GET ``urls`` round-robin with CONCURRENCY keep-alive workers (each owning a slice) for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(ssl=False, limit=0, limit_per_host=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, auth=auth) as session:
        deadline = time.monotonic() + seconds

        async def worker(k: int) -> None:
            nonlocal errors
            mine = urls[k % len(urls) :: CONCURRENCY] or urls
            i = 0
            while time.monotonic() < deadline and len(latencies) < cap:
                t0 = time.perf_counter()
                async with session.get(mine[i % len(mine)]) as response:
                    await response.read()
                    errors += response.status != 200
                latencies.append(time.perf_counter() - t0)
                i += 1

        await asyncio.gather(*(worker(k) for k in range(CONCURRENCY)))  # warm-up and connections
        latencies.clear()
        deadline = time.monotonic() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "rps": len(latencies) / elapsed,
        "p50": cuts[49] * 1000,
        "p99": cuts[98] * 1000,
        "n": len(latencies),
        "errors": errors,
    }


def _line(label: str, result: dict[str, float]) -> str:
    return (
        f"{label:<34} {result['rps']:8.0f} req/s  p50 {result['p50']:6.2f} ms  p99 {result['p99']:6.2f} ms"
        f"  ({result['n']:.0f} requests, {result['errors']:.0f} errors)"
    )


def _sushy(cert: Path, key: Path, seconds: float, cap: int) -> dict[str, float]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "sushy-emulator"),
            "--fake",
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "--ssl-certificate",
            str(cert),
            "--ssl-key",
            str(key),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"https://127.0.0.1:{port}"

        async def first_system() -> str:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
                for _ in range(200):  # up to ~20 s for the emulator to listen
                    try:
                        async with session.get(f"{base}/redfish/v1/Systems") as response:
                            members = (await response.json())["Members"]
                            return base + members[0]["@odata.id"]
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.1)
            raise RuntimeError("sushy-emulator did not start")

        url = asyncio.run(first_system())
        return asyncio.run(_load([url], None, seconds, cap))
    finally:
        _stop(proc)


def run(large: bool) -> None:
    """Print the numbers; ``large`` runs each scenario longer and adds a 1,000-BMC start."""
    seconds, cap = (10.0, 200_000) if large else (3.0, 30_000)
    with tempfile.TemporaryDirectory(prefix="bench-mock-ilo-") as tmp:
        workdir = Path(tmp)
        cert, key = ensure_certificate(workdir)
        for count in (200, 1000) if large else (200,):
            proc, fleet, start = _start_fleet(count, workdir, cert, key)
            try:
                rss = psutil.Process(proc.pid).memory_info().rss / 2**20
                print(f"{count} BMCs: listening after {start:.2f} s, RSS {rss:.0f} MiB (target < 5 s, < 200 MiB)")
            finally:
                _stop(proc)
        proc, fleet, _ = _start_fleet(100, workdir, cert, key)
        try:
            auth = aiohttp.BasicAuth(fleet[0]["username"], fleet[0]["password"])
            one = asyncio.run(_load([f"{fleet[0]['base_url']}/redfish/v1/Systems/1"], auth, seconds, cap))
            # every BMC has its own password: credentials go in each URL
            urls = [
                f"https://{b['username']}:{b['password']}@{b['address']}:{b['port']}/redfish/v1/Systems/1"
                for b in fleet
            ]
            hundred = asyncio.run(_load(urls, None, seconds, cap))
            rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        finally:
            _stop(proc)
        sushy = _sushy(cert, key, seconds, cap)
    print(f"GET /redfish/v1/Systems/1, HTTPS keep-alive, {CONCURRENCY} concurrent clients, {seconds:.0f} s each")
    print(_line("mock iLO, 1 BMC", one))
    print(_line("mock iLO, 100 BMCs (round-robin)", hundred))
    print(_line("sushy-emulator --fake", sushy))
    print(
        f"ratio mock/sushy (req/s): {one['rps'] / sushy['rps']:.1f}x at 1 BMC,"
        f" {hundred['rps'] / sushy['rps']:.1f}x at 100 BMCs; p99 latency {one['p99'] / sushy['p99']:.2f}x"
    )
    print(f"fleet of 100 after the load: RSS {rss:.0f} MiB; load generator and server share {os.cpu_count()} cores")
