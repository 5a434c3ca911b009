"""Small helpers the tests share: paths, the stack's env file, running ansible-playbook as a user would, the base of
the fake NetBox clients."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import NetBoxClient

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
COLLECTION = ROOT / "collections" / "ansible_collections" / "bm" / "lifecycle"


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a KEY=VALUE file (comments and blank lines ignored)."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key] = value
    return values


def ansible_env(**extra: str) -> dict[str, str]:
    """The environment a user's shell has after `make up`: project venv first on PATH, absolute Ansible config."""
    env = dict(os.environ)
    env.update(
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
        ANSIBLE_NOCOLOR="1",
        JAVA_HOME=env.get("JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64"),
    )
    env.update(extra)
    return env


def ansible_playbook(playbook: str, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `ansible-playbook PLAYBOOK ARGS...` from the project root; output captured as text."""
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), playbook, *args],
        cwd=ROOT,
        env=ansible_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def poll_targets(fleet: Any, ca_path: str) -> list[dict[str, Any]]:
    """The metrics poller's targets for every BMC of a mock fleet (``run_poll``), each with its own login."""
    return [
        {"name": b.name, "address": b.address, "port": b.port, "username": b.username, "password": b.password,
         "ca_path": ca_path}
        for b in fleet
    ]  # fmt: skip


def textfile_samples(path: Path) -> dict[str, float]:
    """The samples of a Prometheus textfile: `name{labels}` -> value (comments skipped)."""
    samples = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


@dataclass
class NetBoxCall:
    """One request a fake NetBox is asked: ``path`` relative to NetBox's root (``/api/dcim/devices/``), ``params`` and
    ``body`` as the caller gave them (no JSON or URL round trip), ``timeout`` the caller's (None: the client's)."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    body: Any = None
    timeout: float | None = None


class FakeNetBoxClient(NetBoxClient):
    """The base of the unit tests' fake NetBoxes: a real :class:`NetBoxClient` (so ``get``, ``post``, ``patch``,
    ``list`` and the module's helpers run as they do against NetBox) whose every request is answered by
    :meth:`answer` instead of the network. ``request`` - the one method the client's other methods send through - is
    overridden here only, so its signature lives in one place; ``requests`` counts the calls."""

    use_endpoints = False  # list reads and bulk writes come through request() too, not pynetbox's Endpoints

    def __init__(self, url: str = "http://netbox.invalid", token: str = "nbt_testkey00001.secret") -> None:
        super().__init__(url, token)

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = None,
    ) -> Any:
        self.requests += 1
        return self.answer(NetBoxCall(method, path, params, body, timeout))

    def answer(self, call: NetBoxCall) -> Any:
        """The decoded JSON NetBox would answer ``call`` with; raise NetBoxError for an HTTP error or an outage."""
        raise NotImplementedError
