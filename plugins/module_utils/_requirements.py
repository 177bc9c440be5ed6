# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Which Python modules the bootstrapper's modules can import here: the docker SDK, and paramiko for an
ssh:// docker_host. PRIVATE to this collection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import sys
import traceback

from ansible_collections.msr.replicas.plugins.module_utils import _engine

try:
    import paramiko
    PARAMIKO_IMPORT_ERROR = None
except ImportError:
    paramiko = None
    PARAMIKO_IMPORT_ERROR = traceback.format_exc()


def _last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else None


def _found(module, error):
    if module is None:
        return {"importable": False, "version": None, "error": _last_line(error) or "not importable"}
    return {"importable": True, "version": getattr(module, "__version__", None), "error": None}


def probe(docker_host):
    """{"python", "python_version", "docker_host", "docker", "paramiko"}; each module {"importable", "version", "error"}."""
    docker = _found(_engine.docker if _engine.HAS_DOCKER else None, _engine.DOCKER_IMPORT_ERROR)
    ssh = _found(paramiko, PARAMIKO_IMPORT_ERROR)
    ssh["needed"] = (docker_host or "").startswith("ssh://")
    return {"python": sys.executable, "python_version": "%d.%d.%d" % sys.version_info[:3],
            "docker_host": docker_host, "docker": docker, "paramiko": ssh}
