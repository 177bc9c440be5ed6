# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""msr-reconcile: run ``ansible-playbook msr.replicas.reconcile`` from a scheduler.

Exit codes: 0 in sync or converged, 1 drift found (or left after remediation), 2 error (quorum lost,
MKE unreachable, a refusal, the playbook failed, no report), 3 another run holds the lock.
Python 3 standard library only; see docs/scheduling.md.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

EXIT_OK, EXIT_DRIFT, EXIT_ERROR, EXIT_LOCKED = 0, 1, 2, 3
PLAYBOOK = "msr.replicas.reconcile"
# An inline -e that sets one of these would put a secret into every process listing: use the inventory,
# a vault, or -e @file.
SECRET_WORDS = re.compile(r"password|passwd|secret|token|private|_key\b|_key\W", re.I)


def default_lock():
    if os.access("/run/lock", os.W_OK):
        return "/run/lock/msr-reconcile.lock"
    return os.path.join(tempfile.gettempdir(), "msr-reconcile-%d.lock" % os.getuid())


def parse_args(argv):
    p = argparse.ArgumentParser(prog="msr-reconcile", description="Run the msr.replicas reconcile playbook "
                                "(drift report, optional remediation) under a lock; exit 0 in sync or "
                                "converged, 1 drift, 2 error, 3 locked.")
    p.add_argument("-i", "--inventory", action="append", default=[], metavar="INVENTORY",
                   help="inventory source (repeatable); default: ansible.cfg's")
    p.add_argument("--remediate", action="store_true", help="carry out the safe plan (msr_remediate=true)")
    p.add_argument("--allow-scale-down", action="store_true",
                   help="remediation may remove healthy replicas outside the msr group (msr_allow_scale_down=true)")
    p.add_argument("--check", action="store_true", help="ansible-playbook --check: predict, change nothing")
    p.add_argument("--report", metavar="FILE", help="write the JSON report here (mode 0600)")
    p.add_argument("--lock", metavar="FILE", default=None, help="lock file (default %s)" % default_lock())
    p.add_argument("-e", "--extra-vars", action="append", default=[], metavar="VARS",
                   help="passed to ansible-playbook (repeatable); secrets only as @file")
    p.add_argument("--ansible-playbook", default="ansible-playbook", metavar="PATH",
                   help="the ansible-playbook to run (default: the one on PATH)")
    p.add_argument("--playbook", default=PLAYBOOK, help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=int, default=0, metavar="SECONDS",
                   help="stop the playbook after this many seconds (exit 2); 0: no limit")
    p.add_argument("-v", "--verbose", action="store_true", help="show ansible-playbook's output")
    args = p.parse_args(argv)
    if args.lock is None:
        args.lock = default_lock()
    return args


def secret_extra_vars(extra_vars):
    """The inline -e values that look like they carry a secret (refused)."""
    return [v for v in extra_vars if not v.startswith("@") and SECRET_WORDS.search(v)]


def build_command(args, report_path):
    argv = [args.ansible_playbook]
    for inv in args.inventory:
        argv += ["-i", inv]
    argv.append(args.playbook)
    if args.check:
        argv.append("--check")
    for value in args.extra_vars:
        argv += ["-e", value]
    # Last, so the wrapper's own settings win over a passed-through -e.
    ours = {"msr_reconcile_report": report_path, "msr_remediate": bool(args.remediate)}
    if args.allow_scale_down:
        ours["msr_allow_scale_down"] = True
    argv += ["-e", json.dumps(ours, sort_keys=True)]
    return argv


