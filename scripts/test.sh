#!/usr/bin/env bash
# `make test`: the gates in order (ruff, mypy, ansible-lint, ansible-test sanity), then pytest.
# Exits non-zero on the first failing gate; ends with pytest's summary line.
#   --lint-only   stop after the gates
#   any other arguments are passed to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/lib.sh
export PATH="$ROOT/.venv/bin:$PATH"
C=collections/ansible_collections/bm/lifecycle
lint_only=0
[ "${1:-}" = "--lint-only" ] && { lint_only=1; shift; }

step() { log "gate: $*"; }

step ruff
ruff check .
ruff format --check .

step mypy
mypy "$C/plugins" "$C/extensions" src tests

step "ansible-lint --profile production"
ansible-lint --profile production --offline -q "$C" inventory

step "ansible-test sanity (offline)"
# ansible-test bootstraps pip in its venvs with a script from a host we cannot reach: give it our offline stand-in.
pip_version=$(grep -oP "pip='\K[0-9.]+" .venv/lib/python3.12/site-packages/ansible_test/_internal/python_requirements.py)
mkdir -p ~/.ansible/test/cache
cp scripts/ansible_test_get_pip.py ~/.ansible/test/cache/get_pip_${pip_version//./_}.py
( cd "$C" && ansible-test sanity --python 3.12 --color no $(cat "$ROOT/scripts/sanity-skip.txt" | grep -Ev '^(#|$)' | sed 's/^/--skip-test /') )

[ "$lint_only" -eq 1 ] && exit 0
step pytest
exec pytest "$@"
