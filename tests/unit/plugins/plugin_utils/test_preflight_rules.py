# SPDX-License-Identifier: Apache-2.0
"""Rules later stages enforce, decided once (plugins/plugin_utils/_preflight_rules.py), and the
filters through which preflight and the kubernetes role call them (plugins/filter/preflight.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.kubegpu.cluster.plugins.filter import preflight as flt
from ansible_collections.kubegpu.cluster.plugins.filter.network import format_problems
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_inventory as pi
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_rules as pr

ROOT = Path(__file__).resolve().parents[4]


def line(record, host="cp1"):
    return format_problems([record], host)[0] if record else None


# --- Kubernetes version -------------------------------------------------------------------

@pytest.mark.parametrize("value", ["1.35.4", "1.31.0", "1.34.3", " 1.35.4", "2.0.0"])
def test_versions_the_role_can_install(value):
    assert pr.kubernetes_version_problem(value) is None


@pytest.mark.parametrize("value, fragment, fix", [
    ("banana", "'banana' is not a Kubernetes release (accepted: an exact release X.Y.Z such as 1.35.4, without a"
               " leading v, 1.31 or newer)", "fix: set kubernetes_version to the exact release to install"),
    ("1.35", "'1.35' is not a Kubernetes release", "fix: set kubernetes_version"),
    ("v1.35.4", "'v1.35.4' has a leading v", 'fix: kubernetes_version: "1.35.4"'),
    (1.3, "1.3 is a number, not a version (YAML reads 1.30 as the number 1.3)", 'fix: quote it: kubernetes_version:'),
    ("1.30.2", "'1.30.2' is older than 1.31: kubegpu gives kubeadm a kubeadm.k8s.io/v1beta4 configuration",
     "fix: set kubernetes_version to a 1.31 or newer release"),
    ("1.35.0-rc.1", "is not a Kubernetes release", "fix:"),
    (None, "null is not a Kubernetes release", "fix:"),
])
def test_versions_refused(value, fragment, fix):
    text = line(pr.kubernetes_version_problem(value))
    assert text.startswith("host cp1: variable kubernetes_version: ")
    assert fragment in text and fix in text, text


# --- the control-plane endpoint -------------------------------------------------------------

@pytest.mark.parametrize("value", ["", None, "lb.example.com", "lb.example.com:6443", "10.0.0.10:443", "10.0.0.10",
                                   "[fd00::10]:6443", "[fd00::10]", "k8s-api"])
def test_endpoints_kubeadm_takes(value):
    assert pr.endpoint_problem(value) is None


@pytest.mark.parametrize("value, fragment, fix", [
    ("https://lb.example.com:6443", "'https://lb.example.com:6443' is a URL (accepted: host[:port]",
     "fix: kubernetes_control_plane_endpoint: lb.example.com:6443"),
    ("https://lb.example.com", "is a URL", "fix: kubernetes_control_plane_endpoint: lb.example.com"),
    ("http://10.0.0.10:6443/", "is a URL", "fix: kubernetes_control_plane_endpoint: 10.0.0.10:6443"),
    ("fd00::10", "'fd00::10' looks like a bare IPv6 address", 'fix: write it in brackets with the port: '
                                                              'kubernetes_control_plane_endpoint: "[fd00::10]:6443"'),
    ("lb.example.com:99999", "port '99999' is not a number from 1 to 65535", "fix:"),
    ("lb.example.com:https", "port 'https' is not a number", "fix:"),
    ("LB.example.com:6443", "is not host[:port]: 'LB.example.com' has upper-case letters", "fix:"),
    ("lb_1.example.com", "is not a DNS-1123 subdomain", "fix:"),
    ("lb.example.com/api", "a path is not part of it", "fix:"),
    ("[10.0.0.1]:6443", "not a host name or address", "fix:"),
])
def test_endpoints_refused(value, fragment, fix):
    text = line(pr.endpoint_problem(value))
    assert text.startswith("host cp1: variable kubernetes_control_plane_endpoint: ")
    assert fragment in text and fix in text, text


def test_ha_needs_an_endpoint():
    assert pr.ha_endpoint_problem("", ["cp1"]) is None
    assert pr.ha_endpoint_problem("lb:6443", ["cp1", "cp2", "cp3"]) is None
    text = line(pr.ha_endpoint_problem("", ["cp1", "cp2", "cp3"]))
    assert "variable kubernetes_control_plane_endpoint: empty, but there are 3 control planes: an HA control plane" \
           " needs a stable endpoint" in text
    assert "fix: set kubernetes_control_plane_endpoint: lb.example.com:6443 in group_vars/all" in text
    assert pr.ha_endpoint_problem(None, 2)["variable"] == "kubernetes_control_plane_endpoint"


def test_ha_endpoint_in_the_inventory_report():
    groups = {"kube_control_plane": ["cp1", "cp2", "cp3"], "kube_node": [], "k8s_cluster": ["cp1", "cp2", "cp3"]}
    hosts = dict((h, {}) for h in groups["k8s_cluster"])
    problems = pi.inventory_report(groups, hosts)["problems"]
    assert problems == ["hosts cp1, cp2, cp3: variable kubernetes_control_plane_endpoint: empty, but there are 3"
                        " control planes: an HA control plane needs a stable endpoint (a load balancer or VIP) that"
                        " every node reaches, given to kubeadm init (accepted: host[:port]: a DNS name or IPv4 address,"
                        " [IPv6 address], optional port 1-65535); fix: set kubernetes_control_plane_endpoint:"
                        " lb.example.com:6443 in group_vars/all (or use one control plane)"]
    for host in hosts:
        hosts[host]["kubernetes_control_plane_endpoint"] = "lb.example.com:6443"
    assert pi.inventory_report(groups, hosts)["problems"] == []


def test_ha_endpoint_follows_kubernetes_control_plane_group():
    groups = {"kube_control_plane": ["cp1"], "masters": ["cp1", "cp2", "cp3"], "kube_node": ["cp2", "cp3"],
              "k8s_cluster": ["cp1", "cp2", "cp3"]}
    hosts = dict((h, {"kubernetes_control_plane_group": "masters"}) for h in groups["k8s_cluster"])
    [problem] = pi.inventory_report(groups, hosts)["problems"]
    assert problem.startswith("hosts cp1, cp2, cp3: variable kubernetes_control_plane_endpoint: empty")


# --- runtime, proxies, toolkit, cgroup --------------------------------------------------------

def test_container_runtime():
    assert pr.container_runtime_problem("containerd") is None
    assert pr.container_runtime_problem("docker", kubernetes_node=False) is None
    text = line(pr.container_runtime_problem("docker"))
    assert text == ("host cp1: variable kubegpu_container_runtime: docker on a Kubernetes node (group k8s_cluster):"
                    " kubelet needs a CRI runtime and Docker Engine has none without cri-dockerd, which kubegpu does"
                    " not install (accepted: containerd); fix: kubegpu_container_runtime: containerd for hosts in"
                    " k8s_cluster (docker is for standalone GPU hosts outside the cluster)")
    assert flt.container_runtime_problems("docker", "yes")[0]["variable"] == "kubegpu_container_runtime"
    assert flt.container_runtime_problems("docker", "no") == []


def _runtime_packages(family):
    data = yaml.safe_load((ROOT / "roles" / "container_runtime" / "vars" / ("%s.yml" % family)).read_text())
    return {"containerd": data["_container_runtime_containerd_packages"],
            "docker": data["_container_runtime_docker_packages"]}


@pytest.mark.parametrize("family, settings", [
    ("Debian", {}),
    ("Debian", {"container_runtime_containerd_source": "docker"}),
    ("Debian", {"kubegpu_container_runtime": "docker"}),
    ("RedHat", {"container_runtime_containerd_source": "docker"}),
    ("RedHat", {"container_runtime_containerd_source": "release"}),
    ("RedHat", {"kubegpu_container_runtime": "docker", "container_runtime_docker_source": "docker"}),
    # the source of the runtime not chosen is not judged
    ("RedHat", {"container_runtime_containerd_source": "docker", "container_runtime_docker_source": "distro"}),
])
def test_runtime_sources_with_packages_for_the_os(family, settings):
    assert pr.runtime_source_problems(settings, _runtime_packages(family), "%s 9.4" % family) == []


def test_runtime_sources_the_os_has_no_package_from():
    """RHEL ships neither containerd nor Docker Engine: the default source (distro) is refused
    in stage 1, naming the sources that have one (the container_runtime role's vars/RedHat.yml)."""
    packages = _runtime_packages("RedHat")
    text = line(pr.runtime_source_problems({}, packages, "Rocky 9.4")[0])
    assert text == ("host cp1: variable container_runtime_containerd_source: 'distro': Rocky 9.4 has no containerd"
                    " package from that source (sources with one here: docker, release); fix:"
                    " container_runtime_containerd_source: docker (Docker's containerd.io) or release (containerd's"
                    " release tarball) for this host")
    text = line(pr.runtime_source_problems({"kubegpu_container_runtime": "docker"}, packages, "RedHat 8.10")[0])
    assert text == ("host cp1: variable container_runtime_docker_source: 'distro': RedHat 8.10 has no Docker Engine"
                    " package from that source (sources with one here: docker); fix: container_runtime_docker_source:"
                    " docker (Docker's docker-ce) for this host")
    # the filter the container_runtime role calls: the same records
    assert flt.runtime_source_problems({}, packages, "Rocky 9.4") == pr.runtime_source_problems(
        {}, packages, "Rocky 9.4")
    with pytest.raises(Exception, match="as mappings"):
        flt.runtime_source_problems("distro", packages, "Rocky 9.4")


@pytest.mark.parametrize("value", ["", None, "http://proxy:3128", "https://proxy.example.com:3128/",
                                   "http://user:pass@proxy:3128", "HTTP://PROXY:80"])
def test_proxies_apt_can_use(value):
    assert pr.proxy_problem("kubegpu_http_proxy", value) is None


@pytest.mark.parametrize("value, fragment, fix", [
    ("proxy.example.com:3128", "'proxy.example.com:3128' has no scheme: apt would be given it as written",
     "fix: kubegpu_http_proxy: http://proxy.example.com:3128"),
    ("user:s3cret@proxy:3128", "'user:***@proxy:3128' has no scheme", "fix: kubegpu_http_proxy: http://user:***@proxy:3128"),
    ("socks5://proxy:1080", "scheme socks5 is not http or https", "fix:"),
    ("http://", "it has no host", "fix:"),
    ("http://proxy:99999", "its port is not a number from 1 to 65535", "fix:"),
    ("http://proxy:3128/path", "a proxy URL has no path", "fix:"),
])
def test_proxies_refused(value, fragment, fix):
    text = line(pr.proxy_problem("kubegpu_http_proxy", value))
    assert text.startswith("host cp1: variable kubegpu_http_proxy: ")
    assert fragment in text and fix in text, text
    assert "s3cret" not in text


def test_proxy_problems_reads_both():
    found = pr.proxy_problems({"kubegpu_http_proxy": "a:1", "kubegpu_https_proxy": "b:2", "kubegpu_no_proxy": "x"})
    assert [p["variable"] for p in found] == ["kubegpu_http_proxy", "kubegpu_https_proxy"]


@pytest.mark.parametrize("value, refused", [("auto", False), ("AUTO", False), (True, False), ("off", False),
                                            (None, False), ("maybe", True), ("", True)])
def test_operator_toolkit_enabled(value, refused):
    found = pr.toolkit_enabled_problem(value, pi.boolean)
    assert bool(found) is refused
    if refused:
        assert "is neither auto nor a boolean (accepted: auto, true, false)" in found["problem"]


@pytest.mark.parametrize("version, cgroup, refused", [
    ("1.35.4", 1, True), ("1.36.0", 1, True), ("1.34.3", 1, False), ("1.35.4", 2, False),
    ("1.35.4", None, False), ("banana", 1, False)])
def test_cgroup_v1_with_a_kubelet_that_refuses_it(version, cgroup, refused):
    found = pr.cgroup_problem(version, cgroup)
    assert bool(found) is refused
    if refused:
        text = line(found)
        assert "variable kubernetes_version: this host runs cgroup v1, and kubelet %s refuses to start" % version in text
        assert "fix: boot the host with cgroup v2" in text


# --- what the kubernetes role checks, through its filter --------------------------------------------

GOOD = {"kubernetes_version": "1.35.4", "kubernetes_control_plane_endpoint": "",
        "kubegpu_pod_cidr": "192.168.0.0/16", "kubegpu_service_cidr": "10.96.0.0/12"}


def test_kubernetes_settings_good():
    assert flt.kubernetes_setting_problems(GOOD, ["cp1"]) == []
    assert flt.kubernetes_setting_problems(dict(GOOD, kubernetes_control_plane_endpoint="lb:6443"),
                                           ["cp1", "cp2", "cp3"]) == []


def test_kubernetes_settings_every_rule():
    found = flt.kubernetes_setting_problems(
        {"kubernetes_version": "v1.35.4", "kubernetes_control_plane_endpoint": "",
         "kubegpu_pod_cidr": "10.244.0.0/25", "kubegpu_service_cidr": "172.0.0.0/8"}, ["cp1", "cp2", "cp3"])
    assert [p["variable"] for p in found] == ["kubernetes_version", "kubernetes_control_plane_endpoint",
                                              "kubegpu_pod_cidr", "kubegpu_service_cidr"]
    found = flt.kubernetes_setting_problems(dict(GOOD, kubernetes_control_plane_endpoint="https://lb:6443",
                                                 kubegpu_service_cidr="192.168.0.0/24"), ["cp1"])
    assert [p["variable"] for p in found] == ["kubernetes_control_plane_endpoint", "kubegpu_service_cidr"]
    assert "overlaps kubegpu_pod_cidr" in found[1]["problem"]


def test_the_kubernetes_role_calls_the_same_rules():
    """roles/kubernetes checks its settings with the filter preflight's rules sit behind."""
    tasks = yaml.safe_load((ROOT / "roles" / "kubernetes" / "tasks" / "main.yml").read_text(encoding="utf-8"))
    check = [t for t in tasks if "kubegpu.cluster.kubernetes_setting_problems" in str(t.get("vars"))]
    assert len(check) == 1 and check[0].get("run_once") is True
    assert "_kubernetes_setting_problems | length == 0" in check[0]["ansible.builtin.assert"]["that"]
    names = tasks.index(check[0]) < [t["name"] for t in tasks].index("Install kubelet, kubeadm and kubectl")
    assert names, "the check runs before anything is installed"


def test_the_calico_role_calls_the_same_rule():
    tasks = yaml.safe_load((ROOT / "roles" / "calico" / "tasks" / "main.yml").read_text(encoding="utf-8"))
    assert "kubegpu.cluster.calico_pool_problems(calico_block_size)" in str(tasks[0].get("vars"))


def test_proxy_problems_filter():
    assert "proxy_problems" in flt.FilterModule().filters()
    assert flt.proxy_problems({"kubegpu_http_proxy": "http://proxy:3128", "kubegpu_https_proxy": ""}) == []
    [record] = flt.proxy_problems({"kubegpu_http_proxy": "http://proxy:3128", "kubegpu_https_proxy": "proxy:3128"})
    assert record == pr.proxy_problem("kubegpu_https_proxy", "proxy:3128")
    with pytest.raises(Exception, match="proxy_problems expects a mapping"):
        flt.proxy_problems("proxy:3128")


def test_the_os_prereqs_stage_alone_calls_the_same_rule_before_it_writes_anything():
    """playbooks/os_prereqs.yml run alone refuses a proxy URL preflight refuses, with the same function,
    before the role writes apt's or dnf's proxy: os_prereqs depends on the kubegpu role, whose once-per-run
    include checks the cluster-wide settings first (tasks/settings.yml). Preflight checks them itself and
    imports only the role's GPU facts (entry point `gpu`)."""
    meta = yaml.safe_load((ROOT / "roles" / "os_prereqs" / "meta" / "main.yml").read_text(encoding="utf-8"))
    assert {"role": "kubegpu.cluster.kubegpu"} in meta["dependencies"]
    once = yaml.safe_load((ROOT / "roles" / "kubegpu" / "tasks" / "gpu_facts.yml").read_text(encoding="utf-8"))
    assert once[0]["ansible.builtin.include_tasks"]["file"] == "settings.yml" and "when" not in once[0]
    checks = yaml.safe_load((ROOT / "roles" / "kubegpu" / "tasks" / "settings.yml").read_text(encoding="utf-8"))
    [check] = checks
    assert "kubegpu.cluster.settings_problems(hostvars)" in str(check.get("vars"))
    assert "_kubegpu_settings_problems | length == 0" in check["ansible.builtin.assert"]["that"]
    assert "kubegpu.cluster.format_problems(inventory_hostname)" in check["ansible.builtin.assert"]["fail_msg"]
    # Preflight checks them itself (in its own words): it imports the GPU facts alone.
    facts = yaml.safe_load((ROOT / "roles" / "preflight" / "tasks" / "facts.yml").read_text(encoding="utf-8"))
    [imported] = [t for t in facts if t.get("ansible.builtin.import_role", {}).get("name") == "kubegpu.cluster.kubegpu"]
    assert imported["ansible.builtin.import_role"]["tasks_from"] == "gpu"
    assert imported["when"] == "not (kubegpu_gpu_facts_fresh | default(false))"


# --- the hosts' Python (asked with raw in playbooks/preflight.yml's second play) -------------

def _fake_python(directory, name, version):
    """An interpreter that answers `-c` with a version line, as the probe asks it."""
    path = directory / name
    path.write_text("#!/bin/sh\n[ \"$1\" = -c ] && { echo %s; exit 0; }\nexit 3\n" % version, encoding="utf-8")
    path.chmod(0o755)
    return path


def _probe(command):
    import subprocess
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, check=True).stdout


