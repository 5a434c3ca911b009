#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: event_info
short_description: Show the state of the lifecycle event bus
version_added: 0.1.0
author:
  - bm-lifecycle developers (@bm-lifecycle)
description:
  - Lists every C(bm:events:*) stream with its length and consumer groups (entries read, pending entries per consumer,
    lag), and the newest entries of the dead-letter stream C(bm:events:dead_letter) with the reason each was set aside.
  - With O(metrics_window) also the service's own counters over the newest entries of every stream - C(stage_failed)
    events by their stage, and how long each stage took, from the event chain (an event's entry to its follow-up's).
extends_documentation_fragment:
  - bm.lifecycle.redis
options:
  dead_letters:
    description: How many of the newest dead-letter entries to return.
    type: int
    default: 20
  metrics_window:
    description: Newest entries read per stream for RV(metrics); V(0) reads none and returns no RV(metrics).
    type: int
    default: 0
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing to compare; the result lists what was (or would be) written.
  platform:
    support: full
    platforms: posix
    description: Runs where Redis is reachable, usually the rulebook host (C(localhost)).
"""

EXAMPLES = r"""
- name: Show the bus
  bm.lifecycle.event_info:
  register: bus
"""

RETURN = r"""
streams:
  description: One item per stream.
  returned: always
  type: list
  elements: dict
  sample:
    - stream: "bm:events:dhcp_lease"
      length: 12
      groups:
        - {name: bm-lifecycle, entries_read: 12, consumers: 1, pending: 2, pending_per_consumer: {rulebook-1: 2},
           last_delivered_id: 1764046327001-0, lag: 0}
dead_letters:
  description: The newest dead-letter entries, newest first.
  returned: always
  type: list
  elements: dict
  sample:
    - {id: 1764046400000-0, stream: "bm:events:dhcp_lease", entry_id: 1764046327001-0, group: bm-lifecycle,
       reason: "envelope is not JSON (Expecting value: line 1 column 1 (char 0))", delivery_count: 1,
       failed_at: "2026-11-25T05:00:00.000000Z", raw_bytes: 8, replayable: true, replayed: false}
metrics:
  description:
    - Over the newest O(metrics_window) entries of each stream - C(stage_failures), the C(stage_failed) events per
      C(data.stage); C(handling_seconds), per event type handled, the count, sum and maximum of the seconds from an
      event's stream entry to the entry of the follow-up it caused (waiting for the batch plus the stage's run).
  returned: when O(metrics_window) is above 0
  type: dict
  sample:
    window: 1000
    stage_failures: {provisioning: 2, hardening: 1}
    handling_seconds: {dhcp_lease: {count: 12, sum: 30.5, max: 4.2}}
"""

from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._module import LifecycleModule
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_events import bus_metrics, bus_status


def show(module: LifecycleModule) -> dict[str, Any]:
    """The bus's streams and dead letters, and with O(metrics_window) its metrics."""
    status = bus_status(module.redis, dead_letters=module.params["dead_letters"])
    if module.params["metrics_window"] > 0:
        status["metrics"] = bus_metrics(module.redis, window=module.params["metrics_window"])
    return {"changed": False, **status}


def main() -> None:
    """Run the module."""
    options = {"dead_letters": {"type": "int", "default": 20}, "metrics_window": {"type": "int", "default": 0}}
    LifecycleModule(options, netbox=False, redis=True).run(show)


if __name__ == "__main__":
    main()