def acquire_lock(path):
    """An open file holding an exclusive flock, or None when another process holds it.

    A kernel lock: it goes with the process, so a killed run never leaves it held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, ("%d\n" % os.getpid()).encode())
    return fd


def exit_code(report, rc):
    """The exit code for a playbook return code and its report (None: no report was written)."""
    if not isinstance(report, dict):
        return EXIT_ERROR
    status = report.get("status")
    if rc != 0 or status == "error":
        return EXIT_ERROR
    if status in ("in_sync", "converged"):
        return EXIT_OK
    if status == "drift":
        return EXIT_DRIFT
    return EXIT_ERROR


def read_report(path):
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def finish_report(report, started_at, duration):
    """The playbook's started_at and duration_s are kept; the wrapper adds its own when missing."""
    report.setdefault("started_at", started_at)
    report.setdefault("duration_s", duration)
    report["wrapper_duration_s"] = duration
    return report


def write_report(path, report):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".msr-reconcile.", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(report, f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def summary(report, code, report_path=None):
    """A few human lines: the outcome, what was found, what is left."""
    names = {EXIT_OK: "ok", EXIT_DRIFT: "drift", EXIT_ERROR: "error", EXIT_LOCKED: "locked"}
    if report is None:
        return ["msr-reconcile: error (exit 2): the playbook wrote no report"]
    found, left = report.get("drift_found") or [], report.get("drift") or []
    lines = ["msr-reconcile: %s (exit %d): status %s, %d drift(s) found, %d left%s, %s s%s" % (
        names.get(code, code), code, report.get("status"), len(found), len(left),
        ", remediated" if report.get("remediated") else "", report.get("duration_s"),
        ", report %s" % report_path if report_path else "")]
    if report.get("error"):
        lines.append("  error: %s" % report["error"])
    for text in report.get("refusals") or ():
        if text != report.get("error"):
            lines.append("  refused: %s" % text)
    for d in left:
        lines.append("  %s%s: %s" % (d.get("kind"), "" if d.get("fixable") else " (not fixable here)",
                                     d.get("message")))
    return lines


def run(argv=None, out=sys.stdout, err=sys.stderr):
    args = parse_args(argv)
    bad = secret_extra_vars(args.extra_vars)
    if bad:
        print("msr-reconcile: refusing -e values that look like secrets (they would show in the process list); "
              "put them in the inventory, a vault or -e @file", file=err)
        return EXIT_ERROR
    started = time.time()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    try:
        lock = acquire_lock(args.lock)
    except OSError as exc:
        print("msr-reconcile: cannot open the lock file %s: %s" % (args.lock, exc), file=err)
        return EXIT_ERROR
    if lock is None:
        print("msr-reconcile: another run holds the lock %s; exiting" % args.lock, file=err)
        return EXIT_LOCKED
    workdir = tempfile.mkdtemp(prefix="msr-reconcile-")
    scratch = os.path.join(workdir, "report.json")
    proc = None
    try:
        argv_pb = build_command(args, scratch)
        try:
            proc = subprocess.Popen(argv_pb, stdout=None if args.verbose else subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            output, _ = proc.communicate(timeout=args.timeout or None)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            rc = -signal.SIGKILL
            print("msr-reconcile: the playbook ran longer than --timeout %d s and was stopped" % args.timeout,
                  file=err)
        except OSError as exc:
            print("msr-reconcile: cannot run %s: %s" % (args.ansible_playbook, exc), file=err)
            return EXIT_ERROR
        report = read_report(scratch)
        code = exit_code(report, rc)
        if report is not None:
            report = finish_report(report, started_at, round(time.time() - started, 1))
            report["exit_code"] = code
            report["playbook_rc"] = rc
            if args.report:
                write_report(args.report, report)
        for line in summary(report, code, args.report):
            print(line, file=out)
        if code == EXIT_ERROR and output and not args.verbose:
            # The end of the play's output names the failed task; the play never prints a secret.
            tail = output.rstrip().splitlines()[-15:]
            print("  ansible-playbook exited %s; its last lines:" % rc, file=out)
            for line in tail:
                print("  | " + line, file=out)
        return code
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for name in os.listdir(workdir):
            os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)
        os.close(lock)


def main():
    # A scheduler stopping the unit (SIGTERM) must stop the playbook too: SystemExit runs the finally.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(EXIT_ERROR))
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
