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
# Groups that mostly wait (the lab's tests: ~85 s of CPU in ~270 s, on lab clocks) or only read the checkout
# (ansible-lint) run in the background alongside ansible-test sanity and the docs; their output follows, each in
# one piece.
bgdir=$(mktemp -d)
trap 'rm -rf "$bgdir"' EXIT
bg() {
  local name=$1; shift
  ( t=$SECONDS; "$@" >"$bgdir/$name.log" 2>&1; echo $? >"$bgdir/$name.rc"; echo $((SECONDS - t)) >"$bgdir/$name.s" ) &
}
collect() {
  local name=$1
  wait "$2"
  echo "== $name (in the background)"
  cat "$bgdir/$name.log"
  echo "   ($name: $(cat "$bgdir/$name.s") s)"
  [ "$(cat "$bgdir/$name.rc")" = 0 ] || failed+=("$name")
}
bg lab pytest -q -p no:cacheprovider tests/lab/tests; labpid=$!
bg lint scripts/lint.sh; lintpid=$!
run sanity      scripts/sanity.sh
run docs        scripts/docs.sh
collect lint "$lintpid"
collect lab "$labpid"
# The integration suite runs on five pytest-xdist workers, one lab each (msrint, msrint1, ... msrint4), whole
# files per worker, heaviest first: its tests mostly wait on the labs' clocks (health periods, joins); on three
# workers it used about one of the two cores. Its failed tests
# are listed again at the end, where a CI log's tail shows them.
ilog=$bgdir/integration.out
run integration bash -c 'set -o pipefail; pytest -q -p no:cacheprovider -rfE -n "${MSR_INT_WORKERS:-5}" --dist loadfile --no-loadscope-reorder tests/integration | tee "$1"' _ "$ilog"
run molecule    scripts/molecule.sh
grep -E '^(FAILED|ERROR) ' "$ilog" || true
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED groups: ${failed[*]}"
  exit 1
fi
echo "all test groups passed"
