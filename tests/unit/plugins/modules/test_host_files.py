# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the host_files module (module_utils/_host_files): real files under
tmp_path, owned by whoever runs the tests. On systemd test hosts it runs in os_prereqs
(tests/integration/test_drift.py: the nouveau blacklist's mode changed, the apt proxy file
left behind, both put right) and in every Molecule scenario."""

from __future__ import annotations

import grp
import os
import pwd
from unittest import mock

import pytest

from ansible.module_utils import basic
from ansible_collections.kubegpu.cluster.tests.unit.compat import ModuleExit, patch_module_args, patch_module_exits

from ansible_collections.kubegpu.cluster.plugins.module_utils import _host_files
from ansible_collections.kubegpu.cluster.plugins.modules import host_files

OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


Exit = ModuleExit


@pytest.fixture(autouse=True)
def module_exits(monkeypatch):
    patch_module_exits(monkeypatch)


def run(files=(), lines=(), check_mode=False, diff=False, run_command=None, directories=()):
    args = {"directories": [dict(owner=OWNER, group=GROUP, **d) for d in directories],
            "files": [dict(owner=OWNER, group=GROUP, **f) for f in files],
            "lines": [dict(owner=OWNER, group=GROUP, **entry) for entry in lines]}
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args):
        with mock.patch.object(basic.AnsibleModule, "run_command",
                               run_command or (lambda self, *a, **k: (0, "", ""))):
            with pytest.raises(Exit) as caught:
                host_files.main()
    return caught.value.args[0]


def mode(path):
    return oct(path.stat().st_mode & 0o777)


def test_line_text():
    assert _host_files.line_text(b"a\n", "b", "present") == "a\nb\n"
    assert _host_files.line_text(b"a", "b", "present") == "a\nb\n"
    assert _host_files.line_text(b"a\nb\n", "b", "present") is None
    assert _host_files.line_text(b"b\na\nb\n", "b", "absent") == "a\n"
    assert _host_files.line_text(b"a\n", "b", "absent") is None
    assert _host_files.line_text(None, "b", "present") == "b\n"


def test_writes_creates_dirs_then_changes_nothing(tmp_path):
    path = tmp_path / "modprobe.d" / "blacklist.conf"
    result = run(files=[{"path": str(path), "content": "blacklist nouveau\n"}], diff=True)
    assert result["changed"] is True and result["changed_paths"] == [str(path)]
    assert path.read_text() == "blacklist nouveau\n" and mode(path) == "0o644"
    assert result["diff"] == [{"before_header": str(path), "after_header": str(path), "before": "",
                               "after": "blacklist nouveau\n"}]
    again = run(files=[{"path": str(path), "content": "blacklist nouveau\n"}])
    assert again["changed"] is False and again["changed_paths"] == []


def test_mode_drift_is_put_right_without_rewriting(tmp_path):
    path = tmp_path / "f.conf"
    path.write_text("x\n")
    path.chmod(0o600)
    inode = path.stat().st_ino
    result = run(files=[{"path": str(path), "content": "x\n"}])
    assert result["changed"] is True and mode(path) == "0o644" and path.stat().st_ino == inode


def test_absent_removes_with_a_backup_and_check_mode_changes_nothing(tmp_path):
    path = tmp_path / "90proxy"
    path.write_text('Acquire::http::Proxy "http://stale:3128";\n')
    check = run(files=[{"path": str(path), "state": "absent"}], check_mode=True)
    assert check["changed"] is True and path.exists()
    result = run(files=[{"path": str(path), "state": "absent", "backup": True}])
    assert result["changed"] is True and not path.exists()
    [backup] = result["backup_files"]
    assert "stale" in open(backup).read()
    assert run(files=[{"path": str(path), "state": "absent"}])["changed"] is False


def test_lines_added_and_removed_keep_the_other_lines(tmp_path):
    marker = tmp_path / "kubegpu" / "reboot-required"
    line = "os_prereqs: nouveau is loaded"
    assert run(lines=[{"path": str(marker), "line": line, "state": "absent"}])["changed"] is False
    assert not marker.exists()                     # absent from a missing file: nothing created
    assert run(lines=[{"path": str(marker), "line": line}])["changed"] is True
    marker.write_text("nvidia_driver: another reason\n" + line + "\n")
    assert run(lines=[{"path": str(marker), "line": line}])["changed"] is False
    assert run(lines=[{"path": str(marker), "line": line, "state": "absent"}])["changed"] is True
    assert marker.read_text() == "nvidia_driver: another reason\n"


def test_check_mode_and_diff_of_a_line(tmp_path):
    marker = tmp_path / "m"
    marker.write_text("a\n")
    result = run(lines=[{"path": str(marker), "line": "b"}], check_mode=True, diff=True)
    assert result["changed"] is True and marker.read_text() == "a\n"
    assert result["diff"][0]["after"] == "a\nb\n"


def test_validate_refuses_bad_content_and_keeps_the_file(tmp_path):
    path = tmp_path / "proxy.conf"
    path.write_text("old\n")
    calls = []

    def run_command(self, args, **kwargs):
        calls.append(args)
        return 1, "", "E: Syntax error"

    result = run(files=[{"path": str(path), "content": "bad", "validate": "apt-config -c %s dump"}],
                 run_command=run_command)
    assert result["_failed"] and "failed validation (apt-config -c %s dump, rc=1): E: Syntax error" in result["msg"]
    assert path.read_text() == "old\n"
    assert calls[0].startswith("apt-config -c ") and calls[0].endswith(" dump")
    assert [p.name for p in tmp_path.iterdir()] == ["proxy.conf"]     # the temporary file is gone


def test_no_diff_keeps_a_secret_out_of_the_diff(tmp_path):
    path = tmp_path / "proxy.conf"
    result = run(files=[{"path": str(path), "content": "http://user:s3cret@proxy\n", "no_diff": True}], diff=True)
    assert result["changed"] is True and result["diff"] == []


def test_directories_created_then_left_alone_and_their_mode_put_right(tmp_path):
    certs = tmp_path / "containerd" / "certs.d"
    registry = certs / "docker.io"
    dirs = [{"path": str(tmp_path / "containerd" / "conf.d")}, {"path": str(certs)}, {"path": str(registry)}]
    hosts = {"path": str(registry / "hosts.toml"), "content": "server = \"https://registry-1.docker.io\"\n"}
    check = run(directories=dirs, files=[hosts], check_mode=True, diff=True)
    assert check["changed"] is True and not (tmp_path / "containerd").exists()
    uid, gid = os.getuid(), os.getgid()
    assert check["diff"][0] == {"before_header": dirs[0]["path"], "after_header": dirs[0]["path"],
                                "before": "", "after": "directory 0755 %d:%d\n" % (uid, gid)}
    result = run(directories=dirs, files=[hosts])
    assert result["changed_paths"] == [d["path"] for d in dirs] + [hosts["path"]]
    assert [mode(tmp_path / "containerd" / name) for name in ("conf.d", "certs.d")] == ["0o755", "0o755"]
    assert mode(registry) == "0o755" and (registry / "hosts.toml").read_text().startswith("server")
    assert run(directories=dirs, files=[hosts])["changed"] is False

    registry.chmod(0o700)
    drift = run(directories=dirs, files=[hosts], diff=True)
    assert drift["changed_paths"] == [str(registry)] and mode(registry) == "0o755"
    assert drift["diff"][0]["before"] == "directory 0700 %d:%d\n" % (uid, gid)


def test_a_file_where_a_directory_belongs_is_refused_and_kept(tmp_path):
    path = tmp_path / "conf.d"
    path.write_text("not a directory\n")
    result = run(directories=[{"path": str(path)}])
    assert result["_failed"] and "%s exists and is not a directory" % path in result["msg"]
    assert path.read_text() == "not a directory\n"
