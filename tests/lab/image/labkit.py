"""Helpers of the validation image tests: network namespaces (bmfx-*) and processes that are always cleaned up."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

IP = "/usr/sbin/ip"
HERE = Path(__file__).resolve().parent


def needs(*tools: str) -> None:
    """Skip unless root with these tools (namespaces, lldpd, QEMU ...)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    missing = [t for t in tools if shutil.which(t) is None and not Path(t).exists()]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (requirements/apt.txt)")


class Lab:
    """Namespaces and background processes of one test; `close` removes them (by PID, then by name)."""

    def __init__(self, tag: str, workdir: Path) -> None:
        self.tag = tag
        self.workdir = workdir
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        os.chmod(workdir, 0o755)  # lldpd resumes itself through lldpcli running unprivileged

    def netns(self, name: str) -> str:
        full = f"bmfx-{self.tag}-{name}"
        subprocess.run([IP, "netns", "del", full], capture_output=True, check=False)
        subprocess.run([IP, "netns", "add", full], check=True)
        self.namespaces.append(full)
        self.ip(full, "link", "set", "lo", "up")
        return full

    def ip(self, ns: str, *args: str) -> None:
        subprocess.run([IP, "-n", ns, *args], check=True)

    def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str, mac_a: str | None = None) -> None:
        a, b = f"bmfx{os.getpid() % 100000}a", f"bmfx{os.getpid() % 100000}b"
        subprocess.run([IP, "link", "add", a, "type", "veth", "peer", "name", b], check=True)
        subprocess.run([IP, "link", "set", a, "netns", ns_a, "name", if_a], check=True)
        subprocess.run([IP, "link", "set", b, "netns", ns_b, "name", if_b], check=True)
        if mac_a:
            self.ip(ns_a, "link", "set", if_a, "address", mac_a)
        self.ip(ns_a, "link", "set", if_a, "up")
        self.ip(ns_b, "link", "set", if_b, "up")

    def spawn(self, ns: str, *argv: str, log: str) -> subprocess.Popen[bytes]:
        with (self.workdir / log).open("wb") as out:
            proc = subprocess.Popen([IP, "netns", "exec", ns, *argv], stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def receiver(self, ns: str, port: int, *statuses: int) -> Path:
        """The tiny HTTP receiver on the namespace's loopback; returns the directory it saves requests in."""
        out = self.workdir / f"received-{port}"
        out.mkdir()
        self.spawn(
            ns,
            "python3",
            str(HERE / "receiver.py"),
            "127.0.0.1",
            str(port),
            str(out),
            *map(str, statuses),
            log=f"receiver-{port}.log",
        )
        deadline = time.monotonic() + 10
        while not (out / "ready").exists():
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.05)
        return out

    def switch(self, ns: str, port: str, hostname: str, mgmt: str | None = None) -> None:
        """A real lldpd answering as a switch on `port`, transmitting every second."""
        conf = self.workdir / f"{ns}.conf"
        lines = [
            f"configure system hostname {hostname}",
            "configure lldp portidsubtype ifname",
            "configure lldp tx-interval 1",
        ]
        if mgmt:
            self.ip(ns, "addr", "add", f"{mgmt}/32", "dev", "lo")
            lines.append(f"configure system ip management pattern {mgmt}")
        conf.write_text("\n".join(lines) + "\n")
        self.spawn(
            ns,
            "/usr/sbin/lldpd",
            "-d",
            "-u",
            str(self.workdir / f"{ns}.sock"),
            "-O",
            str(conf),
            "-I",
            port,
            log=f"{ns}-lldpd.log",
        )

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for ns in self.namespaces:
            subprocess.run([IP, "netns", "del", ns], capture_output=True, check=False)
