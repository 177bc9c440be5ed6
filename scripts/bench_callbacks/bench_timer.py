# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/bench.py only: the wall time of each task (start to the next start), as JSON in $BENCH_TIMER_FILE."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: bench_timer
    type: aggregate
    short_description: task wall times for scripts/bench.py
    description: Writes each task's wall time to the file named by BENCH_TIMER_FILE at the end of the run.
    requirements:
      - enable in callbacks_enabled
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.started = time.time()
        self.current = None
        self.rows = []
        self.up_waits = []   # lb_pool's "up": the seconds from its reload until the new servers were UP

    def _mark(self, name):
        now = time.time()
        if self.current is not None:
            self.rows.append([self.current[0], round(now - self.current[1], 3)])
        self.current = (name, now) if name is not None else None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._mark(task.get_name())

    def v2_playbook_on_handler_task_start(self, task):
        self._mark(task.get_name())

    def _up(self, result):
        up = result._result.get("up")
        if isinstance(up, dict) and up:
            self.up_waits.append(max(float(v.get("waited", 0)) for v in up.values()))

    def v2_runner_on_ok(self, result):
        self._up(result)

    def v2_runner_item_on_ok(self, result):
        self._up(result)

    def v2_playbook_on_stats(self, stats):
        self._mark(None)
        path = os.environ.get("BENCH_TIMER_FILE")
        if path:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump({"since_start": round(time.time() - self.started, 3), "tasks": self.rows,
                           "up_waits": self.up_waits}, fh)
