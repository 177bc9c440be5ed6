#!/usr/bin/env bash
# The changelog: fragments and changelogs/changelog.yaml lint clean, galaxy.yml's version agrees with
# them, and a trial `antsibull-changelog release` of that version (on a copy) renders it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"

antsibull-changelog lint
antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml

# The version agrees: galaxy.yml is either a release not made yet (newer than every release in
# changelog.yaml) or the newest release with no fragment left over for it.
version=$(python - <<'PY'
import os
import sys

import yaml
from ansible.module_utils.compat.version import LooseVersion

galaxy = yaml.safe_load(open("galaxy.yml"))
config = yaml.safe_load(open("changelogs/config.yaml"))
changes = yaml.safe_load(open("changelogs/changelog.yaml"))
version = str(galaxy["version"])
fqcn = "%s.%s" % (galaxy["namespace"], galaxy["name"])
errors = []
if config.get("title") != fqcn:
    errors.append("changelogs/config.yaml: title %r is not the collection %s" % (config.get("title"), fqcn))
releases = sorted((changes.get("releases") or {}), key=LooseVersion)
released = {f for r in (changes.get("releases") or {}).values() for f in r.get("fragments") or []}
pending = sorted(f for f in os.listdir("changelogs/fragments")
                 if f.endswith((".yml", ".yaml")) and f not in released)
if releases and LooseVersion(version) < LooseVersion(releases[-1]):
    errors.append("galaxy.yml version %s is older than the release %s in changelogs/changelog.yaml: "
                  "set version to a new release" % (version, releases[-1]))
elif version in releases and pending:
    errors.append("galaxy.yml version %s is already released in changelogs/changelog.yaml but fragments %s "
                  "are not: bump version in galaxy.yml" % (version, ", ".join(pending)))
if errors:
    sys.exit("\n".join(errors))
print(version)
PY
)

# A trial release of that version on a copy: antsibull-changelog reads the plugins through ansible-doc,
# so the copy is laid out as ansible_collections/<namespace>/<name>.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
coll="$work/ansible_collections/msr/replicas"
mkdir -p "$coll"
cp -r galaxy.yml meta plugins roles playbooks changelogs "$coll/"
( cd "$coll" && HOME="$work" ANSIBLE_COLLECTIONS_PATH="$work" \
    antsibull-changelog release --version "$version" --date 2000-01-01 >/dev/null )
if ! grep -qx "v$version" "$coll/CHANGELOG.rst"; then
  echo "changelog: the trial release did not render v$version" >&2
  exit 1
fi
echo "changelog: fragments and changelogs/changelog.yaml lint clean; v$version renders" \
     "($(grep -c '^- ' "$coll/CHANGELOG.rst") entries)"
