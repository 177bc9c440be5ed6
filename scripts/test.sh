#!/usr/bin/env bash
# Every test, in order of cost. Used by `make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
status=0
run() { echo "== $*"; "$@" || status=1; }
run pytest -q -p no:cacheprovider tests/lab/tests
exit $status
