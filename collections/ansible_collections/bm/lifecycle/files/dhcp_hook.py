# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ISC dhcpd ``on commit`` entry point of the bm-lifecycle DHCP hook: publish a ``dhcp_lease`` event to the Redis bus.

Usage (see dhcpd-hook.conf next to this file; run it with Debian's /usr/bin/python3, standard library only)::

    python3 -S dhcp_hook.py IP MAC [HOSTNAME]     one lease; what dhcpd's execute() runs
    python3 -S dhcp_hook.py --flush               only flush the spool (for a timer, after a long Redis outage)

dhcpd waits for this program, so it is kept small: everything else (validation, MAC normalisation, the envelope, the
publish, the spool, settings, logging) is in ``bm_lease_hook.py`` beside it, shared with Kea's entry point
``kea_hook.py``; its docstring says how it behaves and what it reads. dhcpd's ``binary-to-ascii`` drops leading zeros
of MAC octets (``94:40:c9:5e:7:b0``); that spelling is accepted. Always exits 0.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bm_lease_hook import Lease, Log

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import bm_lease_hook  # noqa: E402  (beside this file: sys.path above)


def collect(log: Log) -> tuple[list[Lease], bool]:
    """``IP MAC [HOSTNAME]`` as one lease, or ``--flush``."""
    args = sys.argv[1:]
    if args[:1] == ["--flush"]:
        return [], True
    if not 2 <= len(args) <= 3:
        log("error", f"usage: dhcp_hook.py IP MAC [HOSTNAME], got {len(args)} argument(s); nothing published")
        return [], False
    return [(args[0], args[1], args[2] if len(args) == 3 else "")], False


if __name__ == "__main__":
    sys.exit(bm_lease_hook.main(collect, "dhcpd"))
