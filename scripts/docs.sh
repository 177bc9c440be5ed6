#!/usr/bin/env bash
# The collection's documentation as users meet it: antsibull-docs lint-collection-docs --plugin-docs (the
# docsite under docs/docsite/ and every plugin's and role's docs), then ansible-doc of every plugin and role
# found in the tree, and the -l listings. Fails on any lint finding, any non-zero exit and any stderr output
# (ansible-doc reports a broken DOCUMENTATION as a warning and still exits 0).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
CACHE="${MSR_DOCS_CACHE:-/var/tmp/msr-replicas-$(id -u)-docs}"
. "$ROOT/scripts/link-collection.sh"
link_collection "$CACHE"
export ANSIBLE_HOME="$CACHE/ansible-home"
export ANSIBLE_NOCOLOR=1
ERR=$(mktemp)
trap 'rm -f "$ERR"' EXIT
status=0

fail() { echo "FAIL $*"; [ -s "$ERR" ] && sed 's/^/     /' "$ERR"; status=1; }

# check <label> <command...>: passes when the command exits 0, prints something and writes nothing to stderr.
check() {
  local label=$1 out; shift
  if out=$("$@" 2>"$ERR") && [ ! -s "$ERR" ] && [ -n "$out" ]; then
    echo "ok   $label"
  else
    fail "$label"
  fi
  LAST_OUT=$out
}

echo "== antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs"
out=$(antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/msr/replicas" 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then echo "ok   0 findings"; else echo "$out"; echo "FAIL lint (exit $rc)"; status=1; fi

echo "== ansible-doc"
# Plugin types from the directories under plugins/; modules are .py files, filter and test plugins are
# documented in .yml files. action/module_utils/doc_fragments hold no user-facing plugin of their own.
for dir in plugins/*/; do
  dir=${dir%/}; type=${dir#plugins/}
  case $type in
    action|module_utils|doc_fragments) continue ;;
    modules) type=module; pattern='[!_]*.py' ;;
    filter|test) pattern='*.yml' ;;
    *) pattern='[!_]*.py' ;;
  esac
  names=$(find "$dir" -maxdepth 1 -name "$pattern" -printf '%f\n' | sed 's/\.[a-z]*$//' | sort)
  [ -n "$names" ] || continue
  check "ansible-doc -t $type -l msr.replicas" ansible-doc -t "$type" -l msr.replicas
  listing=$LAST_OUT
  for name in $names; do
    grep -q "^msr\.replicas\.$name " <<<"$listing" || { : >"$ERR"; fail "$type msr.replicas.$name missing from ansible-doc -t $type -l"; }
    check "ansible-doc -t $type msr.replicas.$name" ansible-doc -t "$type" "msr.replicas.$name"
  done
done

check "ansible-doc -t role -l msr.replicas" ansible-doc -t role -l msr.replicas
listing=$LAST_OUT
for role in $(find roles -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort); do
  [ -f "roles/$role/meta/argument_specs.yml" ] || { : >"$ERR"; fail "role $role has no meta/argument_specs.yml"; continue; }
  grep -q "^msr\.replicas\.$role:" <<<"$listing" || { : >"$ERR"; fail "role msr.replicas.$role missing from ansible-doc -t role -l"; }
  check "ansible-doc -t role msr.replicas.$role" ansible-doc -t role "msr.replicas.$role"
done

# The filters as users call them: from a template, through the collection loader.
out=$(ansible localhost -c local -i localhost, -m ansible.builtin.debug \
      -a 'msg={{ 5 | msr.replicas.msr_majority }}/{{ 5 | msr.replicas.msr_failures_tolerated }}' 2>&1)
if grep -q '"msg": "3/2"' <<<"$out"; then echo "ok   the filters in a template"; else : >"$ERR"; fail "the filters in a template"; echo "$out"; fi

[ $status -eq 0 ] && echo "docs: all clean" || echo "docs: FAILED"
exit $status