def test_the_python_probe_asks_the_set_interpreter(tmp_path):
    old = _fake_python(tmp_path, "python3.6", "3.6")
    out = _probe(flt.preflight_python_probe(str(old)))
    assert out == "kubegpu-python: 3.6 %s\n" % old
    [record] = flt.preflight_python_problems(out, str(old))
    assert line(record) == (
        "host cp1: variable ansible_python_interpreter: Python 3.6 found (ansible_python_interpreter %s), kubegpu's"
        " modules need 3.8 or newer; fix: install Python 3.8 or newer (e.g. dnf install python39 on RHEL 8) and set"
        " ansible_python_interpreter to it (e.g. /usr/bin/python3.9)" % old)
    # "/usr/bin/env python3" keeps its words; the real Python passes.
    out = _probe(flt.preflight_python_probe("/usr/bin/env python3"))
    assert out.startswith("kubegpu-python: 3.") and out.rstrip().endswith("/usr/bin/env python3")
    assert flt.preflight_python_problems(out, "/usr/bin/env python3") == []


def test_the_python_probe_follows_discovery(tmp_path):
    """No interpreter set (auto, auto_silent): the first of the fallback list found, as ansible-core's
    interpreter discovery picks it; an interpreter discovered earlier wins over discovery."""
    old = _fake_python(tmp_path, "python2.7", "2.7")
    fallback = [str(tmp_path / "python3.13"), str(old), "/usr/bin/python3"]
    out = _probe(flt.preflight_python_probe("auto_silent", fallback))
    assert out == "kubegpu-python: 2.7 %s\n" % old
    [record] = flt.preflight_python_problems(out, "auto_silent")
    assert record["problem"] == ("Python 2.7 found (%s, found by Ansible's interpreter discovery;"
                                 " ansible_python_interpreter is not set), kubegpu's modules need 3.8 or newer" % old)
    out = _probe(flt.preflight_python_probe(None, [str(tmp_path / "nothing")]))
    assert out == "kubegpu-python: none \n"
    [record] = flt.preflight_python_problems(out, None)
    assert record["problem"].startswith("no Python found by Ansible's interpreter discovery")
    new = _fake_python(tmp_path, "python3.9", "3.9")
    out = _probe(flt.preflight_python_probe("auto", fallback, str(new)))
    assert out == "kubegpu-python: 3.9 %s\n" % new
    assert flt.preflight_python_problems(out, "auto", None, str(new)) == []


