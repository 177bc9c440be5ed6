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

import grp
import os
import pwd
import stat
import sys

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase


class _Done(Exception):
    def __init__(self, result, module):
        Exception.__init__(self)
        self.result = result
        self.module = module


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
        raise _Done(self._formatted(dict(result, changed=result.get("changed", False))), self)

    def fail_json(self, msg, **result):
        raise _Done(self._formatted(dict(result, failed=True, msg=msg)), self)

    def _formatted(self, result):
        # what AnsibleModule's exit adds: the module's arguments, and the stat of a returned path (its
        # add_path_info), which callers such as a backup task's register read
        result.setdefault("invocation", {"module_args": self.params})
        return add_path_info(result)


def _name(lookup, number):
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def add_path_info(result):
    """A result's ``path`` (or ``dest``) described as AnsibleModule describes it: uid, gid, owner, group, mode,
    state, size and, under SELinux, secontext, when the path exists."""
    path = result.get("path", result.get("dest"))
    if not isinstance(path, str) or not os.path.exists(path):
        return result
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        state = "link"
    elif os.path.isdir(path):
        state = "directory"
    elif os.stat(path).st_nlink > 1:
        state = "hard"
    else:
        state = "file"
    result.update(uid=st.st_uid, gid=st.st_gid, owner=_name(pwd.getpwuid, st.st_uid),
                  group=_name(grp.getgrgid, st.st_gid), mode="0%03o" % stat.S_IMODE(st.st_mode), state=state,
                  size=st.st_size)
    context = _selinux_context(path)
    if context:
        result["secontext"] = context
    return result


def _selinux_context(path):
    try:
        from ansible.module_utils.compat import selinux
        if selinux.is_selinux_enabled() != 1:
            return None
        found = selinux.lgetfilecon_raw(path)
    except (ImportError, OSError):
        return None
    return found[1] if found[0] != -1 else None


LOCAL_CONNECTIONS = ("local", "ansible.builtin.local", "ansible.legacy.local")


def is_local(action):
    """Whether the task's connection is the local one (the module would run on this machine)."""
    return (getattr(action._connection, "_load_name", None) or action._connection.transport) in LOCAL_CONNECTIONS


def interpreter(action, task_vars):
    """The ansible_python_interpreter set for the host the task runs on (the delegated one, if any), templated;
    None when not set."""
    hostvars = task_vars or {}
    if action._task.delegate_to:
        hostvars = (hostvars.get("ansible_delegated_vars") or {}).get(action._task.delegate_to) or {}
    given = hostvars.get("ansible_python_interpreter")
    return action._templar.template(given) if given else None


def runs_here(action, task_vars):
    """Whether an action's module would run as this user, on this machine, in this Python: a local connection,
    no become, no async, and no other interpreter set for the host (whose libraries may differ from ours)."""
    if not is_local(action) or action._play_context.become or action._task.async_val:
        return False
    given = interpreter(action, task_vars)
    # Not realpath: a virtualenv's python links to the system's, whose libraries are not the virtualenv's.
    return not given or os.path.normpath(os.path.expanduser(str(given))) == os.path.normpath(sys.executable)


def run_here(main, argument_spec, args, check_mode=False, diff=False, **rules):
    """The result of ``main(module)`` on a LocalModule, with no_log values masked as a module masks them."""
    try:
        main(LocalModule(argument_spec, args, check_mode=check_mode, diff=diff, **rules))
    except _Done as done:
        result, module = done.result, done.module
        if module.warnings:
            result["warnings"] = list(module.warnings)
        return remove_values(result, module.no_log_values)
    raise AssertionError("%s returned without exit_json or fail_json" % main.__name__)


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
