#!/usr/bin/env bash
# The project-local stack under .lab/: PostgreSQL, Redis (AOF), NetBox (gunicorn 1x4) and NetBox's background worker
# (rqworker: delivers its webhooks, e.g. to the rulebook's netbox_webhook source), no systemd.
#   stack.sh up        start what is not running (idempotent; seconds when already up)
#   stack.sh down      stop what `up` started, by PID file
#   stack.sh status    processes, ports, NetBox version
#   stack.sh reset     NetBox back to the template database, event bus emptied
#   stack.sh fresh     NetBox back to the migrated snapshot (all data gone; the admin and API token are kept)
#   stack.sh template  save the current NetBox database as the template `reset` restores
#   stack.sh snapshot  rebuild the committed migrated snapshot (runs `netbox migrate`: minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/lib.sh

RUN="$LAB/run"
PGDATA="$LAB/postgres"
SECRETS="$LAB/secrets.env"
PG_USER=postgres

# Runs a command as the PostgreSQL server's owner (postgres refuses to run as root).
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi; }
psql_nb() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U netbox "$@"; }

pid_alive() { [ -f "$1" ] && kill -0 "$(head -n1 "$1")" 2>/dev/null; }

# Fails with a clear message when something that is not ours listens on the port.
port_free_or_die() {
    local port=$1 what=$2 var=$3
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port 127.0.0.1:$port (for $what) is already in use by another process; stop it or choose another port with $var=<port>"
    fi
}

ensure_secrets() {
    [ -f "$SECRETS" ] && return 0
    umask 077
    local py="$NETBOX_VENV/bin/python"
    "$py" - > "$SECRETS" <<'PY'
import secrets, string
alnum = string.ascii_letters + string.digits
def rand(n): return "".join(secrets.choice(alnum) for _ in range(n))
print(f"BM_NETBOX_SECRET_KEY={rand(64)}")
print(f"BM_NETBOX_TOKEN_PEPPER={rand(64)}")
print(f"BM_NETBOX_ADMIN_PASSWORD={rand(24)}")
print(f"BM_NETBOX_TOKEN_KEY={rand(12)}")
print(f"BM_NETBOX_TOKEN_SECRET={rand(40)}")
PY
}

# Added on its own so that a secrets file of an older checkout keeps its other values (and the database its token).
ensure_webhook_secret() {
    grep -q '^BM_NETBOX_WEBHOOK_SECRET=' "$SECRETS" && return 0
    umask 077
    "$NETBOX_VENV/bin/python" -c 'import secrets; print(f"BM_NETBOX_WEBHOOK_SECRET={secrets.token_hex(32)}")' >> "$SECRETS"
}

load_secrets() { set -a; source "$SECRETS"; set +a; }

# The validation webhook serves TLS by default: a small local CA and the webhook's certificate under $LAB/tls/ (keys
# 0600, made once), for the addresses the sim and the lab image reach it at (BM_WEBHOOK_TLS_SANS: others). The CA is
# what the image verifies with (bm.ca=, BM_VALIDATION_CALLBACK_CA).
TLS="$LAB/tls"
ensure_webhook_tls() {
    local sans="${BM_WEBHOOK_TLS_SANS:-DNS:localhost,IP:127.0.0.1,IP:10.77.1.1}"  # 10.77.1.1: bm-lab-e2e's prov
    [ -s "$TLS/ca.crt" ] && [ -s "$TLS/webhook.crt" ] && [ -s "$TLS/webhook.key" ] && return 0
    mkdir -p "$TLS" && chmod 700 "$TLS"
    log "making the validation webhook's local CA and certificate in $TLS ($sans)"
    (
        umask 077
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
            -subj "/CN=bm-lifecycle local CA" -keyout "$TLS/ca.key" -out "$TLS/ca.crt" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bm-lifecycle validation webhook" \
            -keyout "$TLS/webhook.key" -out "$TLS/webhook.csr"
        printf '%s\n' "subjectAltName=$sans" "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=serverAuth" "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" > "$TLS/webhook.ext"
        openssl x509 -req -in "$TLS/webhook.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" -CAcreateserial -days 825 \
            -extfile "$TLS/webhook.ext" -out "$TLS/webhook.crt"
    ) > "$LAB/logs/tls.log" 2>&1 || die "openssl could not make the webhook's certificate; see $LAB/logs/tls.log"
    rm -f "$TLS/webhook.csr" "$TLS/webhook.ext" "$TLS/ca.srl"
    chmod 600 "$TLS/ca.key" "$TLS/webhook.key"
    chmod 644 "$TLS/ca.crt" "$TLS/webhook.crt"
}

