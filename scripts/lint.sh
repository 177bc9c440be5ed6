#!/usr/bin/env bash
# ansible-lint, production profile, over the whole collection (configuration in .ansible-lint).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
# ansible-lint and ansible-compat cache under XDG_CACHE_HOME (~/.cache by default); keep that out of a
# CI runner's HOME, like scripts/sanity.sh does for ansible-test.
export XDG_CACHE_HOME="${MSR_LINT_CACHE:-/var/tmp/msr-replicas-$(id -u)-lint-cache}"
# The collection itself on the collections path, so that the syntax check resolves msr.replicas.* in roles
# (offline: true in .ansible-lint also skips ansible-lint's own install of the local collection).
COLLECTIONS="$XDG_CACHE_HOME/collections-$(printf %s "$ROOT" | sha1sum | cut -c1-8)"
mkdir -p "$COLLECTIONS/ansible_collections/msr"
ln -sfn "$ROOT" "$COLLECTIONS/ansible_collections/msr/replicas"
export ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS${ANSIBLE_COLLECTIONS_PATH:+:$ANSIBLE_COLLECTIONS_PATH}"
exec ansible-lint --profile production "$@"
