#!/usr/bin/python
# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: event_publish
short_description: Publish lifecycle events and acknowledge the consumed stream entries in one transaction
version_added: 0.1.0
author:
  - bm-lifecycle developers (@bm-lifecycle)
description:
  - Builds one v1 envelope per item of O(events), validates it, and in one Redis C(MULTI/EXEC) adds each to its stream
    C(bm:events:<event_type>) and acknowledges (C(XACK)) every entry in O(ack). A stage that finished has therefore done
    both or neither.
  - Idempotent. An event with a O(events[].cause) gets an C(event_id) derived from the cause, its type and
    O(events[].dedupe_key); an C(event_id) already published (remembered O(dedupe_ttl) seconds) is not added again,
    while its O(ack) entries are still acknowledged. A stage that re-runs after a crash thus yields one entry, not two.
  - Nothing is written if a target key is not a stream or a consumer group to acknowledge does not exist.
extends_documentation_fragment:
  - bm.lifecycle.redis
options:
  events:
    description: The events to publish; may be empty (acknowledge only).
    type: list
    elements: dict
    default: []
    suboptions:
      event_type:
        description: Event type; the stream is C(bm:events:<event_type>).
        type: str
        required: true
      data:
        description: Event-type specific payload.
        type: dict
        default: {}
      cause:
        description:
          - The envelope of the event being handled (C(entry.envelope) of the batch the rulebook passed in).
          - Sets C(causation_id), the default O(events[].device), and the deterministic C(event_id).
        type: dict
      device:
        description: NetBox device C({id, name}); defaults to the cause's.
        type: dict
      dedupe_key:
        description: Distinguishes several events of one type caused by one event (for example one per NIC).
        type: str
        default: ""
  ack:
    description:
      - Stream entries to acknowledge, as the C(bm.lifecycle.redis_streams) event source hands them
        (mappings with C(stream), C(id) and C(group); other keys are ignored).
    type: list
    elements: dict
    default: []
  source:
    description: Who publishes, recorded in each envelope.
    type: str
    default: bm.lifecycle.event_publish
  dedupe_ttl:
    description: Seconds an C(event_id) is remembered for de-duplication.
    type: int
    default: 604800
  maxlen:
    description: Approximate cap of each stream's length (C(XADD MAXLEN ~)); must exceed any backlog.
    type: int
    default: 100000
attributes:
  check_mode:
    support: full
    description: Reports what would be published and acknowledged; writes nothing.
  diff_mode:
    support: none
    description: Nothing to compare; the result lists what was (or would be) written.
  platform:
    support: full
    platforms: posix
    description: Runs where Redis is reachable, usually the rulebook host (C(localhost)).
notes:
  - Runs wherever Redis is reachable, usually C(localhost) of the rulebook host.
"""

EXAMPLES = r"""
- name: Publish the follow-up of each lease and acknowledge its entry (one task per entry of the batch)
  bm.lifecycle.event_publish:
    source: bm.lifecycle.discovery
    events:
      - event_type: device_discovered
        cause: "{{ entry.envelope }}"
        device: {id: "{{ nb_device.id }}", name: "{{ nb_device.name }}"}
        data: {bmc_ip: "{{ entry.envelope.data.ip }}"}
    ack: ["{{ entry }}"]
  loop: "{{ ansible_eda.event.entries }}"
  loop_control:
    loop_var: entry

- name: Only acknowledge (nothing follows this event)
  bm.lifecycle.event_publish:
    ack: "{{ ansible_eda.event.entries }}"

- name: Publish an event from outside the pipeline
  bm.lifecycle.event_publish:
    redis_url: redis://127.0.0.1:16379/0
    source: operator
    events:
      - event_type: dhcp_lease
        data: {ip: 192.0.2.10, mac: "94:40:c9:5e:07:b0", hostname: ilo-1}
"""

RETURN = r"""
published:
  description: One item per O(events) item.
  returned: always
  type: list
  elements: dict
  contains:
    event_id: {description: The envelope's id., type: str, sample: 5b0e7c1e-8a52-5d7f-b1d2-2c6f0b1a9e44}
    event_type: {description: The event type., type: str, sample: device_discovered}
    stream: {description: The stream., type: str, sample: "bm:events:device_discovered"}
    entry_id:
      description: The new stream entry, null if a duplicate or in check mode.
      type: str
      sample: 1764046327123-0
    duplicate: {description: The event_id was published before; nothing was added., type: bool, sample: false}
acked:
  description: One item per O(ack) item.
  returned: always
  type: list
  elements: dict
  contains:
    stream: {description: The stream., type: str, sample: "bm:events:dhcp_lease"}
    group: {description: The consumer group., type: str, sample: bm-lifecycle}
    id: {description: The entry id., type: str, sample: 1764046327001-0}
    was_pending: {description: The entry was still pending (false if acknowledged before)., type: bool, sample: true}
envelopes:
  description: The envelopes built (published or not).
  returned: always
  type: list
  elements: dict
"""

from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._envelope import new_event
from ansible_collections.bm.lifecycle.plugins.module_utils._module import LifecycleModule
from ansible_collections.bm.lifecycle.plugins.module_utils._redis_events import (
    DEFAULT_DEDUPE_TTL,
    DEFAULT_MAXLEN,
    publish,
)

EVENT_OPTIONS = {
    "event_type": {"type": "str", "required": True},
    "data": {"type": "dict", "default": {}},
    "cause": {"type": "dict"},
    "device": {"type": "dict"},
    "dedupe_key": {"type": "str", "default": "", "no_log": False},
}


def publish_all(module: LifecycleModule) -> dict[str, Any]:
    """Build the envelopes, then publish them and acknowledge O(ack) in one transaction."""
    p = module.params
    envelopes = [
        new_event(
            e["event_type"],
            e["data"],
            source=p["source"],
            device=e["device"],
            cause=e["cause"],
            dedupe_key=e["dedupe_key"],
        )
        for e in p["events"]
    ]
    result = publish(
        module.redis, envelopes, p["ack"], dedupe_ttl=p["dedupe_ttl"], maxlen=p["maxlen"], check_mode=module.check_mode
    )
    return {"envelopes": envelopes, **result}


def main() -> None:
    """Run the module."""
    options = {
        "events": {"type": "list", "elements": "dict", "default": [], "options": EVENT_OPTIONS},
        "ack": {"type": "list", "elements": "dict", "default": []},
        "source": {"type": "str", "default": "bm.lifecycle.event_publish"},
        "dedupe_ttl": {"type": "int", "default": DEFAULT_DEDUPE_TTL},
        "maxlen": {"type": "int", "default": DEFAULT_MAXLEN},
    }
    LifecycleModule(options, netbox=False, redis=True).run(publish_all)


if __name__ == "__main__":
    main()
