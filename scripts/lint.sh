#!/usr/bin/env bash
# ansible-lint, production profile, over the whole collection (configuration in .ansible-lint).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
# ansible-lint and ansible-compat cache under XDG_CACHE_HOME (~/.cache by default); keep that out of a
# CI runner's HOME, like scripts/sanity.sh does for ansible-test.
export XDG_CACHE_HOME="${MSR_LINT_CACHE:-/var/tmp/msr-replicas-$(id -u)-lint-cache}"
exec ansible-lint --profile production "$@"
