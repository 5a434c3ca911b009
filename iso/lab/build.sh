#!/usr/bin/env bash
# Builds the lab validation image (kernel + initramfs) from the Debian packages installed on this machine:
# busybox-static, the real lldpd/lldpcli/lldpctl, dmidecode, curl, jq, ethtool and ip with the libraries ldd names,
# the NIC drivers (virtio_net, e1000, USB CDC Ethernet/RNDIS) from linux-image-amd64, and the same
# iso/validate_server.sh as the RHEL 9 image.
#
#   iso/lab/build.sh            build (or reuse) and print the image directory (vmlinuz, initrd.gz, manifest.txt)
#
# Cached under .lab/image/<key>/, where <key> hashes every input (this script, /init, the hooks, the validation
# script, the Debian package versions, the kernel version, the extra modules and the overlay); .lab/image/current
# points at the last default build. Reproducible: fixed mtimes (SOURCE_DATE_EPOCH), sorted cpio with fixed owners
# and inode numbers, gzip -n. Inputs for special builds (the fixture capture uses them):
#   BM_IMAGE_EXTRA_MODULES  more kernel modules, by name (dependencies follow)
#   BM_IMAGE_OVERLAY        a directory copied over the image root (e.g. hooks in etc/bm/init.d/)
#   BM_IMAGE_ROOT           where the cache lives (default: <repo>/.lab/image)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${BM_IMAGE_ROOT:-$REPO/.lab/image}
EXTRA_MODULES=${BM_IMAGE_EXTRA_MODULES:-}
OVERLAY=${BM_IMAGE_OVERLAY:-}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1767225600}  # 2026-01-01T00:00:00Z
PACKAGES=(busybox-static lldpd dmidecode curl jq ethtool iproute2 linux-image-amd64 libc6)
BINARIES=(/usr/sbin/lldpd /usr/sbin/lldpcli /usr/sbin/dmidecode /usr/bin/curl /usr/bin/jq /usr/sbin/ethtool /usr/sbin/ip)
MODULES=(virtio_pci virtio_net e1000 uhci_hcd ehci_pci xhci_pci usbnet cdc_ether rndis_host)

