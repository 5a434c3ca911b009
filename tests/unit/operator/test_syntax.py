"""ansible-playbook --syntax-check of the operator playbooks (and bootstrap_netbox, whose schema they share)."""

from __future__ import annotations

import pytest

from helpers import COLLECTION, ansible_playbook

pytestmark = [pytest.mark.slow]

PLAYBOOKS = ["reset", "status", "install_service", "install_dhcp_hook", "bootstrap_netbox", "rerun"]


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_syntax_check(name: str) -> None:
    proc = ansible_playbook(f"bm.lifecycle.{name}", "--syntax-check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"playbook: {COLLECTION}/playbooks/{name}.yml" in proc.stdout
