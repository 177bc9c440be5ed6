# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What lb_pool does on the LB host: read the config, plan the edit (_lbconf, _nginxconf), validate
the new file before it replaces the old one, drain through HAProxy's runtime API (_haproxy), reload
through the service manager and check that the reload took. PRIVATE to this collection.

Order of a real run (check mode stops before the first step that changes anything):
HAProxy: kept members back to READY -> drain the leaving servers (bounded) -> write, validate,
rename -> reload -> wait until the runtime shows the file's pool -> wait until added servers are UP.
NGINX: write, validate, rename (an include file: write, validate the main config, restore on
failure) -> reload -> wait for a new worker -> when members left, wait (bounded) until the old workers
finished their connections and exited (the drain: NGINX cannot say which connection goes where).
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time

from ansible_collections.msr.replicas.plugins.module_utils import _haproxy, _lbconf, _lbinfo, _nginxconf


class LbError(Exception):
    pass


class ConfigFile:
    """The config file as bytes-faithful text, replaced through a temporary file in its directory."""

    def __init__(self, module, path):
        self.module = module
        self.path = path
        self.text = _lbinfo.read_config(path)

    def temp(self, text):
        """A temporary file beside the config, with its mode and owner, holding text."""
        st = os.stat(self.path)
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(self.path), suffix=".lb_pool",
                                   dir=os.path.dirname(os.path.abspath(self.path)))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(text.encode("utf-8", "surrogateescape"))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, st.st_mode & 0o7777)
            if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
                os.chown(tmp, st.st_uid, st.st_gid)
        except OSError:
            os.unlink(tmp)
            raise
        return tmp

    def replace(self, tmp):
        self.module.atomic_move(tmp, self.path)

    def write(self, text):
        self.replace(self.temp(text))


