#!/usr/bin/env python3
"""make bench: what a no-op reconcile costs, next to the floor of any Ansible run and the naive way.

Not a test: it never fails on a slow machine, it reports. For each lab size (replicas x MKE nodes) it
brings a lab up (virtual MKE workers fill the node count: msr-lab up --mke-nodes), then runs, one after
another and interleaved, an empty playbook, a no-op reconcile (bin/msr-reconcile --report) and the naive
observation, each several times, and takes medians. From the lab's own logs it counts the SSH connections
every node's sshd accepted during each run (<state>/nodes/<n>/run/sshd.log) and the API requests the
controller made (<state>/requests.log). Then, on one more lab, it times a scale_up of one replica and a
scale_down of it, minus the bootstrapper's own run time and the health wait (<state>/events.log).

    .venv/bin/python scripts/bench.py [--grid full|corners|R:N,...] [--runs 5] [--json docs/performance.json]
    .venv/bin/python scripts/bench.py --render     # docs/performance.md from the JSON only

Every lab it made is removed at the end, also on failure or Ctrl-C. Run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import collections
import datetime
import fcntl
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
MSR_LAB = str(BIN / "msr-lab")
MANAGERS = 3     # the collection's preflight asks for a highly available MKE
# (replicas, MKE nodes): nodes 0 is the smallest cluster (3 managers + one worker per replica); virtual MKE
# workers make up the rest of the count
FULL = [(r, n) for r in (3, 5, 7) for n in (0, 50, 200)]
CORNERS = [(3, 0), (3, 200), (7, 0), (7, 200)]
NODE_CONTAINERS = 10   # per virtual worker: about what MKE itself runs on a worker (ucp-*, calico, kubelet)
GOALS = {"ratio": 1.5, "growth": 1.2, "ssh": 1, "overhead_s": 2.0}

EMPTY = """\
- name: Empty run
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Nothing
      ansible.builtin.debug:
        msg: empty
"""
# The floor of any module run: the empty run with one module (ansible.builtin.ping) instead of debug.
ONE_MODULE = EMPTY.replace("ansible.builtin.debug:\n        msg: empty", "ansible.builtin.ping:")
# The floor of any run that reads the LB host, as a reconcile must: the empty run with one raw command there.
ONE_SSH = EMPTY.replace("ansible.builtin.debug:\n        msg: empty",
                        "ansible.builtin.raw: \"true\"\n      delegate_to: \"{{ groups['msr_lb'][0] }}\"\n"
                        "      changed_when: false")
# The naive observation: ssh to every node, gather facts, docker ps, probe each replica's /_ping.
NAIVE = """\
- name: Every node
  hosts: mke_managers:mke_workers:msr_lb
  gather_facts: true
  tasks:
    - name: List the containers
      ansible.builtin.command: docker ps
      changed_when: false
      when: inventory_hostname not in groups['msr_lb']
- name: Every replica
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Probe /_ping
      ansible.builtin.uri:
        url: "https://{{ hostvars[item].ansible_host }}/_ping"
        validate_certs: false
      loop: "{{ groups['msr'] }}"
