# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of msr.replicas.emergency_repair: the bootstrapper's emergency-repair, gated by the planner.

On the controller (a local connection, no become, no async, this Python) the module's code runs in this
process, which saves a fresh Python and its payload (about 0.45 s); anywhere else the module runs as usual.
"""

from __future__ import annotations

from ansible_collections.msr.replicas.plugins.modules import emergency_repair
from ansible_collections.msr.replicas.plugins.plugin_utils._local_module import LocalFirstAction


class ActionModule(LocalFirstAction):
    MODULE = "msr.replicas.emergency_repair"
    CODE = emergency_repair
