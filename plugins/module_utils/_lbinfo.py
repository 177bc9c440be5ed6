# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An LB host's MSR pool from what the host holds: the config file's text and, for HAProxy, the runtime
API's `show servers state`. The same on the LB host (the module) and on the controller (the action plugin,
from one remote command's output). PRIVATE to this collection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.msr.replicas.plugins.module_utils import _haproxy, _lbconf, _nginxconf

DEFAULTS = {
    "haproxy": {"config": "/etc/haproxy/haproxy.cfg", "backends": {"msr_http": "http", "msr_https": "https"}},
    "nginx": {"config": "/etc/nginx/nginx.conf", "backends": {"msr_80": "http", "msr_443": "https"}},
}
STATE_COMMAND = "show servers state"

# Run by the remote Python with argv [config, socket or ""]: the file's text and the runtime's answer as JSON,
# each read error as the text the module itself would give (see read_config, _haproxy.command).
REMOTE_SCRIPT = r"""
import json, socket, sys
out = {"host": socket.gethostname()}
try:
    with open(sys.argv[1], "rb") as f:
        out["text"] = f.read().decode("utf-8", "surrogateescape")
except OSError as exc:
    out["config_error"] = str(exc)
if sys.argv[2] and "text" in out:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5.0)
            s.connect(sys.argv[2])
            s.sendall(b"show servers state\n")
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        out["state"] = b"".join(chunks).decode("utf-8", "replace")
    except OSError as exc:
        out["socket_error"] = str(exc)
sys.stdout.write(json.dumps(out))
"""


def settings(params):
    """(provider, config path, backends) with the provider's defaults filled in."""
    defaults = DEFAULTS[params["provider"]]
    return (params["provider"], params.get("config") or defaults["config"],
            _lbconf.backend_kinds(params.get("backends") or defaults["backends"]))


def read_config(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise _lbconf.LbConfError("cannot read %s: %s" % (path, exc))


def pool_view(provider, path, backends, text, state_text=None):
    """{provider, config, pool, runtime} as lb_pool reports the pool it leaves as it is."""
    if provider == "haproxy":
        servers = _lbconf.haproxy_servers(text, backends, path)
        live = _haproxy.parse_servers_state(state_text)
        runtime = _haproxy.runtime_view({b: live.get(b, {}) for b in backends})
        pool = _lbconf.pool_of(servers, backends, None)
    else:
        pool = _lbconf.pool_of(_nginxconf.nginx_servers(text, backends, path), backends, {})
        runtime = None
    return {"provider": provider, "config": path, "pool": pool, "runtime": runtime}


def from_remote(provider, path, backends, socket_path, answer):
    """pool_view from REMOTE_SCRIPT's output; raises LbConfError or HaproxyError with the module's texts,
    prefixed with the LB host's name as the module prefixes them."""
    host = answer.get("host", "?")
    try:
        if "config_error" in answer:
            raise _lbconf.LbConfError("cannot read %s: %s" % (path, answer["config_error"]))
        if "socket_error" in answer:
            raise _haproxy.no_answer(socket_path, STATE_COMMAND, answer["socket_error"])
        return pool_view(provider, path, backends, answer["text"], answer.get("state"))
    except (_lbconf.LbConfError, _haproxy.HaproxyError) as exc:
        raise type(exc)("%s: %s" % (host, exc))
