"""Fixtures of the Redfish integration tests: a mock iLO 5 fleet on loopback and a way to run our modules."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import ROOT, VENV_BIN, ansible_env

testing = pytest.importorskip("bm_mock_ilo.testing", reason="the mock iLO fleet (issue 4) is not available")


def ca_path() -> str:
    """The mock fleet's self-signed certificate: our modules verify TLS against it (never validate_certs=false)."""
    from bm_mock_ilo.cli import DEFAULT_STATE  # noqa: PLC0415

    return str(DEFAULT_STATE / "cert.pem")


@pytest.fixture
def fleet() -> Iterator[Any]:
    """One factory-state mock iLO 5 (in this process, fast Manager.Reset)."""
    from bm_mock_ilo.bmc import Settings  # noqa: PLC0415

    with testing.start_fleet(1, settings=Settings(manager_reset_seconds=1.0, post_seconds=0.5)) as handle:
        yield handle


def bmc_args(bmc: Any, **extra: Any) -> dict[str, Any]:
    """Module arguments reaching ``bmc`` with its factory credentials and the fleet's CA."""
    return {"address": bmc.baseuri, "username": bmc.username, "password": bmc.password, "ca_path": ca_path(), **extra}


def run_module(name: str, args: dict[str, Any], *flags: str, timeout: float = 300) -> dict[str, Any]:
    """Run ``ansible localhost -m bm.lifecycle.NAME`` as a user would; return the module's JSON result."""
    proc = subprocess.run(
        [str(VENV_BIN / "ansible"), "localhost", "-m", f"bm.lifecycle.{name}", "-a", json.dumps(args), *flags],
        cwd=ROOT,
        env=ansible_env(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    try:
        document = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"no JSON from ansible: {proc.stdout[-2000:]} {proc.stderr[-2000:]}") from None
    result: dict[str, Any] = document["plays"][0]["tasks"][0]["hosts"]["localhost"]
    result["_stderr"] = proc.stderr
    return result


def collection_path() -> Path:
    """The collection's root."""
    return ROOT / "collections" / "ansible_collections" / "bm" / "lifecycle"