netbox_env() {
    export NETBOX_CONFIGURATION=bm_netbox_config NETBOX_ROOT="$LAB/netbox" PYTHONPATH="$ROOT/stack/netbox"
    export BM_PG_PORT="$PG_PORT" BM_REDIS_PORT="$REDIS_PORT"
    load_secrets
}

write_stack_env() {
    umask 077
    cat > "$STACK_ENV" <<EOF
# Written by scripts/stack.sh up: how commands and tests reach the local stack. Secret: do not share.
NETBOX_API=http://127.0.0.1:$NETBOX_PORT
NETBOX_TOKEN=nbt_${BM_NETBOX_TOKEN_KEY}.${BM_NETBOX_TOKEN_SECRET}
NETBOX_ADMIN_USER=admin
NETBOX_ADMIN_PASSWORD=$BM_NETBOX_ADMIN_PASSWORD
BM_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
BM_PG_PORT=$PG_PORT
BM_NETBOX_WEBHOOK_SECRET=$BM_NETBOX_WEBHOOK_SECRET
BM_WEBHOOK_CERTFILE=$TLS/webhook.crt
BM_WEBHOOK_KEYFILE=$TLS/webhook.key
BM_VALIDATION_CALLBACK_CA=$TLS/ca.crt
EOF
}

