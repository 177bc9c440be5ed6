# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only notification callback: appends every task result to the JSON-lines file $MSR_RECORD_FILE.

ansible-core 2.19 ships no json stdout callback, and the integration tests want to assert on the exact
task results (changed, diff, msg, warnings, replica_id) while the default callback still prints the
human (and -vvv) output that the secrets audit greps.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: msr_record
    type: notification
    short_description: record task results as JSON lines (msr.replicas integration tests)
    description: Appends one JSON object per task result to the file named by MSR_RECORD_FILE.
    requirements:
      - enable in callbacks_enabled
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "msr_record"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, status, result):
        path = os.environ.get("MSR_RECORD_FILE")
        if not path:
            return
        task = result.task
        item = {
            "status": status,
            "host": result.host.get_name(),
            "delegated_to": task.delegate_to or None,
            "task": task.get_name(),
            "check_mode": bool(task.check_mode),
            "result": {k: v for k, v in result.result.items() if not k.startswith("_ansible")},
        }
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(item, default=repr) + "\n")

    def v2_runner_on_ok(self, result):
        self._record("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record("failed", result)

    def v2_runner_on_unreachable(self, result):
        self._record("unreachable", result)

    def v2_runner_on_skipped(self, result):
        self._record("skipped", result)
