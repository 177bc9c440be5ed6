# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of msr.replicas.report_file: writes a report on the controller, in this process.

ansible.builtin.copy with content runs two modules (stat, then copy), each a fresh Python with its
AnsiballZ payload: about 0.7 s, a quarter of a no-op reconcile. A report is the controller's own output,
so nothing needs to run on a host.
"""

from __future__ import annotations

import json
import os
import tempfile

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

ARGS = {"dest": {"type": "path", "required": True}, "content": {"type": "raw", "required": True}}


def render(content):
    """The file's text: a string as it is, anything else as indented JSON (keys sorted)."""
    text = content if isinstance(content, str) else json.dumps(content, indent=4, sort_keys=True)
    return text if text.endswith("\n") else text + "\n"


def write(dest, text, mode=0o600):
    """Atomically (a temporary file in the same directory, then a rename), readable by the owner only."""
    folder = os.path.dirname(dest) or "."
    if not os.path.isdir(folder):
        raise ValueError("report_file: the directory %s of dest does not exist on the controller; create it "
                         "or give a dest in an existing directory" % folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".%s." % os.path.basename(dest))
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGS)
        dest = args["dest"]
        if not os.path.isabs(dest):
            return dict(result, failed=True, msg="report_file: dest must be an absolute path on the controller, "
                                                 "got %s" % dest)
        try:
            write(dest, render(args["content"]))
        except (OSError, ValueError) as exc:
            return dict(result, failed=True, msg=to_text(exc) if isinstance(exc, ValueError) else
                        "report_file: cannot write %s on the controller: %s" % (dest, to_text(exc)))
        # Output, not managed state: never a change, written in check mode too.
        return dict(result, changed=False, dest=dest)
