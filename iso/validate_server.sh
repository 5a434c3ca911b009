#!/bin/sh
# validate_server.sh: the validation image's one job (bm-lifecycle, plan component 4).
#
# Reads its orders from the kernel command line, collects what the server really is (LLDP neighbours, dmidecode,
# `ip -d -j link`, `ip -j addr`), asks the webhook for the device's single-use token with the identity dmidecode reads
# (system UUID and serial: the webhook hands it out once, to the server the BMC named), POSTs one JSON report to the
# callback with that token, retrying both with backoff until a 2xx (bounded), then powers the server off. The report schema and the parameters are
# documented in iso/README.md. POSIX sh: runs under bash, dash and busybox ash (real `ip` called by full path,
# because busybox runs its own `ip` applet, which has no JSON, before PATH).
#
# Kernel command line (values must not contain blanks):
#   bm.device_id=ID        NetBox device id the report is for (required)
#   bm.callback=URL        report endpoint, e.g. https://10.1.100.5:5000/api/v1/validation/report (required); the token
#                          is asked for at its sibling .../token. No secret is on the command line: the boot script is
#                          served over plain HTTP.
#   bm.ca=PATH             CA bundle to verify an https callback (optional; without it the system store is used)
#   bm.nics=IF[,IF...]     interfaces to bring up and listen on (default: every interface backed by a device,
#                          except USB ones such as the BMC's virtual NIC)
#   bm.lldp_wait=SECONDS   longest wait for LLDP neighbours (default 65: two 30 s switch transmit intervals)
#   bm.post_deadline=SECS  give up posting after this long (default 3600)
#   bm.poweroff=0|1        power off at the end (default 1)
#   bm.poweroff_delay=SECS pause before powering off, so the switch hears our last LLDP frame (default 5)
#   bm.dump=0|1            also print every collected output and the report (token excluded) to the console
# Environment overrides, for tests and other images: BM_CMDLINE_FILE, BM_WORKDIR, BM_IP, BM_LLDPD, BM_LLDPCTL,
# BM_DMIDECODE, BM_CURL, BM_JQ, BM_ETHTOOL, BM_SYSFS, BM_DEBUGFS, BM_POWEROFF_CMD, BM_BACKOFF_MAX.
# Exit status (when bm.poweroff=0): 0 report accepted, 2 bad command line, 3 token or report refused or deadline
# passed.
set -u
umask 077

BM_VERSION=1
CMDLINE_FILE=${BM_CMDLINE_FILE:-/proc/cmdline}
WORKDIR=${BM_WORKDIR:-/run/bm-validate}
IP=${BM_IP:-/usr/sbin/ip}
LLDPD=${BM_LLDPD:-/usr/sbin/lldpd}
LLDPCTL=${BM_LLDPCTL:-/usr/sbin/lldpctl}
DMIDECODE=${BM_DMIDECODE:-/usr/sbin/dmidecode}
CURL=${BM_CURL:-curl}
JQ=${BM_JQ:-jq}
ETHTOOL=${BM_ETHTOOL:-ethtool}
SYSFS=${BM_SYSFS:-/sys}
DEBUGFS=${BM_DEBUGFS:-/sys/kernel/debug}
BACKOFF_MAX=${BM_BACKOFF_MAX:-60}
START=$(date +%s)
ERRORS=""        # newline-separated problems, carried in the report
FW_LLDP=""       # interfaces whose firmware LLDP agent we stopped
LLDPD_PID=""

