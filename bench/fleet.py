# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Fleet benchmark: site.yml, all nine stages, against N systemd test hosts.

For each fleet size N it starts N systemd containers (the options of
tests/integration/conftest.py and scripts/lab.sh), writes an inventory with the lab's
groups (1 control plane, N-1 workers, a quarter of the workers (rounded up) in `gpu`)
into bench/results/, sets the fleet up the way Molecule does for stages 5-9 (the
simulated control plane of tests/sim: the simulation's kubelet/kubeadm/kubectl .debs
through the kubernetes role's local-package path, the Calico manifests copied to cp1,
the NVIDIA runtime stand-in copied to and a simulated H100's PCI tree mounted on every
GPU host), and runs

    ansible-playbook -i <inventory> playbooks/site.yml

twice: the first converge (fresh hosts, empty fact cache) and a no-op re-run (same
hosts, facts cached as ansible.cfg configures). Per run it records the wall time, the
load average, the PLAY RECAP of every host (tasks per host = ok+skipped+failed+rescued;
ok includes changed), the module runs per host and the time of every play (the
bench-only callback bench/callback_plugins/kubegpu_bench_counts.py), the CPU seconds of
the controller and of the hosts, and the slowest tasks (ansible.posix.profile_tasks).
It writes bench/results/fleet-<stamp>.json and prints a markdown table with T(N)/T(4)
of the no-op run. --with-floor then runs bench/floor.py's workloads on the same sizes
in the same process and stores them in the same JSON.

    .venv/bin/python bench/fleet.py --sizes 1,4,16 --with-floor
    .venv/bin/python bench/fleet.py --sizes 4 --stages-1-4       # the old figures: stages 1-4
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
import configparser
import hashlib
import ipaddress
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# --stages-1-4: what Molecule skipped before stages 5-9 ran against tests/sim.
STAGES_1_4_SKIP_TAGS = "kubernetes,calico,nvidia_device_plugin,gpu_node_labels,validate"
# What the simulated control plane needs (built by scripts/bootstrap.sh).
SIM_DEBS = ".cache/sim-debs"
SIM_PCI_TREE = ".cache/sim-gpu/h100-1gpu"
SIM_MANIFESTS = "tests/sim/manifests"
SIM_RUNTIME = "tests/sim/toolkit/nvidia-container-runtime"
CALLBACKS = HERE / "callback_plugins"
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
# site.yml's stages in order (each play is tagged with its stage's name).
STAGES = ("preflight", "os_prereqs", "nvidia_driver", "container_runtime", "kubernetes",
          "calico", "nvidia_device_plugin", "gpu_operator", "gpu_node_labels", "validate")
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


def run_options(groups, apt_proxy, pci_tree=None):
    """docker run options of one test host (after the systemd ones)."""
    mounts = [] if apt_proxy else ["-v", "%s:/var/cache/apt/archives:rw" % APT_ARCHIVE]
    if pci_tree and "gpu" in groups:
        # A simulated H100 where gpu_facts' sysfs layer and the simulated device plugin
        # look (molecule/default/molecule.yml, tests/sim/gpu/README.md).
        mounts += ["-v", "%s:/sys/bus/pci/devices:ro" % pci_tree]
    return mounts


def start_fleet(layout, apt_proxy, image, pci_tree=None):
    names = [c for _unused, c, _unused2 in layout]
    for _unused, container, _unused2 in layout:
        docker("rm", "-f", container, check=False)
    if not apt_proxy:
        os.makedirs(APT_ARCHIVE + "/partial", exist_ok=True)
    for name, container, groups in layout:
        docker("run", "-d", "--name", container, "--hostname", name,
               *SYSTEMD_RUN_OPTIONS, *run_options(groups, apt_proxy, pci_tree),
               image, "/lib/systemd/systemd")
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


