"""A fresh in-process mock iLO fleet per test, and an administrator client of its first BMC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bm_mock_ilo import Settings
from bm_mock_ilo.testing import FleetHandle, RedfishClient, start_fleet


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated certificate for the session."""
    return tmp_path_factory.mktemp("mock-ilo-cert")


@pytest.fixture
def fleet(cert_dir: Path) -> Iterator[FleetHandle]:
    """Two BMCs with short POST and iLO reset times (503 while the iLO reboots), at most 3 sessions."""
    settings = Settings(post_seconds=0.2, manager_reset_seconds=0.5, manager_reset_mode="503", max_sessions=3)
    with start_fleet(2, settings=settings, state_dir=cert_dir) as handle:
        yield handle


@pytest.fixture
def client(fleet: FleetHandle) -> RedfishClient:
    """An administrator client of BMC 0."""
    return RedfishClient.admin(fleet[0])
