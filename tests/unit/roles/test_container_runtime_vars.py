# SPDX-License-Identifier: Apache-2.0
"""container_runtime's variables, rendered as Ansible does (the Renderer of
test_k8s_render.py): what the stage hands to the modules that read, compare and act.

- the files kubegpu.cluster.host_files writes (crictl, one hosts.toml per registry) and
  their directories, the text the role's templates gave before;
- packages.yml names the pinned packages with their version (apt name=version, dnf
  name-version) and leaves the comparison to the package module;
- nothing in the role guesses again what a module would do: no host_state filter, no
  expression over 300 characters (scripts/yaml_metrics.py counts them);
- docker.yml's daemon.json task (real ansible-playbook on localhost): the role's
  variables reach kubegpu.cluster.docker_daemon_json as they did the Jinja merge before.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


# The Renderer of test_k8s_render.py: Ansible's Templar with role defaults, vars, inventory.
_spec = importlib.util.spec_from_file_location(
    "kubegpu_test_k8s_render", Path(__file__).resolve().parents[1] / "test_k8s_render.py")
_k8s = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_k8s)
EXAMPLE, ROLES, Renderer = _k8s.EXAMPLE, _k8s.ROLES, _k8s.Renderer
ROLE = ROLES / "container_runtime"
_metrics_spec = importlib.util.spec_from_file_location(
    "kubegpu_yaml_metrics", ROLES.parent / "scripts" / "yaml_metrics.py")
metrics = importlib.util.module_from_spec(_metrics_spec)
_metrics_spec.loader.exec_module(metrics)

DEBIAN = Renderer(EXAMPLE, "container_runtime")._file(ROLE / "vars" / "Debian.yml")
REDHAT = Renderer(EXAMPLE, "container_runtime")._file(ROLE / "vars" / "RedHat.yml")
MIRRORS = [{"registry": "docker.io", "mirrors": [{"host": "https://mirror.gcr.io"}]},
           {"registry": "quay.io", "server": "https://quay.io"}]


def renderer(**overrides):
    # role_path as Ansible sets it for the role.
    return Renderer(EXAMPLE, "container_runtime", overrides={**DEBIAN, "role_path": str(ROLE), **overrides})


CRICTL = """# Ansible managed
runtime-endpoint: unix:///run/containerd/containerd.sock
image-endpoint: unix:///run/containerd/containerd.sock
timeout: 10
debug: false
pull-image-on-create: false
"""
HOSTS_TOML_HEADER = ("# Ansible managed\n# Registry host configuration for %s (containerd certs.d layout:\n"
                     "# https://github.com/containerd/containerd/blob/main/docs/hosts.md).\n")


def test_host_files_are_crictl_and_one_hosts_toml_per_registry():
    # The text the role's templates gave before (templates/crictl.yaml.j2, hosts.toml.j2), byte
    # for byte: hosts they wrote are not changed again (plugin_utils/_file_contents.py).
    render = renderer(container_runtime_registry_mirrors=MIRRORS)
    files = render.expr("gpu1", "_container_runtime_host_files")
    assert files == [
        {"path": "/etc/crictl.yaml", "content": CRICTL},
        {"path": "/etc/containerd/certs.d/docker.io/hosts.toml",
         "content": HOSTS_TOML_HEADER % "docker.io" + '\n[host."https://mirror.gcr.io"]\n  capabilities = ["pull", "resolve"]\n'},
        {"path": "/etc/containerd/certs.d/quay.io/hosts.toml",
         "content": HOSTS_TOML_HEADER % "quay.io" + 'server = "https://quay.io"\n'}]
    # an inventory's ansible_managed is the header, as it was for the template lookup
    render = renderer(container_runtime_registry_mirrors=MIRRORS[:1], ansible_managed="Managed by the platform team")
    assert [f["content"].splitlines()[0] for f in render.expr("gpu1", "_container_runtime_host_files")] == \
        ["# Managed by the platform team"] * 2
    assert render.expr("gpu1", "_container_runtime_config_dirs") == [
        "/etc/containerd/conf.d", "/etc/containerd/certs.d", "/etc/containerd/certs.d/docker.io"]
    render = renderer(container_runtime_registry_mirrors=MIRRORS)
    assert render.expr("gpu1", "_container_runtime_config_dirs") == [
        "/etc/containerd/conf.d", "/etc/containerd/certs.d",
        "/etc/containerd/certs.d/docker.io", "/etc/containerd/certs.d/quay.io"]


def test_no_crictl_and_no_registry_directory_write_nothing_of_theirs():
    render = renderer(container_runtime_registry_mirrors=MIRRORS, container_runtime_crictl_config=False,
                      container_runtime_registry_config_path="")
    assert render.expr("gpu1", "_container_runtime_host_files") == []
    assert render.expr("gpu1", "_container_runtime_config_dirs") == ["/etc/containerd/conf.d"]


def _package_names(family, pkgs, versioned, version):
    # The task's own vars and its kubegpu.cluster.packages options, as Ansible loads them
    # (templates trusted).
    task = renderer()._file(ROLE / "tasks" / "packages.yml")[0]
    options = task["kubegpu.cluster.packages"]
    render = renderer(**(DEBIAN if family == "apt" else REDHAT), **dict(task["vars"]),
                      _names=options["names"], _hold=options["hold"],
                      _container_runtime_pkgs=pkgs, _container_runtime_pkg_versioned=versioned,
                      _container_runtime_pkg_version=version, _container_runtime_pkg_hold=True)
    return render.expr("gpu1", "_names"), render.expr("gpu1", "_hold")


@pytest.mark.parametrize("family, version, names", [
    ("apt", "", ["docker-ce", "docker-ce-cli", "containerd.io"]),
    ("apt", "5:27.5.1*", ["docker-ce=5:27.5.1*", "docker-ce-cli=5:27.5.1*", "containerd.io"]),
    ("dnf", "27.5.1", ["docker-ce-27.5.1", "docker-ce-cli-27.5.1", "containerd.io"]),
])
def test_packages_are_named_with_their_pinned_version(family, version, names):
    pkgs = ["docker-ce", "docker-ce-cli", "containerd.io"]
    assert _package_names(family, pkgs, ["docker.io", "docker-ce", "docker-ce-cli"], version) == (names, pkgs)


def test_the_role_leaves_the_comparisons_to_the_modules():
    lengths = {}
    for path in ROLE.rglob("*.yml"):
        text = path.read_text(encoding="utf-8")
        for name in ("host_file_differs", "containerd_config_pending", "_pkgs_need", "_state_packages"):
            assert name not in text, (path, name)
        lengths[str(path.relative_to(ROLE))] = [len(e) for e in metrics.expressions(yaml.load(text, Loader=metrics._Loader))]
    assert len(lengths["tasks/containerd.yml"]) > 20
    assert {name: max(found) for name, found in lengths.items() if found and max(found) > 300} == {}


def _play_on_localhost(tmp_path, play, variables, **env):
    """ansible-playbook of `play` on localhost (connection local) with `variables` as -e."""
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False), encoding="utf-8")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROLES.parent / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(ROLES.parent / ".collections"), ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_NOCOLOR="1", **env)
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", json.dumps(variables), str(tmp_path / "play.yml")],
                          capture_output=True, text=True, check=False, cwd=str(tmp_path), env=env)


def _merge_daemon_json(tmp_path, **extra_vars):
    """docker.yml's daemon.json block on localhost (owner root left out), role defaults as vars."""
    tasks = yaml.safe_load((ROLE / "tasks" / "docker.yml").read_text(encoding="utf-8"))
    block = next(t for t in tasks if "kubegpu.cluster.docker_daemon_json" in str(t.get("block")))
    for task in block["block"]:
        for key in ("owner", "group"):
            task["kubegpu.cluster.docker_daemon_json"].pop(key)
    play = [{"name": "daemon.json", "hosts": "all", "gather_facts": False,
             "vars_files": [str(ROLE / "defaults" / "main.yml")], "tasks": [block],
             "handlers": [{"name": "Restart docker", "listen": "restart docker",
                           "ansible.builtin.debug": {"msg": "docker restarted"}}]}]
    variables = {"ansible_python_interpreter": sys.executable, "kubegpu_gpu_node": True,
                 "container_runtime_docker_daemon_json_path": str(tmp_path / "docker" / "daemon.json"), **extra_vars}
    done = _play_on_localhost(tmp_path, play, variables)
    return done.returncode, done.stdout


