# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Ansible's own cost per host and task on this machine: the floor under fleet.py's figures.

fleet.py measures site.yml. This measures playbooks that do next to nothing, on the
same kind of test hosts (systemd containers, the docker connection, this checkout's
ansible.cfg: forks 50, pipelining), so that a fleet figure can be split into what
kubegpu's tasks cost and what any Ansible task costs here. Workloads, K tasks per host:

  skip    debug with `when: false`: a task every host skips (the controller only)
  action  assert that true: an action plugin that runs on the controller
  module  ansible.builtin.ping: the smallest module run on the host
  stage   the least a stage that checks its host can do on a no-op, K/4 times over:
          validate its arguments (validate_argument_spec), read the host with one
          kubegpu.cluster.host_state run, and skip two guarded tasks

For each workload and fleet size it records wall time, the controller's CPU seconds
(ansible-playbook and its children: forks, docker CLI) and the hosts' (their cgroups),
and prints T(N)/T(4) and the cost of one more host.

    .venv/bin/python bench/floor.py --sizes 1,4,16 --tasks 20

Containers are named kubegpu-bench-floor*, started from the test image and removed at
the end (or left up with --keep, reused with --reuse).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet  # noqa: E402  (bench/fleet.py: containers, CPU accounting)

WORKLOADS = ("skip", "action", "module", "stage")
ARG_SPEC = {"main": {"options": {
    "floor_name": {"type": "str", "default": "x"},
    "floor_list": {"type": "list", "elements": "str", "default": []},
    "floor_flag": {"type": "bool", "default": False}}}}


def layout(n):
    return [("h%02d" % i, fleet.PREFIX + "floor%02d" % i, []) for i in range(1, n + 1)]