log() { printf '%s bm-validate: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
note_error() { log "problem: $*"; ERRORS="$ERRORS$*
"; }

# --- the kernel command line ------------------------------------------------------------------------------------
CMDLINE=$(cat "$CMDLINE_FILE" 2>/dev/null)
param() {  # param NAME DEFAULT: value of bm.NAME= on the command line (last one wins), else DEFAULT
    _v=$2
    set -f  # split into words, never glob
    for _w in $CMDLINE; do
        case $_w in "bm.$1="*) _v=${_w#"bm.$1="} ;; esac
    done
    set +f
    printf '%s' "$_v"
}
is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }

DEVICE_ID=$(param device_id "")
CALLBACK=$(param callback "")
CA=$(param ca "")
NICS=$(param nics "" | tr ',' ' ')
LLDP_WAIT=$(param lldp_wait 65)
POST_DEADLINE=$(param post_deadline 3600)
POWEROFF=$(param poweroff 1)
POWEROFF_DELAY=$(param poweroff_delay 5)
DUMP=$(param dump 0)

finish() {  # finish STATUS: stop lldpd, power off (unless bm.poweroff=0), exit STATUS
    if [ -n "$LLDPD_PID" ]; then
        if [ "$POWEROFF" = 1 ] && [ "$POWEROFF_DELAY" -gt 0 ] 2>/dev/null; then sleep "$POWEROFF_DELAY"; fi
        kill "$LLDPD_PID" 2>/dev/null
        wait "$LLDPD_PID" 2>/dev/null
        LLDPD_PID=""
    fi
    if [ "$POWEROFF" = 1 ]; then
        log "powering off (status $1)"
        if [ -n "${BM_POWEROFF_CMD:-}" ]; then
            sh -c "$BM_POWEROFF_CMD"
        elif [ -d /run/systemd/system ]; then
            systemctl poweroff
        else
            sync; poweroff -f
        fi
    fi
    exit "$1"
}
trap 'finish 130' INT TERM

bad=""
[ -n "$DEVICE_ID" ] || bad="$bad bm.device_id"
case $CALLBACK in http://* | https://*) ;; *) bad="$bad bm.callback" ;; esac
for _n in "$LLDP_WAIT" "$POST_DEADLINE" "$POWEROFF_DELAY"; do is_uint "$_n" || bad="$bad number:$_n"; done
if [ -n "$CA" ] && [ ! -r "$CA" ]; then bad="$bad bm.ca(unreadable:$CA)"; fi
case $DEVICE_ID in *[!A-Za-z0-9._:-]*) bad="$bad bm.device_id(characters)" ;; esac
if [ -n "$bad" ] && [ "$DUMP" != 1 ]; then
    log "missing or invalid on the kernel command line:$bad; nothing to report to"
    finish 2
fi
[ -z "$bad" ] || note_error "kernel command line:$bad"
mkdir -p "$WORKDIR" || { log "cannot create $WORKDIR"; finish 2; }
chmod 755 "$WORKDIR"  # lldpd resumes itself by running lldpcli unprivileged: it must reach the socket here
log "device $DEVICE_ID, callback $CALLBACK, LLDP wait ${LLDP_WAIT}s, post deadline ${POST_DEADLINE}s"

# --- the network interfaces -------------------------------------------------------------------------------------
is_usb() {  # the BMC's virtual NIC (HPE iLO, Dell iDRAC, Lenovo XCC) hangs off USB
    case $(readlink -f "$SYSFS/class/net/$1/device/subsystem" 2>/dev/null) in */usb) return 0 ;; esac
    return 1
}
driver_of() { basename "$(readlink -f "$SYSFS/class/net/$1/device/driver" 2>/dev/null)" 2>/dev/null; }

if [ -z "$NICS" ]; then
    for _d in "$SYSFS"/class/net/*; do
        _i=${_d##*/}
        [ -e "$_d/device" ] || continue
        is_usb "$_i" && { log "leaving $_i alone (USB: the BMC's virtual NIC)"; continue; }
        NICS="$NICS $_i"
    done
fi
# shellcheck disable=SC2086,SC2116  # squeeze the blanks
NICS=$(echo $NICS)
[ -n "$NICS" ] || note_error "no network interface to listen on"
log "interfaces: ${NICS:-none}"

# Intel X710/XL710 (i40e) and E810 (ice) run an LLDP agent in firmware that consumes LLDP frames before the OS
# sees them. Stop it where present: i40e through its debugfs command file (and the newer private flag), ice through
# its private flag.
if [ -d "$DEBUGFS" ] && [ ! -d "$DEBUGFS/i40e" ] && [ "$DEBUGFS" = /sys/kernel/debug ]; then
    mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
fi
for _c in "$DEBUGFS"/i40e/*/command; do
    [ -w "$_c" ] || continue
    if echo 'lldp stop' > "$_c" 2>/dev/null; then
        _p=${_c%/command}; FW_LLDP="$FW_LLDP i40e:${_p##*/}"; log "stopped the i40e firmware LLDP agent of ${_p##*/}"
    else
        note_error "could not stop the i40e firmware LLDP agent via $_c"
    fi
done
for _i in $NICS; do
    case $(driver_of "$_i") in
        ice) _flag="fw-lldp-agent off" ;;
        i40e) _flag="disable-fw-lldp on" ;;
        *) continue ;;
    esac
    if command -v "$ETHTOOL" >/dev/null 2>&1; then
        # shellcheck disable=SC2086  # the flag and its value are two words on purpose
        if "$ETHTOOL" --set-priv-flags "$_i" $_flag 2>/dev/null; then
            FW_LLDP="$FW_LLDP $_i"; log "set $_flag on $_i"
        else
            log "$_i: ethtool could not set $_flag (older driver or firmware)"
        fi
    else
        note_error "$_i: $(driver_of "$_i") NIC but no ethtool to stop its firmware LLDP agent"
    fi
