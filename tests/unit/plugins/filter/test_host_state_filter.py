# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the kubegpu.cluster.host_file_differs filter (plugins/filter/host_state.py)."""

from __future__ import annotations

import hashlib

from ansible_collections.kubegpu.cluster.plugins.filter.host_state import FilterModule

host_file_differs = FilterModule().filters()["host_file_differs"]
CONTENT = "debug: false\n"
HAVE = {"exists": True, "isreg": True, "mode": "0644", "uid": 0, "gid": 0,
        "checksum": hashlib.sha1(CONTENT.encode()).hexdigest()}


def test_same_content_mode_and_owner():
    assert host_file_differs(HAVE, CONTENT) is False


def test_content_mode_owner_or_absence_differ():
    assert host_file_differs(HAVE, "debug: true\n") is True
    assert host_file_differs(dict(HAVE, mode="0600"), CONTENT) is True
    assert host_file_differs(dict(HAVE, uid=1000), CONTENT) is True
    assert host_file_differs(dict(HAVE, gid=4), CONTENT) is True
    assert host_file_differs({"exists": False}, CONTENT) is True
    assert host_file_differs(HAVE, CONTENT, mode="0755") is True


# kernel_prereqs_pending: the same answer as the module's own plan, from host_state's reading.
kernel_prereqs_pending = FilterModule().filters()["kernel_prereqs_pending"]
kernel_prereqs_reads = FilterModule().filters()["kernel_prereqs_reads"]
MODULES = ["overlay", "br_netfilter"]
PROBES = {"br_netfilter": "/proc/sys/net/bridge/bridge-nf-call-iptables"}
SYSCTL = {"net.ipv4.ip_forward": 1, "net.bridge.bridge-nf-call-iptables": True}
MODULES_FILE = "/etc/modules-load.d/kubegpu.conf"
SYSCTL_FILE = "/etc/sysctl.d/99-kubegpu.conf"


def converged_state():
    from ansible_collections.kubegpu.cluster.plugins.module_utils import _kernel

    return {
        "files": {
            MODULES_FILE: _kernel.render_modules_file(MODULES),
            # A hand-written line for another key is kept by the merge, so it is no drift.
            SYSCTL_FILE: "# local\nvm.swappiness = 10\nnet.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\n",
            "/proc/sys/net/ipv4/ip_forward": "1\n",
            "/proc/sys/net/bridge/bridge-nf-call-iptables": "1\n",
        },
        "paths": {"/sys/module/overlay": {"exists": True},
                  "/proc/sys/net/bridge/bridge-nf-call-iptables": {"exists": True}},
    }


def pending(state):
    return kernel_prereqs_pending(state, MODULES, PROBES, SYSCTL, MODULES_FILE, SYSCTL_FILE)


def test_kernel_prereqs_reads_names_the_proc_keys_and_probe_paths():
    assert kernel_prereqs_reads(MODULES, PROBES, SYSCTL) == {
        "read": ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/bridge/bridge-nf-call-iptables"],
        "paths": ["/sys/module/overlay", "/proc/sys/net/bridge/bridge-nf-call-iptables"],
    }


def test_kernel_prereqs_not_pending_on_a_converged_host():
    assert pending(converged_state()) is False


def test_kernel_prereqs_pending_for_each_kind_of_drift():
    def drifted(change):
        state = converged_state()
        change(state)
        return pending(state)

    # The modules file edited or removed.
    assert drifted(lambda s: s["files"].__setitem__(MODULES_FILE, "overlay\n")) is True
    assert drifted(lambda s: s["files"].__setitem__(MODULES_FILE, None)) is True
    # The sysctl file: a value edited, a key removed, a duplicate line, the file removed.
    assert drifted(lambda s: s["files"].__setitem__(
        SYSCTL_FILE, s["files"][SYSCTL_FILE].replace("ip_forward = 1", "ip_forward = 0"))) is True
    assert drifted(lambda s: s["files"].__setitem__(SYSCTL_FILE, "net.ipv4.ip_forward = 1\n")) is True
    assert drifted(lambda s: s["files"].__setitem__(
        SYSCTL_FILE, s["files"][SYSCTL_FILE] + "net.ipv4.ip_forward = 0\n")) is True
    assert drifted(lambda s: s["files"].__setitem__(SYSCTL_FILE, None)) is True
    # A module not active (no probe path), a key missing from /proc/sys or at another value.
    assert drifted(lambda s: s["paths"].__setitem__("/sys/module/overlay", {"exists": False})) is True
    assert drifted(lambda s: s["paths"].pop("/proc/sys/net/bridge/bridge-nf-call-iptables")) is True
    assert drifted(lambda s: s["files"].__setitem__("/proc/sys/net/ipv4/ip_forward", None)) is True
    assert drifted(lambda s: s["files"].__setitem__("/proc/sys/net/ipv4/ip_forward", "0\n")) is True