"""


class Bench:
    def __init__(self, name: str, subnet: str, runs: int, work: Path):
        self.name, self.subnet, self.runs, self.work = name, subnet, runs, work
        self.state = Path(f"/var/lib/msr-lab-{name}")
        self.host = subnet.rsplit(".", 1)[0] + ".1"     # the controller's address on the lab bridge
        self.lab_up = False
        coll = work / "collections" / "ansible_collections" / "msr"
        coll.mkdir(parents=True)
        (coll / "replicas").symlink_to(ROOT)
        for d in ("home", "ansible_home", "tmp"):
            (work / d).mkdir()
        (work / "empty.yml").write_text(EMPTY)
        (work / "naive.yml").write_text(NAIVE)
        (work / "one_module.yml").write_text(ONE_MODULE)
        (work / "one_ssh.yml").write_text(ONE_SSH)
        self.inventory = work / "inventory.yml"

    # ---- the lab
    def lab(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, MSR_LAB_NAME=self.name)
        env.pop("MSR_LAB_DIR", None)
        r = subprocess.run([MSR_LAB, *args], env=env, capture_output=True, text=True, timeout=300)
        if check and r.returncode:
            raise RuntimeError(f"msr-lab {' '.join(args)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def up(self, replicas: int, virtual: int, workers: int | None = None) -> None:
        self.down()
        self.lab_up = True
        self.lab("up", "--subnet", self.subnet, "--managers", str(MANAGERS), "--workers", str(workers or replicas),
                 "--replicas", str(replicas), "--mke-nodes", str(virtual), "--lbs", "1",
                 "--mke-node-containers", str(NODE_CONTAINERS))
        self.lab("inventory", "-o", str(self.inventory))
        # the docker SDK's ssh:// transport (the bootstrapper runs) reads only ~/.ssh
        self.lab("ssh-config", "--home", str(self.work / "home"))

    def down(self) -> None:
        if self.lab_up or self.state.exists():
            self.lab("down", check=False)
        self.lab_up = False

    # ---- the lab's logs
    def ssh_accepted(self) -> int:
        total = 0
        for log in self.state.glob("nodes/*/run/sshd.log"):
            total += log.read_text(errors="replace").count("Accepted publickey")
        return total

    def log_lines(self, name: str, t0: float, t1: float, settle: float = 0.6) -> list[dict]:
        time.sleep(settle)   # the daemon writes its logs a few times a second
        path = self.state / name
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            t = entry.get("t", entry.get("finished", 0))
            if t0 <= t <= t1 + 0.05:
                out.append(entry)
        return out

    def requests(self, t0: float, t1: float) -> dict[str, int]:
        """The controller's API requests in [t0, t1] by endpoint (HAProxy's health checks left out)."""
        counts = collections.Counter()
        for e in self.log_lines("requests.log", t0, t1):
            if e.get("client") != self.host:
                continue
            counts[f"{e['server'].split()[0]} {e['method']} {endpoint(e['path'])}"] += 1
        return dict(sorted(counts.items()))

    # ---- ansible
    def env(self, control_dir: Path) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update(HOME=str(self.work / "home"), ANSIBLE_HOME=str(self.work / "ansible_home"),
                   ANSIBLE_LOCAL_TEMP=str(self.work / "tmp"),
                   ANSIBLE_COLLECTIONS_PATH=str(self.work / "collections"), ANSIBLE_PIPELINING="True",
                   ANSIBLE_FORKS="12", ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="False",
                   ANSIBLE_DEPRECATION_WARNINGS="False", ANSIBLE_SSH_CONTROL_PATH_DIR=str(control_dir),
                   PATH=f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}", PYTHONDONTWRITEBYTECODE="1")
        return env

    def timed(self, argv: list[str], profile: Path | None = None) -> dict:
        """One run with its own ssh ControlPath directory (no connection reused from an earlier run).
        ``profile``: also time each task (bench_timer callback) into that file (warm-up runs only)."""
        control = Path(tempfile.mkdtemp(prefix="cp", dir=self.work))
        env = self.env(control)
        if profile:
            env.update(ANSIBLE_CALLBACK_PLUGINS=str(ROOT / "scripts" / "bench_callbacks"),
                       ANSIBLE_CALLBACKS_ENABLED="bench_timer", BENCH_TIMER_FILE=str(profile))
        ssh0 = self.ssh_accepted()
        t0 = time.time()
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, cwd=str(self.work))
        t1 = time.time()
        for sock in control.iterdir():   # end the ControlPersist masters this run left
            subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={sock}", "x"], capture_output=True)
        shutil.rmtree(control, ignore_errors=True)
        return {"seconds": t1 - t0, "rc": r.returncode, "t0": t0, "t1": t1, "ssh": self.ssh_accepted() - ssh0,
                "output": (r.stdout + r.stderr)[-3000:]}

    def playbook(self, path, *extra: str, inventory: Path | None = None, profile: Path | None = None) -> dict:
        return self.timed([str(BIN / "ansible-playbook"), "-i", str(inventory or self.inventory), str(path), *extra],
                          profile)

    def reconcile(self, profile: Path | None = None) -> dict:
        return self.timed([sys.executable, str(ROOT / "bin" / "msr-reconcile"), "-i", str(self.inventory),
                           "--report", str(self.work / "report.json"), "--lock", str(self.work / "reconcile.lock"),
                           "--ansible-playbook", str(BIN / "ansible-playbook")], profile)

    # ---- measurements
    def point(self, replicas: int, nodes: int) -> dict:
        """One lab size: empty, reconcile and naive runs interleaved, medians."""
        size = nodes
        extra = max(0, nodes - MANAGERS - replicas)
        nodes = MANAGERS + replicas + extra
        self.up(replicas, extra)
        kinds = {"empty": lambda: self.playbook(self.work / "empty.yml"), "reconcile": self.reconcile,
                 "naive": lambda: self.playbook(self.work / "naive.yml"),
                 "one_module": lambda: self.playbook(self.work / "one_module.yml"),
                 "one_ssh": lambda: self.playbook(self.work / "one_ssh.yml")}
        for run in kinds.values():   # warm-up, not counted (caches, first ssh host key reads)
            run()
        profile = self.work / "profile.json"
        self.reconcile(profile)      # one more, not counted: where a reconcile's time goes, task by task
        tasks = json.loads(profile.read_text())["tasks"] if profile.exists() else []
        runs = {k: [] for k in kinds}
        for _ in range(self.runs):
            for kind, run in kinds.items():
                runs[kind].append(run())
        last = runs["reconcile"][-1]
        out = {"replicas": replicas, "size": size, "mke_nodes": nodes, "virtual_nodes": extra, "runs": self.runs,
               "failed": {k: sum(1 for r in v if r["rc"] not in (0,)) for k, v in runs.items()},
               "requests": self.requests(last["t0"], last["t1"]),
               "profile": sorted(tasks, key=lambda t: -t[1])[:8]}
        for kind, rs in runs.items():
            out[f"{kind}_s"] = round(statistics.median(r["seconds"] for r in rs), 3)
            out[f"{kind}_all_s"] = [round(r["seconds"], 3) for r in rs]
            out[f"{kind}_ssh"] = max(r["ssh"] for r in rs)
        out["ratio"] = round(out["reconcile_s"] / out["empty_s"], 2)
        out["naive_ratio"] = round(out["naive_s"] / out["empty_s"], 2)
        out["one_module_ratio"] = round(out["one_module_s"] / out["empty_s"], 2)
        out["one_ssh_ratio"] = round(out["one_ssh_s"] / out["empty_s"], 2)
        out["ssh_floor_ratio"] = round(out["reconcile_s"] / out["one_ssh_s"], 2)
        out["requests_total"] = sum(out["requests"].values())
        bad = [r for rs in runs.values() for r in rs if r["rc"] != 0]
        if bad:
            out["failure_output"] = bad[0]["output"]
        print(f"  {replicas} replicas, {nodes} MKE nodes: empty {out['empty_s']:.2f} s, reconcile "
              f"{out['reconcile_s']:.2f} s ({out['ratio']}x), naive {out['naive_s']:.2f} s, reconcile ssh "
              f"{out['reconcile_ssh']}, {out['requests_total']} requests", flush=True)
        return out

    def lifecycle(self, replicas: int = 3) -> dict:
        """Automation overhead of a join (scale_up of one replica) and a remove (scale_down of it)."""
        self.up(replicas, 0, workers=replicas + 1)
        new = f"worker{replicas + 1}"
        inv = self.work / "inventory-join.yml"
        self.lab("inventory", "-o", str(inv), "--msr", ",".join(f"worker{i + 1}" for i in range(replicas + 1)))
        ev = {"msr_backup_dir": str(self.work / "backups"), "msr_allow_even": True, "msr_skip_confirmation": True}
        out = {}
        for op, playbook, extra in (("join", "msr.replicas.scale_up", {}),
                                    ("remove", "msr.replicas.scale_down", {"msr_scale_down_nodes": [new]})):
            profile = self.work / f"profile-{op}.json"   # the task timer costs microseconds per task
            run = self.playbook(playbook, "-e", json.dumps({**ev, **extra}), inventory=inv, profile=profile)
            timer = json.loads(profile.read_text()) if profile.exists() else {}
            tasks = timer.get("tasks", [])
            events = self.log_lines("events.log", run["t0"], run["t1"])
            programs = [e for e in events if e.get("event") == "program"]
            booted = covered([(e["started"], e["finished"]) for e in programs])   # phase2 runs inside a join
            health = 0.0
            ends = [e["finished"] for e in programs if op in e["cmd"][:1]]
            oks = [e["t"] for e in events if e.get("event") == "reported-ok"]
            if ends and oks and max(oks) > max(ends):
                health = max(oks) - max(ends)   # from the join's end to the new replica's first OK report
            # From each reload until HAProxy's checks made the new server UP in every backend, as lb_pool
            # counts it (its "up" result): the first check comes up to one inter after the reload.
            lb_wait = sum(timer.get("up_waits", []))
            out[op] = {"wall_s": round(run["seconds"], 2), "rc": run["rc"],
                       "bootstrapper_s": round(booted, 2), "health_wait_s": round(health, 2),
                       "lb_up_wait_s": round(lb_wait, 2),
                       "bootstrapper_runs": [f"{e['cmd'][0] if e['cmd'] else '?'} {e['finished'] - e['started']:.2f}s"
                                             for e in programs],
                       "overhead_s": round(run["seconds"] - booted - health - lb_wait, 2), "ssh": run["ssh"],
                       "requests_total": sum(self.requests(run["t0"], run["t1"]).values()),
                       "tasks": len(tasks), "profile": sorted(tasks, key=lambda t: -t[1])[:8]}
            if run["rc"] != 0:
                out[op]["failure_output"] = run["output"]
            print(f"  {op}: {out[op]['wall_s']} s wall, bootstrapper {out[op]['bootstrapper_s']} s, health wait "
                  f"{out[op]['health_wait_s']} + LB {out[op]['lb_up_wait_s']} s: overhead {out[op]['overhead_s']} s",
                  flush=True)
        return out


def covered(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of the intervals."""
    total, end = 0.0, None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def endpoint(target: str) -> str:
    """/v1.41/containers/json?all=1&filters=... -> /containers/json?filters=name (what was asked, not ids)."""
    from urllib.parse import parse_qs, urlsplit
    parts = urlsplit(target)
    path = re.sub(r"^/v\d+(\.\d+)?(?=/)", "", parts.path)
    path = re.sub(r"/[0-9a-f]{12,64}(?=/|$)", "/<id>", path)
    query = parse_qs(parts.query)
    if "filters" in query:
        try:
            keys = ",".join(f"{k}={'|'.join(v) if isinstance(v, list) else '|'.join(v)}"
                            for k, v in json.loads(query["filters"][0]).items())
        except ValueError:
            keys = "?"
        path += f"?filters={keys}"
    elif path.endswith("/containers/json"):
        path += " (unfiltered)"
    return path


