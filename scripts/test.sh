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
# ansible-lint runs alongside ansible-test sanity (both only read the checkout); its output follows.
lintlog=$(mktemp)
(scripts/lint.sh >"$lintlog" 2>&1; echo $? >"$lintlog.rc") &
lintpid=$!
run sanity      scripts/sanity.sh
wait "$lintpid"
run lint        bash -c 'cat "$1"; exit "$(cat "$1.rc")"' _ "$lintlog"
rm -f "$lintlog" "$lintlog.rc"
# The integration suite runs on three pytest-xdist workers, one lab each (msrint, msrint1, msrint2),
# whole files per worker: its tests mostly wait on the labs' clocks (health periods, joins). Its failed tests
# are listed again at the end, where a CI log's tail shows them.
ilog=$(mktemp); trap 'rm -f "$ilog" "$lintlog" "$lintlog.rc"' EXIT
run integration bash -c 'set -o pipefail; pytest -q -p no:cacheprovider -rfE -n "${MSR_INT_WORKERS:-3}" --dist loadfile tests/integration | tee "$1"' _ "$ilog"
run molecule    scripts/molecule.sh
grep -E '^(FAILED|ERROR) ' "$ilog" || true
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED groups: ${failed[*]}"
  exit 1
fi
echo "all test groups passed"