@pytest.mark.parametrize("stdout, minimum, refused", [
    ("kubegpu-python: 3.8 /usr/bin/python3.8", None, False),
    ("kubegpu-python: 3.12 /usr/bin/python3", None, False),
    ("kubegpu-python: 3.10 /usr/bin/python3", "3.11", True),       # raised by preflight_min_python_version
    ("kubegpu-python: 3.7 /usr/bin/python3", "3.6", True),         # never below ansible-core's 3.8
    ("kubegpu-python: unknown /usr/bin/python3", None, True),
    ("kubegpu-python: none /opt/python/bin/python3", None, True),
    ("", None, False),                                             # no answer: no verdict here
    ("Welcome to host\nkubegpu-python: 3.6 /usr/bin/python3\n", None, True),
])
def test_python_problems(stdout, minimum, refused):
    found = flt.preflight_python_problems(stdout, "/usr/bin/python3", minimum)
    assert bool(found) is refused, found
    if refused:
        assert found[0]["variable"] == "ansible_python_interpreter"


def test_the_python_minimum_defaults_to_the_preflight_role_default():
    defaults = yaml.safe_load((ROOT / "roles" / "preflight" / "defaults" / "main.yml").read_text(encoding="utf-8"))
    assert pr.python_minimum() == tuple(int(p) for p in defaults["preflight_min_python_version"].split("."))
    assert pr.python_minimum("3.11") == (3, 11)


