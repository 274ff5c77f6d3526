# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Fleet benchmark: site.yml (the stages that can run here) against N systemd test hosts.

For each fleet size N it starts N systemd containers (the options of
tests/integration/conftest.py and scripts/lab.sh), writes an inventory with the lab's
groups (1 control plane, N-1 workers, a quarter of the workers (rounded up) in `gpu`)
into bench/results/, and runs

    ansible-playbook -i <inventory> playbooks/site.yml \\
        --skip-tags=kubernetes,calico,nvidia_device_plugin,gpu_node_labels,validate

twice: the first converge (fresh hosts, empty fact cache) and a no-op re-run (same
hosts, facts cached as ansible.cfg configures). Per run it records the wall time, the
load average, the PLAY RECAP of every host (tasks per host = ok+changed+skipped+failed)
and the slowest tasks (ansible.posix.profile_tasks). It writes
bench/results/fleet-<stamp>.json and prints a markdown table with T(N)/T(4) of the
no-op run.

    .venv/bin/python bench/fleet.py --sizes 1,4,16
    .venv/bin/python bench/fleet.py --sizes 4 --apt-proxy none        # shared archive, no proxy
    .venv/bin/python bench/fleet.py --sizes 4 --keep                  # leave the fleet up
    .venv/bin/python bench/fleet.py --sizes 4 --reuse --noop-runs 3   # no-op runs only
    .venv/bin/python bench/fleet.py --sizes 4 --repo /tmp/kubegpu-scratch   # a changed copy

Package downloads: with --apt-proxy auto (the default) and an apt-cacher-ng listening
on the docker bridge gateway, port 3142, or with --apt-proxy URL, every host keeps its
own apt archive and apt goes through the proxy (kubegpu_http_proxy). Otherwise (or
with --apt-proxy none) every host bind-mounts the shared archive /var/cache/kubegpu-apt
as the lab and Molecule do, and apt's archive lock serialises the installs of the
whole fleet on a first converge. No-op runs download nothing either way.
At most ~18 systemd test hosts run at once with the default
fs.inotify.max_user_instances=128 (each systemd takes ~7 inotify instances; one more
host exits at boot with status 255), other test runs' hosts included. For a larger
fleet the bench raises the limit (8 per host, plus room for other runs) when it may
write /proc/sys, and stops before starting anything when it may not.
Containers are named kubegpu-bench-*; they are removed at the end unless --keep.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SKIP_TAGS = "kubernetes,calico,nvidia_device_plugin,gpu_node_labels,validate"
IMAGE = os.environ.get("KUBEGPU_TEST_IMAGE", "kubegpu-test:bookworm-r4")
APT_ARCHIVE = "/var/cache/kubegpu-apt"
PREFIX = "kubegpu-bench-"
SYSTEMD_RUN_OPTIONS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_MODULE",
    "--cap-add", "SYS_PTRACE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
]
RECAP_RE = re.compile(r"^(\S+)\s+:\s+(ok=\d+.*)$", re.M)
PROFILE_RE = re.compile(r"^(.+?) -{2,} (\d+\.\d+)s\s*$", re.M)


def log(msg):
    print("fleet: %s" % msg, flush=True)


def docker(*args, check=True, timeout=180):
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          check=check, timeout=timeout)


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def fleet_layout(n):
    """[(inventory name, container, groups)] for a fleet of n hosts."""
    workers = n - 1
    gpus = math.ceil(workers / 4) if workers else 0
    hosts = [("cp1", PREFIX + "cp1", ["kube_control_plane", "etcd"])]
    for i in range(1, workers + 1):
        groups = ["kube_node"] + (["gpu"] if i <= gpus else [])
        name = ("gpu%02d" if i <= gpus else "cpu%02d") % i
        hosts.append((name, PREFIX + name, groups))
    return hosts


