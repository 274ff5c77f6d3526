# SPDX-License-Identifier: Apache-2.0
"""What every later stage would refuse on one host (plugins/plugin_utils/_preflight_host.py) and
the filter roles/preflight calls it through (kubegpu.cluster.preflight_host_problems)."""
from __future__ import annotations

from pathlib import Path

from ansible_collections.kubegpu.cluster.plugins.filter import preflight as flt
from ansible_collections.kubegpu.cluster.plugins.filter.network import format_problems
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_host as ph

ROOT = Path(__file__).resolve().parents[4]
DEBIAN_12 = {"os_family": "Debian", "distribution": "Debian", "distribution_version": "12.7",
             "distribution_major_version": "12", "kernel": "6.1.0-26-amd64", "architecture": "x86_64",
             "kubegpu_gpu": {"count": 0, "gpus": []}}
GROUPS = {"k8s_cluster": ["cp1"], "kube_control_plane": ["cp1"], "kube_node": []}


def report(variables=None, probe=None, facts=None, **kwargs):
    result = ph.host_report("cp1", variables or {}, facts or DEBIAN_12, GROUPS, probe or {"cgroup_version": 2},
                            root=str(ROOT), **kwargs)
    return format_problems(result["problems"], "cp1"), format_problems(result["warnings"], "cp1")


def test_a_host_with_the_defaults_passes():
    assert report() == ([], [])


def test_every_kind_in_one_report():
    problems, warnings = report({"calico_encapsulation": "vxlan", "kubernetes_version": "banana",
                                 "kubernetes_control_plane_endpoint": "https://lb:6443",
                                 "kubegpu_http_proxy": "proxy:3128", "gpu_operator_toolkit_enabled": "maybe",
                                 "kubegpu_pod_cidr": "10.244.0.0/25"})
    assert [p.split(": variable ")[1].split(":")[0] for p in problems] == [
        "calico_encapsulation", "kubernetes_version", "kubernetes_control_plane_endpoint", "kubegpu_http_proxy",
        "gpu_operator_toolkit_enabled", "kubegpu_pod_cidr"]
    assert warnings == []


def test_a_variable_refused_by_its_spec_is_not_judged_again():
    problems, _warnings = report({"kubernetes_control_plane_endpoint": ["lb"], "calico_block_size": 99,
                                  "kubegpu_pod_cidr": "10.244.0.0/24"})
    assert len(problems) == 2, problems
    assert "kubernetes_control_plane_endpoint: [\"lb\"] is a list, not a string" in problems[0]
    assert "calico_block_size: 99 is out of range" in problems[1]


def test_the_cidrs_are_left_to_their_own_check():
    """kubegpu_pod_cidr and kubegpu_service_cidr have cidr_problems ("must be a string in CIDR
    notation"): no second line for the same mistake."""
    assert report({"kubegpu_pod_cidr": 12, "kubegpu_service_cidr": None}) == ([], [])


VM = dict(DEBIAN_12, virtualization_role="guest", virtualization_type="kvm")
CONTAINER = dict(DEBIAN_12, virtualization_role="guest", virtualization_type="docker")


def test_unset_severities_refuse_on_machines_and_vms_and_warn_in_containers():
    for facts, fatal in ((DEBIAN_12, True), (VM, True), (CONTAINER, False)):
        problems, warnings = report(probe={"cgroup_version": 1}, facts=facts)
        assert len(problems if fatal else warnings) == 1 and not (warnings if fatal else problems), facts
        groups = dict(GROUPS, gpu=["cp1"])
        result = ph.host_report("cp1", {"kubegpu_gpu_node": True}, facts, groups, {"cgroup_version": 2},
                                root=str(ROOT))
        assert [r["variable"] for r in result["problems" if fatal else "warnings"]] == ["kubegpu_gpu_group"]
        assert result["warnings" if fatal else "problems"] == []
    result = ph.host_report("cp1", {"kubegpu_gpu_node": True}, CONTAINER, dict(GROUPS, gpu=["cp1"]), {},
                            root=str(ROOT), gpu_node_without_gpu_fatal=True)
    assert [r["variable"] for r in result["problems"]] == ["kubegpu_gpu_group"]


