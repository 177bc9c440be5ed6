#!/usr/bin/env bash
# The YAML and changelog linters, then ansible-lint (production profile) over the whole collection.
# Configuration: .yamllint (shared with ansible-lint's yaml rule), changelogs/config.yaml, .ansible-lint.
# ruff (ruff.toml) and ansible-test sanity (scripts/sanity.sh) are run by scripts/test.sh on their own.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
echo "== yamllint"
yamllint --strict .
echo "== changelog"
scripts/changelog.sh
echo "== ansible-lint"
# ansible-lint and ansible-compat cache under XDG_CACHE_HOME (~/.cache by default); keep that out of a
# CI runner's HOME, like scripts/sanity.sh does for ansible-test.
export XDG_CACHE_HOME="${MSR_LINT_CACHE:-/var/tmp/msr-replicas-$(id -u)-lint-cache}"
# The roles call the collection's own modules and filters: make it importable as msr.replicas.
. "$ROOT/scripts/link-collection.sh"
link_collection "$XDG_CACHE_HOME"
exec ansible-lint --profile production "$@"
