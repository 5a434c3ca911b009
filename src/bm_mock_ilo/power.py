"""Power hooks: what happens to the host when its iLO is told to power on, off or restart it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bmc import Bmc

log = logging.getLogger(__name__)

type PxeCallback = Callable[["Bmc"], Awaitable[None]]


class PowerHook(ABC):
    """The one interface between a mock iLO and its host; implementations call ``bmc.host_*`` as the host moves."""

    @abstractmethod
    async def power_on(self, bmc: Bmc) -> None:
        """Power the host on and let it boot (honouring ``bmc.next_boot_target``)."""

    @abstractmethod
    async def power_off(self, bmc: Bmc, *, graceful: bool) -> None:
        """Power the host off (an ACPI shutdown when ``graceful``)."""

    async def restart(self, bmc: Bmc) -> None:
        """Reset the host: off, then on."""
        await self.power_off(bmc, graceful=False)
        await self.power_on(bmc)

    async def close(self) -> None:  # noqa: B027 - optional for implementations
        """Release what the hook holds (tasks, sockets)."""


class SimulatedPower(PowerHook):
    """Simulated timing: POST takes ``bmc.post_seconds``; a PXE boot then runs the optional callback."""

    def __init__(self, on_pxe_boot: PxeCallback | None = None) -> None:
        self.on_pxe_boot = on_pxe_boot
        self._posts: dict[int, asyncio.Task[None]] = {}

    async def power_on(self, bmc: Bmc) -> None:
        """Start POST; boot when it ends."""
        self._cancel(bmc)
        bmc.host_powered_on()
        self._posts[id(bmc)] = asyncio.create_task(self._post(bmc), name=f"post-{bmc.identity.name}")

    async def power_off(self, bmc: Bmc, *, graceful: bool) -> None:
        """Stop the host at once (the simulated OS shuts down instantly)."""
        self._cancel(bmc)
        bmc.host_powered_off()

    async def _post(self, bmc: Bmc) -> None:
        await asyncio.sleep(bmc.post_seconds)
        target = bmc.host_booted()
        if target == "Pxe" and self.on_pxe_boot is not None:
            try:
                await self.on_pxe_boot(bmc)
            except Exception:
                log.exception("PXE-boot callback of %s failed", bmc.identity.name)

    def _cancel(self, bmc: Bmc) -> None:
        task = self._posts.pop(id(bmc), None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        """Cancel the POSTs still running."""
        tasks = list(self._posts.values())
        self._posts.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def command_callback(command: list[str], timeout: float = 60.0) -> PxeCallback:
    """A PXE callback that runs ``command`` with the server's identity as JSON on stdin (bounded by ``timeout``)."""

    async def run(bmc: Bmc) -> None:
        identity = {**vars(bmc.identity), "address": bmc.address, "port": bmc.port}
        proc = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE)
        try:
            await asyncio.wait_for(proc.communicate(json.dumps(identity).encode()), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            log.warning("PXE-boot command for %s timed out after %s s", bmc.identity.name, timeout)

    return run


class QmpError(RuntimeError):
    """QEMU answered a QMP command with an error."""


class QmpPower(PowerHook):
    """Drive a QEMU VM per BMC through its QMP socket (``socket_template`` has ``{name}`` and ``{index}``).

    The VM is started paused (``-S``); power on is ``cont`` (or ``system_reset`` if running), the boot device is
    chosen with HMP ``boot_set`` (n = network for PXE, c = disk), force off is ``stop`` + ``system_reset``, graceful
    off is ``system_powerdown``.
    """

    def __init__(self, socket_template: str, timeout: float = 10.0) -> None:
        self.socket_template = socket_template
        self.timeout = timeout

    def socket_path(self, bmc: Bmc) -> Path:
        """The QMP socket of ``bmc``'s VM."""
        return Path(self.socket_template.format(name=bmc.identity.name, index=bmc.identity.index))

    async def _execute(self, bmc: Bmc, *commands: tuple[str, dict[str, Any] | None]) -> list[Any]:
        async with asyncio.timeout(self.timeout):
            reader, writer = await asyncio.open_unix_connection(str(self.socket_path(bmc)))
            try:
                await reader.readline()  # greeting
                results = []
                for name, arguments in (("qmp_capabilities", None), *commands):
                    message: dict[str, Any] = {"execute": name}
                    if arguments:
                        message["arguments"] = arguments
                    writer.write(json.dumps(message).encode() + b"\n")
                    await writer.drain()
                    while True:  # skip asynchronous events until the reply; bounded by the timeout above
                        reply = json.loads(await reader.readline() or b'{"error": {"desc": "QMP closed"}}')
                        if "return" in reply or "error" in reply:
                            break
                    if "error" in reply:
                        raise QmpError(f"{name}: {reply['error'].get('desc')}")
                    results.append(reply["return"])
                return results[1:]
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    async def power_on(self, bmc: Bmc) -> None:
        """Choose the boot device, then start (or reset) the VM."""
        device = "n" if bmc.next_boot_target == "Pxe" else "c"
        (status,) = await self._execute(bmc, ("query-status", None))
        start = ("system_reset", None) if status.get("running") else ("cont", None)
        await self._execute(bmc, ("human-monitor-command", {"command-line": f"boot_set {device}"}), start)
        bmc.host_powered_on()
        bmc.host_booted()

    async def power_off(self, bmc: Bmc, *, graceful: bool) -> None:
        """ACPI power button, or stop the CPUs and reset so that the next power on boots afresh."""
        if graceful:
            await self._execute(bmc, ("system_powerdown", None))
        else:
            await self._execute(bmc, ("stop", None), ("system_reset", None))
        bmc.host_powered_off()
