"""Session-wide fixtures: the local stack (Redis, PostgreSQL, NetBox) started once and reset per test, and a private
redis-server for the tests that need only an event bus."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pynetbox
import pytest
import redis

from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient, RedisSettings
from helpers import ROOT, ansible_playbook, read_env_file
from integration.events.redis_server import RedisServer

STACK_ENV = Path(os.environ.get("BM_LAB_DIR") or ROOT / ".lab") / "stack.env"  # BM_LAB_DIR: a private stack


@pytest.fixture(scope="session")
def stack() -> dict[str, str]:
    """Start the stack once (or reuse it), start NetBox from the snapshot, bootstrap it, save it as the template.

    The tests own the stack's NetBox: whatever an earlier session or `make demo` left in it is gone.
    """
    subprocess.run([ROOT / "scripts" / "stack.sh", "up"], check=True)
    subprocess.run([ROOT / "scripts" / "stack.sh", "fresh"], check=True)
    settings = read_env_file(STACK_ENV)
    os.environ.update(settings)
    for playbook in ("bm.lifecycle.bootstrap_netbox", "bm.lifecycle.demo_data"):
        ansible_playbook(playbook).check_returncode()
    subprocess.run([ROOT / "scripts" / "stack.sh", "template"], check=True)
    return settings


@pytest.fixture
def netbox(stack: dict[str, str]) -> pynetbox.api:
    """NetBox reset to the bootstrapped template (schema + demo data); a pynetbox client on it."""
    subprocess.run([ROOT / "scripts" / "stack.sh", "reset"], check=True)
    return pynetbox.api(stack["NETBOX_API"], token=stack["NETBOX_TOKEN"])


@pytest.fixture
def redis_client(stack: dict[str, str]) -> Iterator[redis.Redis]:
    """The event bus database, emptied before the test."""
    client = redis.Redis.from_url(stack["BM_REDIS_URL"], decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server (loopback, free port, AOF fsync always), started on first use, one per session."""
    server = RedisServer(Path(tmp_path_factory.mktemp("redis-private")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bus(redis_server: RedisServer) -> Iterator[RedisClient]:
    """A RedisClient on the private server, emptied before the test."""
    client = RedisClient(RedisSettings(redis_server.url), timeout=5)
    client.call("FLUSHALL")
    yield client
    client.close()


@pytest.fixture
def tmp_lab(tmp_path: Path) -> Path:
    """A scratch directory for a test's own state (spools, metrics files, logs)."""
    return tmp_path