# --- GPU software mode and NFS (the gpu_operator, nvidia_device_plugin and nfs_client stages) ----

def _mode(**settings):
    return [(p["variable"], p["problem"]) for p in pr.gpu_mode_problems(settings, pi.boolean)]


def test_gpu_mode_defaults_and_good_settings_pass():
    assert _mode() == []
    assert _mode(kubegpu_gpu_operator="on") == []
    assert _mode(kubegpu_gpu_operator=True, gpu_operator_toolkit_enabled="auto",
                 gpu_operator_values={"mig": {"strategy": "single"}}) == []
    assert _mode(nvidia_device_plugin_mig_strategy="single", nvidia_device_plugin_time_slicing_replicas=4) == []
    assert _mode(nvidia_device_plugin_mig_strategy="mixed", nvidia_device_plugin_time_slicing_replicas=1) == []


@pytest.mark.parametrize("settings, variable, fragment", [
    ({"kubegpu_gpu_operator": "yes", "gpu_operator_device_plugin_enabled": "false"},
     "gpu_operator_device_plugin_enabled", "no device plugin would run"),
    ({"kubegpu_gpu_operator": True, "kubegpu_container_runtime": "docker"},
     "kubegpu_container_runtime", "containerd and CRI-O only"),
    ({"kubegpu_gpu_operator": True, "gpu_operator_values": {"driver": {"enabled": "true"}}},
     "gpu_operator_values", "driver.enabled is true"),
    ({"kubegpu_gpu_operator": True, "gpu_operator_toolkit_enabled": "on"},
     "gpu_operator_toolkit_enabled", "two NVIDIA Container Toolkits"),
    ({"kubegpu_gpu_operator": True, "gpu_operator_toolkit_enabled": "no",
      "container_runtime_nvidia_toolkit_install": "false"},
     "gpu_operator_toolkit_enabled", "no NVIDIA Container Toolkit would configure containerd"),
    ({"kubegpu_gpu_operator": True, "gpu_operator_values": {"toolkit": {"enabled": False}}},
     "gpu_operator_values", "toolkit.enabled is set"),
    ({"kubegpu_gpu_operator": True, "gpu_operator_values": {"cdi": {"enabled": True}}},
     "gpu_operator_values", "cdi.enabled is set"),
    ({"nvidia_device_plugin_mig_strategy": "mixed", "nvidia_device_plugin_time_slicing_replicas": "2"},
     "nvidia_device_plugin_time_slicing_replicas", "MIG strategy mixed does not advertise"),
])
def test_gpu_mode_refusals(settings, variable, fragment):
    found = _mode(**settings)
    assert len(found) == 1, found
    assert found[0][0] == variable and fragment in found[0][1]