done

for _i in $NICS; do
    "$IP" link set dev "$_i" up 2>/dev/null || note_error "could not bring $_i up"
done

# --- LLDP -------------------------------------------------------------------------------------------------------
SOCK="$WORKDIR/lldpd.sock"
neighbor_ifs() {  # interfaces that have at least one neighbour, one per line
    "$LLDPCTL" -u "$SOCK" -f keyvalue 2>/dev/null | sed -n 's/^lldp\.\([^.]*\)\.via=.*/\1/p' | sort -u
}
carrier_ifs() {  # our interfaces that have a link
    for _i in $NICS; do
        [ "$(cat "$SYSFS/class/net/$_i/carrier" 2>/dev/null)" = 1 ] && echo "$_i"
    done
}
LLDP_WAITED=0
if [ -n "$NICS" ] && [ -x "$LLDPD" ]; then
    mkdir -p /run/lldpd 2>/dev/null
    "$LLDPD" -d -u "$SOCK" -I "$(echo "$NICS" | tr ' ' ',')" > "$WORKDIR/lldpd.log" 2>&1 &
    LLDPD_PID=$!
    log "lldpd started (pid $LLDPD_PID); waiting up to ${LLDP_WAIT}s for a neighbour on every linked interface"
    while [ "$LLDP_WAITED" -lt "$LLDP_WAIT" ]; do
        sleep 1
        LLDP_WAITED=$((LLDP_WAITED + 1))
        kill -0 "$LLDPD_PID" 2>/dev/null || { note_error "lldpd exited: $(tail -n 3 "$WORKDIR/lldpd.log" | tr '\n' ' ')"; break; }
        _linked=$(carrier_ifs); _heard=$(neighbor_ifs)
        [ -n "$_linked" ] || continue
        _missing=""
        for _i in $_linked; do echo "$_heard" | grep -qx "$_i" || _missing="$_missing $_i"; done
        [ -z "$_missing" ] && break
    done
    log "LLDP: neighbours on [$(neighbor_ifs | tr '\n' ' ')] after ${LLDP_WAITED}s; linked: [$(carrier_ifs | tr '\n' ' ')]"
    "$LLDPCTL" -u "$SOCK" -f json > "$WORKDIR/lldp.json" 2> "$WORKDIR/lldp.err" || note_error "lldpctl failed: $(head -c 300 "$WORKDIR/lldp.err")"
else
    [ -x "$LLDPD" ] || note_error "no lldpd at $LLDPD"
fi
"$JQ" -e 'type == "object"' "$WORKDIR/lldp.json" > /dev/null 2>&1 || { echo '{"lldp": {}}' > "$WORKDIR/lldp.json"; note_error "no usable lldpctl JSON"; }

# --- hardware and interfaces ------------------------------------------------------------------------------------
"$DMIDECODE" > "$WORKDIR/dmidecode.txt" 2> "$WORKDIR/dmidecode.err" || note_error "dmidecode failed: $(head -c 300 "$WORKDIR/dmidecode.err")"
dmi() {  # dmi SECTION FIELD: the first value of FIELD in the first "SECTION" block of the dmidecode text
    awk -v sec="$1" -v key="$2" '
        /^Handle / { insec = 0; next }
        $0 == sec { insec = 1; next }
        insec && index($0, "\t" key ": ") == 1 { print substr($0, length(key) + 4); exit }
    ' "$WORKDIR/dmidecode.txt"
}
"$IP" -d -j link show > "$WORKDIR/ip_link.json" 2>/dev/null || note_error "ip -d -j link failed"
"$IP" -j addr show > "$WORKDIR/ip_addr.json" 2>/dev/null || note_error "ip -j addr failed"
for _f in ip_link ip_addr; do
    "$JQ" -e 'type == "array"' "$WORKDIR/$_f.json" > /dev/null 2>&1 || { echo '[]' > "$WORKDIR/$_f.json"; note_error "no usable $_f JSON"; }
