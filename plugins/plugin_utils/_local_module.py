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

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values


class _Done(Exception):
    def __init__(self, result):
        Exception.__init__(self)
        self.result = result


class LocalModule:
    """The part of AnsibleModule the collection's modules use: params, check_mode, _diff, warn, fail_json,
    exit_json, no_log_values. exit_json and fail_json end the call, as they end a module's process."""

    def __init__(self, argument_spec, args, check_mode=False, diff=False):
        self.argument_spec = argument_spec
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []
        validated = ArgumentSpecValidator(argument_spec).validate(dict(args))
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


def runs_here(action):
    """Whether an action's module would run as this user on this machine: a local connection, no become."""
    return action._connection.transport in ("local", "ansible.builtin.local") and not action._play_context.become


def run_here(main, argument_spec, args, check_mode=False, diff=False):
    """The result of ``main(module)`` on a LocalModule, with no_log values masked as a module masks them."""
    try:
        module = LocalModule(argument_spec, args, check_mode=check_mode, diff=diff)
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