log() { printf 'image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# The kernel: the newest one that linux-image-amd64 installed (not necessarily the one running here).
KVER=""
for k in $(find /lib/modules -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V); do [ -r "/boot/vmlinuz-$k" ] && KVER=$k; done
[ -n "$KVER" ] || die "no /boot/vmlinuz-* with modules: install linux-image-amd64 (requirements/apt.txt)"
for b in /bin/busybox "${BINARIES[@]}"; do [ -x "$b" ] || die "missing $b: install requirements/apt.txt"; done
/bin/busybox --list | grep -x udhcpc > /dev/null || die "/bin/busybox is not busybox-static"

versions=$(dpkg-query -W -f='${Package}=${Version}\n' "${PACKAGES[@]}" 2>/dev/null | sort)
overlay_sum=""
[ -z "$OVERLAY" ] || overlay_sum=$(cd "$OVERLAY" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
KEY=$( { cat "$HERE/build.sh" "$HERE/init" "$HERE/udhcpc.script" "$REPO/iso/validate_server.sh"
         echo "$versions"; echo "$KVER"; echo "$EXTRA_MODULES"; echo "$overlay_sum"; echo "$SOURCE_DATE_EPOCH"
       } | sha256sum | cut -c1-16)
OUT="$CACHE/$KEY"
if [ -f "$OUT/initrd.gz" ] && [ -f "$OUT/vmlinuz" ]; then
    log "cached: $OUT"
else
    started=$(date +%s.%N)
    mkdir -p "$CACHE"
    STAGE=$(mktemp -d "$CACHE/.stage.XXXXXX")
    trap 'rm -rf "$STAGE"' EXIT
    R="$STAGE/root"
    mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,usr/lib/modules,usr/lib64,etc/bm/init.d,proc,sys,dev,run,tmp,root}
    ln -s usr/lib "$R/lib"; ln -s usr/lib64 "$R/lib64"; mkdir "$R/var"; ln -s ../run "$R/var/run"  # merged /usr
    chmod 1777 "$R/tmp"

    # busybox and its applets (the real binaries below take precedence where both exist)
    cp /bin/busybox "$R/bin/busybox"
    for a in $(/bin/busybox --list); do
        [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"
    done

    # the real binaries and their libraries
    libs=()
    for b in "${BINARIES[@]}"; do
        install -D -m 0755 "$b" "$R$b"
        while read -r lib; do libs+=("$lib"); done < <(ldd "$b" | grep -oE '/[^ ]+' | sort -u)
    done
    ln -s lldpcli "$R/usr/sbin/lldpctl"
    for lib in $(printf '%s\n' "${libs[@]}" | sort -u); do
        real=$(readlink -f "$lib")
        install -D -m 0644 "$real" "$R$real"
        case $lib in /lib/* | /lib64/*) lib=/usr$lib ;; esac  # the image's /lib and /lib64 point into /usr
        if [ "$lib" != "$real" ] && [ ! -e "$R$lib" ]; then mkdir -p "$R$(dirname "$lib")"; ln -s "$real" "$R$lib"; fi
    done
    chmod 0755 "$R"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2

    # kernel modules in load order (dependencies first), from modules.dep
    mdir=/lib/modules/$KVER
    : > "$R/etc/bm/modules"
    # shellcheck disable=SC2206  # module names have no blanks
    wanted=("${MODULES[@]}" $EXTRA_MODULES)
    for m in "${wanted[@]}"; do
        line=$(grep -E "(^|/)${m//_/[_-]}\.ko(\.[a-z]+)?:" "$mdir/modules.dep" | head -n 1) || die "no module $m in $mdir"
        path=${line%%:*}; deps=${line#*:}
        order=()
        for d in $deps; do order=("$d" "${order[@]}"); done
        order+=("$path")
        for p in "${order[@]}"; do
            grep -qx "$p" "$R/etc/bm/modules" && continue
            case $p in *.ko) ;; *) die "compressed module $p: busybox insmod needs plain .ko" ;; esac
            install -D -m 0644 "$mdir/$p" "$R/lib/modules/$p"
            echo "$p" >> "$R/etc/bm/modules"
        done
    done

    # lldpd's privilege separation user, /init, the DHCP hook, the validation script
    printf 'root:x:0:0:root:/root:/bin/sh\n_lldpd:x:101:101:lldpd:/run/lldpd:/bin/false\n' > "$R/etc/passwd"
    printf 'root:x:0:\n_lldpd:x:101:\n' > "$R/etc/group"
    printf 'hosts: files\npasswd: files\ngroup: files\n' > "$R/etc/nsswitch.conf"
    printf '127.0.0.1 localhost\n' > "$R/etc/hosts"
    install -m 0755 "$HERE/init" "$R/init"
    install -m 0755 "$HERE/udhcpc.script" "$R/etc/bm/udhcpc.script"
    install -m 0755 "$REPO/iso/validate_server.sh" "$R/usr/local/bin/validate_server.sh"
    [ -z "$OVERLAY" ] || cp -a "$OVERLAY/." "$R/"
    { echo "key=$KEY"; echo "kernel=$KVER"; echo "$versions"; echo "modules:"; cat "$R/etc/bm/modules"; } > "$STAGE/manifest.txt"

    # reproducible archive: fixed mtimes, sorted names, root owner, fixed inode numbers, no gzip timestamp
    find "$R" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    (cd "$R" && find . -mindepth 1 -print | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) \
        | gzip -n -9 > "$STAGE/initrd.gz"
    install -m 0644 "/boot/vmlinuz-$KVER" "$STAGE/vmlinuz"
    rm -rf "$R"
    rm -rf "$OUT"
    mv "$STAGE" "$OUT"
    trap - EXIT
    log "built $OUT in $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s: initrd $(du -h "$OUT/initrd.gz" | cut -f1)"
fi
if [ -z "$EXTRA_MODULES" ] && [ -z "$OVERLAY" ]; then ln -sfn "$KEY" "$CACHE/current"; fi
echo "$OUT"
