#!/usr/bin/env bash
# Renders the RHEL 9 validation kickstart: validation.ks.in with iso/validate_server.sh embedded verbatim and,
# when given, the CA that verifies an https callback installed as /etc/bm/ca.pem (use bm.ca=/etc/bm/ca.pem).
#
#   iso/rhel9/render-ks.sh [CA_PEM_FILE] > validation.ks
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SCRIPT="$HERE/../validate_server.sh"
CA=${1:-}
if grep -qx 'BM_VALIDATE_SERVER_EOF' "$SCRIPT"; then
    echo "render-ks: validate_server.sh contains the heredoc delimiter" >&2; exit 1
fi
if [ -n "$CA" ]; then
    grep -q 'BEGIN CERTIFICATE' "$CA" || { echo "render-ks: $CA holds no PEM certificate" >&2; exit 1; }
fi
while IFS= read -r line || [ -n "$line" ]; do
    case $line in
        @VALIDATE_SERVER_SH@) cat "$SCRIPT" ;;
        @CA_BLOCK@)
            if [ -n "$CA" ]; then
                echo "cat > /etc/bm/ca.pem <<'BM_CA_EOF'"; cat "$CA"; echo "BM_CA_EOF"; echo "chmod 0644 /etc/bm/ca.pem"
            else
                echo "# no CA embedded: an https callback is verified against the system trust store"
            fi
            ;;
        *) printf '%s\n' "$line" ;;
    esac
done < "$HERE/validation.ks.in"
