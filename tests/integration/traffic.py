# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Continuous HTTPS traffic through one of the lab's load balancers, from the test process.

    with Traffic(lab, "lb1", repos=names) as t:
        run = lab.run("msr.replicas.scale_up", ...)
    assert t.sent >= 2000 and t.failed == 0, t.failures

A few threads send requests to the LB host's lab address on 443, as a registry client would: GET /_ping
(no auth) and an authenticated GET /api/v0/repositories/<namespace>/<name> of repositories written before
the scenario, verified with MSR's own CA (``lab.vars["msr_ca"]``). The LB passes TLS through, so the
replica that answers serves its own certificate: it names the external URL's host (the name clients use,
whichever LB they reach), which is the name checked, and its subject CN is the replica's node, which is
how ``t.answered`` knows who answered. Each connection carries a few requests and is closed (registry
clients reconnect; a keep-alive connection held for ever would keep HAProxy's drain from ever reaching
zero sessions and pin an old NGINX worker to a replica after a reload).

A failure is any answer that is not 2xx, any connection or TLS error and any timeout; ``t.failures`` keeps
the first few with their reason. Bounded both ways: it stops at ``max_requests`` or after ``max_seconds``,
whichever comes first, and always when the ``with`` block ends.
"""

from __future__ import annotations

import collections
import http.client
import socket
import ssl
import threading
import time
import urllib.parse

from reliability import admin_auth


class Traffic:
    def __init__(self, lab, lb, repos=(), rate=200.0, threads=2, per_connection=4, timeout=5.0,
                 max_requests=60000, max_seconds=300.0, keep_failures=10):
        assert lb in lab.hosts, "%s is not a lab host" % lb
        self.lb = lb
        self.address = lab.hosts[lb]                       # the lab's own address: nothing else is reached
        self.server_name = urllib.parse.urlsplit(lab.vars.get("msr_external_url") or "").hostname or self.address
        self.context = ssl.create_default_context(cadata=lab.vars["msr_ca"])
        self.auth = admin_auth(lab)
        self.paths = [("/_ping", False)] + [("/api/v0/repositories/" + name, True) for name in repos]
        self.rate = rate                                   # requests per second (all threads), None: as fast as it can
        self.threads = threads
        self.per_connection = per_connection
        self.timeout = timeout
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.keep_failures = keep_failures
        self.sent = 0
        self.failed = 0
        self.failures = []                                 # the first few: (seconds since start, reason)
        self.answered = collections.Counter()              # {replica node (certificate CN): 2xx answers}
        self.connections = 0
        self.seconds = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = []
        self._started = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        self._started = time.monotonic()
        self._workers = [threading.Thread(target=self._run, args=(i,), name="traffic-%s-%d" % (self.lb, i),
                                          daemon=True) for i in range(self.threads)]
        for w in self._workers:
            w.start()

    def stop(self):
        self._stop.set()
        for w in self._workers:
            w.join(self.timeout * 3)
        self.seconds = time.monotonic() - self._started

    @property
    def achieved(self):
        """Requests per second over the whole run."""
        return self.sent / self.seconds if self.seconds else 0.0

    def summary(self):
        return "%s: %d sent, %d failed in %.1f s (%.0f/s, %d connections), answered by %s%s" % (
            self.lb, self.sent, self.failed, self.seconds, self.achieved, self.connections,
            dict(sorted(self.answered.items())), ("; first failures %s" % self.failures) if self.failures else "")

    # -- the client --------------------------------------------------------------------------------

    def _take(self):
        """Count one more request if the caps allow it, at its turn when the rate is capped (the client
        leaves the two cores to the run it watches)."""
        with self._lock:
            now = time.monotonic()
            if self._stop.is_set() or self.sent >= self.max_requests or now - self._started > self.max_seconds:
                self._stop.set()
                return False
            due = self._started + self.sent / self.rate if self.rate else now
            self.sent += 1
        if due > now and self._stop.wait(due - now):
            with self._lock:                               # the run ended meanwhile: not sent after all
                self.sent -= 1
            return False
        return True

    def _fail(self, reason):
        with self._lock:
            self.failed += 1
            if len(self.failures) < self.keep_failures:
                self.failures.append((round(time.monotonic() - self._started, 2), reason))

    def _run(self, index):
        turn = index
        while not self._stop.is_set():
            conn = http.client.HTTPSConnection(self.address, 443, timeout=self.timeout, context=self.context)
            # the certificate is checked against the external URL's host, the name clients use for every LB
            conn.host = self.server_name
            replica, sock = "?", None
            try:
                sock = socket.create_connection((self.address, 443), timeout=self.timeout)
                conn.sock = self.context.wrap_socket(sock, server_hostname=self.server_name)
                with self._lock:
                    self.connections += 1
                replica = _common_name(conn.sock.getpeercert())
            except Exception as exc:               # connection refused, reset, TLS, timeout
                if self._take():
                    self._fail("connect: %s: %s" % (type(exc).__name__, exc))
                if sock is not None:
                    sock.close()
                conn.close()
                continue
            try:
                for _ in range(self.per_connection):
                    path, auth = self.paths[turn % len(self.paths)]
                    turn += 1
                    if not self._take():
                        break
                    try:
                        conn.request("GET", path, headers=self.auth if auth else {})
                        resp = conn.getresponse()
                        body = resp.read()
                    except Exception as exc:       # whatever breaks a request is a failure
                        self._fail("%s GET %s: %s: %s" % (replica, path, type(exc).__name__, exc))
                        break
                    if 200 <= resp.status < 300:
                        with self._lock:
                            self.answered[replica] += 1
                    else:
                        self._fail("%s GET %s: HTTP %d %s" % (replica, path, resp.status, body[:160]))
                    if resp.will_close:
                        break
            finally:
                conn.close()


def _common_name(cert):
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return "?"
