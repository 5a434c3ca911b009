"""The molecule scenarios of the Redfish stages (extensions/molecule/{hardening,monitoring}) stay green."""

from __future__ import annotations

import subprocess

import pytest

from helpers import COLLECTION, VENV_BIN, ansible_env
from integration.redfish.conftest import testing

pytestmark = pytest.mark.slow
assert testing  # the mock fleet must be importable (else the conftest skips this module)


@pytest.mark.parametrize("scenario", ["hardening", "monitoring"])
def test_molecule_scenario(scenario: str) -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "molecule"), "test", "-s", scenario],
        cwd=COLLECTION,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