def machine() -> dict:
    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    except OSError:
        pass
    ansible = subprocess.run([str(BIN / "ansible-playbook"), "--version"], capture_output=True, text=True).stdout
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "cpus": os.cpu_count(), "cpu_model": model, "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "ansible": ansible.splitlines()[0] if ansible else "",
            "kernel": platform.release()}


def summarise(points: list[dict]) -> dict:
    """Growth from the fewest to the most replicas (at the same node count) and nodes (same replicas)."""
    def at(r, n):
        return next((p for p in points if p["replicas"] == r and p["size"] == n), None)
    rs = sorted({p["replicas"] for p in points})
    ns = sorted({p["size"] for p in points})
    growth = {}
    for n in ns:
        lo, hi = at(rs[0], n), at(rs[-1], n)
        if lo and hi and lo is not hi:
            growth[f"replicas {rs[0]}->{rs[-1]} at {lo['mke_nodes']}->{hi['mke_nodes']} nodes"] = round(hi["reconcile_s"] / lo["reconcile_s"], 2)
    for r in rs:
        lo, hi = at(r, ns[0]), at(r, ns[-1])
        if lo and hi and lo is not hi:
            growth[f"nodes {lo['mke_nodes']}->{hi['mke_nodes']} at {r} replicas"] = round(hi["reconcile_s"] / lo["reconcile_s"], 2)
    return growth