def test_containers_are_what_stage_3_counts_as_containers():
    import yaml
    listed = yaml.safe_load((ROOT / "roles" / "nvidia_driver" / "vars" / "main.yml").read_text(encoding="utf-8"))
    assert ph.is_container(CONTAINER, str(ROOT)) and not ph.is_container(VM, str(ROOT))
    assert set(listed["_nvidia_driver_container_types"]) == set(ph._specs.container_types(str(ROOT)))


def test_cgroup_v1_is_a_warning_or_a_refusal():
    problems, warnings = report(probe={"cgroup_version": 1}, cgroup_v1_fatal=False)
    assert problems == [] and "this host runs cgroup v1" in warnings[0]
    problems, warnings = report(probe={"cgroup_version": 1}, cgroup_v1_fatal=True)
    assert warnings == [] and "this host runs cgroup v1" in problems[0]
    assert report({"kubernetes_version": "1.34.3"}, probe={"cgroup_version": 1}, cgroup_v1_fatal=True) == ([], [])
    # A version already refused says nothing about cgroups.
    problems, _w = report({"kubernetes_version": "v1.35.4"}, probe={"cgroup_version": 1}, cgroup_v1_fatal=True)
    assert len(problems) == 1 and "leading v" in problems[0]


def test_the_gpu_node_decision_comes_from_the_published_fact_and_the_group():
    groups = dict(GROUPS, gpu=["cp1"])
    result = ph.host_report("cp1", {"kubegpu_gpu_node": True}, DEBIAN_12, groups, {"cgroup_version": 2},
                            root=str(ROOT))
    [line] = format_problems(result["problems"], "cp1")
    assert line.startswith("host cp1: variable kubegpu_gpu_group: in group gpu (a GPU node)")
    assert ph.host_report("cp1", {"kubegpu_gpu_node": False}, DEBIAN_12, groups, {}, root=str(ROOT))["problems"] \
        == []


def test_a_driver_setting_refused_by_its_spec_skips_the_driver_decision():
    groups = dict(GROUPS, gpu=["cp1"])
    result = ph.host_report("cp1", {"kubegpu_gpu_node": True, "nvidia_driver_flavour": "closed"}, DEBIAN_12, groups,
                            {}, root=str(ROOT))
    assert [p["variable"] for p in result["problems"]] == ["nvidia_driver_flavour"]


# --- the filter, on a stand-in hostvars ------------------------------------------------------

class HostVars(dict):
    """hostvars as the filter reads it: host -> its variables (facts included)."""


def test_the_filter_reads_what_is_set_for_the_host():
    hostvars = HostVars(cp1={"inventory_hostname": "cp1", "ansible_host": "10.0.0.1", "calico_encapsulation": "vxlan",
                             "kubegpu_gpu_node": False, "kubegpu_pod_cdir": "x", "ansible_facts": DEBIAN_12})
    probe = {"paths": {"/sys/fs/cgroup": {"exists": True}, "/sys/fs/cgroup/cgroup.controllers": {"exists": False},
                       "/etc/dgx-release": {"exists": False}}}
    result = flt.preflight_host_problems("cp1", hostvars, GROUPS, probe, "no")
    assert [p["variable"] for p in result["problems"]] == ["calico_encapsulation"]
    assert [p["variable"] for p in result["warnings"]] == ["kubernetes_version"]     # cgroup v1, not fatal
    result = flt.preflight_host_problems("cp1", hostvars, GROUPS, probe, "yes")
    assert [p["variable"] for p in result["problems"]] == ["calico_encapsulation", "kubernetes_version"]
    result = flt.preflight_host_problems("cp1", hostvars, GROUPS, probe)          # unset, not a container
    assert [p["variable"] for p in result["problems"]] == ["calico_encapsulation", "kubernetes_version"]


def test_the_probe_under_a_test_root():
    probe = {"paths": {"/tmp/x/sys/fs/cgroup": {"exists": True},
                       "/tmp/x/sys/fs/cgroup/cgroup.controllers": {"exists": True},
                       "/tmp/x/etc/dgx-release": {"exists": True}}}
    assert flt._probe(probe) == {"cgroup_version": 2, "dgx": True}      # pylint: disable=protected-access
    assert flt._probe({}) == {}                                          # pylint: disable=protected-access
    assert flt._probe({"paths": {}}) == {"cgroup_version": None, "dgx": False}  # pylint: disable=protected-access


