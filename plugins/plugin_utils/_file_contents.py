# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: the contents of the small files os_prereqs and container_runtime write
with kubegpu.cluster.host_files (apt's proxy, the nouveau blacklist, chrony's container
drop-in, crictl.yaml, containerd's hosts.toml per registry) and nvidia_driver writes
(the kernel module options, the unattended-upgrades blacklist).

They were template files rendered with ``lookup('ansible.builtin.template')``, which deep-
copies all the task's variables for every file (ansible-core's lookup/template.py): about
50 ms of the controller's CPU per file and host on a test fleet (docs/benchmarks.md). The
text is the same, byte for byte, as those templates gave, so a host they wrote is not
changed again.

``managed`` is the header line: the variable ``ansible_managed`` where the inventory sets
it, else ansible.cfg's ``ansible_managed`` (DEFAULT_MANAGED_STR), as the template lookup
did.
"""

from __future__ import annotations

import json

# The first three lines of every hosts.toml (containerd's certs.d layout).
HOSTS_TOML_LAYOUT = "https://github.com/containerd/containerd/blob/main/docs/hosts.md"


def managed_line(managed=None):
    """ansible_managed as the template lookup rendered it: the variable, else ansible.cfg's.

    An empty value counts as unset: ansible-core 2.17 renders the roles'
    ``ansible_managed | default(none)`` as "" where the inventory does not set it (2.19 and
    later give None).
    """
    if managed not in (None, ""):
        return str(managed)
    from ansible import constants as C  # noqa: PLC0415  (controller only, loaded when used)
    return str(C.DEFAULT_MANAGED_STR)


def _comment(text, style="plain"):
    """Ansible's own `comment` filter (ansible.builtin.comment)."""
    from ansible.plugins.filter.core import comment  # noqa: PLC0415
    return comment(text, style=style)


def _toml_bool(value):
    """``value | bool | lower`` as the template wrote it."""
    from ansible.module_utils.parsing.convert_bool import boolean  # noqa: PLC0415
    return "true" if boolean(value, strict=False) else "false"


# --- os_prereqs ---------------------------------------------------------------------
def apt_direct_hosts(no_proxy):
    """The plain host names and addresses of a no_proxy list: apt can send those DIRECT;
    domain suffixes (.example.com), wildcards and CIDRs it cannot express."""
    hosts = []
    for entry in str(no_proxy or "").split(","):
        entry = entry.strip()
        if entry and "/" not in entry and "*" not in entry and not entry.startswith("."):
            hosts.append(entry)
    return hosts


def apt_proxy_conf(http_proxy, https_proxy, no_proxy, managed=None):
    """/etc/apt/apt.conf.d/ proxy file: the proxies, and the no_proxy hosts apt can send DIRECT."""
    lines = [_comment(managed_line(managed), style="c"),
             "// Proxy for apt (kubegpu_http_proxy / kubegpu_https_proxy). apt has no no_proxy:",
             "// the plain host names and addresses of kubegpu_no_proxy go DIRECT; domain",
             "// suffixes (.example.com) and CIDRs cannot be expressed and are left out."]
    if http_proxy:
        lines.append('Acquire::http::Proxy "%s";' % http_proxy)
    if https_proxy:
        lines.append('Acquire::https::Proxy "%s";' % https_proxy)
    for host in apt_direct_hosts(no_proxy):
        lines.append('Acquire::http::Proxy::%s "DIRECT";' % host)
        lines.append('Acquire::https::Proxy::%s "DIRECT";' % host)
    return "\n".join(lines) + "\n"


def nouveau_blacklist_conf(managed=None):
    """/etc/modprobe.d/ file that keeps nouveau off a GPU node."""
    return "\n".join([
        _comment(managed_line(managed)),
        "# Keep nouveau off this GPU node so the NVIDIA driver can bind the GPUs. Takes effect",
        "# once the initramfs is rebuilt (the role does it when this file changes) and the",
        "# host has rebooted or nouveau is unloaded.",
        "blacklist nouveau",
        "options nouveau modeset=0"]) + "\n"


