"""Figures of the lab as a whole (no assertions): run as root with `.venv/bin/python tests/lab/bench.py`.

Uses the lab name msrsys on 10.79.0.0/24 (override: MSR_LAB_NAME, BENCH_SUBNET), default size (3 managers,
5 workers, 1 replica, 1 LB, join 3 s). Prints: `up` and `down` seconds (median of 3), resident memory of the
idle lab (daemon + every process of the nodes), one join through `docker run`, and /_ping requests/s through
HAProxy from the host.
"""
from __future__ import annotations

import fcntl
import http.client
import json
import os
import ssl
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

NAME = os.environ.setdefault("MSR_LAB_NAME", "msrsys")
SUBNET = os.environ.get("BENCH_SUBNET", "10.79.0.0/24")
STATE = Path(f"/var/lib/msr-lab-{NAME}")
MSR_LAB = str(Path(sys.executable).parent / "msr-lab")
RUNS = 3
LOAD_SECONDS = 5.0
THREADS = 4
MAX_REQUESTS = 200_000          # per thread: the load loop is bounded even if the clock misbehaves


def cli(*args) -> tuple[subprocess.CompletedProcess, float]:
    t = time.monotonic()
    r = subprocess.run([MSR_LAB, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    took = time.monotonic() - t
    if r.returncode:
        raise SystemExit(f"msr-lab {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r, took


def _status_field(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def lab_pids() -> set[int]:
    pids = set()
    names = json.loads(subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout or "[]")
    for ns in [n["name"] for n in names if n["name"].startswith(f"{NAME}-")]:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        pids.update(int(p) for p in out.split())
    for entry in os.scandir("/proc"):     # the daemon and the `unshare` parents name the state dir
        if entry.name.isdigit():
            try:
                if str(STATE).encode() in Path(entry.path, "cmdline").read_bytes():
                    pids.add(int(entry.name))
            except OSError:
                pass
    pids.discard(os.getpid())
    return pids


def memory() -> dict[str, list[int]]:
    """kind -> [processes, RSS kB, PSS kB]."""
    daemon = int((STATE / "daemon.pid").read_text())
    out: dict[str, list[int]] = {}
    for pid in lab_pids():
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            rss, pss = _status_field(pid, "VmRSS"), _pss(pid)
        except OSError:
            continue
        if pid == daemon:
            kind = "lab daemon"
        elif comm in ("sshd", "haproxy", "nginx", "unshare"):
            kind = comm
        elif b"init.sh" in cmdline or comm in ("sh", "init", "python3", "sleep"):
            kind = "node init"
        else:
            kind = f"other ({comm})"
        row = out.setdefault(kind, [0, 0, 0])
        row[0] += 1
        row[1] += rss
        row[2] += pss
    return out


def join_once() -> tuple[float, int]:
    desc = json.loads((STATE / "lab.json").read_text())
    cfg = desc["config"]
    rid = json.loads(cli("status", "--json")[0].stdout)["cluster"]["replicas"][0]["id"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp", "UCP_PASSWORD": cfg["mke_password"],
           "DOCKER_CONFIG": "/tmp/.msr-lab-bench-docker",
           "DOCKER_HOST": f"unix://{STATE / 'nodes' / 'manager1' / 'run' / 'docker.sock'}"}
    t = time.monotonic()
    r = subprocess.run(["docker", "run", "--rm", "-e", "UCP_PASSWORD", f"{cfg['msr_image']}:{cfg['msr_version']}",
                        "join", f"--ucp-url={cfg['mke_url']}", "--ucp-username=admin", "--ucp-node=worker2",
                        f"--ucp-ca={(STATE / 'pki' / 'ca.pem').read_text()}", f"--existing-replica-id={rid}"],
                       capture_output=True, text=True, env=env, timeout=120)
    return time.monotonic() - t, r.returncode


def load(host: str, port: int, tls: bool) -> tuple[int, int, float]:
    """/_ping through HAProxy for LOAD_SECONDS from THREADS threads, keep-alive; (ok, failed, seconds)."""
    # the replicas behind the LB serve certificates of the cluster's own MSR CA (it names the LB address)
    msr_ca = json.loads(cli("status", "--json")[0].stdout)["cluster"]["msr_ca"]
    ctx = ssl.create_default_context(cadata=msr_ca) if tls else None
    counts = [[0, 0] for _ in range(THREADS)]
    deadline = time.monotonic() + LOAD_SECONDS

    def worker(i):
        conn = None
        for _ in range(MAX_REQUESTS):
            if time.monotonic() >= deadline:
                break
            try:
                if conn is None:
                    conn = (http.client.HTTPSConnection(host, port, context=ctx, timeout=5) if tls
                            else http.client.HTTPConnection(host, port, timeout=5))
                conn.request("GET", "/_ping", headers={"Host": "msr.lab"})
                resp = conn.getresponse()
                resp.read()
                counts[i][0 if resp.status == 200 else 1] += 1
            except (OSError, http.client.HTTPException):
                counts[i][1] += 1
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    t = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    took = time.monotonic() - t
    return sum(c[0] for c in counts), sum(c[1] for c in counts), took


def main() -> int:
    if os.geteuid() != 0:
        print("bench: must run as root", file=sys.stderr)
        return 1
    rows: list[tuple[str, str]] = []
    ups, downs = [], []
    with open(f"/run/{NAME}-tests.lock", "w") as lock:   # the system tests use the same lab name
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run([MSR_LAB, "down"], capture_output=True)
        try:
            for i in range(RUNS):
                _, took = cli("up", "--subnet", SUBNET)
                ups.append(took)
                if i == RUNS - 1:
                    time.sleep(1.0)                      # idle: let HAProxy/NGINX finish starting workers
                    mem = memory()
                    seconds, rc = join_once()
                    lb = json.loads((STATE / "lab.json").read_text())["nodes"]["lb1"]["addr"]
                    http_ok, http_bad, http_s = load(lb, 80, False)
                    https_ok, https_bad, https_s = load(lb, 443, True)
                _, took = cli("down")
                downs.append(took)
        finally:
            subprocess.run([MSR_LAB, "down"], capture_output=True)

    rows.append(("lab size", "3 managers, 5 workers, 1 LB, 1 replica"))
    for what, values in (("up", ups), ("down", downs)):
        runs = ", ".join(f"{x:.2f}" for x in values)
        rows.append((f"{what}, s (median of {RUNS})", f"{statistics.median(values):.2f}  (runs: {runs})"))
    total = [sum(v[i] for v in mem.values()) for i in range(3)]
    rows.append(("idle lab memory",
                 f"{total[1] / 1024:.1f} MiB RSS, {total[2] / 1024:.1f} MiB PSS, {total[0]} processes"))
    for kind, (n, rss, pss) in sorted(mem.items(), key=lambda kv: -kv[1][1]):
        rows.append((f"  {kind}", f"{n} proc, {rss / 1024:.1f} MiB RSS, {pss / 1024:.1f} MiB PSS"))
    rows.append(("join via docker run, s", f"{seconds:.2f} (exit {rc}; join step 3 s)"))
    rows.append(("/_ping via HAProxy :80, req/s", f"{http_ok / http_s:.0f}  ({http_ok} ok, {http_bad} failed, "
                                                   f"{THREADS} threads, {http_s:.1f} s, keep-alive)"))
    rows.append(("/_ping via HAProxy :443, req/s", f"{https_ok / https_s:.0f}  ({https_ok} ok, {https_bad} failed, "
                                                    f"{THREADS} threads, {https_s:.1f} s, TLS keep-alive)"))
    width = max(len(k) for k, _ in rows)
    print(f"{'FIGURE':<{width}}  VALUE")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