def test_kernel_prereqs_pending_agrees_with_the_module_plan():
    """Where the filter says 'nothing to do', the module's plan loads, sets and writes nothing."""
    from ansible_collections.kubegpu.cluster.plugins.module_utils import _kernel

    state = converged_state()
    files, paths = state["files"], state["paths"]
    active = {m: paths.get(_kernel.module_probe_path(m, PROBES), {}).get("exists", False) for m in MODULES}
    proc = {k: (files[_kernel.proc_path(k)], True) for k in SYSCTL}
    planned = _kernel.plan(MODULES, SYSCTL, active, proc, files[SYSCTL_FILE])
    assert pending(state) is False
    assert planned["load"] == [] and planned["set"] == {} and planned["missing"] == [] and planned["readonly"] == {}
    assert planned["sysctl_text"] == files[SYSCTL_FILE]
    assert _kernel.render_modules_file(MODULES) == files[MODULES_FILE]


# containerd_config_pending: the module's own merge, on the file host_state read.
containerd_config_pending = FilterModule().filters()["containerd_config_pending"]
FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[3] / "fixtures" / "containerd"
CONFIG = "/etc/containerd/config.toml"
# What the role passes for a GPU node (vars/main.yml: _container_runtime_config_settings).
SETTINGS = {
    "systemd_cgroup": True, "sandbox_image": None, "default_runtime": "runc", "cdi": None,
    "cdi_spec_dirs": None, "registry_config_path": "/etc/containerd/certs.d", "imports": None,
    "runtimes": [{"name": "nvidia", "binary_name": "/usr/bin/nvidia-container-runtime", "inherit_from": "runc"}],
}


def config_state(text, **stat):
    have = dict({"exists": True, "isreg": True, "mode": "0644", "uid": 0, "gid": 0}, **stat)
    return {"paths": {CONFIG: have}, "files": {CONFIG: text}}


def merged(name, settings=None):
    from ansible_collections.kubegpu.cluster.plugins.module_utils import _containerd

    text = (FIXTURES / name).read_text(encoding="utf-8")
    return _containerd.merge(text, source=name, **_containerd.merge_settings(settings or SETTINGS)).after


def test_merge_settings_applies_the_module_defaults():
    from ansible_collections.kubegpu.cluster.plugins.module_utils import _containerd

    got = _containerd.merge_settings({"runtimes": [{"name": "nvidia"}]})
    assert got["systemd_cgroup"] is True
    assert got["runtimes"] == [{"name": "nvidia", "runtime_type": "io.containerd.runc.v2", "binary_name": None,
                                "options": None, "inherit_from": "runc"}]
    assert set(got) == set(_containerd.MERGE_SETTINGS)
    assert _containerd.merge_settings({"systemd_cgroup": False})["systemd_cgroup"] is False


def test_containerd_config_not_pending_once_merged():
    for name in ("default-2.1.9.toml", "default-1.6.20.toml", "debian-package-config.toml",
                 "nvidia-ctk-configured-1.7.24.toml", "toolkit-1.18-main-2.1.9.toml"):
        assert containerd_config_pending(config_state(merged(name)), CONFIG, SETTINGS) is False, name


def test_containerd_config_pending_where_the_module_would_act():
    text = merged("default-2.1.9.toml")
    # Not merged yet, or merged with other settings (the runtime's binary, cgroup driver).
    raw = (FIXTURES / "default-2.1.9.toml").read_text(encoding="utf-8")
    assert containerd_config_pending(config_state(raw), CONFIG, SETTINGS) is True
    other = dict(SETTINGS, runtimes=[dict(SETTINGS["runtimes"][0], binary_name="/usr/local/bin/nvidia-container-runtime")])
    assert containerd_config_pending(config_state(text), CONFIG, other) is True
    assert containerd_config_pending(config_state(text), CONFIG, dict(SETTINGS, systemd_cgroup=False)) is True
    # Absent, not a regular file, unreadable or too big to read, mode or owner off.
    assert containerd_config_pending({"paths": {CONFIG: {"exists": False}}, "files": {CONFIG: None}}, CONFIG, SETTINGS) is True
    assert containerd_config_pending(config_state(text, isreg=False), CONFIG, SETTINGS) is True
    assert containerd_config_pending(config_state(None), CONFIG, SETTINGS) is True
    assert containerd_config_pending(config_state(text, mode="0600"), CONFIG, SETTINGS) is True
    assert containerd_config_pending(config_state(text, uid=1000), CONFIG, SETTINGS) is True
    # A file the module refuses (it says why) or checks containerd's version for (v1).
    for name in ("corrupt.toml", "user-edited-v2.toml"):  # bad TOML; mirrors beside config_path
        text = (FIXTURES / name).read_text(encoding="utf-8")
        assert containerd_config_pending(config_state(text), CONFIG, SETTINGS) is True, name
    assert containerd_config_pending(config_state(merged("v1-legacy.toml")), CONFIG, SETTINGS) is True
