# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of msr.replicas.replica: shows the bootstrapper's phases while the module runs.

On the controller (a local connection, no become, this Python) the module's code runs in this process
(plugin_utils._local_module), which saves a fresh Python and its payload (about 0.45 s) per task.

A join can take many minutes; without this Ansible shows nothing until the module returns. The module
appends each event to a private file (its progress_file option, see _progress) and a thread here tails it.
That needs the module to run on the controller (a local connection, as the collection's roles and
playbooks run it) as the same user; otherwise the phases are shown once the module returns.
"""

from __future__ import annotations

import os
import tempfile
import threading

from ansible import constants as C
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

from ansible_collections.msr.replicas.plugins.module_utils._progress import (
    ProgressReader,
    events_from_result,
    format_event,
)
from ansible_collections.msr.replicas.plugins.modules import replica
from ansible_collections.msr.replicas.plugins.plugin_utils._local_module import is_local, run_here, runs_here

display = Display()

MODULE = "msr.replicas.replica"
_COLORS = {"warning": C.COLOR_WARN, "error": C.COLOR_ERROR, "fatal": C.COLOR_ERROR}


def show(event):
    # From a worker process (and from its threads) Display sends this through the worker's queue to the
    # main process, which prints it at once, between the callback's own lines.
    display.display(format_event(event), color=_COLORS.get(event["kind"]))


class _Tail(threading.Thread):
    """Shows the events appended to a progress file, every INTERVAL seconds until finish()."""

    INTERVAL = 0.5

    def __init__(self, path):
        threading.Thread.__init__(self, name="msr-replicas-progress")
        self.daemon = True
        self.reader = ProgressReader(path)
        self.shown = 0
        self._done = threading.Event()

    def run(self):
        while not self._done.wait(self.INTERVAL):
            self._drain()

    def _drain(self):
        for event in self.reader.read():
            show(event)
            self.shown += 1

    def finish(self):
        self._done.set()
        self.join()
        self._drain()   # what came after the last poll, once the thread is gone (never shown twice)


class ActionModule(ActionBase):

    _supports_check_mode = True
    _supports_async = True

    def _streams(self, args):
        """Whether the module's progress file can be tailed here: same host, same user, runs to completion now."""
        if self._task.check_mode or self._task.async_val or args.get("progress_file"):
            return False
        return not self._play_context.become and is_local(self)

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect

        args = dict(self._task.args)
        wrap_async = self._task.async_val and not self._connection.has_native_async
        tail = None
        path = None
        if self._streams(args):
            # mkstemp: mode 0600, in the controller's per-run temp directory (removed at exit even if this is not)
            fd, path = tempfile.mkstemp(prefix="msr-replicas-progress-", suffix=".jsonl", dir=C.DEFAULT_LOCAL_TMP)
            os.close(fd)
            args["progress_file"] = path
            tail = _Tail(path)
            tail.start()
        here = runs_here(self, task_vars)
        try:
            if here:
                module_result = run_here(replica.run, replica.argument_spec(), args,
                                         check_mode=self._play_context.check_mode, diff=self._play_context.diff,
                                         **replica.RULES)
            else:
                module_result = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars,
                                                     wrap_async=wrap_async)
        finally:
            if tail is not None:
                tail.finish()
            if path is not None:
                try:
                    os.unlink(path)
                except OSError:
                    pass
        if not (self._task.check_mode or wrap_async) and (tail is None or tail.shown == 0):
            # Nothing streamed (a remote module, become, or the file could not be written): show the phases now.
            for event in events_from_result(module_result):
                show(event)
        result = merge_hash(result, module_result)
        if not (wrap_async or here):
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
