"""The molecule scenarios of the Redfish stages (extensions/molecule/{hardening,monitoring}) stay green."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import COLLECTION, VENV_BIN, ansible_env
from integration.redfish.conftest import testing

pytestmark = pytest.mark.slow
assert testing  # the mock fleet must be importable (else the conftest skips this module)


@pytest.mark.parametrize("scenario", ["hardening", "monitoring"])
def test_molecule_scenario(scenario: str, tmp_path: Path) -> None:
    # HOME of its own: molecule installs the collection under ~/.ansible/collections, where a stale copy would
    # shadow the checkout for every later ansible-lint and ansible-playbook run
    proc = subprocess.run(
        [str(VENV_BIN / "molecule"), "test", "-s", scenario],
        cwd=COLLECTION,
        env={**ansible_env(), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
