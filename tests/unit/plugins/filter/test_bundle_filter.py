# SPDX-License-Identifier: Apache-2.0
"""The offline bundle's filters the fleet and bundle.yml use for dnf (plugins/filter/bundle.py): each passes
Ansible's values to the one Python function that decides, and turns its refusals into filter errors."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.filter import bundle as flt
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _offline


def test_the_fleets_repository_file_is_the_one_function_s():
    url = "http://10.0.0.5:8080/dnf/rocky-9"
    assert flt.bundle_dnf_repo_file(url) == _offline.dnf_repo_file(url)
    assert "baseurl=%s\n" % url in flt.bundle_dnf_repo_file(url)
    with pytest.raises(AnsibleFilterError, match="bundle_dnf_repo_file: the bundle's dnf repository URL ''"):
        flt.bundle_dnf_repo_file("")


@pytest.mark.parametrize("facts, expected", [
    ({"os_family": "RedHat", "distribution": "Rocky", "distribution_major_version": "9"}, "rocky-9"),
    ({"os_family": "RedHat", "distribution": "RedHat", "distribution_version": "9.4"}, "redhat-9"),
    ({"os_family": "Debian", "distribution": "Ubuntu", "distribution_release": "noble"}, "ubuntu-noble"),
    (None, ""),
])
def test_the_release_id_of_a_hosts_facts(facts, expected):
    assert flt.bundle_release_id(facts) == expected


def test_the_builders_repositories_carry_their_downloaded_keys():
    repos = [{"name": "rocky-9-baseos", "baseurl": "https://m/$releasever/BaseOS/$basearch/os/", "key_url": "https://m/k",
              "fingerprint": "AB", "gpgcheck": True, "module_hotfixes": False, "variable": "bundle_rocky_mirror"},
             {"name": "rocky-9-cuda-rhel9-x86_64", "baseurl": "https://n/", "key_url": "https://n/k", "fingerprint": "CD",
              "gpgcheck": True, "module_hotfixes": True, "variable": "nvidia_driver_cuda_repo_base_url"},
             {"name": "rocky-9-nvidia-container-toolkit", "baseurl": "https://t/rpm/$basearch", "key_url": "https://t/k",
              "fingerprint": "EF", "gpgcheck": False, "repo_gpgcheck": True, "module_hotfixes": False,
              "variable": "container_runtime_nvidia_toolkit_repo_url"}]
    assert flt.bundle_dnf_repos(repos, "/b/.work/keys") == [
        {"name": "rocky-9-baseos", "baseurl": "https://m/$releasever/BaseOS/$basearch/os/",
         "gpgkey": "/b/.work/keys/rocky-9-baseos.asc", "gpgcheck": True, "repo_gpgcheck": False, "module_hotfixes": False},
        {"name": "rocky-9-cuda-rhel9-x86_64", "baseurl": "https://n/", "gpgkey": "/b/.work/keys/rocky-9-cuda-rhel9-x86_64.asc",
         "gpgcheck": True, "repo_gpgcheck": False, "module_hotfixes": True},
        {"name": "rocky-9-nvidia-container-toolkit", "baseurl": "https://t/rpm/$basearch",
         "gpgkey": "/b/.work/keys/rocky-9-nvidia-container-toolkit.asc", "gpgcheck": False, "repo_gpgcheck": True,
         "module_hotfixes": False}]
    with pytest.raises(AnsibleFilterError, match="bundle_dnf_repos expects a list"):
        flt.bundle_dnf_repos({"name": "x"}, "/k")


def test_package_versions_of_the_apt_and_the_dnf_loop():
    apt = [{"item": {"id": "debian-bookworm"}, "packages": [{"name": "jq", "version": "1.6-2.1", "architecture": "amd64"}]}]
    dnf = [{"item": {"id": "rocky-9"}, "packages": [{"name": "jq", "version": "1.6-17.el9", "architecture": "x86_64"}]}]
    assert flt.bundle_package_versions(apt, dnf) == {"debian-bookworm": {"jq": "1.6-2.1"}, "rocky-9": {"jq": "1.6-17.el9"}}
    assert flt.bundle_package_versions(apt) == {"debian-bookworm": {"jq": "1.6-2.1"}}
    assert flt.bundle_package_versions(None, None) == {}
