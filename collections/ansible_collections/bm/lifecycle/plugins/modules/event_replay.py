#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: event_replay
short_description: Replay one dead-letter entry of the lifecycle event bus
version_added: 0.1.0
author:
  - bm-lifecycle developers (@bm-lifecycle)
description:
  - Publishes the envelope kept in one entry of C(bm:events:dead_letter) again to its original stream, with the same
    C(event_id), so the stage gets another chance after the operator fixed the cause.
  - Replays each dead-letter entry once; a second run reports C(already_replayed) and changes nothing (see O(force)).
  - Refuses entries whose envelope is invalid or was kept only in part (over 64 KiB); publish a corrected event instead.
extends_documentation_fragment:
  - bm.lifecycle.redis
options:
  id:
    description: The dead-letter entry id (see M(bm.lifecycle.event_info)).
    type: str
    required: true
  force:
    description: Replay even if this entry was replayed before.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports whether it would replay; writes nothing.
  diff_mode:
    support: none
    description: Nothing to compare; the result lists what was (or would be) written.
  platform:
    support: full
    platforms: posix
    description: Runs where Redis is reachable, usually the rulebook host (C(localhost)).
"""

EXAMPLES = r"""
- name: Replay a dead letter
  bm.lifecycle.event_replay:
    id: 1764046400000-0
"""

RETURN = r"""
dead_letter_id:
  description: The dead-letter entry.
  returned: always
  type: str
  sample: 1764046400000-0
stream:
  description: Where the envelope went.
  returned: always
  type: str
  sample: "bm:events:dhcp_lease"
event_id:
  description: The replayed envelope's id.
  returned: always
  type: str
  sample: 0b6f9a0e-6c53-4b1e-9a51-0e4e9e7b1f3a
entry_id:
  description: The new entry, or the one of the earlier replay; null in check mode.
  returned: always
  type: str
  sample: 1764046500000-0
already_replayed:
  description: This entry had been replayed before.
  returned: always
  type: bool
  sample: false
"""

from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._module import LifecycleModule
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_events import replay


def replay_one(module: LifecycleModule) -> dict[str, Any]:
    """Replay the dead-letter entry O(id)."""
    p = module.params
    return replay(module.redis, p["id"], check_mode=module.check_mode, force=p["force"])


def main() -> None:
    """Run the module."""
    options = {"id": {"type": "str", "required": True}, "force": {"type": "bool", "default": False}}
    LifecycleModule(options, netbox=False, redis=True).run(replay_one)


if __name__ == "__main__":
    main()
