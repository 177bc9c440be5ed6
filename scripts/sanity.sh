#!/usr/bin/env bash
# ansible-test sanity + units on a copy of the collection (ansible-doc of every plugin: scripts/docs.sh),
# laid out as <work>/ansible_collections/msr/replicas. Needs PyPI, nothing else.
#
# The copy lives OUTSIDE the repository: ansible-test walks up from the collection looking for .git
# and, finding this repository, would list only git-tracked files under an ignored build/ (none).
# Work dir: $MSR_TEST_DIR, default /var/tmp/msr-replicas-<uid>-<hash of this checkout's path>.
# ansible-test keeps its per-test venvs and pip bootstrap under ~/.ansible/test; HOME is pointed at
# <work>/home so a CI runner's HOME (read-only, shared, unset) does not matter and the user's
# ~/.ansible is left alone. Deleting the work dir only makes the next run cold.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON_VERSION=3.11
PIP_VERSION=24.2   # the pip ansible-test 2.19 bootstraps into its venvs (python_requirements.get_venv_packages)
WORK="${MSR_TEST_DIR:-/var/tmp/msr-replicas-$(id -u)-$(printf %s "$ROOT" | sha1sum | cut -c1-8)}"
export PATH="$ROOT/.venv/bin:$PATH"
export HOME="$WORK/home"
export ANSIBLE_HOME="$HOME/.ansible"
mkdir -p "$HOME"

if ls "$ROOT"/tests/sanity/ignore-*.txt >/dev/null 2>&1; then
  echo "tests/sanity/ignore-*.txt must not exist: fix the code instead" >&2
  exit 1
fi

COLL=$(python "$ROOT/scripts/collection_tree.py" "$WORK")
export ANSIBLE_COLLECTIONS_PATH="$WORK"

# ansible-test downloads get-pip.py from a host that is not reachable here. Its stand-in installs from
# the pip wheel (fetched once from PyPI) instead; ansible-test runs it with GET_PIP set to its path.
CACHE="$HOME/.ansible/test/cache"
STANDIN="$CACHE/get_pip_${PIP_VERSION//./_}.py"
WHEEL="$CACHE/pip-$PIP_VERSION-py3-none-any.whl"
if [ ! -f "$WHEEL" ]; then
  mkdir -p "$CACHE"
  pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$CACHE" "pip==$PIP_VERSION"
fi
cat > "$STANDIN.tmp" <<PY
# get-pip.py stand-in written by scripts/sanity.sh: pip from the cached wheel installs the arguments.
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "pip-$PIP_VERSION-py3-none-any.whl"))
from pip._internal.cli.main import main  # noqa: E402

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--find-links", HERE] + args))
PY
mv "$STANDIN.tmp" "$STANDIN"

cd "$COLL"
status=0
step() { echo "== $*"; local t=$SECONDS; "$@" || status=1; echo "   ($((SECONDS - t)) s)"; }

step ansible-test sanity --venv --python "$PYTHON_VERSION" --color no
step ansible-test units --venv --python "$PYTHON_VERSION" --color no --requirements

exit $status
