#!/usr/bin/env bash
# `make demo`: the main job on the local stack. Bootstraps NetBox's lifecycle schema, then takes servers from their
# BMC's DHCP lease to `monitored` through the real DHCP hook, the ansible-rulebook service and every stage, and prints
# the timeline. Where this machine can run the lab (root, QEMU, network namespaces: `bm-lab-e2e --check`), the servers
# are QEMU VMs that PXE-boot the validation image (scripts/lab-e2e.sh --run); otherwise they are simulated (mock iLO 5
# BMCs whose hosts post the validation report when they PXE-boot, bm-lab-sim). It says which.
#   BM_DEMO_SERVERS=N   how many servers (default: 1 in the lab, 3 simulated; the lab takes at most 3)
#   BM_DEMO_MODE=lab|sim  choose instead of detecting
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/lib.sh
export PATH="$ROOT/.venv/bin:$PATH"
set -a; source "$STACK_ENV"; set +a

log "bootstrapping the NetBox lifecycle schema"
ansible-playbook bm.lifecycle.bootstrap_netbox >/dev/null
mode=${BM_DEMO_MODE:-}
if [ -z "$mode" ]; then
    if can_run=$(bm-lab-e2e --check); then mode=lab; else mode=sim; log "$can_run"; fi
fi
status=0
case "$mode" in
    lab)
        log "this machine runs the lab: QEMU servers PXE-boot the validation image inside network namespaces"
        workdir="$LAB/lab-e2e"
        BM_LAB_E2E_DIR="$workdir" scripts/lab-e2e.sh --run "${BM_DEMO_SERVERS:-1}" || status=$?
        ;;
    sim)
        log "this machine runs the simulated fleet (mock iLO 5 BMCs; the lab needs root, QEMU and network namespaces)"
        workdir="$LAB/demo"
        bm-lab-sim --count "${BM_DEMO_SERVERS:-3}" --workdir "$workdir" || status=$?
        ;;
    *) die "BM_DEMO_MODE must be lab or sim, not $mode" ;;
esac
python scripts/show_netbox.py
echo
echo "NetBox UI: $NETBOX_API  (user ${NETBOX_ADMIN_USER}, password in .lab/stack.env)"
echo "Metrics: $workdir/metrics   Service log: $workdir/logs/rulebook.log"
exit "$status"
