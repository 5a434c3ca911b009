"""Run the real ansible-rulebook CLI from the project root, in its own session, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = ROOT / ".venv/bin"
JAVA_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"


def service_env(redis_url: str, **more: str) -> dict[str, str]:
    environ = dict(os.environ)
    environ.update(
        {
            "PATH": f"{VENV_BIN}:{environ.get('PATH', '/usr/bin:/bin')}",
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
            "JAVA_HOME": environ.get("JAVA_HOME", JAVA_HOME),
            "BM_REDIS_URL": redis_url,
            "ANSIBLE_NOCOLOR": "1",
            **more,
        }
    )
    return environ


class Rulebook:
    def __init__(self, rulebook: Path, log: Path, redis_url: str, *extra_args: str) -> None:
        self.rulebook = rulebook
        self.log = log
        self.redis_url = redis_url
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Rulebook:
        cmd = [str(VENV_BIN / "ansible-rulebook"), "-r", str(self.rulebook), "-i", str(ROOT / "inventory/local.yml")]
        cmd += [*self.extra_args, "-v"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=service_env(self.redis_url),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, pattern: str, timeout: float = 60, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.text())) >= count:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"ansible-rulebook exited {self.proc.returncode}:\n{self.text()[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"no {pattern!r} x{count} within {timeout}s:\n{self.text()[-3000:]}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the rulebook and everything it started: its process group, and the playbooks that ansible-runner
        starts in sessions of their own (left alone, a killed rulebook's playbook ran on as an orphan)."""
        if self.proc is None:
            return
        playbooks: list[psutil.Process] = []
        with contextlib.suppress(psutil.NoSuchProcess):
            playbooks = psutil.Process(self.proc.pid).children(recursive=True)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        else:  # the leader is gone; its children may not be
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        for process in playbooks:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.proc = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def descendants(pid: int, name: str) -> list[int]:
    """PIDs of processes below ``pid`` whose command line mentions ``name``."""
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for kid in kids:
        try:
            if any(name in part for part in kid.cmdline()):
                found.append(kid.pid)
        except psutil.Error:
            continue
    return found
