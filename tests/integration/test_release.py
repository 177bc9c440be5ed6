# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The release as a user gets it: `ansible-galaxy collection build` of the checkout (a copy, with the junk a
working tree collects planted in it), its file list against galaxy.yml's promise, `ansible-galaxy collection
install` of the tarball into an empty path, and the playbooks and bin/msr-reconcile run from THERE only
(ANSIBLE_COLLECTIONS_PATH = the install dir, not the symlink to the checkout the other tests use): preflight,
scale_up 1 -> 3, a second scale_up with changed=0, and a reconcile report in sync."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
import yaml
from pbutil import ev, settled_pools
from tarball import build_and_install, hermetic_env, sh
from test_roles import nodes_of, pools

from msrint import BIN, ROOT

pytestmark = pytest.mark.timeout(600)

THREE = ["worker1", "worker2", "worker3"]
# What a user needs, all of it: every file under these (the working tree's junk aside) ships.
CONTENT = ("plugins", "roles", "playbooks", "meta", "bin", "docs", "changelogs", "extensions", "tests/unit")
ROOT_FILES = ("README.md", "LICENSE", "CHANGELOG.rst", "CHANGELOG.md")
# What a working tree collects that must never ship: the venv, caches at any depth, lab and test state.
JUNK = (".venv/pyvenv.cfg", ".ruff_cache/CACHEDIR.TAG", ".hypothesis/examples/a/b", "tests/unit/.hypothesis/x",
        ".pytest_cache/v/cache/lastfailed", "tests/unit/.pytest_cache/README.md",
        "plugins/module_utils/__pycache__/_common.cpython-311.pyc", "tests/output/junit/python3.11.xml",
        "docs/reliability.lock", ".lab/lab.json", ".ansible/collections/x", "tests/lab/msr_lab.egg-info/PKG-INFO",
        "changelogs/.plugin-cache.yaml", "build/ansible_collections/x", "msr-replicas-0.0.1.tar.gz")
JUNK_DIRS = {".venv", "__pycache__", ".ruff_cache", ".hypothesis", ".pytest_cache", ".lab", ".ansible", ".git"}


def is_junk(rel):
    parts = rel.split("/")
    return (bool(JUNK_DIRS.intersection(parts)) or any(p.endswith(".egg-info") for p in parts)
            or rel.endswith((".pyc", ".tar.gz")) or rel.startswith(("tests/output", "build/"))
            or rel in ("docs/reliability.lock", "changelogs/.plugin-cache.yaml"))


def expected_files():
    found = {name for name in ROOT_FILES if (ROOT / name).is_file()}
    for top in CONTENT:
        for dirpath, _dirs, files in os.walk(ROOT / top):
            for name in files:
                rel = (Path(dirpath) / name).relative_to(ROOT).as_posix()
                if not is_junk(rel):
                    found.add(rel)
    return found | {"MANIFEST.json", "FILES.json"}


class Release:
    def __init__(self, tarball, names, installed, collections, env):
        self.tarball, self.names, self.installed, self.collections, self.env = tarball, names, installed, collections, env


@pytest.fixture(scope="module")
def release():
    base = Path(tempfile.mkdtemp(prefix="msr-release-"))
    try:
        src = base / "src"
        # The checkout as it stands (untracked and ignored files too), minus its git and venv, plus junk.
        shutil.copytree(ROOT, src, symlinks=True, ignore=lambda d, names: [".git", ".venv"] if Path(d) == ROOT else [])
        for rel in JUNK:
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_text("junk\n")
        env = hermetic_env(base / "home", ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=base / "collections")
        tarball, collections, installed = build_and_install(src, base, env)
        with tarfile.open(tarball) as tar:
            names = {m.name for m in tar.getmembers() if m.isfile()}
        yield Release(tarball, names, installed, collections, env)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_tarball_holds_what_a_user_needs_and_nothing_of_the_working_tree(release):
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    assert release.tarball.name == "msr-replicas-%s.tar.gz" % galaxy["version"]
    leaked = sorted(n for n in release.names if is_junk(n) or n in JUNK)
    assert not leaked, "in the tarball: %s; add them to build_ignore in galaxy.yml" % leaked
    expected = expected_files()
    missing, extra = sorted(expected - release.names), sorted(release.names - expected)
    assert not missing, "not in the tarball: %s; take them out of build_ignore in galaxy.yml" % missing
    assert not extra, "in the tarball but neither content nor tests/unit: %s; add them to build_ignore" % extra
    for must in ("plugins/module_utils/_common.py", "plugins/modules/replica.py", "plugins/action/replica.py",
                 "roles/replica/tasks/main.yml", "playbooks/scale_up.yml", "meta/runtime.yml", "bin/msr-reconcile",
                 "changelogs/changelog.yaml", "README.md", "LICENSE"):
        assert must in release.names, must

    manifest = json.loads((release.installed / "MANIFEST.json").read_text())["collection_info"]
    for key in ("namespace", "name", "version", "authors", "license", "tags", "repository", "documentation",
                "homepage", "issues", "description"):
        assert manifest[key] == galaxy[key], key
    assert all(re.fullmatch(r"[a-z0-9]{1,64}", t) for t in manifest["tags"]), manifest["tags"]
    for key in ("repository", "documentation", "homepage", "issues"):
        assert manifest[key].startswith("https://github.com/msr-replicas/msr.replicas"), manifest[key]

    # Installed as a real tree (no link back to the checkout), the very files of the tarball.
    assert not release.installed.is_symlink() and ROOT not in release.installed.resolve().parents
    on_disk = {p.relative_to(release.installed).as_posix() for p in release.installed.rglob("*") if p.is_file()}
    assert on_disk == release.names
    assert os.access(release.installed / "bin" / "msr-reconcile", os.X_OK)
    listed = json.loads(sh([BIN / "ansible-galaxy", "collection", "list", "msr.replicas", "--format", "json"],
                           release.env))
    assert listed == {str(release.collections / "ansible_collections"): {"msr.replicas": {"version": galaxy["version"]}}}


def recap_changed_all(run):
    """changed= summed over every host of the play recap."""
    counts = re.findall(r"^\S+\s+: ok=\d+\s+changed=(\d+)", run.stdout, re.M)
    assert counts, run.output
    return sum(int(c) for c in counts)


def test_the_installed_collection_runs_the_playbooks_on_the_lab(lab, release):
    lab.fresh(replicas=1)
    env = {"ANSIBLE_COLLECTIONS_PATH": str(release.collections)}
    # What the playbooks below load is the installed copy: ansible-doc under the same environment says where.
    doc = json.loads(subprocess.run([BIN / "ansible-doc", "-t", "module", "msr.replicas.replica", "--json"],
                                    env=lab.ansible_env(**env), capture_output=True, text=True, timeout=60).stdout)
    assert doc["msr.replicas.replica"]["doc"]["filename"] == str(release.installed / "plugins/modules/replica.py")

    inv3 = lab.inventory_with(THREE)
    before = lab.replicas()
    run = lab.run("msr.replicas.preflight", inventory=inv3, env=env, touches=False,
                  extra_vars={"preflight_min_memory_gb": 4})
    assert run.rc == 0 and recap_changed_all(run) == 0, run.output
    assert lab.replicas() == before

    backups = lab.workdir / "backups-release"
    run = lab.run("msr.replicas.scale_up", inventory=inv3, env=env, extra_vars=ev(lab, backups))
    assert run.rc == 0, run.output
    assert nodes_of(lab) == THREE and all(r["health"] == "OK" for r in lab.replicas().values())
    assert pools(lab) == settled_pools(lab, THREE)
    run = lab.run("msr.replicas.scale_up", inventory=inv3, env=env, extra_vars=ev(lab, backups))
    assert run.rc == 0 and recap_changed_all(run) == 0, run.output

    report = lab.workdir / "release-reconcile.json"
    proc = subprocess.run([release.installed / "bin" / "msr-reconcile", "--ansible-playbook", BIN / "ansible-playbook",
                           "-i", inv3, "--lock", lab.workdir / "release.lock", "--report", report],
                          env=lab.ansible_env(**env), capture_output=True, text=True, timeout=300, cwd=lab.workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(report.read_text())
    assert data["status"] == "in_sync" and data["in_sync"] and data["drift"] == [], data
