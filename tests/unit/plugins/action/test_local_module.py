# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Module code run in the controller's process (plugin_utils._local_module): validation, masking, warnings
and the exit as AnsibleModule gives them, and cluster_info's own run() through it."""

from __future__ import annotations

import os
import sys
import types

from ansible_collections.msr.replicas.plugins.modules import cluster_info
from ansible_collections.msr.replicas.plugins.plugin_utils._local_module import run_here, runs_here

SPEC = {"password": {"type": "str", "no_log": True}, "count": {"type": "int", "default": 1},
        "name": {"type": "str", "required": True}}


def echo(module):
    module.warn("password %s seen" % module.params["password"])
    if module.params["count"] > 1:
        module.fail_json(msg="count %d with password %s" % (module.params["count"], module.params["password"]))
    module.exit_json(changed=module.check_mode, params=dict(module.params))


def test_result_warnings_and_masking():
    r = run_here(echo, SPEC, {"name": "n", "password": "s3cret-pw", "count": "1"}, check_mode=True)
    masked = {"name": "n", "password": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER", "count": 1}
    assert r["changed"] is True and r["params"] == masked
    assert r["warnings"] == ["password ******** seen"]
    r = run_here(echo, SPEC, {"name": "n", "password": "s3cret-pw", "count": 2})
    assert r["failed"] and r["msg"] == "count 2 with password ********" and "s3cret-pw" not in repr(r)


def test_validation_fails_as_a_module_does():
    r = run_here(echo, SPEC, {"password": "s3cret-pw", "bogus": 1})
    assert r["failed"] and "name" in r["msg"] and "bogus" in r["msg"] and "s3cret-pw" not in repr(r)


def test_cluster_info_refusals_are_the_modules():
    r = run_here(cluster_info.run, cluster_info.argument_spec(),
                 {"mke_url": "http://mke.example.com", "mke_username": "admin", "mke_password": "pw-123456",
                  "msr_insecure_tls": True, "mke_insecure_tls": True})
    assert r["failed"] and r["msg"].startswith("mke_url must be an https:// URL, got 'http://mke.example.com'")


def test_only_where_the_module_would_run_as_this_user_in_this_python():
    def action(transport="local", become=False, async_val=0, delegate_to=None):
        return types.SimpleNamespace(_connection=types.SimpleNamespace(_load_name=transport, transport=transport),
                                     _play_context=types.SimpleNamespace(become=become),
                                     _task=types.SimpleNamespace(async_val=async_val, delegate_to=delegate_to),
                                     _templar=types.SimpleNamespace(template=lambda v: v.replace("{{ py }}", sys.executable)))
    assert runs_here(action(), {}) and runs_here(action("ansible.builtin.local"), {})
    assert runs_here(action(), {"ansible_python_interpreter": "{{ py }}"})      # localhost's implicit interpreter
    assert not runs_here(action(), {"ansible_python_interpreter": "/usr/bin/other-python3"})
    # the system Python a virtualenv's python links to has not the virtualenv's libraries
    assert not runs_here(action(), {"ansible_python_interpreter": os.path.realpath(sys.executable)}) or \
        os.path.realpath(sys.executable) == sys.executable
    assert not runs_here(action(become=True), {}) and not runs_here(action("ssh"), {})
    assert not runs_here(action(async_val=30), {})
    # delegated: the delegated host's interpreter counts, not the task host's
    other = {"ansible_python_interpreter": "/usr/bin/other-python3"}
    ours = {"ansible_python_interpreter": "{{ py }}"}
    assert runs_here(action(delegate_to="localhost"), dict(other, ansible_delegated_vars={"localhost": ours}))
    assert not runs_here(action(delegate_to="localhost"), dict(ours, ansible_delegated_vars={"localhost": other}))


def test_a_returned_path_is_described_as_ansible_module_describes_it(tmp_path):
    target = tmp_path / "backup.tar"
    target.write_bytes(b"x" * 12)
    target.chmod(0o600)
    spec = {"path": {"type": "path", "required": True}, "password": {"type": "str", "no_log": True}}
    r = run_here(lambda m: m.exit_json(changed=True, path=m.params["path"]), spec,
                 {"path": str(target), "password": "s3cret-pw"})
    st = os.stat(target)
    assert (r["mode"], r["state"], r["size"], r["uid"], r["gid"]) == ("0600", "file", 12, st.st_uid, st.st_gid)
    assert r["owner"] and r["group"] and "secontext" not in r
    assert r["invocation"] == {"module_args": {"path": str(target), "password": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}}
    r = run_here(lambda m: m.fail_json(msg="no", path=str(tmp_path)), spec, {"path": str(tmp_path)})
    assert r["failed"] and r["state"] == "directory" and r["mode"] == "0%03o" % (os.stat(tmp_path).st_mode & 0o7777)
    r = run_here(lambda m: m.exit_json(path=str(tmp_path / "absent")), spec, {"path": str(tmp_path / "absent")})
    assert "mode" not in r and "state" not in r
