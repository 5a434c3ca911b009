"""Fixtures of the event-bus unit tests: a private redis-server (session) and a clean client per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient, RedisSettings
from integration.events.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis-unit")))
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
