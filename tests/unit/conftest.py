# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Lets plain `pytest tests/unit` run from a checkout.

ansible-test units puts the collection on an ansible_collections path itself; a checkout is not laid
out that way, so map ansible_collections.msr.replicas onto the repository root through a symlink in a
temporary directory (Python namespace packages do the rest).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile


def _collection_importable():
    try:
        import ansible_collections.msr.replicas.plugins  # noqa: F401  pylint: disable=unused-import
    except ImportError:
        return False
    return True


if not _collection_importable():
    _ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    _TMP = tempfile.mkdtemp(prefix="msr-replicas-collections-")
    atexit.register(shutil.rmtree, _TMP, True)
    os.makedirs(os.path.join(_TMP, "ansible_collections", "msr"))
    os.symlink(_ROOT, os.path.join(_TMP, "ansible_collections", "msr", "replicas"))
    sys.path.insert(0, _TMP)
    # Ansible's own collection loader, when a test installs it, searches these paths.
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
        p for p in (_TMP, os.environ.get("ANSIBLE_COLLECTIONS_PATH")) if p)
    for _name in [m for m in sys.modules if m == "ansible_collections" or m.startswith("ansible_collections.")]:
        del sys.modules[_name]
