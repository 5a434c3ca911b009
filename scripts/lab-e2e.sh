#!/usr/bin/env bash
# `make lab-e2e`: the lab tier. Every arrow of the sequence diagram for real on this machine: network namespaces with
# ISC dhcpd and the project's hook, lldpd switches, QEMU servers that PXE-boot the validation image, mock iLOs that
# drive them over QMP, and the ansible-rulebook service with every stage (src/bm_lab/lab.py).
#   scripts/lab-e2e.sh            the test (tests/lab/test_lab_e2e.py): one server, then three at once
#   scripts/lab-e2e.sh --run N    only run the lab for N servers (1-3) and print the timeline (`make demo` can use it)
# Needs root, the stack (`make up`) and the packages of requirements/apt.txt. Cleanup is guaranteed: the Python side
# removes what it created (finally), and this trap removes any namespace of this run and stops its QEMU by PID file.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
export PATH="$ROOT/.venv/bin:$PATH"
[ "$(id -u)" = 0 ] || die "the lab needs root (network namespaces, taps)"
[ -f "$STACK_ENV" ] || die "no $STACK_ENV: run make up"
set -a
# shellcheck disable=SC1090 # written by scripts/stack.sh
source "$STACK_ENV"
set +a
export PYTHONPATH="$ROOT/src:$ROOT/collections${PYTHONPATH:+:$PYTHONPATH}"
WORK="${BM_LAB_E2E_DIR:-$LAB/lab-e2e}"
export BM_LAB_E2E_DIR="$WORK"  # the test's work dir is the one this trap cleans (its own default ignores BM_LAB_DIR)

cleanup() {
    local pidfile pid ns
    for pidfile in "$WORK"/run/qemu-*.pid "$WORK"/*/run/qemu-*.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile" 2>/dev/null || true)
        if [ -n "$pid" ] && grep -qs qemu "/proc/$pid/comm"; then kill "$pid" 2>/dev/null || true; fi
    done
    # the lab names its namespaces <owner>-*, and writes <owner> into run/owner: remove any of ours still there
    for owner in $(cat "$WORK"/run/owner "$WORK"/*/run/owner 2>/dev/null || true); do
        for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${owner}-" || true); do
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
            ip netns del "$ns" 2>/dev/null || true
        done
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${1:-}" = "--run" ]; then
    python -m bm_lab.lab --count "${2:-1}" --workdir "$WORK"
else
    log "the lab tier (tests/lab/test_lab_e2e.py): one server, then three at once"
    BM_LAB_E2E=${BM_LAB_E2E:-all} python -m pytest -m lab tests/lab/test_lab_e2e.py -p no:cacheprovider -s "$@"
fi
