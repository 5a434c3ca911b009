# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bm.lifecycle.interval_tick: an event every N seconds, for periodic checks (validation timeout, monitoring)."""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

DOCUMENTATION = r"""
---
short_description: Emit a tick event at a fixed interval.
description:
  - Puts an event C(tick) with C(name), C(count), C(time) and C(interval) on the rulebook's queue every
    O(interval) seconds (the first after O(delay) seconds). Ticks do not pile up; if the rulebook is busy when the
    next one is due, the source waits for the queue, then keeps its fixed schedule and skips the ticks it missed.
  - Arguments are checked up front (a clear ValueError); after that the source never raises and never returns.
options:
  interval:
    description: Seconds between ticks (at least 0.1).
    type: float
    default: 60
  delay:
    description: Seconds before the first tick; default one O(interval).
    type: float
  name:
    description: Name carried in each tick, so rules can tell several tick sources apart.
    type: str
    default: tick
"""

EXAMPLES = r"""
- name: periodic checks
  hosts: localhost
  sources:
    - bm.lifecycle.interval_tick:
        interval: 60
        name: validation_timeout
  rules:
    - name: validation timeout
      condition: event.tick.name == "validation_timeout"
      action:
        run_playbook:
          name: bm.lifecycle.validation_timeout
"""

LOG = logging.getLogger("bm.lifecycle.interval_tick")
MIN_INTERVAL = 0.1


def parse_args(args: dict[str, Any]) -> tuple[float, float, str]:
    """``(interval, delay, name)`` from the source's arguments; ValueError with the reason."""
    try:
        interval = float(args.get("interval", 60))
        delay = float(args["delay"]) if args.get("delay") is not None else interval
    except (TypeError, ValueError):
        raise ValueError("interval_tick: interval and delay must be numbers of seconds") from None
    if interval < MIN_INTERVAL:
        raise ValueError(f"interval_tick: interval must be at least {MIN_INTERVAL} s, got {interval}")
    if delay < 0:
        raise ValueError(f"interval_tick: delay must not be negative, got {delay}")
    name = str(args.get("name") or "tick")
    return interval, delay, name


async def main(queue: asyncio.Queue[Any], args: dict[str, Any]) -> None:
    interval, delay, name = parse_args(args)
    loop = asyncio.get_running_loop()
    due = loop.time() + delay
    count = 0
    while True:
        await asyncio.sleep(max(0.0, due - loop.time()))
        count += 1
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        await queue.put({"tick": {"name": name, "count": count, "time": now, "interval": interval}})
        LOG.debug("tick %s #%d", name, count)
        due += interval
        behind = loop.time() - due
        if behind > 0:  # the queue was busy: skip the ticks we missed, keep the schedule
            due += interval * (int(behind // interval) + 1)
