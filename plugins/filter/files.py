# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Filters that give the contents of the small files os_prereqs, container_runtime and
nvidia_driver write with kubegpu.cluster.host_files. The text is built in
plugins/plugin_utils/_file_contents.py (pure, unit-tested), without the template lookup's
copy of every variable per file."""

from __future__ import annotations

DOCUMENTATION = r"""
name: files
short_description: Contents of the files os_prereqs, container_runtime and nvidia_driver write
description:
  - C(apt_proxy_conf(https_proxy, no_proxy, managed=None)) on the HTTP proxy URL - apt's proxy file; the
    plain host names and addresses of C(no_proxy) go DIRECT (apt cannot express domain suffixes, wildcards or CIDRs).
  - C(nouveau_blacklist_conf) on C(managed) (or null) - the modprobe file that keeps nouveau off a GPU node.
  - C(chrony_container_conf(managed=None)) on chronyd's ExecStart - chrony's drop-in for a host that is a container.
  - C(containerd_host_files(settings)) on C(container_runtime_registry_mirrors) - [{path, content}] of
    /etc/crictl.yaml (where C(settings.crictl); containerd's C(settings.socket), C(settings.crictl_timeout)) and
    one hosts.toml per registry (where C(settings.registry_config_path)); C(settings.managed) as below.
  - C(nvidia_module_options_conf(managed=None)) on C(nvidia_driver_module_options) - the modprobe.d file of the
    NVIDIA modules' options (a dict of module name to options, a string or a list each).
  - C(unattended_upgrades_blacklist_conf(managed=None)) on a list of regular expressions - the apt.conf.d file that
    keeps unattended-upgrades away from the driver's packages.
  - C(managed) is the header line; null takes ansible.cfg's C(ansible_managed), as the template lookup did.
author: kubegpu maintainers
options:
  _input:
    description: see each filter.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Write crictl.yaml and the registries' hosts.toml
  kubegpu.cluster.host_files:
    files: >-
      {{ container_runtime_registry_mirrors | kubegpu.cluster.containerd_host_files({
           'registry_config_path': '/etc/containerd/certs.d', 'crictl': true,
           'socket': '/run/containerd/containerd.sock', 'crictl_timeout': 10}) }}
"""

RETURN = r"""
_value:
  description: The file's text (ending with a newline), or the list of C({path, content}) (containerd_host_files).
  type: raw
"""

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _lazy

_file_contents = _lazy.Module("plugin_utils._file_contents")


def apt_proxy_conf(http_proxy, https_proxy, no_proxy, managed=None):
    """apt's proxy file."""
    return _file_contents.apt_proxy_conf(http_proxy, https_proxy, no_proxy, managed)


def nouveau_blacklist_conf(managed=None):
    """The nouveau blacklist."""
    return _file_contents.nouveau_blacklist_conf(managed)


def chrony_container_conf(execstart, managed=None):
    """chrony's container drop-in."""
    return _file_contents.chrony_container_conf(execstart, managed)


def containerd_host_files(mirrors, settings):
    """crictl.yaml and the registries' hosts.toml, as [{path, content}]."""
    return _file_contents.containerd_host_files(
        mirrors, settings.get("registry_config_path"), settings.get("crictl"), settings.get("socket"),
        settings.get("crictl_timeout"), settings.get("managed"))


def nvidia_module_options_conf(module_options, managed=None):
    """The NVIDIA modules' options file."""
    return _file_contents.nvidia_module_options_conf(module_options, managed)


def unattended_upgrades_blacklist_conf(patterns, managed=None):
    """unattended-upgrades' blacklist of the driver packages."""
    return _file_contents.unattended_upgrades_blacklist_conf(patterns, managed)


class FilterModule:
    """kubegpu file-content filters."""

    def filters(self):
        return {
            "apt_proxy_conf": apt_proxy_conf,
            "nouveau_blacklist_conf": nouveau_blacklist_conf,
            "chrony_container_conf": chrony_container_conf,
            "containerd_host_files": containerd_host_files,
            "nvidia_module_options_conf": nvidia_module_options_conf,
            "unattended_upgrades_blacklist_conf": unattended_upgrades_blacklist_conf,
        }
