#!/usr/bin/env bash
# Every test, cheapest first. Used by `make test` and CI. Runs all groups, then fails if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
failed=()
run() {
  local name=$1; shift
  echo "== $name: $*"
  local t=$SECONDS
  "$@" || failed+=("$name")
  echo "   ($name: $((SECONDS - t)) s)"
}
run static      ruff check --quiet .
run unit        pytest -q -p no:cacheprovider tests/unit
run lab         pytest -q -p no:cacheprovider tests/lab/tests
run sanity      scripts/sanity.sh
run lint        scripts/lint.sh
run integration pytest -q -p no:cacheprovider tests/integration
run molecule    scripts/molecule.sh
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED groups: ${failed[*]}"
  exit 1
fi
echo "all test groups passed"