def test_gpu_mode_operator_rules_only_in_operator_mode():
    # Plugin mode: the Operator's values do not matter; "false" from -e is false.
    assert _mode(kubegpu_gpu_operator="false", gpu_operator_values={"driver": {"enabled": True}},
                 kubegpu_container_runtime="docker") == []


def test_gpu_mode_warns_of_the_gfd_label_set_in_operator_mode_only():
    # the default label set (gfd) in operator mode: GFD's labels written twice, a warning
    found = pr.gpu_mode_warnings({"kubegpu_gpu_operator": "yes"}, pi.boolean)
    assert [(w["variable"], "GPU Feature Discovery" in w["problem"], "[kubegpu]" in w["fix"]) for w in found] == [
        ("gpu_node_labels_label_sets", True, True)]
    assert pr.gpu_mode_warnings({"kubegpu_gpu_operator": True, "gpu_node_labels_label_sets": ["gfd", "kubegpu"]},
                                pi.boolean) != []
    # without gfd, or in device plugin mode: nothing
    assert pr.gpu_mode_warnings({"kubegpu_gpu_operator": True, "gpu_node_labels_label_sets": ["kubegpu"]},
                                pi.boolean) == []
    assert pr.gpu_mode_warnings({"kubegpu_gpu_operator": "false"}, pi.boolean) == []
    assert pr.gpu_mode_warnings({}, pi.boolean) == []