def sim_inputs(repo):
    """The simulation's files in checkout `repo`, or SystemExit saying how to make them."""
    repo = Path(repo)
    if not (repo / SIM_DEBS).is_dir():
        repo = REPO  # a scratch copy (--repo) without .cache/: this checkout's
    paths = {"debs": repo / SIM_DEBS, "pci_tree": repo / SIM_PCI_TREE,
             "manifests": repo / SIM_MANIFESTS, "runtime": repo / SIM_RUNTIME}
    if not list(paths["debs"].glob("kubeadm_*.deb")):
        raise SystemExit("no simulated kubeadm .deb in %s: run `bash tests/sim/build-debs.sh` "
                         "(or scripts/bootstrap.sh)" % paths["debs"])
    if not paths["pci_tree"].is_dir():
        raise SystemExit("no simulated PCI tree in %s: run `PYTHONPATH=tests/sim python3 -m "
                         "kubegpu_sim.pci_tree tests/sim/gpu/h100-1gpu.json %s`"
                         % (paths["pci_tree"], SIM_PCI_TREE))
    return {k: str(v) for k, v in paths.items()}


def snapshot_debs(sim, outdir):
    """Copy the simulation's .debs to a directory of this run: build-debs.sh rebuilds
    .cache/sim-debs whenever tests/sim changes (other sessions' test runs do), and a
    package rebuilt between the converge and the no-op makes the no-op's copy change."""
    src = Path(sim["debs"])
    dst = Path(outdir) / "sim-debs"
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    digests = {}
    for f in sorted(src.glob("*.deb")):
        shutil.copy2(f, dst / f.name)
        digests[f.name] = hashlib.sha256((dst / f.name).read_bytes()).hexdigest()
    return dict(sim, debs=str(dst), debs_sha256=digests)


def prepare_sim(layout, sim):
    """What molecule/shared/prepare.yml does, with docker cp: the simulation's Calico
    manifests on the first control plane, the runtime program stand-in on GPU hosts."""
    cp = next(c for _unused, c, groups in layout if "kube_control_plane" in groups)
    docker("exec", cp, "mkdir", "-p", "/etc/kubegpu-sim")
    for f in sorted(Path(sim["manifests"]).glob("*.yaml")):
        docker("cp", str(f), "%s:/etc/kubegpu-sim/%s" % (cp, f.name))
    docker("exec", cp, "chmod", "0644", *("/etc/kubegpu-sim/" + f.name
                                          for f in Path(sim["manifests"]).glob("*.yaml")))
    for _unused, container, groups in layout:
        if "gpu" in groups:
            docker("cp", sim["runtime"], "%s:/usr/bin/nvidia-container-runtime" % container)
            docker("exec", container, "chmod", "0755", "/usr/bin/nvidia-container-runtime")


def remove_fleet(layout):
    for _unused, container, _unused2 in layout:
        docker("rm", "-f", container, check=False)


def remove_all_bench():
    out = docker("ps", "-a", "--format", "{{.Names}}", check=False).stdout.split()
    for c in out:
        if c.startswith(PREFIX):
            docker("rm", "-f", c, check=False)


def sim_vars(debs_dir):
    """The variables .config/molecule/config.yml gives the fleet for stages 5-9."""
    return {
        "kubernetes_package_source": "local",
        "kubernetes_local_package_dir": str(debs_dir),
        "kubernetes_admin_user": "root",
        "calico_operator_manifest_url": "/etc/kubegpu-sim/tigera-operator.yaml",
        "calico_node_ready_timeout": 180,
    }


def write_inventory(path, layout, apt_proxy, extra_vars, sim=None):
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
    if sim:
        all_vars.update(sim_vars(sim["debs"]))
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


def tasks_per_host(recap):
    """Tasks each host ran or skipped, from its PLAY RECAP (ok includes changed)."""
    return {h: r.get("ok", 0) + r.get("skipped", 0) + r.get("failed", 0) + r.get("rescued", 0)
            for h, r in recap.items() if h != "localhost"}


