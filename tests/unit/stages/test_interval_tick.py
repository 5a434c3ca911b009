"""The interval tick event source: argument checks, ticks on a fixed schedule, cancellation."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import pytest

from helpers import COLLECTION

SPEC = importlib.util.spec_from_file_location(
    "interval_tick", COLLECTION / "extensions" / "eda" / "plugins" / "event_source" / "interval_tick.py"
)
assert SPEC and SPEC.loader
tick = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(tick)


class ListQueue:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def put(self, event: dict[str, Any]) -> None:
        self.events.append(event)


@pytest.mark.parametrize("args", [{"interval": 0}, {"interval": "soon"}, {"interval": 1, "delay": -1}, {"delay": "x"}])
def test_bad_arguments_are_refused_up_front(args: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="interval_tick"):
        asyncio.run(tick.main(ListQueue(), args))


def test_ticks_then_cancel() -> None:
    queue = ListQueue()

    async def run() -> None:
        task = asyncio.create_task(tick.main(queue, {"interval": 0.1, "delay": 0, "name": "validation_timeout"}))
        await asyncio.sleep(0.35)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert 3 <= len(queue.events) <= 5
    first = queue.events[0]["tick"]
    assert first["name"] == "validation_timeout"
    assert first["count"] == 1
    assert first["interval"] == 0.1
    assert [e["tick"]["count"] for e in queue.events] == list(range(1, len(queue.events) + 1))


def test_defaults() -> None:
    assert tick.parse_args({}) == (60.0, 60.0, "tick")