done
MEM_KIB=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo 2>/dev/null)
is_uint "${MEM_KIB:-}" || MEM_KIB=""

# --- the report -------------------------------------------------------------------------------------------------
printf '%s' "$ERRORS" > "$WORKDIR/errors.txt"
# shellcheck disable=SC2016  # a jq program: $names are jq variables
if ! "$JQ" -n \
    --arg device_id "$DEVICE_ID" \
    --arg timestamp "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --arg manufacturer "$(dmi 'System Information' Manufacturer)" \
    --arg model "$(dmi 'System Information' 'Product Name')" \
    --arg serial "$(dmi 'System Information' 'Serial Number')" \
    --arg uuid "$(dmi 'System Information' UUID)" \
    --arg sku "$(dmi 'System Information' 'SKU Number')" \
    --arg family "$(dmi 'System Information' Family)" \
    --arg bios_version "$(dmi 'BIOS Information' Version)" \
    --arg chassis_serial "$(dmi 'Chassis Information' 'Serial Number')" \
    --arg mem_kib "$MEM_KIB" \
    --arg kernel "$(uname -r)" \
    --arg fw_lldp "$FW_LLDP" \
    --arg nics "$NICS" \
    --argjson lldp_wait "$LLDP_WAIT" \
    --argjson lldp_waited "$LLDP_WAITED" \
    --rawfile dmidecode "$WORKDIR/dmidecode.txt" \
    --rawfile errors "$WORKDIR/errors.txt" \
    --slurpfile lldp "$WORKDIR/lldp.json" \
    --slurpfile ip_link "$WORKDIR/ip_link.json" \
    --slurpfile ip_addr "$WORKDIR/ip_addr.json" \
    --argjson version "$BM_VERSION" '
    def nonempty: if . == "" then null else . end;
    {
      schema_version: 1,
      device_id: $device_id,
      timestamp: $timestamp,
      hardware: {
        manufacturer: ($manufacturer | nonempty),
        model: ($model | nonempty),
        serial: ($serial | nonempty),
        uuid: ($uuid | nonempty),
        sku: ($sku | nonempty),
        family: ($family | nonempty),
        bios_version: ($bios_version | nonempty),
        chassis_serial: ($chassis_serial | nonempty),
        cpu_count: ([$dmidecode | splits("\n") | select(. == "Processor Information")] | length),
        memory_total_kib: ($mem_kib | nonempty | if . == null then null else tonumber end)
      },
      lldp: $lldp[0],
      interfaces: [ $ip_link[0][] | select(.link_type == "ether") | {
        name: .ifname,
        mac: .address,
        permanent_mac: (.permaddr // null),
        operstate: (.operstate // null),
        carrier: any((.flags // [])[]; . == "LOWER_UP"),
        kind: (.linkinfo.info_kind // null),
        parentbus: (.parentbus // null),
        parentdev: (.parentdev // null)
      } ],
      raw: {dmidecode: $dmidecode, ip_link: $ip_link[0], ip_addr: $ip_addr[0]},
      agent: {
        version: $version,
        kernel: $kernel,
        listened_on: ($nics | split(" ") | map(select(. != ""))),
        firmware_lldp_stopped: ($fw_lldp | split(" ") | map(select(. != ""))),
        lldp_wait_s: $lldp_wait,
        lldp_waited_s: $lldp_waited,
        errors: ($errors | split("\n") | map(select(. != "")))
      }
    }' > "$WORKDIR/report.json" 2> "$WORKDIR/report.err"; then
    log "could not build the report: $(head -c 300 "$WORKDIR/report.err")"
    finish 3
fi
log "report: $(wc -c < "$WORKDIR/report.json") bytes"

if [ "$DUMP" = 1 ]; then
    for _k in dmidecode:dmidecode.txt ip_link:ip_link.json ip_addr:ip_addr.json lldp:lldp.json report:report.json; do
        echo "==== BEGIN bm.dump ${_k%%:*} ===="
        cat "$WORKDIR/${_k#*:}"
        echo "==== END bm.dump ${_k%%:*} ===="
    done
fi
[ -z "$bad" ] || finish 2

# --- POST, with backoff ---------------------------------------------------------------------------------------
# post NAME URL BODY OUT REFUSALS [CURL ARG...]: POST the file BODY to URL until a 2xx (status 0), REFUSALS 4xx
# answers or the deadline (status 3); connection errors, 5xx, 408, 425 and 429 are retried with backoff. The answer
# is left in OUT.
post() {
    _name=$1; _url=$2; _body=$3; _out=$4; _max=$5
    shift 5
    set -- --silent --show-error --connect-timeout 10 --max-time 60 --output "$_out" --write-out '%{http_code}' \
        -X POST -H 'Content-Type: application/json' --data-binary "@$_body" "$@"
    [ -z "$CA" ] || set -- "$@" --cacert "$CA"
    _attempt=0; _delay=2; _refusals=0
    while :; do
        _attempt=$((_attempt + 1))
        _code=$("$CURL" "$@" "$_url" 2> "$WORKDIR/curl.err")
        case $_code in
            2??)
                log "$_name accepted (HTTP $_code) on attempt $_attempt"
                return 0
                ;;
            408 | 425 | 429) ;;
            4??)
                _refusals=$((_refusals + 1))
                log "$_name refused (HTTP $_code): $(head -c 300 "$_out")"
                [ "$_refusals" -lt "$_max" ] || return 3
                ;;
        esac
        _elapsed=$(($(date +%s) - START))
        if [ "$_elapsed" -ge "$POST_DEADLINE" ]; then
            log "$_name: giving up after $_attempt attempts and ${_elapsed}s"
            return 3
        fi
        _jitter=$(od -An -N1 -tu1 /dev/urandom 2>/dev/null | tr -d ' ')
        is_uint "$_jitter" || _jitter=0
        _jitter=$((_jitter % (_delay / 2 + 1)))
        log "$_name: attempt $_attempt failed (HTTP ${_code:-none} $(head -c 200 "$WORKDIR/curl.err" | tr '\n' ' ')); retrying in $((_delay + _jitter))s"
        sleep $((_delay + _jitter))
        _delay=$((_delay * 2))
        [ "$_delay" -le "$BACKOFF_MAX" ] || _delay=$BACKOFF_MAX
    done
}

# The token, handed out once to the server its BMC named: ask with what dmidecode says and a random request id of our
# own (asking again with it after a lost answer is a retry; a second request with another id is theft, and the
# webhook revokes the token). A refusal is final. The token goes straight from the answer into a header file (mode
# 0600), never into a variable, onto a command line where `ps` would show it, or onto the console.
REQUEST_ID=$(od -An -N16 -tx1 /dev/urandom 2>/dev/null | tr -d ' \n')
[ "${#REQUEST_ID}" -ge 16 ] || REQUEST_ID="r$(date +%s)-$$-$(cksum < "$WORKDIR/report.json" | tr -dc 0-9)"
# shellcheck disable=SC2016  # a jq program: $names are jq variables
"$JQ" -n --arg device_id "$DEVICE_ID" --arg request_id "$REQUEST_ID" \
    --arg uuid "$(dmi 'System Information' UUID)" --arg serial "$(dmi 'System Information' 'Serial Number')" '
    def nonempty: if . == "" then null else . end;
    {device_id: $device_id, request_id: $request_id, system: {uuid: ($uuid | nonempty), serial: ($serial | nonempty)}}
    ' > "$WORKDIR/token_request.json"
post token "${CALLBACK%/*}/token" "$WORKDIR/token_request.json" "$WORKDIR/token.json" 1
status=$?
if [ "$status" = 0 ]; then
    "$JQ" -r '"Authorization: Bearer " + .token' "$WORKDIR/token.json" > "$WORKDIR/auth.header" 2>/dev/null
    rm -f "$WORKDIR/token.json"
    if grep -q '^Authorization: Bearer [A-Za-z0-9_-]\{16,\}$' "$WORKDIR/auth.header"; then
        # A refusal will not change by itself (bad token, token already used, device not in validating), but the
        # answer to an accepted report may have been lost: try a few times, then stop.
        post report "$CALLBACK" "$WORKDIR/report.json" "$WORKDIR/response" 3 -H "@$WORKDIR/auth.header"
        status=$?
        [ "$status" != 0 ] || log "report: $(head -c 300 "$WORKDIR/response")"
    else
        log "the webhook's answer holds no token"
        status=3
    fi
fi
rm -f "$WORKDIR/auth.header" "$WORKDIR/token.json"
finish "$status"
