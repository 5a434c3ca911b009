"""A fleet of mock iLOs in one process: each BMC on its own port (or its own loopback address)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import ssl
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from .bmc import Bmc, Settings
from .identity import derive
from .power import PowerHook, SimulatedPower
from .server import Service

log = logging.getLogger(__name__)


def _listen(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.setblocking(False)
    return sock


class Fleet:
    """``count`` BMCs with identities derived from ``seed``; call :meth:`start` inside a running event loop.

    Addresses: all on ``host`` with ports from ``base_port`` (0 = any free port), or, with ``first_address``, BMC i
    on ``first_address + i`` and ``base_port`` for all. ``settings``: one :class:`Settings` for every BMC, or a
    sequence whose item ``i % len`` is BMC i's (e.g. ``[Settings(), Settings(model="ilo6")]`` alternates iLO 5 and 6).
    """

    def __init__(
        self,
        count: int,
        *,
        seed: str = "bm-lifecycle",
        host: str = "127.0.0.1",
        base_port: int = 0,
        first_address: str | None = None,
        settings: Settings | Sequence[Settings] | None = None,
        power: PowerHook | None = None,
        ssl_context: ssl.SSLContext | None = None,
        control: bool = True,
        nics: int = 2,
        password: str | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        if first_address is not None and base_port == 0:
            raise ValueError("an address per BMC needs a fixed port")
        self.power = power or SimulatedPower()
        self.ssl_context = ssl_context
        identities = [derive(seed, i, nics) for i in range(count)]
        if password is not None:  # one factory password for the whole fleet, as an integrator may set it
            identities = [replace(identity, password=password) for identity in identities]
        choices = [settings or Settings()] if settings is None or isinstance(settings, Settings) else list(settings)
        if not choices:
            raise ValueError("settings must not be an empty sequence")
        self.bmcs = [
            Bmc(identity, replace(choices[i % len(choices)]), self.power) for i, identity in enumerate(identities)
        ]
        for i, bmc in enumerate(self.bmcs):
            if first_address is not None:
                bmc.address, bmc.port = str(ipaddress.ip_address(first_address) + i), base_port
            else:
                bmc.address, bmc.port = host, base_port + i if base_port else 0
            bmc.on_manager_reset = self._manager_reset
        self.service = Service(self.inventory, control)
        # shutdown_timeout: on stop, a request held by a fault (a BMC that never answers) is cancelled after 1 s
        self._runner = web.AppRunner(self.service.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        self._sites: dict[int, web.SockSite] = {}
        self._restarts: set[asyncio.Task[None]] = set()

    @property
    def scheme(self) -> str:
        """``https``, or ``http`` when started without TLS."""
        return "https" if self.ssl_context is not None else "http"

    async def start(self) -> None:
        """Bind every BMC's socket and start serving."""
        await self._runner.setup()
        for bmc in self.bmcs:
            await self._open(bmc)

    async def _open(self, bmc: Bmc) -> None:
        sock = _listen(bmc.address, bmc.port)
        bmc.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock, ssl_context=self.ssl_context, backlog=64)
        await site.start()
        self._sites[id(bmc)] = site
        self.service.by_socket[(bmc.address, bmc.port)] = bmc

    def _manager_reset(self, bmc: Bmc, seconds: float) -> None:
        if bmc.settings.manager_reset_mode != "refuse":
            return
        task = asyncio.get_running_loop().create_task(self._reboot(bmc, seconds))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _reboot(self, bmc: Bmc, seconds: float) -> None:
        """Stop listening (connection refused) for ``seconds``, then listen again."""
        await asyncio.sleep(0.05)  # let the reset's own answer go out first
        site = self._sites.pop(id(bmc), None)
        if site is not None:
            await site.stop()
        await asyncio.sleep(max(0.0, seconds - 0.05))
        for _ in range(50):  # the port may linger briefly; bounded retries
            try:
                await self._open(bmc)
                return
            except OSError:
                await asyncio.sleep(0.1)
        log.error("%s could not listen again on %s:%s", bmc.identity.name, bmc.address, bmc.port)

    async def stop(self) -> None:
        """Stop serving and release the power hook."""
        for task in list(self._restarts):
            task.cancel()
        await asyncio.gather(*self._restarts, return_exceptions=True)
        await self.power.close()
        with contextlib.suppress(RuntimeError):
            await self._runner.cleanup()

    def inventory(self) -> list[dict[str, Any]]:
        """The fleet as JSON records (test use only: includes the factory password)."""
        return [
            {
                "name": bmc.identity.name,
                "index": bmc.identity.index,
                "model": bmc.settings.model,
                "address": bmc.address,
                "port": bmc.port,
                "base_url": f"{self.scheme}://{bmc.address}:{bmc.port}",
                "bmc_mac": bmc.identity.bmc_mac,
                "nic_macs": list(bmc.identity.nic_macs),
                "serial": bmc.identity.serial,
                "uuid": bmc.identity.uuid,
                "username": bmc.identity.username,
                "password": bmc.identity.password,
            }
            for bmc in self.bmcs
        ]

    def write_inventory(self, path: Path) -> None:
        """Write :meth:`inventory` atomically (readers never see half a file)."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.inventory(), indent=1) + "\n")
        tmp.replace(path)
