# SPDX-License-Identifier: Apache-2.0
"""The contents of the files os_prereqs, container_runtime and nvidia_driver write
(plugins/plugin_utils/_file_contents.py): byte for byte what the role templates they
replace rendered through lookup('ansible.builtin.template') (compared on 2026-12-04 with
ansible-core 2.19, these cases; nvidia_driver's two on 2026-12-04 with 2.17, 2.19 and 2.20),
so a host those templates wrote is not changed again."""

from __future__ import annotations

from ansible_collections.kubegpu.cluster.plugins.filter import files as filters
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _file_contents as fc

NO_PROXY = "localhost, 127.0.0.1,.example.com,10.0.0.0/8,*.svc, host1 ,,"

APT = """//
// Ansible managed
//
// Proxy for apt (kubegpu_http_proxy / kubegpu_https_proxy). apt has no no_proxy:
// the plain host names and addresses of kubegpu_no_proxy go DIRECT; domain
// suffixes (.example.com) and CIDRs cannot be expressed and are left out.
Acquire::http::Proxy "http://user:pw@proxy:3128";
Acquire::http::Proxy::localhost "DIRECT";
Acquire::https::Proxy::localhost "DIRECT";
Acquire::http::Proxy::127.0.0.1 "DIRECT";
Acquire::https::Proxy::127.0.0.1 "DIRECT";
Acquire::http::Proxy::host1 "DIRECT";
Acquire::https::Proxy::host1 "DIRECT";
"""

NOUVEAU = """#
# Ansible managed
#
# Keep nouveau off this GPU node so the NVIDIA driver can bind the GPUs. Takes effect
# once the initramfs is rebuilt (the role does it when this file changes) and the
# host has rebooted or nouveau is unloaded.
blacklist nouveau
options nouveau modeset=0
"""

CHRONY = """#
# Ansible managed
#
# This host is a container: its clock is the host kernel's, which the container may
# not set (no CAP_SYS_TIME; the packaged unit would not even start). chronyd runs
# with -x: it tracks the time sources but never steers the clock (chronyd(8)).
[Unit]
# An empty assignment resets the unit's conditions (ConditionCapability=CAP_SYS_TIME).
ConditionCapability=

[Service]
ExecStart=
ExecStart=/usr/sbin/chronyd -F 1 -x
"""

HEADER = ("# Ansible managed\n# Registry host configuration for %s (containerd certs.d layout:\n"
          "# https://github.com/containerd/containerd/blob/main/docs/hosts.md).\n")


def test_apt_proxy_sends_only_plain_hosts_direct():
    assert fc.apt_direct_hosts(NO_PROXY) == ["localhost", "127.0.0.1", "host1"]
    assert fc.apt_direct_hosts("") == [] and fc.apt_direct_hosts(None) == []
    assert fc.apt_proxy_conf("http://user:pw@proxy:3128", "", NO_PROXY, "Ansible managed") == APT
    both = fc.apt_proxy_conf("http://p:3128", "http://p:3129", "", "Ansible managed").splitlines()
    assert both[-2:] == ['Acquire::http::Proxy "http://p:3128";', 'Acquire::https::Proxy "http://p:3129";']


def test_nouveau_blacklist_and_chrony_drop_in():
    assert fc.nouveau_blacklist_conf("Ansible managed") == NOUVEAU
    assert fc.chrony_container_conf("/usr/sbin/chronyd -F 1 -x", "Ansible managed") == CHRONY


def test_managed_is_the_inventorys_else_ansible_cfgs():
    from ansible import constants as C
    assert fc.managed_line(None) == C.DEFAULT_MANAGED_STR
    # ansible-core 2.17 renders an unset `ansible_managed | default(none)` as "".
    assert fc.managed_line("") == C.DEFAULT_MANAGED_STR
    assert fc.nouveau_blacklist_conf().splitlines()[1] == "# %s" % C.DEFAULT_MANAGED_STR
    assert fc.nouveau_blacklist_conf("kept by ops").splitlines()[:3] == ["#", "# kept by ops", "#"]


def test_hosts_toml_per_registry_entry():
    assert fc.hosts_toml({"registry": "docker.io", "mirrors": [{"host": "https://mirror.gcr.io"}]}, "Ansible managed") == \
        HEADER % "docker.io" + '\n[host."https://mirror.gcr.io"]\n  capabilities = ["pull", "resolve"]\n'
    assert fc.hosts_toml({"registry": "empty"}, "Ansible managed") == HEADER % "empty"
    entry = {"registry": "reg.local:5000", "server": "https://reg.local:5000", "mirrors": [
        {"host": "http://m1:5000", "capabilities": ["pull"], "skip_verify": "yes", "ca": "/etc/ca.pem",
         "override_path": True},
        {"host": "https://m2", "skip_verify": False, "override_path": "no", "ca": ""}]}
    assert fc.hosts_toml(entry, "Ansible managed") == HEADER % "reg.local:5000" + (
        'server = "https://reg.local:5000"\n\n[host."http://m1:5000"]\n  capabilities = ["pull"]\n'
        '  skip_verify = true\n  ca = "/etc/ca.pem"\n  override_path = true\n\n[host."https://m2"]\n'
        '  capabilities = ["pull", "resolve"]\n  skip_verify = false\n  override_path = false\n')