def test_docker_daemon_json_is_merged_once_and_the_restart_notified(tmp_path):
    path = tmp_path / "docker" / "daemon.json"
    path.parent.mkdir()
    path.write_text('{"debug": true, "exec-opts": ["native.cgroupdriver=cgroupfs", "native.umask=normal"]}')
    rc, out = _merge_daemon_json(tmp_path, container_runtime_docker_registry_mirrors=["https://mirror.example"],
                                 container_runtime_docker_daemon_extra={"log-opts": {"max-file": "5"}})
    assert rc == 0 and "docker restarted" in out, out[-3000:]
    assert json.loads(path.read_text()) == {
        "debug": True, "exec-opts": ["native.umask=normal", "native.cgroupdriver=systemd"],
        "log-driver": "json-file", "log-opts": {"max-size": "100m", "max-file": "5"}, "live-restore": True,
        "registry-mirrors": ["https://mirror.example"], "default-runtime": "nvidia",
        "runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime", "runtimeArgs": []}}}
    assert len(list(path.parent.glob("daemon.json.*~"))) == 1                # the backup
    rc, out = _merge_daemon_json(tmp_path, container_runtime_docker_registry_mirrors=["https://mirror.example"],
                                 container_runtime_docker_daemon_extra={"log-opts": {"max-file": "5"}})
    assert rc == 0 and "changed=0" in out and "docker restarted" not in out, out[-3000:]