def gateway():
    """The docker bridge gateway (what containers reach this machine at)."""
    ipam = json.loads(docker("network", "inspect", "bridge", "-f", "{{json .IPAM}}").stdout)
    config = (ipam.get("Config") or [{}])[0]
    if config.get("Gateway"):
        return config["Gateway"]
    # Older engines leave Gateway out: the bridge takes the subnet's first address.
    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


def resolve_proxy(arg):
    if not arg or arg == "none":
        return ""
    if arg != "auto":
        return arg
    gw = gateway()
    try:
        socket.create_connection((gw, 3142), timeout=2).close()
    except OSError:
        log("--apt-proxy auto: nothing listens on %s:3142; using the shared archive" % gw)
        return ""
    return "http://%s:3142" % gw


INOTIFY = "/proc/sys/fs/inotify/max_user_instances"


def ensure_inotify(largest):
    """Room for `largest` systemd hosts: raise the inotify instance limit, or stop."""
    need = 8 * largest + 64
    try:
        have = int(Path(INOTIFY).read_text())
    except OSError:
        return
    if have >= need:
        return
    try:
        Path(INOTIFY).write_text("%d\n" % need)
    except OSError as exc:
        raise SystemExit("fs.inotify.max_user_instances is %d; %d test hosts need about %d "
                         "(%s). Fix: sysctl -w fs.inotify.max_user_instances=%d, or smaller --sizes."
                         % (have, largest, need, exc.strerror, need))
    log("fs.inotify.max_user_instances raised from %d to %d for %d hosts" % (have, need, largest))


def start_fleet(layout, apt_proxy, image):
    names = [c for _unused, c, _unused2 in layout]
    for _unused, container, _unused2 in layout:
        docker("rm", "-f", container, check=False)
    mounts = [] if apt_proxy else ["-v", "%s:/var/cache/apt/archives:rw" % APT_ARCHIVE]
    if not apt_proxy:
        os.makedirs(APT_ARCHIVE + "/partial", exist_ok=True)
    for name, container, _unused in layout:
        docker("run", "-d", "--name", container, "--hostname", name,
               *SYSTEMD_RUN_OPTIONS, *mounts, image, "/lib/systemd/systemd")
    deadline = time.monotonic() + 180
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for c in sorted(pending):
            state = docker("exec", c, "systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                pending.discard(c)
        if pending:
            time.sleep(1)
    if pending:
        raise SystemExit("systemd not up after 180 s in %s" % ", ".join(sorted(pending)))


def remove_fleet(layout):
    for _unused, container, _unused2 in layout:
        docker("rm", "-f", container, check=False)


def remove_all_bench():
    out = docker("ps", "-a", "--format", "{{.Names}}", check=False).stdout.split()
    for c in out:
        if c.startswith(PREFIX):
            docker("rm", "-f", c, check=False)


def write_inventory(path, layout, apt_proxy, extra_vars):
    groups = {"kube_control_plane": {}, "etcd": {}, "kube_node": {}, "gpu": {}}
    for name, container, gs in layout:
        for g in gs:
            groups[g][name] = None
    all_vars = {
        "ansible_connection": "community.docker.docker",
        # What .config/molecule/config.yml gives the test fleet.
        "kubegpu_pod_cidr": "192.168.0.0/16",
        "kubegpu_service_cidr": "10.96.0.0/12",
        "container_runtime_nvidia_toolkit_install": False,
        "container_runtime_registry_mirrors": [
            {"registry": "docker.io", "mirrors": [{"host": "https://mirror.gcr.io"}]}],
    }
    if apt_proxy:
        all_vars["kubegpu_http_proxy"] = apt_proxy
    else:
        # One archive shared by every host serialises the first converge's downloads:
        # the last of 32 hosts waits longer than the default 180 s for its lock (8 of
        # 32 failed so on 2026-11-30). Real hosts do not share /var/cache/apt/archives.
        all_vars["kubegpu_package_lock_timeout"] = max(180, 30 * len(layout))
    all_vars.update(extra_vars)
    inv = {"all": {
        "vars": all_vars,
        "hosts": {name: {"ansible_host": container} for name, container, _unused in layout},
        "children": {
            "kube_control_plane": {"hosts": groups["kube_control_plane"]},
            "etcd": {"hosts": groups["etcd"]},
            "kube_node": {"hosts": groups["kube_node"]},
            "k8s_cluster": {"children": {"kube_control_plane": None, "kube_node": None}},
            "gpu": {"hosts": groups["gpu"],
                    "vars": {"nvidia_driver_source": "debian",
                             "nvidia_driver_module_options": {
                                 "nvidia": "NVreg_EnableStreamMemOPs=1"}}},
        },
    }}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(inv, indent=2))  # JSON is YAML: the yaml plugin reads it