def table(result: dict) -> str:
    lines = ["| replicas | MKE nodes | empty run | one module | one SSH command | no-op reconcile | ratio | "
             "to one SSH command | naive | naive ratio | reconcile SSH | API requests |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in result["points"]:
        one = f"{p['one_module_s']:.2f} s" if "one_module_s" in p else "-"
        ssh = f"{p['one_ssh_s']:.2f} s" if "one_ssh_s" in p else "-"
        floor = f"{p['ssh_floor_ratio']:.2f}x" if "ssh_floor_ratio" in p else "-"
        lines.append(f"| {p['replicas']} | {p['mke_nodes']} | {p['empty_s']:.2f} s | {one} | {ssh} | "
                     f"{p['reconcile_s']:.2f} s | {p['ratio']:.2f}x | {floor} | {p['naive_s']:.2f} s | "
                     f"{p['naive_ratio']:.2f}x | {p['reconcile_ssh']} | {p['requests_total']} |")
    return "\n".join(lines)


def render(result: dict) -> str:
    m = result["machine"]
    g = GOALS
    out = [
        "# Performance",
        "",
        "What a no-op reconcile (in sync, report mode: `bin/msr-reconcile --report`) costs next to the floor of any",
        "Ansible run (an empty playbook: one play, `gather_facts: false`, one `debug`, same inventory) and next to",
        "the naive way (ssh to every inventory node, gather facts, `docker ps`, probe each replica's `/_ping`), and",
        "next to the floor of a module run (the empty run with one `ansible.builtin.ping` instead of `debug`) and",
        "the floor of a run that reads the LB host (the empty run with one `ansible.builtin.raw` command on it),",
        "measured on the lab (`msr-lab up --mke-nodes`: virtual MKE workers fill the node count). Generated by",
        "`scripts/bench.py` from `docs/performance.json`; reproduce with:",
        "",
        "    make bench                       # or: .venv/bin/python scripts/bench.py --runs 5 --grid full",
        "",
        f"Measured {m['date']} on {m['cpus']} CPUs ({m['cpu_model']}), load average at start "
        f"{', '.join(str(x) for x in m['load_average_at_start'])}"
        + (f", at the end {', '.join(str(x) for x in m['load_average_at_end'])}" if m.get("load_average_at_end") else "")
        + f" (a load above the CPU count means other work shared the machine: take the figures on a quiet one); "
        f"{m['ansible']}, Python {m['python']}. "
        f"Medians of {result['runs']} runs each, the five kinds interleaved, one after another. "
        "The lab has 3 MKE managers, one worker per replica, 1 HAProxy LB and virtual MKE workers "
        f"({NODE_CONTAINERS} containers each) up to the node count; the smallest size is that lab without virtual workers "
        "(3 + replicas nodes).",
        "",
        table(result),
        "",
        f"Goals: reconcile at most {g['ratio']}x the empty run at every size; growth at most {g['growth']}x; at most "
        f"{g['ssh']} SSH connection per reconcile; automation overhead at most {g['overhead_s']:.0f} s per join and remove.",
        "",
        "Growth of the no-op reconcile's wall time:",
        "",
    ]
    out += [f"- {k}: {v:.2f}x" for k, v in result["growth"].items()]
    out += ["", "SSH connections are counted from every node's sshd log (`Accepted publickey` lines in",
            "`<state>/nodes/<node>/run/sshd.log`); each run has its own ControlPath directory, so none is reused.",
            "", "API requests of one no-op reconcile, by endpoint (the lab's `<state>/requests.log`, the controller's",
            "requests only; HAProxy's health checks left out):", ""]
    for p in (result["points"][0], result["points"][-1]):
        out.append(f"- {p['replicas']} replicas, {p['mke_nodes']} MKE nodes: "
                   + "; ".join(f"`{k}` {v}" for k, v in p["requests"].items()))
    lc = result.get("lifecycle") or {}
    if lc:
        out += ["", "Automation overhead (3 -> 4 replicas with scale_up, back with scale_down): wall time minus the",
                "bootstrapper runs (`<state>/events.log`, the backup before each change included), the health wait",
                "(from the join's end to the new replica's first OK report) and the LB's (from each reload until",
                "HAProxy's checks, `inter 2s rise 2`, made the new server UP in every backend: lb_pool's `up` result):", "",
                "| operation | wall | bootstrapper | health wait | LB up wait | overhead | SSH | API requests |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for op, v in lc.items():
            out.append(f"| {op} | {v['wall_s']:.2f} s | {v['bootstrapper_s']:.2f} s | {v['health_wait_s']:.2f} s | "
                       f"{v.get('lb_up_wait_s', 0):.2f} s | {v['overhead_s']:.2f} s | {v['ssh']} | {v['requests_total']} |")
        for op, v in lc.items():
            if v.get("profile"):
                out += ["", f"The slowest of the {v['tasks']} tasks of the {op}: "
                        + "; ".join(f"{name} {sec:.2f} s" for name, sec in v["profile"])]
    out += ["", "## Goals", ""] + verdicts(result)
    big = max(result["points"], key=lambda p: (p["mke_nodes"], p["replicas"]))
    if big.get("profile"):
        out += ["", f"Where a no-op reconcile's time goes ({big['replicas']} replicas, {big['mke_nodes']} MKE nodes; "
                "one extra run with a task timer, the slowest tasks):", "", "| task | seconds |", "|---|---:|"]
        out += [f"| {name} | {sec:.2f} |" for name, sec in big["profile"]]
    out += ["", why(result)]
    by_replicas = collections.defaultdict(set)
    for p in result["points"]:
        by_replicas[p["replicas"]].add(p["requests_total"])
    out += ["", "API requests per no-op reconcile, by replicas: "
            + "; ".join(f"{r} replicas: {', '.join(str(n) for n in sorted(v))}" for r, v in sorted(by_replicas.items()))
            + (" (the same at every MKE node count)." if all(len(v) == 1 for v in by_replicas.values()) else ".")]
    return "\n".join(out) + "\n"


def why(result: dict) -> str:
    pts = result["points"]
    floors = [p["one_ssh_ratio"] for p in pts if "one_ssh_ratio" in p]
    above = [p["ssh_floor_ratio"] for p in pts if "ssh_floor_ratio" in p]
    text = ("How a no-op reconcile runs: no module at all. `cluster_info` runs its code in Ansible's worker process "
            "(its action plugin, as the other controller-side modules do), each LB host's pool is one command of "
            "that host's Python over the one SSH connection (`lb_pool_info`), and the report is written in the "
            "controller's process (`report_file`). The collection's filter plugins are loaded once, by "
            "ansible-playbook's own process (the selection play's `hosts:` goes through one), and inherited by each task's "
            "forked worker, instead of being loaded again by every task that uses one.")
    if floors and above:
        text += (f" The floor of any run that reads an LB host, the empty run with one `raw` command on it, is "
                 f"{min(floors):.2f}x to {max(floors):.2f}x the empty run here; the no-op reconcile is {min(above):.2f}x "
                 f"to {max(above):.2f}x that floor.")
    if max(p["ratio"] for p in pts) > GOALS["ratio"]:
        text += (" What it adds to the floor is in the task table above: the remote Python's start on the LB host, "
                 "the API reads, and a dozen tasks at a few hundredths of a second each (a worker process, "
                 "templating, callbacks), skipped ones included.")
        spare = [GOALS["ratio"] * p["empty_s"] - p["one_ssh_s"] for p in pts if "one_ssh_s" in p]
        if spare:
            text += (f" The goal leaves {min(spare):.2f} s to {max(spare):.2f} s above that floor for everything but "
                     "the SSH command: less than the API reads alone take, so no reconcile that reads the LB hosts "
                     "over SSH can meet it on this machine, however few its tasks.")
    return text


def verdicts(result: dict) -> list[str]:
    g, pts = GOALS, result["points"]
    out = []
    hi = max(p["ratio"] for p in pts)
    out.append(f"- no-op reconcile / empty run: {min(p['ratio'] for p in pts):.2f}x to {hi:.2f}x (goal at most "
               f"{g['ratio']}x): {'met' if hi <= g['ratio'] else 'missed'}")
    if result["growth"]:
        worst = max(result["growth"].values())
        out.append(f"- growth: at most {worst:.2f}x (goal {g['growth']}x): {'met' if worst <= g['growth'] else 'missed'}")
    ssh = max(p["reconcile_ssh"] for p in pts)
    out.append(f"- SSH connections per no-op reconcile: at most {ssh}, all to the one LB host (the pool is read there; "
               f"none to an MKE node): {'met' if ssh <= g['ssh'] else 'missed'}")
    for op, v in (result.get("lifecycle") or {}).items():
        out.append(f"- automation overhead per {op}: {v['overhead_s']:.2f} s (goal at most {g['overhead_s']:.0f} s): "
                   f"{'met' if v['overhead_s'] <= g['overhead_s'] else 'missed'}")
    return out


def parse_grid(text: str) -> list[tuple[int, int]]:
    if text == "full":
        return FULL
    if text == "corners":
        return CORNERS
    return [(int(r), int(n)) for r, n in (item.split(":") for item in text.split(","))]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", default="full", help="full (3/5/7 replicas x smallest/50/200 MKE nodes), corners, or "
                                                  "R:N,... (R replicas, N MKE nodes in all; 0: the smallest, 3 managers + R workers)")
    p.add_argument("--runs", type=int, default=5, help="runs of each kind per size (medians; default 5)")
    p.add_argument("--no-lifecycle", action="store_true", help="skip the join/remove overhead")
    p.add_argument("--json", default=str(ROOT / "docs" / "performance.json"))
    p.add_argument("--markdown", default=str(ROOT / "docs" / "performance.md"))
    p.add_argument("--render", action="store_true", help="only render --markdown from --json")
    p.add_argument("--lab-name", default=os.environ.get("MSR_BENCH_LAB_NAME", "msrbench"))
    p.add_argument("--subnet", default=os.environ.get("MSR_BENCH_SUBNET", "10.98.0.0/24"))
    args = p.parse_args(argv)
    if args.render:
        result = json.loads(Path(args.json).read_text())
        result.setdefault("growth", summarise(result["points"]))
        Path(args.markdown).write_text(render(result))
        return 0
    if os.geteuid() != 0:
        print("bench: must run as root (the lab needs it)", file=sys.stderr)
        return 1
    lock = open(f"/run/msr-bench-{args.lab_name}.lock", "w")
    try:   # two benchmarks on one lab name would tear down each other's labs (and skew each other)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"bench: another benchmark runs with lab {args.lab_name}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    work = Path(tempfile.mkdtemp(prefix="msr-bench-"))
    result = {"machine": machine(), "runs": args.runs, "goals": GOALS, "points": [], "lifecycle": {}}
    bench = Bench(args.lab_name, args.subnet, args.runs, work)
    print(f"bench: {result['machine']['cpus']} CPUs, load {result['machine']['load_average_at_start']}, "
          f"lab {args.lab_name} on {args.subnet}", flush=True)
    try:
        for replicas, extra in parse_grid(args.grid):
            result["points"].append(bench.point(replicas, extra))
            # what is measured so far survives a killed run (rendered only at the end)
            Path(args.json).write_text(json.dumps(dict(result, complete=False), indent=2) + "\n")
        if not args.no_lifecycle:
            result["lifecycle"] = bench.lifecycle()
    finally:
        bench.down()
        shutil.rmtree(work, ignore_errors=True)
    result["growth"] = summarise(result["points"])
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print()
    print(table(result))
    for k, v in result["growth"].items():
        print(f"growth {k}: {v:.2f}x")
    result["complete"] = True
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    Path(args.markdown).write_text(render(result))
    print(f"\nwrote {args.json} and {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
