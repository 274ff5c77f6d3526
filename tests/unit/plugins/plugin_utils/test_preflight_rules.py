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


def test_the_os_prereqs_role_calls_the_same_rule_before_it_writes_anything():
    """roles/os_prereqs, run alone (playbooks/os_prereqs.yml), refuses a proxy URL preflight refuses, with the
    same function, in its first task: before facts.yml and before proxy.yml writes apt's or dnf's proxy."""
    tasks = yaml.safe_load((ROOT / "roles" / "os_prereqs" / "tasks" / "main.yml").read_text(encoding="utf-8"))
    first = tasks[0]
    assert "kubegpu.cluster.proxy_problems" in str(first.get("vars"))
    assert "_os_prereqs_proxy_problems | length == 0" in first["ansible.builtin.assert"]["that"]
    assert "kubegpu.cluster.format_problems(inventory_hostname)" in first["ansible.builtin.assert"]["fail_msg"]


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
