# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of msr.replicas.lb_pool_info: one remote command instead of a module run.

A module run on the LB host sends and unpacks an AnsiballZ payload and starts Python with
ansible.module_utils.basic: about 0.5 s of a no-op reconcile. The pool needs only the config file and one
runtime API answer, so one command of the host's Python prints both and the controller parses them with the
module's own code (module_utils._lbinfo). Without a python3 there, the module runs as usual.
"""

from __future__ import annotations

import json
import shlex

from ansible.plugins.action import ActionBase

from ansible_collections.msr.replicas.plugins.module_utils import _haproxy, _lbinfo
from ansible_collections.msr.replicas.plugins.module_utils._lbconf import LbConfError
from ansible_collections.msr.replicas.plugins.modules.lb_pool_info import argument_spec
from ansible_collections.msr.replicas.plugins.plugin_utils._local_module import interpreter

MODULE = "msr.replicas.lb_pool_info"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def python(self, task_vars):
        """The LB host's Python: its ansible_python_interpreter when set to a path, else python3 on PATH."""
        given = interpreter(self, task_vars)
        return given if given and not str(given).startswith("auto") else "python3"

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(argument_spec=argument_spec())
        try:
            provider, path, backends = _lbinfo.settings(params)
        except LbConfError as exc:
            return dict(result, failed=True, msg=str(exc))
        sock = params["socket"] if provider == "haproxy" else ""
        cmd = " ".join(shlex.quote(a) for a in (self.python(task_vars), "-c", _lbinfo.REMOTE_SCRIPT, path, sock))
        out = self._low_level_execute_command(cmd, sudoable=True)
        try:
            answer = json.loads(out.get("stdout") or "")
        except ValueError:
            answer = None
        if out.get("rc") == 127 or not isinstance(answer, dict):
            # No such interpreter (or it printed something else): the module finds one as modules do.
            return dict(result, **self._execute_module(module_name=MODULE, module_args=self._task.args,
                                                       task_vars=task_vars))
        try:
            view = _lbinfo.from_remote(provider, path, backends, sock, answer)
        except (LbConfError, _haproxy.HaproxyError) as exc:
            return dict(result, failed=True, msg=str(exc))
        return dict(result, changed=False, **view)