start_postgres() {
    if [ -f "$PGDATA/postmaster.pid" ] && as_pg pg_ctl -D "$PGDATA" status >/dev/null 2>&1; then return 0; fi
    port_free_or_die "$PG_PORT" PostgreSQL BM_PG_PORT
    if [ ! -f "$PGDATA/PG_VERSION" ]; then
        log "initialising PostgreSQL in $PGDATA"
        mkdir -p "$PGDATA"; [ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$PGDATA"
        as_pg initdb -D "$PGDATA" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
        cat >> "$PGDATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
# A lab database: speed over crash safety.
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
EOF
    fi
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    [ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$LAB/logs/postgres.log" 2>/dev/null || true
    touch "$LAB/logs/postgres.log"; [ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$LAB/logs/postgres.log"
    as_pg pg_ctl -D "$PGDATA" -o "-p $PG_PORT" -l "$LAB/logs/postgres.log" -w -t 30 start >/dev/null \
        || die "PostgreSQL did not start; see $LAB/logs/postgres.log"
    psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c \
        "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='netbox') THEN CREATE ROLE netbox LOGIN CREATEDB; END IF; END\$\$;"
}

start_redis() {
    if pid_alive "$RUN/redis.pid"; then return 0; fi
    port_free_or_die "$REDIS_PORT" Redis BM_REDIS_PORT
    log "starting Redis on 127.0.0.1:$REDIS_PORT (AOF, appendfsync everysec)"
    mkdir -p "$LAB/redis"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$LAB/redis" --appendonly yes --appendfsync everysec \
        --save '' --daemonize yes --pidfile "$RUN/redis.pid" --logfile "$LAB/logs/redis.log"
    local i
    for i in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "Redis did not answer on 127.0.0.1:$REDIS_PORT; see $LAB/logs/redis.log"
}

check_netbox_version() {
    local installed
    installed=$("$NETBOX_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("netbox"))')
    [ "$installed" = "$NETBOX_VERSION" ] || die "NetBox $installed is installed in $NETBOX_VENV but the project pins $NETBOX_VERSION: run make install"
}

db_exists() { [ "$(psql_nb -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$1'")" = 1 ]; }

restore_snapshot() {
    if [ ! -f "$NETBOX_SNAPSHOT" ]; then
        local other; other=$(ls "$NETBOX_SNAPSHOT_DIR"/netbox-*-migrated.sql.gz 2>/dev/null | head -n1 || true)
        [ -n "$other" ] && die "the committed snapshot $(basename "$other") does not match the pinned NetBox $NETBOX_VERSION: it is stale; rebuild it with make netbox-snapshot"
        die "no NetBox snapshot $NETBOX_SNAPSHOT: build it with make netbox-snapshot"
    fi
    log "restoring NetBox database from $(basename "$NETBOX_SNAPSHOT")"
    psql_nb -d postgres -c "CREATE DATABASE netbox"
    gunzip -c "$NETBOX_SNAPSHOT" | psql_nb -d netbox >/dev/null
}

start_netbox() {
    netbox_env
    if pid_alive "$RUN/netbox.pid"; then return 0; fi
    port_free_or_die "$NETBOX_PORT" NetBox BM_NETBOX_PORT
    check_netbox_version
    db_exists netbox || restore_snapshot
    log "creating the admin user and API token"
    BM_NETBOX_DB=netbox "$NETBOX_VENV/bin/netbox" shell -c "$(cat stack/netbox/bootstrap_admin.py)" >/dev/null
    log "starting NetBox $NETBOX_VERSION on http://127.0.0.1:$NETBOX_PORT"
    mkdir -p "$LAB/netbox/media"
    "$NETBOX_VENV/bin/gunicorn" --bind "127.0.0.1:$NETBOX_PORT" --workers 1 --threads 4 --timeout 120 \
        --pid "$RUN/netbox.pid" --daemon --error-logfile "$LAB/logs/netbox.log" --capture-output \
        --access-logfile "$LAB/logs/netbox-access.log" \
        --chdir "$ROOT/stack/netbox" bm_netbox_wsgi:application
}

# NetBox's background worker: runs the event rules' webhooks. Detached, its output in the lab's log directory.
start_rqworker() {
    netbox_env
    if pid_alive "$RUN/rqworker.pid"; then return 0; fi
    log "starting the NetBox background worker (netbox rqworker: webhooks, event rules)"
    BM_NETBOX_DB=netbox nohup "$NETBOX_VENV/bin/netbox" rqworker </dev/null >>"$LAB/logs/rqworker.log" 2>&1 &
    echo $! > "$RUN/rqworker.pid"
}

wait_netbox() {
    local i code
    for i in $(seq 120); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer nbt_${BM_NETBOX_TOKEN_KEY}.${BM_NETBOX_TOKEN_SECRET}" \
            "http://127.0.0.1:$NETBOX_PORT/api/status/" || true)
        [ "$code" = 200 ] && return 0
        [ "$code" = 403 ] && die "NetBox refuses the stack's API token (HTTP 403); remove $SECRETS and the database, or run make down && make up"
        pid_alive "$RUN/netbox.pid" || [ "$i" -lt 10 ] || die "NetBox exited; see $LAB/logs/netbox.log"
        sleep 0.5
    done
    die "NetBox did not answer on http://127.0.0.1:$NETBOX_PORT within 60 s; see $LAB/logs/netbox.log"
}

cmd_up() {
    [ -x "$NETBOX_VENV/bin/netbox" ] || die "NetBox is not installed in $NETBOX_VENV: run make install"
    mkdir -p "$RUN" "$LAB/logs"
    ensure_secrets
    ensure_webhook_secret
    ensure_webhook_tls
    start_postgres
    start_redis
    start_netbox
    start_rqworker
    wait_netbox
    pid_alive "$RUN/rqworker.pid" || die "the NetBox background worker exited; see $LAB/logs/rqworker.log"
    write_stack_env
    log "stack up: NetBox http://127.0.0.1:$NETBOX_PORT, Redis 127.0.0.1:$REDIS_PORT, PostgreSQL 127.0.0.1:$PG_PORT (settings in ${STACK_ENV#"$ROOT"/})"
}

stop_pidfile() {
    local file=$1 what=$2 pid i
    pid_alive "$file" || { rm -f "$file"; return 0; }
    pid=$(head -n1 "$file")
    log "stopping $what (pid $pid)"
    kill "$pid"
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    rm -f "$file"
}

cmd_down() {
    stop_pidfile "$RUN/rqworker.pid" "NetBox background worker"
    stop_pidfile "$RUN/netbox.pid" NetBox
    stop_pidfile "$RUN/redis.pid" Redis
    if [ -f "$PGDATA/postmaster.pid" ]; then
        log "stopping PostgreSQL"
        as_pg pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null || true
    fi
}

cmd_status() {
    local rc=0
    if pid_alive "$RUN/netbox.pid"; then echo "netbox     up    pid $(head -n1 "$RUN/netbox.pid")  http://127.0.0.1:$NETBOX_PORT  $NETBOX_VERSION"; else echo "netbox     down"; rc=1; fi
    if pid_alive "$RUN/rqworker.pid"; then echo "rqworker   up    pid $(head -n1 "$RUN/rqworker.pid")  webhooks of NetBox's event rules"; else echo "rqworker   down"; rc=1; fi
    if pid_alive "$RUN/redis.pid"; then echo "redis      up    pid $(head -n1 "$RUN/redis.pid")  127.0.0.1:$REDIS_PORT"; else echo "redis      down"; rc=1; fi
    if [ -f "$PGDATA/postmaster.pid" ] && as_pg pg_ctl -D "$PGDATA" status >/dev/null 2>&1; then
        echo "postgresql up    pid $(head -n1 "$PGDATA/postmaster.pid")  127.0.0.1:$PG_PORT"
    else echo "postgresql down"; rc=1; fi
    return $rc
}

# NetBox back to the template, in ~0.2 s: gunicorn survives thanks to CONN_HEALTH_CHECKS.
cmd_reset() {
    db_exists netbox_template || die "no template database: run the bootstrap (make demo) and then scripts/stack.sh template"
    psql_nb -d postgres -c "DROP DATABASE IF EXISTS netbox WITH (FORCE)" -c "CREATE DATABASE netbox TEMPLATE netbox_template STRATEGY FILE_COPY"
    redis-cli -p "$REDIS_PORT" -n 2 FLUSHDB >/dev/null
    redis-cli -p "$REDIS_PORT" -n 0 FLUSHDB >/dev/null
}

cmd_fresh() {
    netbox_env
    psql_nb -d postgres -c "DROP DATABASE IF EXISTS netbox WITH (FORCE)" >/dev/null
    restore_snapshot
    BM_NETBOX_DB=netbox "$NETBOX_VENV/bin/netbox" shell -c "$(cat stack/netbox/bootstrap_admin.py)" >/dev/null
    redis-cli -p "$REDIS_PORT" -n 2 FLUSHDB >/dev/null
}

cmd_template() {
    psql_nb -d postgres -c "DROP DATABASE IF EXISTS netbox_template" \
        -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'netbox' AND pid <> pg_backend_pid()" \
        -c "CREATE DATABASE netbox_template TEMPLATE netbox STRATEGY FILE_COPY" >/dev/null
}

cmd_snapshot() {
    mkdir -p "$RUN" "$LAB/logs"
    ensure_secrets
    start_postgres
    start_redis
    netbox_env
    check_netbox_version
    local db=netbox_snapshot_build
    psql_nb -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    log "running netbox migrate on an empty database (several minutes of CPU)"
    BM_NETBOX_DB=$db "$NETBOX_VENV/bin/netbox" migrate --no-input > "$LAB/logs/netbox-migrate.log"
    rm -f "$NETBOX_SNAPSHOT_DIR"/netbox-*-migrated.sql.gz
    pg_dump -h 127.0.0.1 -p "$PG_PORT" -U netbox --no-owner --no-privileges "$db" | gzip -n -9 > "$NETBOX_SNAPSHOT"
    psql_nb -d postgres -c "DROP DATABASE $db"
    log "wrote ${NETBOX_SNAPSHOT#"$ROOT"/} ($(du -h "$NETBOX_SNAPSHOT" | cut -f1))"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    fresh) cmd_fresh ;;
    template) cmd_template ;;
    snapshot) cmd_snapshot ;;
    *) echo "usage: $0 up|down|status|reset|fresh|template|snapshot" >&2; exit 2 ;;
esac
