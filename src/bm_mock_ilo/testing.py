"""Start a mock iLO fleet from tests, in this process (a background thread) or as a subprocess.

>>> with start_fleet(3) as fleet:  # doctest: +SKIP
...     bmc = fleet[0]  # BmcInfo: base_url, baseuri, username, password, bmc_mac, nic_macs ...
...     fleet.set_faults(0, unavailable_count=2)
...     assert fleet.counters(0)["pxe_boots"] == 0
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .bmc import Bmc, Settings
from .cli import DEFAULT_STATE
from .fleet import Fleet
from .power import SimulatedPower
from .tlscert import ensure_certificate, server_context


@dataclass(frozen=True)
class BmcInfo:
    """One BMC of a running fleet, as the inventory describes it."""

    name: str
    index: int
    address: str
    port: int
    base_url: str
    bmc_mac: str
    nic_macs: tuple[str, ...]
    serial: str
    uuid: str
    username: str
    password: str
    model: str = "ilo5"

    @property
    def baseuri(self) -> str:
        """``address:port``, the form community.general's ``baseuri`` wants."""
        return f"{self.address}:{self.port}"

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> BmcInfo:
        """From an inventory record."""
        return cls(**{**record, "nic_macs": tuple(record["nic_macs"])})


class RedfishClient:
    """Plain HTTPS requests to one BMC (certificate not verified), Basic auth unless ``auth`` is None."""

    def __init__(self, bmc: BmcInfo, auth: tuple[str, str] | None = None) -> None:
        self.bmc = bmc
        self.http = requests.Session()
        self.http.auth = auth

    @classmethod
    def admin(cls, bmc: BmcInfo) -> RedfishClient:
        """A client with the factory Administrator credentials."""
        return cls(bmc, (bmc.username, bmc.password))

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request; ``path`` is relative to the BMC's base URL."""
        return self.http.request(method, self.bmc.base_url + path, timeout=10, verify=False, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET."""
        return self.request("GET", path, **kwargs)

    def patch(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        """PATCH a JSON body."""
        return self.request("PATCH", path, json=body, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        """POST a JSON body."""
        return self.request("POST", path, json=body, **kwargs)


def message_ids(response: requests.Response) -> list[str]:
    """The MessageIds of an iLO envelope."""
    return [m["MessageId"] for m in response.json()["error"]["@Message.ExtendedInfo"]]


def _insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class FleetHandle:
    """A running fleet: its BMCs, and the test-only control surface (``/_mock/``) of each."""

    def __init__(self, bmcs: Sequence[BmcInfo], fleet: Fleet | None = None) -> None:
        self.bmcs = list(bmcs)
        self.fleet = fleet
        self._tls = _insecure()

    def __getitem__(self, index: int) -> BmcInfo:
        return self.bmcs[index]

    def __len__(self) -> int:
        return len(self.bmcs)

    def __iter__(self) -> Iterator[BmcInfo]:
        return iter(self.bmcs)

    def control(self, index: int, method: str, what: str, body: dict[str, Any] | None = None) -> Any:
        """Call ``/_mock/<what>`` on BMC ``index``."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - our own loopback URL
            f"{self.bmcs[index].base_url}/_mock/{what}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self._tls, timeout=10) as response:  # noqa: S310
            return json.load(response)

    def state(self, index: int) -> dict[str, Any]:
        """The effective state (power, boot override, accounts with passwords, protocols, SNMP …)."""
        return self.control(index, "GET", "state")

    def set_state(self, index: int, **changes: Any) -> dict[str, Any]:
        """Force ``PowerState`` ("On"/"Off") or change ``Settings`` (e.g. ``post_seconds``)."""
        return self.control(index, "PATCH", "state", changes)

    def counters(self, index: int) -> dict[str, Any]:
        """Requests by method, resets by type, boot-override history, boots, PXE boots, manager resets …"""
        return self.control(index, "GET", "counters")

    def reset_counters(self, index: int) -> None:
        """Zero the counters."""
        self.control(index, "DELETE", "counters")

    def set_faults(self, index: int, **faults: Any) -> dict[str, Any]:
        """Switch faults: unavailable_count, unavailable_seconds, latency_ms, drop_count, lockout_seconds,
        long_post_seconds, share_503, share_stall, stall_ms."""
        return self.control(index, "PUT", "faults", faults)

    def clear_faults(self, index: int) -> None:
        """Switch every fault off."""
        self.control(index, "DELETE", "faults")


def _certificate(state_dir: Path | None) -> ssl.SSLContext:
    return server_context(*ensure_certificate(state_dir or DEFAULT_STATE))


@contextlib.contextmanager
def start_fleet(
    count: int = 1,
    *,
    seed: str = "bm-lifecycle",
    in_process: bool = True,
    settings: Settings | Sequence[Settings] | None = None,
    on_pxe_boot: Callable[[BmcInfo], None] | None = None,
    extra_args: Sequence[str] = (),
    state_dir: Path | None = None,
    timeout: float = 30.0,
    password: str | None = None,
    first_address: str | None = None,
    base_port: int = 0,
) -> Iterator[FleetHandle]:
    """Run a fleet on free loopback ports for the duration of the ``with`` block.

    ``in_process``: an event loop in a background thread (``on_pxe_boot`` runs in a worker thread when a simulated
    host boots from PXE; ``settings`` apply: one for all, or a sequence cycled over the BMCs, e.g.
    ``[Settings(), Settings(model="ilo6")]`` for a mixed iLO 5 / iLO 6 fleet).
    Otherwise the ``bm-mock-ilo`` CLI in a subprocess (``extra_args``).
    ``password``: one factory password for every BMC (in-process only) instead of one derived per BMC.
    ``first_address`` and ``base_port`` (in-process only): BMC i listens on ``first_address + i``, port ``base_port``.
    """
    if in_process:
        with _in_thread(
            count,
            seed=seed,
            settings=settings,
            on_pxe_boot=on_pxe_boot,
            state_dir=state_dir,
            timeout=timeout,
            password=password,
            first_address=first_address,
            base_port=base_port,
        ) as handle:
            yield handle
    else:
        with _in_subprocess(count, seed=seed, extra_args=extra_args, state_dir=state_dir, timeout=timeout) as handle:
            yield handle


@contextlib.contextmanager
def _in_thread(
    count: int,
    *,
    seed: str,
    settings: Settings | Sequence[Settings] | None,
    on_pxe_boot: Callable[[BmcInfo], None] | None,
    state_dir: Path | None,
    timeout: float,
    password: str | None,
    first_address: str | None = None,
    base_port: int = 0,
) -> Iterator[FleetHandle]:
    loop = asyncio.new_event_loop()
    holder: dict[str, Fleet] = {}

    async def callback(bmc: Bmc) -> None:
        assert on_pxe_boot is not None
        record = holder["fleet"].inventory()[bmc.identity.index]
        await asyncio.to_thread(on_pxe_boot, BmcInfo.from_record(record))

    fleet = Fleet(
        count,
        seed=seed,
        settings=settings,
        ssl_context=_certificate(state_dir),
        power=SimulatedPower(callback if on_pxe_boot else None),
        password=password,
        first_address=first_address,
        base_port=base_port,
    )
    holder["fleet"] = fleet
    thread = threading.Thread(target=loop.run_forever, name="bm-mock-ilo", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(fleet.start(), loop).result(timeout)
        yield FleetHandle([BmcInfo.from_record(r) for r in fleet.inventory()], fleet)
    finally:
        asyncio.run_coroutine_threadsafe(fleet.stop(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        loop.close()


@contextlib.contextmanager
def _in_subprocess(
    count: int, *, seed: str, extra_args: Sequence[str], state_dir: Path | None, timeout: float
) -> Iterator[FleetHandle]:
    with tempfile.TemporaryDirectory(prefix="bm-mock-ilo-") as tmp:
        inventory = Path(tmp) / "inventory.json"
        command = [
            sys.executable,
            "-m",
            "bm_mock_ilo",
            "--count",
            str(count),
            "--seed",
            seed,
            "--inventory",
            str(inventory),
            "--state-dir",
            str(state_dir or DEFAULT_STATE),
            *extra_args,
        ]
        log = (Path(tmp) / "stderr").open("w+b")
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=os.environ.copy())  # noqa: S603
        try:
            deadline = time.monotonic() + timeout
            while not inventory.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"bm-mock-ilo did not start: {log.read().decode(errors='replace')[-2000:]}")
                time.sleep(0.05)
            records = json.loads(inventory.read_text())
            yield FleetHandle([BmcInfo.from_record(r) for r in records])
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()
