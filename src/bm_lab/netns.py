"""Network namespaces for the lab: namespaces, links, taps and sockets opened inside a namespace, TCP relays.

Everything a `Netns` creates is removed by `close()`: its processes (by PID), then its namespaces (which takes their
links with them). Sockets and taps are opened inside a namespace by a short-lived thread that enters it (`setns`
changes the calling thread only), so the lab process itself never leaves the host namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import struct
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("bm-lab")
IP = "/usr/sbin/ip"
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def in_netns[T](ns: str, work: Callable[[], T]) -> T:
    """Run `work` in a thread that has entered namespace `ns`; return its result (or raise its exception)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            with open(f"/run/netns/{ns}") as handle:
                os.setns(handle.fileno(), os.CLONE_NEWNET)
            box["value"] = work()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"netns-{ns}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def listen_in(ns: str, host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port inside namespace `ns`."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
        sock.setblocking(False)
        return sock

    return in_netns(ns, make)


def open_tap(ns: str, name: str) -> int:
    """A tap device `name` inside namespace `ns`; returns its file descriptor (the device goes when it is closed)."""

    def make() -> int:
        fd = os.open("/dev/net/tun", os.O_RDWR)
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
        except OSError:
            os.close(fd)
            raise
        return fd

    return in_netns(ns, make)


class Relays:
    """TCP relays from sockets listening inside namespaces to host addresses, served by one event loop thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bm-lab-relays", daemon=True)
        self.thread.start()
        self.servers: list[asyncio.Server] = []
        self.connections = 0

    def add(self, ns: str, listen: tuple[str, int], target: tuple[str, int], target_ns: str | None = None) -> None:
        """Relay connections to `listen` inside `ns` to `target` in `target_ns` (default: the host namespace)."""
        sock = listen_in(ns, *listen)

        def connect() -> socket.socket:
            if target_ns is None:
                return socket.create_connection(target, 10)
            return in_netns(target_ns, lambda: socket.create_connection(target, 10))

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError, RuntimeError):
                    writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                upstream = await asyncio.to_thread(connect)
                upstream.setblocking(False)
                up_reader, up_writer = await asyncio.open_connection(sock=upstream)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        async def start() -> asyncio.Server:
            return await asyncio.start_server(handle, sock=sock)

        self.servers.append(asyncio.run_coroutine_threadsafe(start(), self.loop).result(10))
        log.info("relay %s %s:%d -> %s %s:%d", ns, *listen, target_ns or "host", *target)

    def close(self) -> None:
        """Stop listening and stop the loop."""

        async def stop() -> None:
            for server in self.servers:
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self.loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


class Netns:
    """Namespaces named `<prefix>-<name>` and the processes started in them; `close()` removes all of it."""

    def __init__(self, prefix: str, logdir: Path) -> None:
        self.prefix = prefix
        self.logdir = logdir
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.fds: list[int] = []

    def add(self, name: str) -> str:
        """Create namespace `<prefix>-<name>` with its loopback up."""
        full = f"{self.prefix}-{name}"
        subprocess.run([IP, "netns", "del", full], capture_output=True, check=False)  # noqa: S603 - our own names
        subprocess.run([IP, "netns", "add", full], check=True)  # noqa: S603
        self.namespaces.append(full)
        self.ip(full, "link", "set", "lo", "up")
        return full

    @staticmethod
    def ip(ns: str | None, *args: str) -> None:
        """`ip [-n ns] args`, failing loudly."""
        command = [IP, *(["-n", ns] if ns else []), *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our own commands
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")

    def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str, mac_a: str | None = None) -> None:
        """A veth pair: `if_a` in `ns_a` (optionally with `mac_a`), `if_b` in `ns_b`; both up."""
        tmp = f"bmv{os.getpid() % 100000}"
        self.ip(None, "link", "add", f"{tmp}a", "type", "veth", "peer", "name", f"{tmp}b")
        self.ip(None, "link", "set", f"{tmp}a", "netns", ns_a, "name", if_a)
        self.ip(None, "link", "set", f"{tmp}b", "netns", ns_b, "name", if_b)
        if mac_a:
            self.ip(ns_a, "link", "set", if_a, "address", mac_a)
        self.ip(ns_a, "link", "set", if_a, "up")
        self.ip(ns_b, "link", "set", if_b, "up")

    def bridge(self, ns: str, name: str, address: str | None = None) -> None:
        """A bridge (no STP: ports forward at once; link-local frames such as LLDP are not forwarded)."""
        self.ip(ns, "link", "add", name, "type", "bridge", "stp_state", "0")
        if address:
            self.ip(ns, "addr", "add", address, "dev", name)
        self.ip(ns, "link", "set", name, "up")

    def tap(self, ns: str, name: str, bridge: str | None = None) -> int:
        """A tap in `ns` (closed by `close()`), optionally a port of `bridge`; returns its fd for QEMU."""
        fd = open_tap(ns, name)
        self.fds.append(fd)
        if bridge:
            self.ip(ns, "link", "set", name, "master", bridge)
        self.ip(ns, "link", "set", name, "up")
        return fd

    def spawn(
        self,
        ns: str | None,
        argv: list[str],
        log_name: str,
        *,
        env: dict[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        """Start `argv` inside `ns` (or in the host namespace), output to `<logdir>/<log_name>`."""
        command = [IP, "netns", "exec", ns, *argv] if ns else argv
        with (self.logdir / log_name).open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - our own commands
                command, stdout=out, stderr=subprocess.STDOUT, stdin=stdin, env=env, pass_fds=pass_fds
            )
        self.procs.append(proc)
        return proc

    def run(self, ns: str, argv: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
        """Run `argv` inside `ns` to completion (bounded); returns its output, raises on failure."""
        done = subprocess.run(  # noqa: S603 - our own commands
            [IP, "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} in {ns} failed ({done.returncode}): {(done.stdout + done.stderr)[-800:]}")
        return done.stdout + done.stderr

    def close(self) -> None:
        """Stop our processes (SIGTERM, then SIGKILL), close the taps, delete the namespaces."""
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()
        for ns in reversed(self.namespaces):
            pids = subprocess.run([IP, "netns", "pids", ns], capture_output=True, text=True, check=False).stdout  # noqa: S603
            for pid in pids.split():  # anything still running inside our namespace was started by this lab
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run([IP, "netns", "del", ns], capture_output=True, check=False)  # noqa: S603
        self.namespaces.clear()
