# SPDX-License-Identifier: Apache-2.0
"""Stage 4 (container_runtime) on every Molecule test host, by testinfra.

What containerd itself says counts, not what the role wrote: `containerd config dump`
(the merged, effective config) must parse and show SystemdCgroup=true for runc, the
pinned sandbox image, the registry hosts directory and, on GPU nodes (hosts in the
`gpu` group), the `nvidia` runtime; `ctr plugins ls` must show the CRI plugin `ok`.
"""
from __future__ import annotations

import tomllib

import pytest

SOCKET = "/run/containerd/containerd.sock"
NVIDIA_BINARY = "/usr/bin/nvidia-container-runtime"


@pytest.fixture(scope="module")
def hostvars(host):
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def is_gpu_node(hostvars):
    return "gpu" in hostvars.get("group_names", [])


@pytest.fixture(scope="module")
def dump(host):
    """containerd's effective configuration, parsed."""
    result = host.run("containerd config dump")
    assert result.rc == 0, f"containerd config dump failed: {result.stderr}"
    return tomllib.loads(result.stdout)


def _cri(dump):
    """(runtime CRI table, images CRI table) for config v2 (1.x) or v3+ (2.x)."""
    plugins = dump["plugins"]
    if "io.containerd.cri.v1.runtime" in plugins:
        return plugins["io.containerd.cri.v1.runtime"], plugins["io.containerd.cri.v1.images"]
    cri = plugins["io.containerd.grpc.v1.cri"]
    return cri, cri


def _journal(host, unit):
    return host.run(f"journalctl -u {unit} --no-pager -n 50").stdout


def test_containerd_is_running_and_enabled(host):
    service = host.service("containerd")
    assert service.is_running, _journal(host, "containerd")
    assert service.is_enabled


def test_containerd_answers_with_cri_plugin_loaded(host):
    result = host.run(f"ctr --address {SOCKET} plugins ls")
    assert result.rc == 0, result.stderr
    cri = [line.split() for line in result.stdout.splitlines()
           if line.split()[:2] == ["io.containerd.grpc.v1", "cri"]]
    assert cri, result.stdout
    assert cri[0][-1] == "ok", (result.stdout, _journal(host, "containerd"))


def test_runc_uses_systemd_cgroups(dump):
    runtime, _unused = _cri(dump)
    runc = runtime["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is True


def test_every_runc_shim_runtime_uses_systemd_cgroups(dump):
    runtime, _unused = _cri(dump)
    for name, spec in runtime["containerd"]["runtimes"].items():
        if spec.get("runtime_type") == "io.containerd.runc.v2":
            assert spec.get("options", {}).get("SystemdCgroup") is True, name


def test_sandbox_image_is_pinned(dump, hostvars):
    runtime, images = _cri(dump)
    wanted = hostvars.get("container_runtime_sandbox_image", "registry.k8s.io/pause:3.10.1")
    if "pinned_images" in images:
        assert images["pinned_images"]["sandbox"] == wanted
    else:
        assert runtime["sandbox_image"] == wanted


def test_registry_hosts_directory(dump, host):
    _unused, images = _cri(dump)
    assert images["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert host.file("/etc/containerd/certs.d").is_directory


def test_registry_mirrors_have_hosts_toml(host, hostvars):
    mirrors = hostvars.get("container_runtime_registry_mirrors") or []
    if not mirrors:
        pytest.skip("the inventory sets no container_runtime_registry_mirrors")
    for entry in mirrors:
        hosts_toml = host.file(f"/etc/containerd/certs.d/{entry['registry']}/hosts.toml")
        assert hosts_toml.is_file
        parsed = tomllib.loads(hosts_toml.content_string)
        for mirror in entry.get("mirrors", []):
            assert mirror["host"] in parsed["host"], parsed


def test_nvidia_runtime_on_gpu_nodes_only(dump, is_gpu_node, hostvars):
    runtime, _unused = _cri(dump)
    runtimes = runtime["containerd"]["runtimes"]
    if not is_gpu_node:
        assert "nvidia" not in runtimes
        assert runtime["containerd"]["default_runtime_name"] == "runc"
        return
    nvidia = runtimes["nvidia"]
    assert nvidia["runtime_type"] == "io.containerd.runc.v2"
    assert nvidia["options"]["BinaryName"] == NVIDIA_BINARY
    assert nvidia["options"]["SystemdCgroup"] is True
    if hostvars.get("container_runtime_nvidia_default", True):
        assert runtime["containerd"]["default_runtime_name"] == "nvidia"


def test_config_imports_drop_ins(host):
    config = tomllib.loads(host.file("/etc/containerd/config.toml").content_string)
    assert "/etc/containerd/conf.d/*.toml" in config["imports"]
    assert host.file("/etc/containerd/conf.d").is_directory


def test_crictl_points_at_containerd(host):
    crictl = host.file("/etc/crictl.yaml")
    assert crictl.is_file
    assert f"runtime-endpoint: unix://{SOCKET}" in crictl.content_string


def test_containerd_package_is_held(host):
    if host.system_info.distribution not in ("debian", "ubuntu"):
        pytest.skip("dpkg holds only")
    selections = host.check_output("dpkg --get-selections containerd")
    assert selections.split() == ["containerd", "hold"]
