# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fake HAProxy admin socket, shared by the runtime API tests and lb_pool_info's."""

from __future__ import annotations

import os
import socket
import tempfile
import threading

import pytest

from ansible_collections.msr.replicas.tests.unit.plugins.module_utils.test_haproxy_runtime import SERVERS_STATE, STAT


@pytest.fixture
def fake_haproxy():
    """A unix socket answering each connection's one command line from a dict, as HAProxy's CLI does."""
    replies = {"show servers state": SERVERS_STATE, "show stat": STAT, "show info": "Name: HAProxy\nPid: 42\n",
               "set server msr_http/worker1 state ready": "\n", "set server msr_http/nope state ready": "No such server.\n"}
    seen = []
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "admin.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)

    def serve():
        while True:
            try:
                conn, _addr = srv.accept()
            except OSError:
                return
            with conn:
                line = conn.makefile().readline().strip()
                seen.append(line)
                conn.sendall(replies.get(line, "Unknown command.\n").encode())

    threading.Thread(target=serve, daemon=True).start()
    yield path, seen
    srv.close()
    os.unlink(path)
    os.rmdir(tmp)
