# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of msr.replicas.cluster_info: on the controller, reads the cluster in this process.

The collection's playbooks read the cluster from localhost several times per run; a module run for each
costs about 0.45 s of a fresh Python. Delegated elsewhere or with become, the module runs as usual.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.msr.replicas.plugins.modules import cluster_info
from ansible_collections.msr.replicas.plugins.plugin_utils._local_module import run_here, runs_here


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        if not runs_here(self):
            return dict(result, **self._execute_module(module_name="msr.replicas.cluster_info",
                                                       module_args=self._task.args, task_vars=task_vars))
        result.update(run_here(cluster_info.run, cluster_info.argument_spec(), self._task.args,
                               check_mode=self._play_context.check_mode, diff=self._play_context.diff))
        return result
