#!/usr/bin/env python3
# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mirror the repository into <dest>/ansible_collections/msr/replicas, minus galaxy.yml's build_ignore.

ansible-test needs that layout. Syncing instead of recreating keeps the copy's tests/output (where
ansible-test caches its delegation venv), so warm runs stay fast. Prints the collection path.
"""

import fnmatch
import filecmp
import os
import shutil
import sys

import yaml

ALWAYS_IGNORED = (".git", "*.pyc", "*/.git")
IGNORED_NAMES = ("__pycache__",)
KEEP_IN_DEST = ("tests/output",)


def ignored(rel, patterns):
    # As ansible-galaxy does: fnmatch on the path relative to the collection root ('*' spans '/').
    if rel.rsplit("/", 1)[-1] in IGNORED_NAMES:
        return True
    return any(fnmatch.fnmatch(rel, pattern) for pattern in patterns)


def wanted_files(root, patterns):
    result = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = sorted(d for d in dirnames if not ignored(rel_dir + d, patterns))
        for name in filenames:
            if not ignored(rel_dir + name, patterns):
                result.add(rel_dir + name)
    return result


def sync(root, dest, files):
    for rel in sorted(files):
        src, dst = os.path.join(root, rel), os.path.join(dest, rel)
        if os.path.isfile(dst) and filecmp.cmp(src, dst, shallow=False):
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)
    for dirpath, dirnames, filenames in os.walk(dest, topdown=True):
        rel_dir = os.path.relpath(dirpath, dest).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = [d for d in dirnames if rel_dir + d not in KEEP_IN_DEST]
        for name in filenames:
            if rel_dir + name not in files:
                os.unlink(os.path.join(dirpath, name))
    # Empty directories left by deleted files would still be seen by some sanity tests.
    for dirpath, _dirs, _files in os.walk(dest, topdown=False):
        rel_dir = os.path.relpath(dirpath, dest).replace(os.sep, "/")
        if dirpath != dest and not os.listdir(dirpath) and not rel_dir.startswith(KEEP_IN_DEST):
            os.rmdir(dirpath)


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    base = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "build"))
    with open(os.path.join(root, "galaxy.yml")) as handle:
        galaxy = yaml.safe_load(handle)
    patterns = list(galaxy.get("build_ignore") or []) + list(ALWAYS_IGNORED)
    dest = os.path.join(base, "ansible_collections", galaxy["namespace"], galaxy["name"])
    os.makedirs(dest, exist_ok=True)
    sync(root, dest, wanted_files(root, patterns))
    print(dest)


if __name__ == "__main__":
    main()