def test_gpu_mode_filter_is_the_same_rule():
    assert flt.gpu_mode_problems({"kubegpu_gpu_operator": "yes", "kubegpu_container_runtime": "docker"}) == \
        pr.gpu_mode_problems({"kubegpu_gpu_operator": "yes", "kubegpu_container_runtime": "docker"}, pi.boolean)


def test_nfs_mounts():
    assert pr.nfs_mount_problems([]) == []
    assert pr.nfs_mount_problems(None) == []
    good = [{"src": "nfs1:/export", "path": "/data"},
            {"src": "10.0.0.5:/a/b", "path": "/b", "state": "absent", "fstype": "nfs4"}]
    assert pr.nfs_mount_problems(good) == []
    found = pr.nfs_mount_problems(good + [{"src": "nfs1", "path": "data", "state": "up", "fstype": "cifs"}, "x"])
    assert [p["variable"] for p in found] == ["nfs_client_mounts", "nfs_client_mounts"]
    assert found[0]["problem"] == ("entry 2 ('data'): src 'nfs1' is not server:/export; path 'data' is not an"
                                   " absolute path; state 'up' is not one of mounted, present, unmounted, absent,"
                                   " remounted; fstype 'cifs' is not nfs or nfs4")
    assert found[1]["problem"] == "entry 3 is 'x', not a mapping"
    assert "must be a list" in pr.nfs_mount_problems("nfs1:/export /data")[0]["problem"]
    line = format_problems(found[:1], "w1")[0]
    assert line.startswith("host w1: variable nfs_client_mounts: entry 2") and "; fix: give every entry" in line


