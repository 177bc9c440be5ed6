# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection as a user gets it, for test_release and test_awx: `ansible-galaxy collection build` of a
source tree and `install` of that tarball into an empty collections dir, in an Ansible environment that
holds nothing of the caller's."""

from __future__ import annotations

import os
import subprocess

from msrint import BIN


def hermetic_env(home, **extra):
    """os.environ without ANSIBLE_*, HOME and ANSIBLE_HOME under ``home``, the venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(HOME=str(home), ANSIBLE_HOME=str(home / ".ansible"), PATH="%s:%s" % (BIN, env.get("PATH", "/usr/bin:/bin")))
    env.update((k, str(v)) for k, v in extra.items())
    return env


def sh(args, env, cwd=None, timeout=180, allow_warnings=False):
    """stdout of a command that must succeed (and, unless ``allow_warnings``, print no Ansible warning)."""
    proc = subprocess.run([str(a) for a in args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, "%s: rc %s\n%s\n%s" % (" ".join(map(str, args)), proc.returncode, proc.stdout,
                                                       proc.stderr)
    if not allow_warnings:
        assert "[WARNING]" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc.stdout


def build_and_install(src, base, env, **kw):
    """(tarball, collections dir, installed collection) of ``src`` built into base/dist, installed offline
    into the empty base/collections. ``kw``: sh()'s options."""
    dist, collections = base / "dist", base / "collections"
    collections.mkdir()
    sh([BIN / "ansible-galaxy", "collection", "build", "--output-path", dist, src], env, **kw)
    tarballs = list(dist.glob("*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    sh([BIN / "ansible-galaxy", "collection", "install", "--offline", tarballs[0], "-p", collections], env, **kw)
    return tarballs[0], collections, collections / "ansible_collections" / "msr" / "replicas"