class PoolRun:
    def __init__(self, module, provider, path, backends, members, server_options):
        self.module = module
        self.p = module.params
        self.provider = provider
        self.backends = backends
        self.members = members
        self.options = server_options
        self.host = socket.gethostname()
        self.file = ConfigFile(module, path)
        self.check = module.check_mode
        self.changed = False        # something was changed already (for the result of a failure)

    # ------------------------------------------------------------ shared steps

    def reload_argv(self):
        if self.p["reload_command"]:
            return list(self.p["reload_command"])
        if os.path.isdir("/run/systemd/system"):      # systemd is PID 1 (sd_booted)
            return [self.module.get_bin_path("systemctl", required=True), "reload", self.provider]
        return [self.module.get_bin_path("service", required=True), self.provider, "reload"]

    def validate_temp(self, text, argv_of):
        """Validate text as a temporary copy beside the config. Returns the copy, to be renamed over
        the config; in check mode None (the copy is removed at once)."""
        tmp = self.file.temp(text)
        try:
            argv = argv_of(tmp)
            rc, out, err = self.module.run_command(argv)
        except BaseException:
            os.unlink(tmp)
            raise
        if rc != 0 or self.check:
            os.unlink(tmp)
        if rc != 0:
            shown = " ".join("<new file>" if a == tmp else a for a in argv)
            # HAProxy's NOTICE lines (its version and path) say nothing about the error, and its pid
            # would make every run's message differ
            why = "\n".join(re.sub(r"^(\[\w+\])\s+\(\d+\) :", r"\1", line)
                            for line in (err or out).replace(tmp, "<new file>").strip().splitlines()
                            if not line.startswith("[NOTICE]"))
            raise LbError("%s: `%s` rejected the new config, so %s is unchanged: %s"
                          % (self.host, shown, self.file.path, why))
        return None if self.check else tmp

    def reload(self, before_text):
        argv = self.reload_argv()
        rc, out, err = self.module.run_command(argv)
        if rc != 0:
            self.file.write(before_text)
            raise LbError("%s: `%s` failed (rc %s), so the old %s was put back: %s"
                          % (self.host, " ".join(argv), rc, self.file.path, (err or out).strip()))
        return argv

    def result(self, plan, new_text, **extra):
        text = self.file.text
        if self.provider == "haproxy":
            servers = _lbconf.haproxy_servers(new_text, self.backends, self.file.path)
            names = None
        else:
            servers = _nginxconf.nginx_servers(new_text, self.backends, self.file.path)
            names = {m["address"]: m["name"] for m in self.members}
        runtime_diff = extra.pop("runtime_diff", [])
        out = dict(pool=_lbconf.pool_of(servers, self.backends, names), added=plan["added"],
                   removed=plan["removed"], updated=plan["updated"], config=self.file.path, drained={},
                   reloaded=False, runtime=[], set_ready=[], up={})
        out.update(extra)
        out["diff"] = [{"before_header": self.file.path, "after_header": self.file.path, "before": text,
                        "after": new_text}] + runtime_diff
        return out

    # ------------------------------------------------------------ HAProxy

    def haproxy(self):
        text, path = self.file.text, self.file.path
        plan = _lbconf.haproxy_edit(text, self.backends, self.members, self.p["state"], self.options, path)
        new = plan["text"]
        expected = _lbconf.haproxy_expected(new, self.backends, path)
        rt = _haproxy.Runtime(self.p["socket"], self.backends)
        live = rt.servers()
        stale = _haproxy.membership_differences(_lbconf.haproxy_expected(text, self.backends, path), live)
        to_reload = new != text or bool(stale)
        keep = set() if self.p["state"] == "absent" else {m["name"] for m in self.members}
        ready = [(b, n) for b in self.backends for n, s in sorted(live[b].items())
                 if n in keep and n in expected[b] and s["admin_bits"] & _haproxy.FORCED]
        leaving = {}
        for b in self.backends:
            for n in sorted(live[b]):
                if n not in expected[b]:
                    leaving.setdefault(n, []).append(b)
        extra = dict(changed=to_reload or bool(ready), reloaded=to_reload, set_ready=sorted({n for _b, n in ready}),
                     runtime_differences=stale, runtime=_haproxy.runtime_view(live),
                     runtime_diff=[self.runtime_diff(live, new, ready, to_reload)])
        tmp = self.validate_temp(new, self.haproxy_check_argv) if new != text else None
        if self.check:
            extra["drained"] = self.drain_preview(rt, leaving)
            return self.result(plan, new, **extra)
        try:
            for b, n in ready:
                rt.set_state(b, n, "ready")
                self.changed = True
            drained, before = self.drain(rt, live, leaving)
            extra["drained"] = drained
            if to_reload:
                try:
                    if tmp:
                        self.file.replace(tmp)
                        tmp = None
                    old_pid = rt.pid()
                    reloaded_at = time.monotonic()
                    argv = self.reload(text)
                except (_haproxy.HaproxyError, LbError, OSError):
                    self.restore(rt, before)
                    raise
                self.changed = True
                after = self.wait_reload(rt, old_pid, expected, argv)
                again = [(b, n) for b in self.backends for n, s in sorted(after[b].items())
                         if n in keep and s["admin_bits"] & _haproxy.FORCED]
                for b, n in again:      # a server-state file can bring an admin state back
                    rt.set_state(b, n, "ready")
                extra["set_ready"] = sorted(set(extra["set_ready"]) | {n for _b, n in again})
                # Only this module's members: a server someone else wrote into the file is not its to wait for.
                extra["up"] = self.wait_up(rt, [(b, n) for b, n in _haproxy.arrivals(expected, live) if n in keep],
                                           reloaded_at)
        finally:
            if tmp:
                os.unlink(tmp)
        extra["runtime"] = _haproxy.runtime_view(rt.servers())
        return self.result(plan, new, **extra)

    def haproxy_check_argv(self, path):
        return [self.module.get_bin_path("haproxy", required=True), "-c", "-f", path]

    def runtime_diff(self, live, new, ready, to_reload):
        """Membership and admin state over the admin socket, before and (predicted) after."""
        def lines(view):
            return "".join("%s/%s %s %s\n" % (b, n, addr, admin) for b, n, addr, admin in sorted(view))
        before = [(b, n, "%s:%s" % (s["address"], s["port"]), s["admin"]) for b in live for n, s in live[b].items()]
        if to_reload:
            admin = _lbconf.haproxy_admin_after_reload(new, self.backends, self.file.path)
            want = _lbconf.haproxy_expected(new, self.backends, self.file.path)
            after = [(b, n, "%s:%s" % (h or live[b].get(n, {}).get("address", "-"), p), admin[b][n])
                     for b in want for n, (h, p) in want[b].items()]
        else:
            fixed = set(ready)
            after = [(b, n, a, "READY" if (b, n) in fixed else s) for b, n, a, s in before]
        header = "%s (runtime, %s)" % (self.p["socket"], self.host)
        return {"before_header": header, "after_header": header, "before": lines(before), "after": lines(after)}

    def drain_preview(self, rt, leaving):
        servers, sessions = rt.servers(), rt.sessions() if leaving else {}
        out = {}
        for name, backends in leaving.items():
            count, down = self.drain_status(servers, sessions, name, backends)
            out[name] = {"sessions": count, "waited": 0, "state": "DOWN" if down else "pending"}
        return out

    @staticmethod
    def drain_status(servers, sessions, name, backends):
        """(sessions, health-DOWN?) of a server; it is drained when every backend's entry has no
        session or is DOWN by its health check (a server in maintenance is not DOWN that way)."""
        count, down, done = 0, False, True
        for b in backends:
            srv = servers.get(b, {}).get(name)
            scur = sessions.get((b, name), 0) if srv else 0
            count += scur
            is_down = bool(srv) and srv["operational"] == "DOWN" and srv["admin"] != "MAINT"
            down = down or is_down
            done = done and (scur == 0 or is_down)
        return count, (down if done else None)

    def drain(self, rt, live, leaving):
        """Drain the leaving servers and wait, bounded by drain_timeout, until each has no session or
        is DOWN. Returns (drained, admin states before); on timeout they get those states back."""
        before = {(b, n): live[b][n]["admin"] for n, bs in leaving.items() for b in bs}
        for (b, n), admin in sorted(before.items()):
            if admin == "READY":
                rt.set_state(b, n, "drain")
        started, timeout, out = time.monotonic(), self.p["drain_timeout"], {}
        while leaving:
            servers, sessions = rt.servers(), rt.sessions()
            waited = round(time.monotonic() - started, 1)
            left = {}
            for name, backends in sorted(leaving.items()):
                count, down = self.drain_status(servers, sessions, name, backends)
                if down is None:
                    left[name] = count
                elif name not in out:
                    out[name] = {"sessions": count, "waited": waited, "state": "DOWN" if down else "drained"}
            if not left:
                break
            if waited >= timeout:
                self.restore(rt, before)
                states = {}
                for (_b, n), admin in sorted(before.items()):
                    states.setdefault(n, admin)
                raise LbError("%s: %s after drain_timeout %d s; nothing was removed: %s is unchanged and %s"
                              % (self.host, ", ".join("server %s still has %d session(s)" % (n, c)
                                                      for n, c in sorted(left.items())),
                                 timeout, self.file.path,
                                 ", ".join("%s is %s again" % (n, states[n]) for n in sorted(left))))
            time.sleep(min(0.5, max(0.05, timeout - waited)))
        return out, before

    def restore(self, rt, before):
        for (b, n), admin in sorted(before.items()):
            if admin == "READY":
                rt.set_state(b, n, "ready")

    def wait_reload(self, rt, old_pid, expected, argv):
        deadline = time.monotonic() + self.p["reload_timeout"]
        while True:
            try:
                pid, servers = rt.pid(), rt.servers()
                problem = _haproxy.membership_differences(expected, servers)
                if pid != old_pid and not problem:
                    return servers
                problem = problem or ["HAProxy still runs as pid %s" % pid]
            except _haproxy.HaproxyError as exc:
                problem = [str(exc)]
            if time.monotonic() > deadline:
                raise LbError("%s: after `%s` the runtime API does not show the pool of %s within reload_timeout "
                              "%d s: %s" % (self.host, " ".join(argv), self.file.path, self.p["reload_timeout"],
                                            "; ".join(problem)))
            time.sleep(0.2)

    def wait_up(self, rt, arrivals, since):
        """{server: {waited, state: UP}} once every arrival is UP in each of its backends; ``waited`` counts
        from the reload (``since``, monotonic): HAProxy's first check of a new server comes up to one
        ``inter`` after it, and ``rise`` checks make it UP."""
        timeout = self.p["up_timeout"]
        if not arrivals or not timeout:
            return {}
        deadline = time.monotonic() + timeout
        out = {}
        while True:
            servers = rt.servers()
            pending = [(b, n) for b, n in arrivals
                       if not (servers[b].get(n) and servers[b][n]["operational"] == "UP" and servers[b][n]["checked"])]
            waited, waiting = round(time.monotonic() - since, 1), {n for _b, n in pending}
            for _b, n in arrivals:
                if n not in out and n not in waiting:
                    out[n] = {"waited": waited, "state": "UP"}
            if not pending:
                return out
            if time.monotonic() > deadline:
                raise LbError("%s: %s not UP within up_timeout %d s; they are in %s and HAProxy runs with them"
                              % (self.host, ", ".join("%s/%s (%s)" % (b, n, servers[b].get(n, {}).get(
                                  "operational", "missing")) for b, n in pending), timeout, self.file.path))
            time.sleep(0.2)   # a cheap read of the admin socket; HAProxy's checks are seconds apart

    # ------------------------------------------------------------ NGINX

    def nginx(self):
        text, path = self.file.text, self.file.path
        plan = _nginxconf.nginx_edit(text, self.backends, self.members, self.p["state"], self.options, path)
        new = plan["text"]
        main = self.p["nginx_main_config"]
        include = os.path.realpath(path) != os.path.realpath(main)
        changed = new != text
        extra = dict(changed=changed, reloaded=changed)
        if not changed:
            return self.result(plan, new, **extra)
        if not include:
            tmp = self.validate_temp(new, lambda f: [self.nginx_bin(), "-t", "-c", f])
        if self.check:
            if plan["removed"]:
                master = self.nginx_master(main)
                workers = len(self.children(master)) if master else 0
                extra["drained"] = {n: {"workers": workers, "waited": 0, "state": "pending"} for n in plan["removed"]}
            return self.result(plan, new, **extra)
        if include:
            self.file.write(new)
            rc, out, err = self.module.run_command([self.nginx_bin(), "-t", "-c", main])
            if rc != 0:
                self.file.write(text)
                raise LbError("%s: nginx -t -c %s rejected the new %s, so the old one was put back: %s"
                              % (self.host, main, path, (err or out).strip()))
        else:
            self.file.replace(tmp)
        master = self.nginx_master(main)
        workers = self.children(master)
        argv = self.reload(text)
        self.changed = True
        if master:
            self.wait_worker(master, workers, argv)
            if plan["removed"]:
                extra["drained"] = self.wait_old_workers(master, workers, plan["removed"])
        return self.result(plan, new, **extra)

    def nginx_bin(self):
        return self.module.get_bin_path("nginx", required=True)

    def nginx_master(self, main):
        try:
            with open(main) as f:
                pid_path = _nginxconf.pid_file(f.read())
            with open(pid_path) as f:
                pid = int(f.read().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, _lbconf.LbConfError):
            return None

    @staticmethod
    def children(pid):
        out = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/stat" % entry) as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                            out.add(int(entry))
                except (OSError, IndexError, ValueError):
                    pass
        return out

    def wait_old_workers(self, master, old, leaving):
        """NGINX's drain: after the reload, new connections no longer reach the leaving servers, but the
        workers from before it keep the connections they carry (to any server: NGINX cannot tell which)
        until those end, then exit. Waits for that, bounded by drain_timeout, so that the leaving replica
        is not removed under a connection still passed to it."""
        started, timeout = time.monotonic(), self.p["drain_timeout"]
        while True:
            left = old & self.children(master)
            waited = round(time.monotonic() - started, 1)
            if not left:
                return {n: {"workers": len(old), "waited": waited, "state": "drained"} for n in leaving}
            if waited >= timeout:
                raise LbError("%s: NGINX's old worker(s) %s still carry connections after drain_timeout %d s; %s no "
                              "longer has %s, so new connections do not reach %s, but those may: let them finish "
                              "(ps --ppid %d shows them as 'worker process is shutting down' until then) and run "
                              "again, or raise drain_timeout"
                              % (self.host, ", ".join(str(p) for p in sorted(left)), timeout, self.file.path,
                                 ", ".join(leaving), "it" if len(leaving) == 1 else "them", master))
            time.sleep(0.2)

    def wait_worker(self, master, before, argv):
        deadline = time.monotonic() + self.p["reload_timeout"]
        while not self.children(master) - before:
            if time.monotonic() > deadline:
                raise LbError("%s: after `%s` NGINX (master %d) started no new worker within reload_timeout %d s: "
                              "its error log says why" % (self.host, " ".join(argv), master, self.p["reload_timeout"]))
            time.sleep(0.1)