def test_nfs_provisioner():
    assert pr.nfs_provisioner_problems({"nfs_client_storage_class_enabled": False}, pi.boolean) == []
    good = {"nfs_client_storage_class_enabled": "yes", "nfs_client_provisioner_server": "nfs1",
            "nfs_client_provisioner_path": "/srv/nfs", "nfs_client_storage_class_reclaim_policy": "Retain"}
    assert pr.nfs_provisioner_problems(good, pi.boolean) == []
    bad = dict(good, nfs_client_provisioner_server=" ", nfs_client_provisioner_path="srv",
               nfs_client_storage_class_reclaim_policy="delete")
    assert [p["variable"] for p in pr.nfs_provisioner_problems(bad, pi.boolean)] == [
        "nfs_client_provisioner_server", "nfs_client_provisioner_path", "nfs_client_storage_class_reclaim_policy"]


# --- the host's facts against preflight's settings ---------------------------------------------

_DEBIAN = {"distribution": "Debian", "distribution_version": "12.12", "distribution_major_version": "12",
           "architecture": "x86_64", "python_version": "3.11.2", "memtotal_mb": 4000, "processor_vcpus": 2}
_SETTINGS = {"preflight_supported_os": {"Ubuntu": ["22.04", "24.04"], "Debian": ["12", "13"]},
             "preflight_supported_architectures": ["x86_64", "aarch64"], "preflight_allow_unsupported_os": False,
             "preflight_min_python_version": "3.8", "preflight_min_memory_mb_control_plane": 1700,
             "preflight_min_cpus_control_plane": 2, "preflight_resources_fatal": True}


