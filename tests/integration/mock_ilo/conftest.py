"""An in-process mock iLO fleet for the real-client and validator tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bm_mock_ilo import Settings
from bm_mock_ilo.testing import FleetHandle, start_fleet


@pytest.fixture
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetHandle]:
    """One BMC, POST in 0.3 s, the iLO back 0.5 s after a reset."""
    settings = Settings(post_seconds=0.3, manager_reset_seconds=0.5)
    with start_fleet(1, settings=settings, state_dir=tmp_path_factory.getbasetemp() / "mock-ilo-cert") as handle:
        yield handle