def test_docker_daemon_json_of_a_gpu_node_that_keeps_runc_the_default(tmp_path):
    rc, out = _merge_daemon_json(tmp_path, container_runtime_nvidia_default=False)
    assert rc == 0, out[-3000:]
    written = json.loads((tmp_path / "docker" / "daemon.json").read_text())
    assert "default-runtime" not in written and "nvidia" in written["runtimes"]
    rc, out = _merge_daemon_json(tmp_path, kubegpu_gpu_node=False, container_runtime_docker_daemon_json_path=str(
        tmp_path / "cpu.json"))
    assert rc == 0, out[-3000:]
    assert "runtimes" not in json.loads((tmp_path / "cpu.json").read_text())


def test_a_daemon_json_that_is_not_an_object_stops_the_host_with_the_fix(tmp_path):
    path = tmp_path / "docker" / "daemon.json"
    path.parent.mkdir()
    path.write_text("[1, 2]\n")
    rc, out = _merge_daemon_json(tmp_path)
    message = " ".join(out.split())
    assert rc != 0
    assert "localhost: %s is not a valid JSON object (daemon.json is JSON but not an object)" % path in message
    assert "re-run the container_runtime stage" in message and path.read_text() == "[1, 2]\n"


def _run_nvidia_cdi(tmp_path, **extra_vars):
    """tasks/nvidia_cdi.yml on localhost with role defaults and vars, paths under tmp_path;
    the systemd tasks left out (no systemd here): what the one reading decides is shown."""
    tasks = yaml.safe_load((ROLE / "tasks" / "nvidia_cdi.yml").read_text(encoding="utf-8"))
    tasks = [t for t in tasks if "ansible.builtin.systemd_service" not in t]
    tasks.append({"name": "Show what the reading found", "ansible.builtin.debug": {
        "msg": "PATHS {{ _container_runtime_nvidia_paths.paths | dict2items | map(attribute='key') | list | sort }}"}})
    play = [{"name": "cdi", "hosts": "all", "gather_facts": False,
             "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")], "tasks": tasks}]
    variables = {"ansible_python_interpreter": sys.executable,
                 "container_runtime_nvidia_runtime_binary": str(tmp_path / "nvidia-container-runtime"),
                 "_container_runtime_nvidia_ctk": str(tmp_path / "nvidia-ctk"),
                 "_container_runtime_unit_dir": str(tmp_path) + "/",
                 "container_runtime_nvidia_cdi_spec_path": str(tmp_path / "nvidia.yaml"), **extra_vars}
    done = _play_on_localhost(tmp_path, play, variables, ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    return done.returncode, done.stdout


def test_the_nvidia_runtime_and_cdi_paths_are_read_once(tmp_path):
    # Without CDI: only the runtime's program is read, and its absence is reported.
    rc, out = _run_nvidia_cdi(tmp_path, container_runtime_nvidia_cdi=False)
    assert rc == 0, out[-3000:]
    assert "PATHS %s" % json.dumps([str(tmp_path / "nvidia-container-runtime")]).replace('"', "'") in out, out[-3000:]
    assert "but that program is absent on this" in out
    assert "Generate the NVIDIA CDI spec] *" in out and not (tmp_path / "nvidia.yaml").exists()

    # With CDI and the toolkit there: nvidia-ctk generates the spec (a stand-in that writes it).
    runtime = tmp_path / "nvidia-container-runtime"
    runtime.write_text("#!/bin/sh\n")
    ctk = tmp_path / "nvidia-ctk"
    ctk.write_text("#!/bin/sh\nfor a; do case $a in --output=*) echo cdiVersion > ${a#--output=};; esac; done\n")
    ctk.chmod(0o755)
    rc, out = _run_nvidia_cdi(tmp_path, container_runtime_nvidia_cdi=True)
    assert rc == 0, out[-3000:]
    read = sorted([str(runtime), str(ctk), str(tmp_path / "nvidia-cdi-refresh.path"),
                   str(tmp_path / "nvidia-cdi-refresh.service")])
    assert "PATHS %s" % json.dumps(read).replace('"', "'") in out, out[-3000:]
    assert "but that program is absent" not in out
    assert (tmp_path / "nvidia.yaml").read_text() == "cdiVersion\n"


def _check_source(tmp_path, facts, **extra_vars):
    """tasks/main.yml's first two tasks (the OS vars file, the source check) on localhost with
    the OS facts given, role defaults as vars."""
    tasks = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text(encoding="utf-8"))[:2]
    play = [{"name": "source", "hosts": "all", "gather_facts": False,
             "vars_files": [str(ROLES / "kubegpu" / "defaults" / "main.yml"), str(ROLE / "defaults" / "main.yml")],
             "tasks": tasks}]
    variables = {"ansible_python_interpreter": sys.executable, "role_path": str(ROLE), "ansible_facts": facts,
                 **extra_vars}
    # JSON results: the message on one line as written (the YAML format folds long strings
    # and doubles quotes, differently from one ansible-core to another).
    done = _play_on_localhost(tmp_path, play, variables, ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    return done.returncode, done.stdout + done.stderr


def test_the_stage_refuses_a_source_without_packages_in_preflights_words(tmp_path):
    """A stage run alone (no preflight) refuses Rocky's default containerd source before it installs
    anything, with the record preflight gives (_preflight_rules.runtime_source_problems)."""
    rocky = {"distribution": "Rocky", "distribution_version": "9.4", "distribution_major_version": "9",
             "os_family": "RedHat"}
    rc, out = _check_source(tmp_path, rocky)
    assert rc != 0, out[-3000:]
    assert ("localhost: variable container_runtime_containerd_source: 'distro': Rocky 9.4 has no containerd package"
            " from that source (sources with one here: docker, release); fix: container_runtime_containerd_source:"
            " docker (Docker's containerd.io) or release (containerd's release tarball) for this host") in out, out[-3000:]
    rc, out = _check_source(tmp_path, rocky, container_runtime_containerd_source="docker")
    assert rc == 0, out[-3000:]
    debian = {"distribution": "Debian", "distribution_version": "12.7", "distribution_major_version": "12",
              "os_family": "Debian"}
    rc, out = _check_source(tmp_path, debian)
    assert rc == 0, out[-3000:]