# --- the control-plane VIP in use (roles/preflight/tasks/facts.yml probes it from the first control plane) ---

NET = dict(DEBIAN_12, interfaces=["eth0"], default_ipv4={"interface": "eth0", "address": "10.0.0.5"},
           eth0={"ipv4": {"address": "10.0.0.5", "netmask": "255.255.255.0"}})
NET_HOLDING = dict(NET, eth0={"ipv4": {"address": "10.0.0.5", "netmask": "255.255.255.0"},
                              "ipv4_secondaries": [{"address": "10.0.0.250", "netmask": "255.255.255.255"}]})


def test_a_vip_that_answers_while_no_control_plane_holds_it_is_refused():
    vip = {"kubegpu_control_plane_vip": "10.0.0.250"}
    assert report(vip, probe={"cgroup_version": 2, "vip_answered": False, "vip_holders": []}, facts=NET) == ([], [])
    problems, _warnings = report(vip, probe={"cgroup_version": 2, "vip_answered": True, "vip_holders": []}, facts=NET)
    assert problems == ["host cp1: variable kubegpu_control_plane_vip: 10.0.0.250 answers on the network but no "
                        "control plane holds it: another machine uses it; fix: choose a free address for "
                        "kubegpu_control_plane_vip, or free 10.0.0.250"], problems
    # a re-run: kube-vip's leader holds it
    assert report(vip, probe={"cgroup_version": 2, "vip_answered": True, "vip_holders": ["cp1"]}, facts=NET) == ([], [])


class _Hostvars(dict):
    pass


def test_the_filter_hands_the_first_control_planes_probe_and_the_holders_over():
    hostvars = _Hostvars(cp1={"ansible_facts": NET_HOLDING, "kubegpu_control_plane_vip": "10.0.0.250",
                              "_preflight_vip_probe": {"rc": 0, "changed": False}},
                         cp2={"ansible_facts": NET, "kubegpu_control_plane_vip": "10.0.0.250"})
    groups = {"kube_control_plane": ["cp1", "cp2"]}
    variables = {"kubegpu_control_plane_vip": "10.0.0.250"}
    assert flt._vip_probe("cp1", hostvars, groups, variables) == {"vip_answered": True, "vip_holders": ["cp1"]}
    assert flt._vip_probe("cp2", hostvars, groups, variables) == {}
    hostvars["cp1"]["_preflight_vip_probe"] = {"skipped": True}
    assert flt._vip_probe("cp1", hostvars, groups, variables) == {}
    hostvars["cp1"]["_preflight_vip_probe"] = {"rc": 1}
    assert flt._vip_probe("cp1", hostvars, groups, variables) == {"vip_answered": False, "vip_holders": ["cp1"]}
    assert flt._vip_probe("cp1", hostvars, groups, {}) == {}


# --- nvidia_driver_mode: container (plugin_utils/_driver_container) -------------------------------

# Debian 12 hosts below: NVIDIA publishes no driver containers for Debian, so these name images of their own.
DRIVER_CONTAINER = {"nvidia_driver_mode": "container", "kubegpu_gpu_operator": True,
                    "container_runtime_nvidia_toolkit_install": False, "kubegpu_gpu_node": True,
                    "gpu_node_labels_label_sets": ["kubegpu"],
                    "gpu_operator_values": {"driver": {"repository": "registry.example.com/gpu"}}}
H100_SECURE_BOOT = {"count": 1, "source": "sysfs", "secure_boot": "enabled",
                    "gpus": [{"index": 0, "name": "NVIDIA H100 PCIe", "architecture": "hopper",
                              "pci_bus_id": "0000:17:00.0"}],
                    "driver": {"loaded": False, "install_hints": []}}