def task_lines(workload, k):
    """YAML task lines for k tasks of a workload."""
    out = []
    if workload == "stage":
        for s in range(max(1, k // 4)):
            out += [
                "    - name: stage %d - validate the arguments" % s,
                "      ansible.builtin.validate_argument_spec:",
                "        argument_spec: \"{{ floor_spec.main.options }}\"",
                "    - name: stage %d - read the host" % s,
                "      kubegpu.cluster.host_state:",
                "        paths: [/etc/hostname, /etc/fstab]",
                "      register: floor_state",
            ]
            for g in range(2):
                out += [
                    "    - name: stage %d - guarded change %d" % (s, g),
                    "      ansible.builtin.file:",
                    "        path: /etc/hostname",
                    "        mode: '0644'",
                    "      when: not floor_state.paths['/etc/hostname'].exists",
                ]
        return out
    body = {
        "skip": ["      ansible.builtin.debug:", "        msg: never", "      when: false"],
        "action": ["      ansible.builtin.assert:", "        that: true", "        quiet: true"],
        "module": ["      ansible.builtin.ping:"],
    }[workload]
    for i in range(k):
        out += ["    - name: %s %d" % (workload, i)] + body
    return out


def write_playbook(path, workload, k):
    lines = ["- name: floor %s" % workload, "  hosts: all", "  gather_facts: false",
             "  vars:", "    floor_spec: %s" % json.dumps(ARG_SPEC), "  tasks:"]
    path.write_text("\n".join(lines + task_lines(workload, k)) + "\n")


def write_inventory(path, hosts):
    inv = {"all": {"vars": {"ansible_connection": "community.docker.docker"},
                   "hosts": {name: {"ansible_host": c} for name, c, _unused in hosts}}}
    path.write_text(json.dumps(inv, indent=2))


def run(playbook, inventory, containers, logfile):
    env = dict(os.environ)
    site = fleet.REPO / ".venv" / "lib" / ("python%d.%d" % sys.version_info[:2]) / "site-packages"
    env.update({
        "PATH": "%s:%s" % (fleet.REPO / ".venv" / "bin", env.get("PATH", "")),
        "ANSIBLE_COLLECTIONS_PATH": "%s:%s" % (fleet.REPO / ".collections", site / "ansible_collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    })
    cmd = [str(fleet.REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), str(playbook)]
    hosts0 = fleet.fleet_cpu_s(containers)
    ctl0 = os.times()
    t0 = time.monotonic()
    with open(logfile, "w") as fh:
        rc = subprocess.run(cmd, cwd=fleet.REPO, env=env, stdout=fh, stderr=subprocess.STDOUT,
                            check=False, timeout=1800).returncode
    wall = time.monotonic() - t0
    ctl1 = os.times()
    hosts1 = fleet.fleet_cpu_s(containers)
    return {
        "rc": rc, "wall_s": round(wall, 2),
        "controller_cpu_s": round(ctl1.children_user + ctl1.children_system
                                  - ctl0.children_user - ctl0.children_system, 2),
        "hosts_cpu_s": (round(hosts1 - hosts0, 2) if None not in (hosts0, hosts1) else None),
        "load_before": fleet.loadavg(),
    }


def settle(limit):
    """Wait (at most `limit` s) for the 1-minute load to fall under 1: the hosts' boot is done."""
    deadline = time.monotonic() + limit
    while fleet.loadavg()[0] >= 1.0 and time.monotonic() < deadline:
        time.sleep(5)
    fleet.log("load %s before the first run" % fleet.loadavg())


def table(results, sizes, k):
    out = ["| workload (%d tasks/host) | %s | T(16)/T(4) | s per more host | CPU s per host and task, controller / hosts |"
           % (k, " | ".join("T(%d) s" % n for n in sizes)),
           "|---|" + "---|" * (len(sizes) + 3)]
    for w, by_n in results.items():
        t = {n: by_n[n]["wall_s"] for n in sizes if n in by_n}
        ratio = ("%.2f" % (t[16] / t[4])) if 4 in t and 16 in t else "-"
        lo, hi = min(t), max(t)
        slope = ("%.2f" % ((t[hi] - t[lo]) / (hi - lo))) if hi > lo else "-"
        big = by_n[hi]
        per = "%.3f / %s" % (big["controller_cpu_s"] / hi / k,
                             ("%.3f" % (big["hosts_cpu_s"] / hi / k)) if big["hosts_cpu_s"] is not None else "-")
        out.append("| %s | %s | %s | %s | %s |" % (w, " | ".join("%.1f" % t[n] for n in sizes if n in t),
                                                   ratio, slope, per))
    return "\n".join(out)


def measure(sizes, tasks, workloads, runs=2, image=fleet.IMAGE, keep=False, reuse=False,
            settle_s=180, logdir=None):
    """Run each workload on each size (best of `runs`): {"meta", "results"} (results by
    workload, then fleet size). Starts and removes its own containers unless reuse/keep."""
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        raise SystemExit("unknown workload(s) %s; known: %s" % (", ".join(sorted(unknown)), ", ".join(WORKLOADS)))
    outdir = Path(logdir or fleet.HERE / "results" / "floor")
    outdir.mkdir(parents=True, exist_ok=True)
    everyone = layout(max(sizes))
    fleet.ensure_inotify(max(sizes))
    if not reuse:
        fleet.log("starting %d containers from %s" % (len(everyone), image))
        # A non-empty apt proxy keeps start_fleet from mounting the shared apt archive.
        fleet.start_fleet(everyone, "unused", image)
    settle(settle_s)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    load_start = fleet.loadavg()
    results = {}
    try:
        for w in workloads:
            playbook = outdir / ("floor-%s.yml" % w)
            write_playbook(playbook, w, tasks)
            results[w] = {}
            for n in sizes:
                hosts = everyone[:n]
                inventory = outdir / ("inventory-%d.json" % n)
                write_inventory(inventory, hosts)
                tries = [run(playbook, inventory, [c for _u, c, _u2 in hosts],
                             outdir / ("%s-n%d-%d.log" % (w, n, i))) for i in range(runs)]
                failed = [r for r in tries if r["rc"] != 0]
                if failed:
                    raise SystemExit("%s at N=%d failed (rc=%d); see %s" % (
                        w, n, failed[0]["rc"], outdir / ("%s-n%d-*.log" % (w, n))))
                results[w][n] = min(tries, key=lambda r: r["wall_s"])
                fleet.log("%s N=%d: %.2f s (controller %.1f / hosts %s CPU s)" % (
                    w, n, results[w][n]["wall_s"], results[w][n]["controller_cpu_s"],
                    results[w][n]["hosts_cpu_s"]))
    finally:
        if not keep:
            fleet.remove_fleet(everyone)
    meta = {"stamp": stamp, "host": socket.gethostname(), "cpus": os.cpu_count(),
            "image": image, "tasks_per_host": tasks, "runs": runs, "load_at_start": load_start}
    return {"meta": meta, "results": results}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    p.add_argument("--sizes", default="1,4,16", help="fleet sizes (default 1,4,16)")
    p.add_argument("--tasks", type=int, default=20, help="tasks per host in each workload (default 20)")
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--runs", type=int, default=2, help="runs per point; the best is kept (default 2)")
    p.add_argument("--image", default=fleet.IMAGE)
    p.add_argument("--keep", action="store_true", help="leave the containers running")
    p.add_argument("--reuse", action="store_true", help="use containers left running by --keep")
    p.add_argument("--settle", type=int, default=180,
                   help="wait up to this many seconds for the load to fall under 1 before the first run")
    p.add_argument("--label", default="")
    p.add_argument("--results", default=str(fleet.HERE / "results"))
    opts = p.parse_args(argv)
    sizes = sorted(int(s) for s in opts.sizes.split(",") if s)
    workloads = [w for w in opts.workloads.split(",") if w]
    doc = measure(sizes, opts.tasks, workloads, opts.runs, opts.image, opts.keep, opts.reuse,
                  opts.settle, Path(opts.results) / "floor")
    outfile = Path(opts.results) / ("floor-%s%s.json" % (doc["meta"]["stamp"],
                                                         ("-" + opts.label) if opts.label else ""))
    outfile.write_text(json.dumps(doc, indent=2))
    print()
    print(table(doc["results"], sizes, opts.tasks))
    print("\nresults: %s" % outfile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
