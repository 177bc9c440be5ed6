# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Running a module's own code in the controller's process, for the tasks that run on the controller anyway.

A module run is a fresh Python that unpacks its AnsiballZ payload and imports ansible.module_utils.basic:
about 0.45 s each on a 2-CPU machine, which is most of a no-op reconcile. For a task with a local connection
and no become, the module would run as this user on this machine, so its code can run here instead, with the
same argument validation, no_log masking, warnings and check mode. PRIVATE to this collection.
"""

from __future__ import annotations

import os
import sys

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase


class _Done(Exception):
    def __init__(self, result):
        Exception.__init__(self)
        self.result = result


class LocalModule:
    """The part of AnsibleModule the collection's modules use: params, check_mode, _diff, warn, fail_json,
    exit_json, no_log_values. exit_json and fail_json end the call, as they end a module's process."""

    def __init__(self, argument_spec, args, check_mode=False, diff=False, **rules):
        self.argument_spec = argument_spec
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []
        # rules: required_if, mutually_exclusive and the like, as AnsibleModule takes them
        validated = ArgumentSpecValidator(argument_spec, **rules).validate(dict(args))
        self.no_log_values = set(validated._no_log_values)
        self.params = validated.validated_parameters
        if validated.error_messages:
            self.fail_json(msg="; ".join(validated.error_messages))

    def warn(self, text):
        self.warnings.append(text)

    def exit_json(self, **result):
        raise _Done(dict(result, changed=result.get("changed", False)))

    def fail_json(self, msg, **result):
        raise _Done(dict(result, failed=True, msg=msg))


def runs_here(action, task_vars):
    """Whether an action's module would run as this user, on this machine, in this Python: a local connection,
    no become, no async, and no other interpreter set for the host (whose libraries may differ from ours)."""
    connection = getattr(action._connection, "_load_name", None) or action._connection.transport
    if connection not in ("local", "ansible.builtin.local", "ansible.legacy.local"):
        return False
    if action._play_context.become or action._task.async_val:
        return False
    given = (task_vars or {}).get("ansible_python_interpreter")
    if given:
        given = action._templar.template(given)
    # Not realpath: a virtualenv's python links to the system's, whose libraries are not the virtualenv's.
    return not given or os.path.normpath(os.path.expanduser(str(given))) == os.path.normpath(sys.executable)


def run_here(main, argument_spec, args, check_mode=False, diff=False, **rules):
    """The result of ``main(module)`` on a LocalModule, with no_log values masked as a module masks them."""
    try:
        module = LocalModule(argument_spec, args, check_mode=check_mode, diff=diff, **rules)
        main(module)
        raise AssertionError("%s returned without exit_json or fail_json" % main.__name__)
    except _Done as done:
        result = done.result
        no_log = set()
        if "module" in locals():
            no_log = module.no_log_values
            if module.warnings:
                result["warnings"] = list(module.warnings)
    return remove_values(result, no_log)


class LocalFirstAction(ActionBase):
    """The action plugin of a module whose file has run(module), argument_spec() and, optionally, RULES:
    its code runs here when runs_here() says the module would run in this Python anyway."""

    TRANSFERS_FILES = False
    MODULE = None     # the module's FQCN
    CODE = None       # the module's Python module

    def run(self, tmp=None, task_vars=None):
        result = super(LocalFirstAction, self).run(tmp, task_vars)
        if not runs_here(self, task_vars):
            return dict(result, **self._execute_module(module_name=self.MODULE, module_args=self._task.args,
                                                       task_vars=task_vars))
        result.update(run_here(self.CODE.run, self.CODE.argument_spec(), self._task.args,
                               check_mode=self._play_context.check_mode, diff=self._play_context.diff,
                               **getattr(self.CODE, "RULES", {})))
        return result
