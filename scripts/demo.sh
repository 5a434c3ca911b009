#!/usr/bin/env bash
# `make demo`: bootstrap NetBox's lifecycle schema and demo data on the local stack, then show what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/lib.sh
export PATH="$ROOT/.venv/bin:$PATH"
set -a; source "$STACK_ENV"; set +a

log "bootstrapping the NetBox lifecycle schema"
ansible-playbook bm.lifecycle.bootstrap_netbox
log "registering the demo server"
ansible-playbook bm.lifecycle.demo_data
python scripts/show_netbox.py
echo
echo "NetBox UI: $NETBOX_API  (user ${NETBOX_ADMIN_USER}, password in .lab/stack.env)"