def test_container_mode_asks_what_the_driver_container_needs_not_the_host_driver_plan():
    """On Debian 12 with Secure Boot the host driver's plan refuses DKMS (nvidia_driver_source); in
    container mode that plan is not asked, and the driver container's own Secure Boot rule answers."""
    facts = dict(DEBIAN_12, kubegpu_gpu=H100_SECURE_BOOT)
    host_mode, _warnings = report({"kubegpu_gpu_node": True}, facts=facts)
    assert [p.split(": variable ")[1].split(":")[0] for p in host_mode] == ["nvidia_driver_source"]
    problems, warnings = report(DRIVER_CONTAINER, facts=facts)
    assert len(problems) == 1 and warnings == []
    assert problems[0].startswith("host cp1: variable nvidia_driver_mode: container on a Secure Boot host")
    # With NVIDIA's own images the Debian host is refused for the image too.
    nvidia_images, _warnings = report(dict(DRIVER_CONTAINER, gpu_operator_values={}), facts=facts)
    assert any("none for Debian 12" in p for p in nvidia_images), nvidia_images


def test_container_mode_settings_are_refused_on_every_host():
    problems, _warnings = report(dict(DRIVER_CONTAINER, kubegpu_gpu_node=False, kubegpu_gpu_operator=False))
    assert problems == [
        "host cp1: variable nvidia_driver_mode: container while kubegpu_gpu_operator is false: in container mode"
        " NVIDIA's GPU Operator installs the driver, and without it no driver would be installed anywhere (stage 3"
        " installs none); fix: kubegpu_gpu_operator: true in group_vars/all, or nvidia_driver_mode: host"]


def test_container_mode_still_refuses_a_pinned_gpu_node_without_a_gpu():
    problems, _warnings = report(DRIVER_CONTAINER, gpu_node_without_gpu_fatal=True)
    assert len(problems) == 1 and "variable kubegpu_gpu_node: kubegpu_gpu_node is true, but no NVIDIA GPU" in problems[0]


def test_a_stage_run_alone_checks_the_settings_with_preflights_functions():
    """settings_problems, what the kubegpu role checks once per run where preflight did not run: the same
    records host_report gives for every role's argument spec and the proxy URLs, none of the rules that
    need this run's facts; a proxy the spec already refused is named once."""
    variables = {"os_prereqs_time_sync": "ntpd", "kubernetes_packages": "kubelet",
                 "kubegpu_http_proxy": "proxy:3128", "kubegpu_https_proxy": ["not", "a", "string"],
                 "kubernetes_version": "banana"}
    found = format_problems(ph.settings_problems(variables, root=str(ROOT)), "cp1")
    full, _warnings = report(variables)
    assert found and set(found) < set(full)
    assert [line.split(":")[1].strip() for line in found] == [
        "variable os_prereqs_time_sync", "variable kubernetes_packages", "variable kubegpu_https_proxy",
        "variable kubegpu_http_proxy"]
    assert not any("kubernetes_version" in line for line in found)      # a rule, not a type: preflight's
    assert ph.settings_problems({}, root=str(ROOT)) == []
    assert ph.settings_problems({"kubegpu_http_proxy": "http://proxy:3128"}, root=str(ROOT)) == []


ROCKY_9 = dict(DEBIAN_12, os_family="RedHat", distribution="Rocky", distribution_version="9.4",
               distribution_major_version="9", kernel="5.14.0-427.el9.x86_64")


def test_a_runtime_source_without_packages_for_the_os_is_refused_in_stage_one():
    """Stage 4 would refuse Rocky's default containerd source (distro: RHEL ships none) after
    stages 2 and 3 changed the host; preflight refuses it first, by the same rule, with the
    role's package lists for the host's OS."""
    problems, _warnings = report(facts=ROCKY_9)
    assert problems == ["host cp1: variable container_runtime_containerd_source: 'distro': Rocky 9.4 has no"
                        " containerd package from that source (sources with one here: docker, release); fix:"
                        " container_runtime_containerd_source: docker (Docker's containerd.io) or release"
                        " (containerd's release tarball) for this host"]
    assert report({"container_runtime_containerd_source": "docker"}, facts=ROCKY_9) == ([], [])
    # a source its argument spec refuses is named once, by the spec
    problems, _warnings = report({"container_runtime_containerd_source": "apt"}, facts=ROCKY_9)
    assert len(problems) == 1 and "container_runtime_containerd_source: 'apt'" in problems[0], problems
    # an OS the role has no vars file for: the OS rule names it, this rule says nothing
    assert ph.runtime_source_problems({}, dict(DEBIAN_12, os_family="Suse", distribution="SLES"), str(ROOT)) == []
