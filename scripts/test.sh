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
# The lab-driven groups spend most of their time waiting on the labs' clocks (health periods, joins),
# so they run side by side, each on labs of its own: the integration suite on two pytest-xdist workers
# (one lab each, msrint and msrint1, whole files per worker) and molecule on msrmol. Molecule's output
# is shown when it ends.
mlog=$(mktemp); trap 'rm -f "$mlog"' EXIT
t_mol=$SECONDS
( scripts/molecule.sh >"$mlog" 2>&1; echo $? >"$mlog.rc" ) &
mol_pid=$!
run integration pytest -q -p no:cacheprovider -n "${MSR_INT_WORKERS:-2}" --dist loadfile tests/integration
wait "$mol_pid"
echo "== molecule: scripts/molecule.sh (alongside integration)"
cat "$mlog"
[ "$(cat "$mlog.rc")" = 0 ] || failed+=(molecule)
rm -f "$mlog.rc"
echo "   (molecule: $((SECONDS - t_mol)) s)"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED groups: ${failed[*]}"
  exit 1
fi
echo "all test groups passed"