def stage_seconds(plays):
    """Seconds per stage from the callback's play times: every play of site.yml is
    tagged with its stage's name (README: "tagged with its name")."""
    out = {}
    for p in plays:
        key = next((t for t in p.get("tags", []) if t in STAGES), p["play"])
        out[key] = round(out.get(key, 0.0) + (p["seconds"] or 0.0), 2)
    return out


def by_kind(layout, per_host):
    """{kind: [min, max]} of a per-host figure for the control plane, GPU and CPU workers."""
    kinds = {}
    for name, _unused, groups in layout:
        if name not in per_host:
            continue
        kind = ("control_plane" if "kube_control_plane" in groups
                else "gpu" if "gpu" in groups else "cpu")
        v = per_host[name]
        lo, hi = kinds.get(kind, [v, v])
        kinds[kind] = [min(lo, v), max(hi, v)]
    return kinds


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


def configured_callbacks(repo):
    """callbacks_enabled of the checkout's ansible.cfg (ANSIBLE_CALLBACKS_ENABLED replaces it)."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
    try:
        parser.read(Path(repo) / "ansible.cfg")
        value = parser.get("defaults", "callbacks_enabled", fallback="")
    except configparser.Error:
        return []
    return [name.strip() for name in value.split(",") if name.strip()]


def run_site(repo, inventory, facts_dir, logfile, env_extra, args_extra, timeout, containers=(),
             skip_tags=""):
    venv = REPO / ".venv"
    env = dict(os.environ)
    site = venv / "lib" / ("python%d.%d" % sys.version_info[:2]) / "site-packages"
    counts_file = logfile.with_suffix(".counts.json")
    if counts_file.exists():
        counts_file.unlink()
    env.update({
        "PATH": "%s:%s" % (venv / "bin", env.get("PATH", "")),
        "ANSIBLE_COLLECTIONS_PATH": "%s:%s" % (Path(repo) / ".collections",
                                               site / "ansible_collections"),
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        # Added to the checkout's own callbacks_enabled (the kubegpu callback): the run is
        # measured as ansible.cfg configures it, the bench's counters on top.
        "ANSIBLE_CALLBACKS_ENABLED": ",".join(configured_callbacks(repo)
                                              + ["ansible.posix.profile_tasks", "kubegpu_bench_counts"]),
        "KUBEGPU_BENCH_COUNTS": str(counts_file),
        "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(facts_dir),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    })
    env.update(env_extra)
    cmd = [str(venv / "bin" / "ansible-playbook"), "-i", str(inventory), "playbooks/site.yml",
           *(["--skip-tags=" + skip_tags] if skip_tags else []), *args_extra]
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
        except BaseException:
            # Stopped (SIGINT/SIGTERM): no ansible-playbook left running on removed hosts.
            proc.kill()
            proc.wait()
            raise
    wall = time.monotonic() - t0
    ctl1 = os.times()
    hosts_cpu1 = fleet_cpu_s(containers)
    out = logfile.read_text()
    return summarise(out, read_counts(counts_file), {
        "rc": rc,
        "wall_s": round(wall, 2),
        "load_before": load_before,
        "load_after": loadavg(),
        # ansible-playbook and its children (forks, docker CLI): the controller's share.
        "controller_cpu_s": round((ctl1.children_user + ctl1.children_system)
                                  - (ctl0.children_user + ctl0.children_system), 1),
        # What ran inside the test hosts (modules, sudo, apt, and here the simulated
        # control plane's Python processes too): on real servers each host has its own
        # CPUs; here all hosts share this machine's.
        "hosts_cpu_s": (round(hosts_cpu1 - hosts_cpu0, 1)
                        if hosts_cpu0 is not None and hosts_cpu1 is not None else None),
        "log": str(logfile),
    }, len(containers))


def read_counts(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def summarise(out, counts, run, n_hosts):
    """A run's figures from its log (PLAY RECAP, profile_tasks) and the callback's counts."""
    recap = parse_recap(out)
    tasks = tasks_per_host(recap)
    run.update({
        "recap": recap,
        "changed_total": sum(r.get("changed", 0) for r in recap.values()),
        "failed_total": sum(r.get("failed", 0) + r.get("unreachable", 0) for r in recap.values()),
        "tasks_per_host": tasks,
        "tasks_per_host_min": min(tasks.values()) if tasks else 0,
        "tasks_per_host_max": max(tasks.values()) if tasks else 0,
        "slowest": parse_profile(out, 10),
    })
    if counts:
        mods = {h: c["module_runs"] for h, c in counts["hosts"].items() if h != "localhost"}
        run.update({
            "module_runs_per_host": mods,
            "module_runs_per_host_min": min(mods.values()) if mods else 0,
            "module_runs_per_host_max": max(mods.values()) if mods else 0,
            "module_runs_by_action": counts.get("module_runs_by_action", {}),
            "counts": counts["hosts"],
            "plays": counts.get("plays", []),
            "stage_s": stage_seconds(counts.get("plays", [])),
        })
    for key in ("controller_cpu_s", "hosts_cpu_s"):
        if run.get(key) is not None and n_hosts:
            run[key + "_per_host"] = round(run[key] / n_hosts, 2)
    return run


def bench_size(n, opts, outdir, apt_proxy, sim=None):
    layout = fleet_layout(n)
    containers = [c for _unused, c, _unused2 in layout]
    tag = "n%d%s" % (n, ("-" + opts.label) if opts.label else "")
    inventory = outdir / ("inventory-%s.yml" % tag)
    # One fact cache per fleet size (not per label): --reuse runs find the facts of the
    # converge, as a re-run by a user does (ansible.cfg keeps them 2 h).
    facts_dir = outdir / ("facts-n%d" % n)
    write_inventory(inventory, layout, apt_proxy, dict(kv.split("=", 1) for kv in opts.var), sim)
    env_extra = dict(kv.split("=", 1) for kv in opts.env)
    skip_tags = STAGES_1_4_SKIP_TAGS if opts.stages_1_4 else ""
    result = {"n": n, "gpu_hosts": sum("gpu" in g for _unused, _unused2, g in layout),
              "inventory": str(inventory), "runs": {},
              "hosts": {name: g for name, _unused, g in layout}}
    if not opts.reuse:
        log("N=%d: starting %d containers from %s" % (n, n, opts.image))
        shutil.rmtree(facts_dir, ignore_errors=True)
        t0 = time.monotonic()
        start_fleet(layout, apt_proxy, opts.image, sim["pci_tree"] if sim else None)
        if sim:
            prepare_sim(layout, sim)
        result["fleet_start_s"] = round(time.monotonic() - t0, 2)
        log("N=%d: first converge (log: %s)" % (n, outdir / ("%s-converge.log" % tag)))
        r = run_site(opts.repo, inventory, facts_dir, outdir / ("%s-converge.log" % tag),
                     env_extra, opts.ansible_arg, opts.timeout, containers, skip_tags)
        result["runs"]["converge"] = r
        log("N=%d: converge rc=%d %.1f s changed=%d tasks/host %d-%d module runs/host %s-%s "
            "(load %s)" % (n, r["rc"], r["wall_s"], r["changed_total"], r["tasks_per_host_min"],
                           r["tasks_per_host_max"], r.get("module_runs_per_host_min"),
                           r.get("module_runs_per_host_max"), r["load_after"]))
    for i in range(opts.noop_runs):
        if opts.cold_noop and i == 0:
            shutil.rmtree(facts_dir, ignore_errors=True)
        key = "noop" if i == 0 else "noop%d" % (i + 1)
        r = run_site(opts.repo, inventory, facts_dir, outdir / ("%s-%s.log" % (tag, key)),
                     env_extra, opts.ansible_arg, opts.timeout, containers, skip_tags)
        result["runs"][key] = r
        log("N=%d: %s rc=%d %.1f s changed=%d tasks/host %d-%d module runs/host %s-%s "
            "cpu controller %s s hosts %s s (load %s)"
            % (n, key, r["rc"], r["wall_s"], r["changed_total"], r["tasks_per_host_min"],
               r["tasks_per_host_max"], r.get("module_runs_per_host_min"),
               r.get("module_runs_per_host_max"), r["controller_cpu_s"], r["hosts_cpu_s"],
               r["load_before"]))
    noops = [r["wall_s"] for k, r in result["runs"].items() if k.startswith("noop")]
    result["noop_best_s"] = min(noops) if noops else None
    if not opts.keep:
        remove_fleet(layout)
    return result


def kinds_cell(layout_groups, per_host):
    """"cp / gpu / cpu" of a per-host figure (a range where hosts of a kind differ)."""
    layout = [(name, None, groups) for name, groups in layout_groups.items()]
    kinds = by_kind(layout, per_host or {})
    cells = []
    for kind in ("control_plane", "gpu", "cpu"):
        if kind in kinds:
            lo, hi = kinds[kind]
            cells.append(str(lo) if lo == hi else "%s-%s" % (lo, hi))
        else:
            cells.append("-")
    return " / ".join(cells)


def best_noop(r):
    return min((v for k, v in r["runs"].items() if k.startswith("noop")),
               key=lambda v: v["wall_s"], default=None)


def table(results):
    base = next((r["noop_best_s"] for r in results if r["n"] == 4 and r["noop_best_s"]), None)
    lines = ["| N | GPU hosts | first converge s (load 1m) | no-op s, best (load 1m) | no-op T(N)/T(4) "
             "| tasks per host, no-op: cp / gpu / cpu | module runs per host, no-op: cp / gpu / cpu "
             "| no-op CPU s per host: controller / hosts | changed, no-op |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        conv = r["runs"].get("converge")
        noop = best_noop(r)
        hosts = r.get("hosts", {})
        ratio = ("%.2f" % (noop["wall_s"] / base)) if (noop and base) else "-"
        cpu = ("%s / %s" % (noop.get("controller_cpu_s_per_host"), noop.get("hosts_cpu_s_per_host"))
               if noop else "-")
        lines.append("| %d | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            r["n"], r["gpu_hosts"],
            ("%.1f (%.2f)%s" % (conv["wall_s"], conv["load_before"][0],
                                "" if conv["rc"] == 0 else " rc=%d" % conv["rc"])) if conv else "-",
            ("%.1f (%.2f)%s" % (noop["wall_s"], noop["load_before"][0],
                                "" if noop["rc"] == 0 else " rc=%d" % noop["rc"])) if noop else "-",
            ratio,
            kinds_cell(hosts, noop["tasks_per_host"]) if noop else "-",
            kinds_cell(hosts, noop.get("module_runs_per_host")) if noop else "-",
            cpu, noop["changed_total"] if noop else "-"))
    return "\n".join(lines)


def stage_table(results):
    """Seconds per stage, first converge and best no-op, one column pair per N."""
    cols = [(r["n"], r["runs"].get("converge"), best_noop(r)) for r in results]
    stages = []
    for _n, conv, noop in cols:
        for run in (conv, noop):
            for st in (run or {}).get("stage_s", {}):
                if st not in stages:
                    stages.append(st)
    lines = ["| stage | %s |" % " | ".join("N=%d converge / no-op s" % n for n, _c, _o in cols),
             "|---|" + "---|" * len(cols)]
    for st in stages:
        cells = []
        for _n, conv, noop in cols:
            c = (conv or {}).get("stage_s", {}).get(st)
            o = (noop or {}).get("stage_s", {}).get(st)
            cells.append("%s / %s" % ("-" if c is None else "%.1f" % c, "-" if o is None else "%.1f" % o))
        lines.append("| %s | %s |" % (st, " | ".join(cells)))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    p.add_argument("--sizes", default="1,4,16", help="fleet sizes, comma-separated (default 1,4,16)")
    p.add_argument("--image", default=IMAGE)
    p.add_argument("--apt-proxy", default="auto", metavar="URL|auto|none",
                   help="apt proxy for the hosts (kubegpu_http_proxy); auto (default): an"
                        " apt-cacher-ng on the docker bridge gateway :3142 if one listens, else"
                        " the shared archive; none: the shared archive")
    p.add_argument("--stages-1-4", action="store_true",
                   help="skip stages 5-9 (--skip-tags=%s) and the simulated control plane, as"
                        " the figures before 2026-12-02 did" % STAGES_1_4_SKIP_TAGS)
    p.add_argument("--with-floor", action="store_true",
                   help="then run bench/floor.py's workloads on the same sizes; stored in the same JSON")
    p.add_argument("--floor-tasks", type=int, default=20, help="tasks per host of each floor workload")
    p.add_argument("--floor-settle", type=int, default=180,
                   help="floor: wait up to this long for the load to fall under 1 after boot")
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
    # `kill PID` and `kill -INT PID` (ignored by default in a background job) stop the
    # bench through the finally below: the fleet is removed, the JSON keeps the sizes done.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_unused: sys.exit(143))
    sizes = [int(s) for s in opts.sizes.split(",") if s]
    sim = None if opts.stages_1_4 else sim_inputs(opts.repo)
    ensure_inotify(max(sizes))
    outdir = Path(opts.results)
    outdir.mkdir(parents=True, exist_ok=True)
    if sim:
        sim = snapshot_debs(sim, outdir)
    apt_proxy = resolve_proxy(opts.apt_proxy)
    log("apt: %s" % (("proxy " + apt_proxy) if apt_proxy else "shared archive " + APT_ARCHIVE))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    results = []
    meta = {"stamp": stamp, "host": socket.gethostname(), "cpus": os.cpu_count(),
            "image": opts.image, "apt": apt_proxy or "shared-archive", "repo": opts.repo,
            "env": opts.env, "vars": opts.var, "ansible_args": opts.ansible_arg,
            "stages": "1-4" if opts.stages_1_4 else "1-9 (5-9 against tests/sim)",
            "skip_tags": STAGES_1_4_SKIP_TAGS if opts.stages_1_4 else "",
            "sim": sim,
            "load_at_start": loadavg(),
            "other_containers_at_start": [c for c in docker(
                "ps", "--format", "{{.Names}}", check=False).stdout.split()
                if not c.startswith(PREFIX)]}
    doc = {"meta": meta, "results": results}
    outfile = outdir / ("fleet-%s%s.json" % (stamp, ("-" + opts.label) if opts.label else ""))
    try:
        for n in sizes:
            results.append(bench_size(n, opts, outdir, apt_proxy, sim))
            outfile.write_text(json.dumps(doc, indent=2))
    finally:
        if not opts.keep:
            for n in sizes:
                remove_fleet(fleet_layout(n))
    if opts.with_floor:
        import floor  # noqa: PLC0415  (bench/floor.py imports this module)
        log("floor: %s tasks per host on %s hosts" % (opts.floor_tasks, opts.sizes))
        doc["floor"] = floor.measure(sorted(sizes), opts.floor_tasks, list(floor.WORKLOADS),
                                     runs=2, image=opts.image, settle_s=opts.floor_settle,
                                     logdir=outdir / "floor")
        doc["meta"]["load_at_end"] = loadavg()
        outfile.write_text(json.dumps(doc, indent=2))
    print()
    print(table(results))
    print()
    print(stage_table(results))
    if "floor" in doc:
        print()
        print(floor.table(doc["floor"]["results"], sorted(sizes), opts.floor_tasks))
    print("\nresults: %s" % outfile)
    bad = [r for r in results for v in r["runs"].values() if v["rc"] != 0]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
