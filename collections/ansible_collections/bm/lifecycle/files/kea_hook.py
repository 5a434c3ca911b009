# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kea entry point of the bm-lifecycle DHCP hook: publish a ``dhcp_lease`` event for every DHCPv4 lease Kea commits.

Kea's ``libdhcp_run_script.so`` runs ``kea-hook.sh`` (next to this file) at each of its hook points with the hook
point's name as the only argument and the packet and lease in environment variables; ``kea-hook.sh`` starts this file
for ``leases4_committed`` only. That hook point fires for every DHCPREQUEST Kea answers with a lease, new or renewed,
like ISC dhcpd's ``on commit``; ``lease4_renew`` fires for a renewal too and carries the same lease, so it is left out
(one event per commit). Each committed lease is ``LEASES4_AT<n>_ADDRESS``, ``LEASES4_AT<n>_HWADDR`` and
``LEASES4_AT<n>_HOSTNAME``, ``n`` below ``LEASES4_SIZE``. Kea does not wait for the script (run_script's ``sync``
is false) and gives it only those variables: settings come from ``/etc/bm-lifecycle/dhcp-hook.conf``.

    kea_hook.py leases4_committed     what kea-hook.sh runs (the lease in the environment)
    kea_hook.py --flush               only flush the spool

Everything else (validation, MAC normalisation, the envelope, the publish, the spool, settings, logging) is
``bm_lease_hook.py`` beside it, shared with ISC dhcpd's ``dhcp_hook.py``. Always exits 0.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from bm_lease_hook import Lease, Log

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import bm_lease_hook  # noqa: E402  (beside this file: sys.path above)

HOOK_POINT = "leases4_committed"


def committed_leases(environ: Mapping[str, str], log: Log) -> list[Lease]:
    """The leases of one ``leases4_committed`` call."""
    size_text = environ.get("LEASES4_SIZE", "0")
    if not (size_text.isascii() and size_text.isdigit()):
        log("error", f"Kea passed LEASES4_SIZE={size_text[:16]!r}, not a count; nothing published")
        return []
    if int(size_text) > bm_lease_hook.MAX_LEASES:
        log(
            "warning",
            f"Kea committed {size_text} leases in one packet; publishing the first {bm_lease_hook.MAX_LEASES}",
        )
    leases = []
    for n in range(min(int(size_text), bm_lease_hook.MAX_LEASES)):
        at = f"LEASES4_AT{n}_"
        leases.append(
            (environ.get(at + "ADDRESS", ""), environ.get(at + "HWADDR", ""), environ.get(at + "HOSTNAME", ""))
        )
    return leases


def collect(log: Log) -> tuple[list[Lease], bool]:
    """The hook point in ``argv[1]``, the leases in the environment; ``--flush`` to flush the spool only."""
    point = sys.argv[1] if len(sys.argv) > 1 else ""
    if point == "--flush":
        return [], True
    if point != HOOK_POINT:
        return [], False  # kea-hook.sh starts us for leases4_committed only; any other hook point has no new lease
    return committed_leases(os.environ, log), False


if __name__ == "__main__":
    sys.exit(bm_lease_hook.main(collect, "kea-dhcp4"))