def parse_recap(out):
    hosts = {}
    for name, rest in RECAP_RE.findall(out):
        hosts[name] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", rest)}
    return hosts


def parse_profile(out, top):
    tail = out.split("PLAY RECAP", 1)[-1]
    tasks = [(name.strip(), float(sec)) for name, sec in PROFILE_RE.findall(tail)]
    tasks.sort(key=lambda t: -t[1])
    return [{"task": n, "seconds": s} for n, s in tasks[:top]]


def fleet_cpu_s(containers):
    """CPU seconds the containers used so far (cgroup v1 cpuacct or v2 cpu.stat); None if unknown."""
    total = 0.0
    for c in containers:
        cid = docker("inspect", "-f", "{{.Id}}", c, check=False).stdout.strip()
        for path, scale in (("/sys/fs/cgroup/cpuacct/docker/%s/cpuacct.usage" % cid, 1e-9),
                            ("/sys/fs/cgroup/system.slice/docker-%s.scope/cpu.stat" % cid, 1e-6)):
            try:
                text = Path(path).read_text()
            except OSError:
                continue
            if path.endswith("cpu.stat"):
                text = re.search(r"usage_usec (\d+)", text).group(1)
            total += int(text) * scale
            break
        else:
            return None
    return total


def run_site(repo, inventory, facts_dir, logfile, env_extra, args_extra, timeout, containers=()):
    venv = REPO / ".venv"
    env = dict(os.environ)
    site = venv / "lib" / ("python%d.%d" % sys.version_info[:2]) / "site-packages"
    env.update({
        "PATH": "%s:%s" % (venv / "bin", env.get("PATH", "")),
        "ANSIBLE_COLLECTIONS_PATH": "%s:%s" % (Path(repo) / ".collections",
                                               site / "ansible_collections"),
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
        "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(facts_dir),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    })
    env.update(env_extra)
    cmd = [str(venv / "bin" / "ansible-playbook"), "-i", str(inventory),
           "playbooks/site.yml", "--skip-tags=" + SKIP_TAGS, *args_extra]
    load_before = loadavg()
    hosts_cpu0 = fleet_cpu_s(containers)
    ctl0 = os.times()
    t0 = time.monotonic()
    # Written as it runs: `tail -f` the log to watch a long converge.
    with open(logfile, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=fh, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = 124
    wall = time.monotonic() - t0
    ctl1 = os.times()
    hosts_cpu1 = fleet_cpu_s(containers)
    out = logfile.read_text()
    recap = parse_recap(out)
    tasks = {h: r.get("ok", 0) + r.get("changed", 0) + r.get("skipped", 0) + r.get("failed", 0)
             for h, r in recap.items() if h != "localhost"}
    return {
        "rc": rc,
        "wall_s": round(wall, 2),
        "load_before": load_before,
        "load_after": loadavg(),
        "recap": recap,
        "changed_total": sum(r.get("changed", 0) for r in recap.values()),
        "failed_total": sum(r.get("failed", 0) + r.get("unreachable", 0) for r in recap.values()),
        "tasks_per_host": tasks,
        "tasks_per_host_min": min(tasks.values()) if tasks else 0,
        "tasks_per_host_max": max(tasks.values()) if tasks else 0,
        "slowest": parse_profile(out, 10),
        # ansible-playbook and its children (forks, docker CLI): the controller's share.
        "controller_cpu_s": round((ctl1.children_user + ctl1.children_system)
                                  - (ctl0.children_user + ctl0.children_system), 1),
        # What ran inside the test hosts (modules, sudo, apt): on real servers each
        # host has its own CPUs; here all hosts share this machine's.
        "hosts_cpu_s": (round(hosts_cpu1 - hosts_cpu0, 1)
                        if hosts_cpu0 is not None and hosts_cpu1 is not None else None),
        "log": str(logfile),
    }


def bench_size(n, opts, outdir, apt_proxy):
    layout = fleet_layout(n)
    containers = [c for _unused, c, _unused2 in layout]
    tag = "n%d%s" % (n, ("-" + opts.label) if opts.label else "")
    inventory = outdir / ("inventory-%s.yml" % tag)
    # One fact cache per fleet size (not per label): --reuse runs find the facts of the
    # converge, as a re-run by a user does (ansible.cfg keeps them 2 h).
    facts_dir = outdir / ("facts-n%d" % n)
    write_inventory(inventory, layout, apt_proxy, dict(kv.split("=", 1) for kv in opts.var))
    env_extra = dict(kv.split("=", 1) for kv in opts.env)
    result = {"n": n, "gpu_hosts": sum("gpu" in g for _unused, _unused2, g in layout),
              "inventory": str(inventory), "runs": {}}
    if not opts.reuse:
        log("N=%d: starting %d containers from %s" % (n, n, opts.image))
        shutil.rmtree(facts_dir, ignore_errors=True)
        t0 = time.monotonic()
        start_fleet(layout, apt_proxy, opts.image)
        result["fleet_start_s"] = round(time.monotonic() - t0, 2)
        log("N=%d: first converge" % n)
        r = run_site(opts.repo, inventory, facts_dir, outdir / ("%s-converge.log" % tag),
                     env_extra, opts.ansible_arg, opts.timeout, containers)
        result["runs"]["converge"] = r
        log("N=%d: converge rc=%d %.1f s changed=%d (load %s)"
            % (n, r["rc"], r["wall_s"], r["changed_total"], r["load_after"]))
    for i in range(opts.noop_runs):
        if opts.cold_noop and i == 0:
            shutil.rmtree(facts_dir, ignore_errors=True)
        key = "noop" if i == 0 else "noop%d" % (i + 1)
        r = run_site(opts.repo, inventory, facts_dir, outdir / ("%s-%s.log" % (tag, key)),
                     env_extra, opts.ansible_arg, opts.timeout, containers)
        result["runs"][key] = r
        log("N=%d: %s rc=%d %.1f s changed=%d tasks/host %d-%d cpu controller %s s hosts %s s (load %s)"
            % (n, key, r["rc"], r["wall_s"], r["changed_total"], r["tasks_per_host_min"],
               r["tasks_per_host_max"], r["controller_cpu_s"], r["hosts_cpu_s"], r["load_before"]))
    noops = [r["wall_s"] for k, r in result["runs"].items() if k.startswith("noop")]
    result["noop_best_s"] = min(noops) if noops else None
    if not opts.keep:
        remove_fleet(layout)
    return result


def table(results):
    base = next((r["noop_best_s"] for r in results if r["n"] == 4 and r["noop_best_s"]), None)
    lines = ["| N | gpu hosts | first converge s (load 1m) | no-op s, best (load 1m) | no-op T(N)/T(4) "
             "| no-op CPU s controller / hosts | tasks/host no-op | changed no-op | slowest no-op task |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        conv = r["runs"].get("converge")
        noop = min((v for k, v in r["runs"].items() if k.startswith("noop")),
                   key=lambda v: v["wall_s"], default=None)
        ratio = ("%.2f" % (noop["wall_s"] / base)) if (noop and base) else "-"
        slow = ("%s %.1fs" % (noop["slowest"][0]["task"], noop["slowest"][0]["seconds"])
                if noop and noop["slowest"] else "-")
        cpu = ("%s / %s" % (noop.get("controller_cpu_s"), noop.get("hosts_cpu_s"))) if noop else "-"
        lines.append("| %d | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            r["n"], r["gpu_hosts"],
            ("%.1f (%.2f)%s" % (conv["wall_s"], conv["load_before"][0],
                                "" if conv["rc"] == 0 else " rc=%d" % conv["rc"])) if conv else "-",
            ("%.1f (%.2f)%s" % (noop["wall_s"], noop["load_before"][0],
                                "" if noop["rc"] == 0 else " rc=%d" % noop["rc"])) if noop else "-",
            ratio, cpu,
            ("%d-%d" % (noop["tasks_per_host_min"], noop["tasks_per_host_max"])) if noop else "-",
            noop["changed_total"] if noop else "-", slow))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    p.add_argument("--sizes", default="1,4,16", help="fleet sizes, comma-separated (default 1,4,16)")
    p.add_argument("--image", default=IMAGE)
    p.add_argument("--apt-proxy", default="auto", metavar="URL|auto|none",
                   help="apt proxy for the hosts (kubegpu_http_proxy); auto (default): an"
                        " apt-cacher-ng on the docker bridge gateway :3142 if one listens, else"
                        " the shared archive; none: the shared archive")
    p.add_argument("--noop-runs", type=int, default=1, help="no-op re-runs per size (best is reported)")
    p.add_argument("--cold-noop", action="store_true",
                   help="empty the fact cache before the first no-op run")
    p.add_argument("--reuse", action="store_true",
                   help="reuse a running (converged) fleet: no start, no first converge")
    p.add_argument("--keep", action="store_true", help="leave the fleet running")
    p.add_argument("--repo", default=str(REPO), help="checkout to run site.yml from (a scratch copy)")
    p.add_argument("--label", default="", help="tag for file names (e.g. 'forks10')")
    p.add_argument("--env", action="append", default=[], metavar="K=V",
                   help="extra environment for ansible-playbook (e.g. ANSIBLE_FORKS=10)")
    p.add_argument("--var", action="append", default=[], metavar="K=V",
                   help="extra inventory variable for all hosts (string value)")
    p.add_argument("--ansible-arg", action="append", default=[], metavar="ARG",
                   help="extra ansible-playbook argument")
    p.add_argument("--timeout", type=int, default=3600, help="per ansible-playbook run, seconds")
    p.add_argument("--results", default=str(HERE / "results"))
    p.add_argument("--cleanup", action="store_true", help="remove every kubegpu-bench-* container and exit")
    opts = p.parse_args(argv)
    if opts.cleanup:
        remove_all_bench()
        return 0
    sizes = [int(s) for s in opts.sizes.split(",") if s]
    ensure_inotify(max(sizes))
    outdir = Path(opts.results)
    outdir.mkdir(parents=True, exist_ok=True)
    apt_proxy = resolve_proxy(opts.apt_proxy)
    log("apt: %s" % (("proxy " + apt_proxy) if apt_proxy else "shared archive " + APT_ARCHIVE))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    results = []
    meta = {"stamp": stamp, "host": socket.gethostname(), "cpus": os.cpu_count(),
            "image": opts.image, "apt": apt_proxy or "shared-archive", "repo": opts.repo,
            "env": opts.env, "vars": opts.var, "ansible_args": opts.ansible_arg,
            "skip_tags": SKIP_TAGS}
    outfile = outdir / ("fleet-%s%s.json" % (stamp, ("-" + opts.label) if opts.label else ""))
    try:
        for n in sizes:
            results.append(bench_size(n, opts, outdir, apt_proxy))
            outfile.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    finally:
        if not opts.keep:
            for n in sizes:
                remove_fleet(fleet_layout(n))
    print()
    print(table(results))
    print("\nresults: %s" % outfile)
    bad = [r for r in results for v in r["runs"].values() if v["rc"] != 0]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
