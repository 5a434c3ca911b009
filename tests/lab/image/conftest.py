"""Fixtures of the validation image tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bm_lab.netns import IP
from lab.image.labkit import Lab, needs


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    needs(IP)
    tag = f"{os.getpid() % 10000}{abs(hash(request.node.nodeid)) % 1000}"
    # not under pytest's tmp_path: its parent is mode 0700, and lldpd's unprivileged lldpcli must reach the socket
    workdir = Path(tempfile.mkdtemp(prefix="bmfx-"))
    lab = Lab(tag, workdir)
    try:
        yield lab
    finally:
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)
