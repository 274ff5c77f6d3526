# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the docker_daemon_json module and its module_utils (_docker_daemon):
the merge as pure functions, then the module on real files under tmp_path (owned by
whoever runs the tests)."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.kubegpu.cluster.tests.unit.compat import ModuleExit, patch_module_args, patch_module_exits

from ansible_collections.kubegpu.cluster.plugins.module_utils import _docker_daemon
from ansible_collections.kubegpu.cluster.plugins.modules import docker_daemon_json

# What container_runtime passes on a GPU node with its defaults (tasks/docker.yml).
GPU = dict(cgroup_driver="systemd", log_driver="json-file", log_opts={"max-size": "100m", "max-file": 3},
           live_restore=True, registry_mirrors=[],
           runtimes={"nvidia": {"path": "/usr/bin/nvidia-container-runtime", "runtimeArgs": []}},
           default_runtime="nvidia")
OURS = {"exec-opts": ["native.cgroupdriver=systemd"], "log-driver": "json-file",
        "log-opts": {"max-size": "100m", "max-file": "3"}, "live-restore": True,
        "runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime", "runtimeArgs": []}},
        "default-runtime": "nvidia"}


@pytest.mark.parametrize("text, parsed", [("", {}), ("  \n", {}), ('{"debug": true}', {"debug": True})])
def test_parse(text, parsed):
    assert _docker_daemon.parse(text) == parsed


@pytest.mark.parametrize("text, reason", [('{"debug": tru', "Expecting value"), ("[1, 2]", "not an object"),
                                          ('"text"', "not an object")])
def test_parse_refuses_what_is_not_a_json_object(text, reason):
    with pytest.raises(_docker_daemon.DaemonJsonError, match=reason):
        _docker_daemon.parse(text)


@pytest.mark.parametrize("base, other, combined", [
    ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
    ({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}}, {"a": {"x": 1, "y": 3}}),
    ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),                   # lists are replaced
    ({"a": "text"}, {"a": {"x": 1}}, {"a": {"x": 1}}),
    ({"a": {"x": 1}}, {"a": None}, {"a": None}),
])
def test_combine_is_ansibles_recursive_combine(base, other, combined):
    before = json.dumps(base)
    assert _docker_daemon.combine(base, other) == combined
    assert json.dumps(base) == before                          # the input is not changed


@pytest.mark.parametrize("have, opts", [
    ({}, ["native.cgroupdriver=systemd"]),
    ({"exec-opts": ["native.cgroupdriver=cgroupfs", "native.umask=normal"]},
     ["native.umask=normal", "native.cgroupdriver=systemd"]),
    ({"exec-opts": ["native.umask=normal", "native.cgroupdriver=systemd"]},
     ["native.umask=normal", "native.cgroupdriver=systemd"]),
    ({"exec-opts": "native.cgroupdriver=cgroupfs"}, ["native.cgroupdriver=systemd"]),
])
def test_exec_opts_keep_the_users_entries(have, opts):
    assert _docker_daemon.exec_opts(have, "systemd") == opts


def test_merge_on_an_empty_file_is_ours():
    assert _docker_daemon.merge({}, **GPU) == OURS


def test_merge_keeps_the_users_keys_and_extra_wins():
    current = {"debug": True, "log-opts": {"compress": "true", "max-size": "10m"},
               "runtimes": {"runsc": {"path": "/usr/bin/runsc"}}, "registry-mirrors": ["https://mine.example"],
               "exec-opts": ["native.cgroupdriver=cgroupfs"]}
    merged = _docker_daemon.merge(current, extra={"log-opts": {"max-file": "5"}, "debug": False}, **GPU)
    assert merged["debug"] is False
    assert merged["log-opts"] == {"compress": "true", "max-size": "100m", "max-file": "5"}
    assert set(merged["runtimes"]) == {"runsc", "nvidia"}
    assert merged["registry-mirrors"] == ["https://mine.example"]    # no mirrors of ours: the list is kept
    assert merged["exec-opts"] == ["native.cgroupdriver=systemd"]


def test_settings_of_a_cpu_node_with_mirrors():
    cpu = {**GPU, "runtimes": {}, "default_runtime": None, "registry_mirrors": ["https://mirror.example"]}
    ours = _docker_daemon.settings({}, **cpu)
    assert "runtimes" not in ours and "default-runtime" not in ours
    assert ours["registry-mirrors"] == ["https://mirror.example"]


def test_render_is_to_nice_json():
    assert _docker_daemon.render({"b": 1, "a": [1]}) == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}\n'


# --- the module ------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def module_exits(monkeypatch):
    patch_module_exits(monkeypatch)


def run(path, check_mode=False, diff=False, **options):
    args = dict(GPU, path=str(path), **options)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args):
        with pytest.raises(ModuleExit) as caught:
            docker_daemon_json.main()
    return caught.value.args[0]


def test_creates_the_file_and_its_directory_then_changes_nothing(tmp_path):
    path = tmp_path / "docker" / "daemon.json"
    check = run(path, check_mode=True, diff=True)
    assert check["changed"] is True and check["created"] is True and not path.parent.exists()
    assert check["diff"]["before"] == "" and json.loads(check["diff"]["after"]) == OURS
    result = run(path)
    assert result["changed"] is True and "backup_file" not in result
    assert json.loads(path.read_text()) == OURS and result["config"] == OURS
    assert oct(path.stat().st_mode & 0o777) == "0o644" and oct(path.parent.stat().st_mode & 0o777) == "0o755"
    again = run(path, diff=True)
    assert again["changed"] is False and again["diff"]["before"] == again["diff"]["after"]


def test_a_change_is_written_after_a_backup_and_the_rest_is_kept(tmp_path):
    path = tmp_path / "daemon.json"
    previous = '{"debug": true, "log-driver": "journald"}'
    path.write_text(previous)
    check = run(path, check_mode=True)
    assert check["changed"] is True and path.read_text() == previous
    result = run(path)
    assert result["changed"] is True
    assert open(result["backup_file"]).read() == previous
    written = json.loads(path.read_text())
    assert written["debug"] is True and written["log-driver"] == "json-file"
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("daemon.json")] == []   # no temp file


def test_the_same_object_in_another_layout_is_left_alone(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(OURS))                          # one line, unsorted
    assert run(path)["changed"] is False
    assert path.read_text() == json.dumps(OURS)


def test_the_mode_is_put_right(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(_docker_daemon.render(OURS))
    path.chmod(0o600)
    assert run(path, mode="0644")["changed"] is True
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_a_symbolic_link_is_kept_and_its_target_written(tmp_path):
    target = tmp_path / "managed.json"
    target.write_text("{}")
    link = tmp_path / "daemon.json"
    link.symlink_to(target)
    result = run(link)
    assert result["changed"] is True and result["target"] == str(target)
    assert link.is_symlink() and json.loads(target.read_text()) == OURS


@pytest.mark.parametrize("text", ['{"debug": tru', "[]"])
def test_what_is_not_a_json_object_is_refused_and_kept(tmp_path, text):
    path = tmp_path / "daemon.json"
    path.write_text(text)
    result = run(path)
    assert result["_failed"]
    assert result["msg"].startswith("%s is not a valid JSON object (" % path)
    assert "It was NOT changed. Fix: repair it by hand (`python3 -m json.tool %s`" % path in result["msg"]
    assert path.read_text() == text and os.listdir(tmp_path) == ["daemon.json"]
