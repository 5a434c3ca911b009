# Shared settings of the project's shell scripts (sourced, not run).
# Every value can be overridden from the environment.
: "${ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
LAB="${BM_LAB_DIR:-$ROOT/.lab}"
NETBOX_VERSION=4.7.3
NETBOX_VENV="${BM_NETBOX_VENV:-$ROOT/.lab/netbox-venv}"  # shared by every lab directory
NETBOX_SNAPSHOT_DIR="${BM_NETBOX_SNAPSHOT_DIR:-$ROOT/stack/netbox}"
NETBOX_SNAPSHOT="$NETBOX_SNAPSHOT_DIR/netbox-$NETBOX_VERSION-migrated.sql.gz"
PG_PORT="${BM_PG_PORT:-15432}"
REDIS_PORT="${BM_REDIS_PORT:-16379}"
NETBOX_PORT="${BM_NETBOX_PORT:-18000}"
STACK_ENV="$LAB/stack.env"
export JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}"
[ -x "$JAVA_HOME/bin/java" ] || JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/collections"

log() { printf '[bm %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[bm] ERROR: %s\n' "$*" >&2; exit 1; }

# Debian keeps the PostgreSQL server programs (initdb, pg_ctl) off PATH.
for _pg_bin in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1); do PATH="$_pg_bin:$PATH"; done
unset _pg_bin
