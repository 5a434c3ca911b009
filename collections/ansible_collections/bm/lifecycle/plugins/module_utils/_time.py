# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two time formats of the project, one home each (UTC, ``Z``).

- ``event_time``: an envelope's ``timestamp`` and the bus's own times, microseconds (``2026-11-25T04:52:07.123456Z``).
- ``netbox_time``: as NetBox writes datetime custom fields, seconds (``2026-11-25T04:52:07Z``); also the operator's
  reports and token expiry. ``_lifecycle.parse_time`` reads it back.

The DHCP hook (``files/bm_lease_hook.py``) imports nothing from module_utils and writes the envelope format itself.
"""

from __future__ import annotations

import datetime

UTC = datetime.timezone.utc  # noqa: UP017 - module_utils may run on Pythons older than 3.11


def event_time() -> str:
    """Now, in the envelope's timestamp format (microseconds)."""
    return datetime.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def netbox_time(moment: datetime.datetime | None = None) -> str:
    """``moment`` (default now) as NetBox writes datetime custom fields (seconds)."""
    return (moment or datetime.datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