def test_containerd_host_files_crictl_and_registries():
    mirrors = [{"registry": "docker.io", "mirrors": [{"host": "https://mirror.gcr.io"}]}]
    files = fc.containerd_host_files(mirrors, "/etc/containerd/certs.d", True, "/run/containerd/containerd.sock", 10,
                                     "Ansible managed")
    assert [f["path"] for f in files] == ["/etc/crictl.yaml", "/etc/containerd/certs.d/docker.io/hosts.toml"]
    assert files[0]["content"] == ("# Ansible managed\nruntime-endpoint: unix:///run/containerd/containerd.sock\n"
                                   "image-endpoint: unix:///run/containerd/containerd.sock\ntimeout: 10\n"
                                   "debug: false\npull-image-on-create: false\n")
    # no crictl, no registry directory: nothing of theirs
    assert fc.containerd_host_files(mirrors, "", False, "/run/containerd/containerd.sock", 10) == []


def test_the_filters_are_the_functions():
    names = filters.FilterModule().filters()
    assert sorted(names) == ["apt_proxy_conf", "chrony_container_conf", "containerd_host_files",
                             "nouveau_blacklist_conf", "nvidia_module_options_conf",
                             "unattended_upgrades_blacklist_conf"]
    assert names["nvidia_module_options_conf"]({"nvidia": ["a=1"]}, "m") == \
        fc.nvidia_module_options_conf({"nvidia": ["a=1"]}, "m")
    assert names["unattended_upgrades_blacklist_conf"](["^x"], "m") == fc.unattended_upgrades_blacklist_conf(["^x"], "m")
    assert names["nouveau_blacklist_conf"]("Ansible managed") == NOUVEAU
    assert names["apt_proxy_conf"]("http://user:pw@proxy:3128", "", NO_PROXY, "Ansible managed") == APT
    mirrors = [{"registry": "docker.io", "mirrors": [{"host": "https://mirror.gcr.io"}]}]
    settings = {"registry_config_path": "/etc/containerd/certs.d", "crictl": True,
                "socket": "/run/containerd/containerd.sock", "crictl_timeout": 10, "managed": "Ansible managed"}
    assert names["containerd_host_files"](mirrors, settings) == fc.containerd_host_files(
        mirrors, "/etc/containerd/certs.d", True, "/run/containerd/containerd.sock", 10, "Ansible managed")
    assert names["containerd_host_files"](mirrors, dict(settings, crictl=False, registry_config_path="")) == []


MODULE_OPTIONS = """# Ansible managed
# NVIDIA kernel module options (nvidia_driver_module_options); applied when the
# modules are next loaded (reboot or reload).
options nvidia NVreg_EnableGpuFirmware=0
options nvidia_drm modeset=1 fbdev=1
options Nvidia_uvm uvm_perf_prefetch_enable=0
"""

UNATTENDED = """// Ansible managed
// Keep unattended-upgrades away from the NVIDIA driver: replacing its libraries
// under a loaded kernel module gives "Driver/library version mismatch". Upgrade
// the driver with kubegpu (nvidia_driver) instead. Patterns are regular expressions.
Unattended-Upgrade::Package-Blacklist {
    "^nvidia-";
    "^libnvidia-";
};
"""


def test_nvidia_module_options_in_name_order_case_ignored():
    options = {"nvidia_drm": ["modeset=1", "fbdev=1"], "Nvidia_uvm": ["uvm_perf_prefetch_enable=0"],
               "nvidia": "NVreg_EnableGpuFirmware=0"}
    assert fc.nvidia_module_options_conf(options, "Ansible managed") == MODULE_OPTIONS
    assert fc.nvidia_module_options_conf({}, "Ansible managed") == "\n".join(MODULE_OPTIONS.splitlines()[:3]) + "\n"
    # a number is an option string (the template would have failed on it)
    assert fc.nvidia_module_options_conf({"nvidia": 1}, "m").splitlines()[-1] == "options nvidia 1"


def test_unattended_upgrades_blacklist():
    assert fc.unattended_upgrades_blacklist_conf(["^nvidia-", "^libnvidia-"], "Ansible managed") == UNATTENDED
    assert fc.unattended_upgrades_blacklist_conf([], "kept").splitlines()[-2:] == [
        "Unattended-Upgrade::Package-Blacklist {", "};"]
