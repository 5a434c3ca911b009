"""Helpers of the validation image tests: network namespaces (bmfx-*) and processes that are always cleaned up."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from bm_lab.netns import Netns

HERE = Path(__file__).resolve().parent


def needs(*tools: str) -> None:
    """Skip unless root with these tools (namespaces, lldpd, QEMU ...)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    missing = [t for t in tools if shutil.which(t) is None and not Path(t).exists()]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (requirements/apt.txt)")


class Lab(Netns):
    """Namespaces `bmfx-<tag>-<name>` and background processes of one test; `close` removes them."""

    def __init__(self, tag: str, workdir: Path) -> None:
        super().__init__(f"bmfx-{tag}", workdir)
        self.workdir = workdir
        os.chmod(workdir, 0o755)  # lldpd resumes itself through lldpcli running unprivileged

    def netns(self, name: str) -> str:
        """A new namespace with its loopback up."""
        return self.add(name)

    def receiver(self, ns: str, port: int, *statuses: int) -> Path:
        """The tiny HTTP receiver on the namespace's loopback; returns the directory it saves requests in."""
        out = self.workdir / f"received-{port}"
        out.mkdir()
        self.spawn(
            ns,
            ["python3", str(HERE / "receiver.py"), "127.0.0.1", str(port), str(out), *map(str, statuses)],
            f"receiver-{port}.log",
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
        argv = ["/usr/sbin/lldpd", "-d", "-u", str(self.workdir / f"{ns}.sock"), "-O", str(conf), "-I", port]
        self.spawn(ns, argv, f"{ns}-lldpd.log")
