# SPDX-License-Identifier: Apache-2.0
"""container_runtime reads every package it installs with host_state (rendered role vars).

The stage installs a package only where host_state reported it missing; a package the
read left out would never be installed. The NVIDIA Container Toolkit was such a package
(found 2026-11-30): these render the role's variables as Ansible does and check that
every packages.yml include's packages are in host_state's list, for each runtime mode.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

# The Renderer of test_k8s_render.py: Ansible's Templar with role defaults, vars, inventory.
_spec = importlib.util.spec_from_file_location(
    "kubegpu_test_k8s_render", Path(__file__).resolve().parents[1] / "test_k8s_render.py")
_k8s = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_k8s)
EXAMPLE, ROLES, Renderer = _k8s.EXAMPLE, _k8s.ROLES, _k8s.Renderer

DEBIAN = Renderer(EXAMPLE, "container_runtime")._file(ROLES / "container_runtime" / "vars" / "Debian.yml")
# What each include of packages.yml installs (tasks/containerd.yml, docker.yml, nvidia_toolkit.yml).
INCLUDES = {
    "containerd": "_container_runtime_containerd_packages[container_runtime_containerd_source]",
    "docker": "_container_runtime_docker_packages[container_runtime_docker_source]",
    "toolkit": "_container_runtime_nvidia_toolkit_packages",
}


def render(expression, **overrides):
    renderer = Renderer(EXAMPLE, "container_runtime", overrides={**DEBIAN, **overrides})
    return renderer.expr("gpu1", expression)


@pytest.mark.parametrize("mode", [
    {"kubegpu_container_runtime": "containerd", "container_runtime_containerd_source": "distro"},
    {"kubegpu_container_runtime": "containerd", "container_runtime_containerd_source": "docker"},
    {"kubegpu_container_runtime": "docker", "container_runtime_docker_source": "distro"},
    {"kubegpu_container_runtime": "docker", "container_runtime_docker_source": "docker"},
])
def test_every_installed_package_is_read_by_host_state(mode):
    gpu = dict(mode, kubegpu_gpu_node=True, container_runtime_nvidia_toolkit_install=True)
    read = render("_container_runtime_state_packages", **gpu)
    runtime = "containerd" if mode["kubegpu_container_runtime"] == "containerd" else "docker"
    for include in (runtime, "toolkit"):
        installed = render(INCLUDES[include], **gpu)
        assert installed and set(installed) <= set(read), (include, installed, read)


def test_the_toolkit_is_read_only_where_it_is_installed():
    assert "nvidia-container-toolkit" not in render(
        "_container_runtime_state_packages", kubegpu_gpu_node=False, container_runtime_nvidia_toolkit_install=True)
    assert "nvidia-container-toolkit" not in render(
        "_container_runtime_state_packages", kubegpu_gpu_node=True, container_runtime_nvidia_toolkit_install=False)


def test_a_pinned_toolkit_version_is_read_too():
    versions = render("_container_runtime_state_versions", kubegpu_gpu_node=True,
                      container_runtime_nvidia_toolkit_install=True,
                      container_runtime_nvidia_toolkit_version="1.18.0-1",
                      container_runtime_containerd_version="1.7.24")
    assert versions["nvidia-container-toolkit"] == "1.18.0-1"
    assert versions["containerd"] == "1.7.24"


def test_packages_host_state_did_not_read_are_installed_and_held():
    """The fallback: a package missing from the read counts as to install (apt is idempotent)."""
    state = {"packages": {"containerd": {"installed": True, "held": True}}, "packages_missing": []}
    common = {"_container_runtime_state": state, "_container_runtime_pkg_hold": True,
              "_container_runtime_pkg_family": "apt"}
    assert render("_container_runtime_pkgs_to_install", _container_runtime_pkgs=["containerd"], **common) == []
    assert render("_container_runtime_pkgs_need", _container_runtime_pkgs=["containerd"], **common) is False
    assert render("_container_runtime_pkgs_to_install", _container_runtime_pkgs=["containerd", "other"],
                  **common) == ["other"]
    assert render("_container_runtime_pkgs_need", _container_runtime_pkgs=["containerd", "other"], **common) is True
    unheld = {"_container_runtime_state": {"packages": {"containerd": {"installed": True, "held": False}},
                                           "packages_missing": []},
              "_container_runtime_pkg_hold": True, "_container_runtime_pkg_family": "apt"}
    assert render("_container_runtime_pkgs_need", _container_runtime_pkgs=["containerd"], **unheld) is True