def _facts_check(facts=None, control_plane=True, **settings):
    found, notes = pr.host_fact_problems(dict(_DEBIAN, **(facts or {})), dict(_SETTINGS, **settings), control_plane,
                                         pi.boolean)
    return [(p["variable"], p["problem"]) for p in found], [(p["variable"], p["problem"]) for p in notes]


def test_host_facts_that_pass():
    assert _facts_check() == ([], [])
    assert _facts_check({"distribution": "Ubuntu", "distribution_version": "24.04", "distribution_major_version": "24"}) \
        == ([], [])


def test_unsupported_os_and_architecture_refused_or_warned():
    found, notes = _facts_check({"distribution": "Fedora", "distribution_version": "41",
                                 "distribution_major_version": "41", "architecture": "ppc64le"})
    assert notes == []
    assert found == [("preflight_supported_os", "Fedora 41 (ppc64le) is not a supported OS (supported: Ubuntu"
                      " 22.04/24.04, Debian 12/13)"),
                     ("preflight_supported_architectures", "architecture ppc64le is not supported (supported: x86_64,"
                      " aarch64)")]
    found, notes = _facts_check({"distribution": "Fedora"}, preflight_allow_unsupported_os="true")
    assert found == [] and [n[0] for n in notes] == ["preflight_supported_os"]


def test_resources_only_on_control_planes_and_typed_minimums():
    small = {"memtotal_mb": 900, "processor_vcpus": 1}
    found, _notes = _facts_check(small, preflight_min_memory_mb_control_plane="1700")
    assert found == [("preflight_min_memory_mb_control_plane", "control plane has 900 MB of memory, less than 1700 MB"),
                     ("preflight_min_cpus_control_plane", "control plane has 1 CPUs, fewer than 2")]
    assert _facts_check(small, control_plane=False) == ([], [])
    found, notes = _facts_check(small, preflight_resources_fatal="false")     # -e gives a string
    assert found == [] and len(notes) == 2


def test_old_python_refused():
    found, _notes = _facts_check({"python_version": "3.7.3"})
    assert found == [("ansible_python_interpreter", "Python 3.7.3 found, 3.8 or newer is needed")]
    assert _facts_check({"python_version": "3.10.1"}, preflight_min_python_version="3.9") == ([], [])
