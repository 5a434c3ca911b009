#!/bin/sh
# bm-lifecycle: the script Kea's run_script hook library runs at each hook point (its name in $1, the lease in the
# environment). Only leases4_committed (a lease given or renewed) starts the Python entry point beside this file; every
# other hook point ends here, costing Kea a shell start and nothing more. Kea does not wait for it ("sync": false).
# Installed by bm.lifecycle.install_dhcp_hook with the hook-library stanza of kea-dhcp4.conf (see kea-hook.json).
case "$1" in
    leases4_committed | --flush) exec /usr/bin/python3 -S "${0%/*}/kea_hook.py" "$@" ;;
    *) exit 0 ;;
esac
