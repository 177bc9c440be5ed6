#!/usr/bin/env bash
# ansible-lint, production profile, over the whole collection (configuration in .ansible-lint).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
# ansible-lint and ansible-compat cache under XDG_CACHE_HOME (~/.cache by default); keep that out of a
# CI runner's HOME, like scripts/sanity.sh does for ansible-test.
export XDG_CACHE_HOME="${MSR_LINT_CACHE:-/var/tmp/msr-replicas-$(id -u)-lint-cache}"
# The roles call the collection's own modules and filters: make it importable as msr.replicas (a symlink
# to this checkout, so what is linted is the checkout itself).
COLLS="$XDG_CACHE_HOME/collections-$(printf %s "$ROOT" | sha1sum | cut -c1-8)"
mkdir -p "$COLLS/ansible_collections/msr"
ln -sfn "$ROOT" "$COLLS/ansible_collections/msr/replicas"
export ANSIBLE_COLLECTIONS_PATH="$COLLS"
exec ansible-lint --profile production "$@"
