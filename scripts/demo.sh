#!/usr/bin/env bash
# `make demo`: the main job on the local stack. Bootstraps NetBox's lifecycle schema, then takes simulated servers
# (mock iLO 5 BMCs whose hosts post the validation report when they PXE-boot) from their BMC's DHCP lease to
# `monitored` through the real DHCP hook, the ansible-rulebook service and every stage, and prints the timeline.
#   BM_DEMO_SERVERS=N   how many servers (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/lib.sh
export PATH="$ROOT/.venv/bin:$PATH"
set -a; source "$STACK_ENV"; set +a

log "bootstrapping the NetBox lifecycle schema"
ansible-playbook bm.lifecycle.bootstrap_netbox >/dev/null
log "this machine runs the simulated fleet (mock iLO 5 BMCs; make lab-e2e runs QEMU servers in network namespaces)"
status=0
bm-lab-sim --count "${BM_DEMO_SERVERS:-3}" --workdir "$LAB/demo" || status=$?
python scripts/show_netbox.py
echo
echo "NetBox UI: $NETBOX_API  (user ${NETBOX_ADMIN_USER}, password in .lab/stack.env)"
echo "Metrics: $LAB/demo/metrics   Service log: $LAB/demo/logs/rulebook.log"
exit "$status"
