# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The msr_sizing filter over the private _sizing rules; documented in msr_sizing.yml."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.msr.replicas.plugins.module_utils import _sizing


def msr_sizing(inputs):
    """The recommended replica count, with the reason of each need."""
    if not isinstance(inputs, Mapping):
        keys = ", ".join(_sizing.KEYS)
        raise AnsibleFilterError("msr_sizing: give a dict of %s, got %s" % (keys, type(inputs).__name__))
    try:
        return _sizing.advise(dict(inputs))
    except ValueError as exc:
        raise AnsibleFilterError("msr_sizing: %s" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {"msr_sizing": msr_sizing}