def chrony_container_conf(execstart, managed=None):
    """chrony's systemd drop-in for a host that is a container (chronyd -x)."""
    return "\n".join([
        _comment(managed_line(managed)),
        "# This host is a container: its clock is the host kernel's, which the container may",
        "# not set (no CAP_SYS_TIME; the packaged unit would not even start). chronyd runs",
        "# with -x: it tracks the time sources but never steers the clock (chronyd(8)).",
        "[Unit]",
        "# An empty assignment resets the unit's conditions (ConditionCapability=CAP_SYS_TIME).",
        "ConditionCapability=",
        "",
        "[Service]",
        "ExecStart=",
        "ExecStart=%s" % execstart]) + "\n"


# --- container_runtime --------------------------------------------------------------
def crictl_yaml(socket, timeout, managed=None):
    """/etc/crictl.yaml: crictl talks to containerd's socket."""
    return "\n".join([
        "# %s" % managed_line(managed),
        "runtime-endpoint: unix://%s" % socket,
        "image-endpoint: unix://%s" % socket,
        "timeout: %s" % timeout,
        "debug: false",
        "pull-image-on-create: false"]) + "\n"


def hosts_toml(entry, managed=None):
    """One registry's hosts.toml (containerd's certs.d layout) from a
    container_runtime_registry_mirrors entry: {registry, server?, mirrors: [{host,
    capabilities?, skip_verify?, ca?, override_path?}]}."""
    lines = ["# %s" % managed_line(managed),
             "# Registry host configuration for %s (containerd certs.d layout:" % entry["registry"],
             "# %s)." % HOSTS_TOML_LAYOUT]
    if entry.get("server"):
        lines.append('server = "%s"' % entry["server"])
    for mirror in entry.get("mirrors") or []:
        lines.append("")
        lines.append('[host."%s"]' % mirror["host"])
        capabilities = mirror["capabilities"] if "capabilities" in mirror else ["pull", "resolve"]
        lines.append("  capabilities = %s" % json.dumps(capabilities))
        if "skip_verify" in mirror:
            lines.append("  skip_verify = %s" % _toml_bool(mirror["skip_verify"]))
        if mirror.get("ca"):
            lines.append('  ca = "%s"' % mirror["ca"])
        if "override_path" in mirror:
            lines.append("  override_path = %s" % _toml_bool(mirror["override_path"]))
    return "\n".join(lines) + "\n"


def containerd_host_files(mirrors, registry_config_path, crictl, socket, crictl_timeout, managed=None):
    """The files container_runtime writes with kubegpu.cluster.host_files: /etc/crictl.yaml
    (where ``crictl``) and one hosts.toml per registry of ``mirrors`` (where
    ``registry_config_path``), as [{path, content}]."""
    files = []
    if crictl:
        files.append({"path": "/etc/crictl.yaml", "content": crictl_yaml(socket, crictl_timeout, managed)})
    if registry_config_path:
        for entry in mirrors or []:
            files.append({"path": "%s/%s/hosts.toml" % (registry_config_path, entry["registry"]),
                          "content": hosts_toml(entry, managed)})
    return files


# --- nvidia_driver ------------------------------------------------------------------
def nvidia_module_options_conf(module_options, managed=None):
    """/etc/modprobe.d/kubegpu-nvidia.conf from nvidia_driver_module_options ({module:
    options}, options a string or a list), modules in name order (Jinja's dictsort: case
    ignored)."""
    lines = ["# %s" % managed_line(managed),
             "# NVIDIA kernel module options (nvidia_driver_module_options); applied when the",
             "# modules are next loaded (reboot or reload)."]
    for module in sorted(module_options or {}, key=lambda name: str(name).lower()):
        options = module_options[module]
        text = " ".join(str(o) for o in options) if isinstance(options, (list, tuple)) else str(options)
        lines.append("options %s %s" % (module, text))
    return "\n".join(lines) + "\n"


def unattended_upgrades_blacklist_conf(patterns, managed=None):
    """apt.conf.d file that keeps unattended-upgrades away from the driver's packages
    (patterns: regular expressions, _driver_packages.UNATTENDED_BLACKLIST)."""
    lines = ["// %s" % managed_line(managed),
             "// Keep unattended-upgrades away from the NVIDIA driver: replacing its libraries",
             "// under a loaded kernel module gives \"Driver/library version mismatch\". Upgrade",
             "// the driver with kubegpu (nvidia_driver) instead. Patterns are regular expressions.",
             "Unattended-Upgrade::Package-Blacklist {"]
    lines += ['    "%s";' % pattern for pattern in patterns or []]
    lines.append("};")
    return "\n".join(lines) + "\n"
