#!/usr/bin/env bash
# `molecule test --all` on msr-lab, hermetically: HOME, ANSIBLE_HOME (molecule's ephemeral state lives
# under it) and the collection path in a temp dir; the collection importable as msr.replicas through
# a symlink to this checkout; the lab (MSR_MOLECULE_LAB_NAME, default msrmol, on
# MSR_MOLECULE_LAB_SUBNET, default 10.81.0.0/24) always down at the end, whatever happened.
# Arguments go to molecule test (e.g. `-s replica` instead of --all). Needs root (the lab does).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$ROOT/.venv/bin:$PATH"
export MSR_MOLECULE_LAB_NAME="${MSR_MOLECULE_LAB_NAME:-msrmol}"
export MSR_MOLECULE_LAB_SUBNET="${MSR_MOLECULE_LAB_SUBNET:-10.81.0.0/24}"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/msr-molecule-XXXXXX")
finish() {
  MSR_LAB_NAME="$MSR_MOLECULE_LAB_NAME" msr-lab down >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap finish EXIT
trap 'exit 130' INT TERM

# Nothing of the caller's Ansible or molecule configuration leaks in.
while IFS= read -r name; do unset "$name"; done < <(env | sed -n 's/^\(ANSIBLE_[A-Z0-9_]*\|MOLECULE_[A-Z0-9_]*\)=.*/\1/p')
unset MSR_MOLECULE_HOME
mkdir -p "$WORK/home" "$WORK/collections/ansible_collections/msr"
ln -s "$ROOT" "$WORK/collections/ansible_collections/msr/replicas"
export HOME="$WORK/home" ANSIBLE_HOME="$WORK/ansible" XDG_CACHE_HOME="$WORK/cache"
export ANSIBLE_COLLECTIONS_PATH="$WORK/collections"

cd "$ROOT"
if [ $# -eq 0 ]; then
  set -- --all
fi
molecule test "$@"
