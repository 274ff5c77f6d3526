# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the containerd_config module (I/O, check mode, backup, diff)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path
from unittest import mock

import pytest
import tomlkit

from ansible.module_utils import basic
from ansible_collections.kubegpu.cluster.tests.unit.compat import patch_module_args

from ansible_collections.kubegpu.cluster.plugins.modules import containerd_config

FIXTURES = Path(__file__).resolve().parents[3] / 'fixtures' / 'containerd'
# Debian's containerd 1.6/1.7/2.1, fetched by scripts/fetch-containerd.sh (optional).
REAL_BINS = sorted((Path(__file__).resolve().parents[4] / '.cache' / 'containerd-bins').glob('*/containerd'))
NVIDIA_BIN = '/usr/bin/nvidia-container-runtime'
V2_RUNTIMES = ('plugins', 'io.containerd.grpc.v1.cri', 'containerd', 'runtimes')
V3_RUNTIMES = ('plugins', 'io.containerd.cri.v1.runtime', 'containerd', 'runtimes')
VERSION_21 = 'containerd github.com/containerd/containerd/v2 2.1.9+unknown \n'
VERSION_17 = 'containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1\n'


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


def exit_json(self, **kwargs):
    kwargs.setdefault('changed', False)
    raise ExitJson(kwargs)


def fail_json(self, msg, **kwargs):
    kwargs['msg'] = msg
    raise FailJson(kwargs)


@pytest.fixture(autouse=True)
def module_exits(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)


class RunCommand:
    """Stand-in for AnsibleModule.run_command: a list of results, records calls."""

    def __init__(self, *results):
        self.results = list(results)
        self.calls = []

    def __call__(self, args, **kwargs):
        self.calls.append(args)
        if not self.results:
            raise AssertionError('unexpected command %r' % (args,))
        return self.results.pop(0)


def run(args, run_command=None, check_mode=False, diff=False):
    args = dict(args)
    if check_mode:
        args['_ansible_check_mode'] = True
    if diff:
        args['_ansible_diff'] = True
    run_command = run_command or RunCommand()
    with patch_module_args(args):
        with mock.patch.object(basic.AnsibleModule, 'run_command', run_command):
            with pytest.raises((ExitJson, FailJson)) as caught:
                containerd_config.main()
    result = caught.value.args[0]
    result['_failed'] = caught.type is FailJson
    return result


def run_real(args):
    """The module with AnsibleModule's own run_command: containerd really runs."""
    with patch_module_args(dict(args)):
        with pytest.raises((ExitJson, FailJson)) as caught:
            containerd_config.main()
    result = caught.value.args[0]
    result['_failed'] = caught.type is FailJson
    return result


def gpu_args(path, **extra):
    args = dict(
        path=str(path),
        runtimes=[dict(name='nvidia', binary_name=NVIDIA_BIN)],
        default_runtime='nvidia',
        cdi=True,
    )
    args.update(extra)
    return args


def copy_fixture(tmp_path, name, mode=0o644):
    path = tmp_path / 'config.toml'
    path.write_text((FIXTURES / name).read_text())
    path.chmod(mode)
    return path


def others(tmp_path, path):
    return sorted(p.name for p in tmp_path.iterdir() if p.name != path.name)


# --------------------------------------------------------------------------

def test_missing_file_starts_from_containerd_config_default(tmp_path):
    path = tmp_path / 'etc' / 'containerd' / 'config.toml'
    default = (FIXTURES / 'default-2.1.9.toml').read_text()
    runner = RunCommand((0, default, ''))
    result = run(gpu_args(path), runner)
    assert not result['_failed'], result
    assert runner.calls == [['containerd', 'config', 'default']]
    assert result['changed'] and result['created']
    assert result['version'] == 3
    assert result['runtimes'] == ['runc', 'nvidia']
    assert 'backup_file' not in result
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    data = tomlkit.parse(path.read_text()).unwrap()
    runtimes = data
    for key in V3_RUNTIMES:
        runtimes = runtimes[key]
    assert runtimes['runc']['options']['SystemdCgroup'] is True
    assert runtimes['nvidia']['options']['SystemdCgroup'] is True
    # everything else of the defaults is there
    assert data['plugins']['io.containerd.gc.v1.scheduler']['pause_threshold'] == 0.02


def test_missing_file_with_custom_binary(tmp_path):
    path = tmp_path / 'config.toml'
    runner = RunCommand((0, (FIXTURES / 'default-1.7.24.toml').read_text(), ''))
    result = run(gpu_args(path, containerd_bin='/opt/bin/containerd'), runner)
    assert runner.calls == [['/opt/bin/containerd', 'config', 'default']]
    assert result['version'] == 2 and result['changed']


def test_missing_file_and_no_containerd_fails(tmp_path):
    path = tmp_path / 'config.toml'
    runner = RunCommand((127, '', 'containerd: not found'))
    result = run(gpu_args(path), runner)
    assert result['_failed']
    assert 'does not exist and `containerd config default` failed' in result['msg']
    assert not path.exists()


def test_missing_file_check_mode_writes_nothing(tmp_path):
    path = tmp_path / 'config.toml'
    runner = RunCommand((0, (FIXTURES / 'default-1.7.24.toml').read_text(), ''))
    result = run(gpu_args(path), runner, check_mode=True, diff=True)
    assert result['changed'] and result['created']
    assert result['diff']['before'] == ''
    assert 'nvidia-container-runtime' in result['diff']['after']
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('name', [
    'default-1.6.20.toml', 'default-1.7.24.toml', 'default-2.1.9.toml',
    'debian-package-config.toml', 'nvidia-ctk-configured-1.7.24.toml',
    'nvidia-ctk-minimal.toml', 'user-edited-v2.toml', 'toolkit-1.18-main-2.1.9.toml',
])
def test_change_then_no_change(tmp_path, name):
    path = copy_fixture(tmp_path, name)
    original = path.read_text()
    first = run(gpu_args(path), diff=True)
    assert not first['_failed'], first
    assert first['changed'] and not first['created']
    assert first['diff']['before'] == original
    assert first['diff']['after'] == path.read_text()
    assert first['diff']['before_header'] == str(path)
    backup = first['backup_file']
    assert Path(backup).read_text() == original
    content = path.read_bytes()

    second = run(gpu_args(path), diff=True)
    assert not second['changed']
    assert 'backup_file' not in second
    assert path.read_bytes() == content
    assert second['diff']['before'] == second['diff']['after']
    assert others(tmp_path, path) == [Path(backup).name]


def test_check_mode_writes_nothing(tmp_path):
    path = copy_fixture(tmp_path, 'default-1.7.24.toml')
    before = path.read_bytes()
    result = run(gpu_args(path), check_mode=True, diff=True)
    assert result['changed']
    assert 'backup_file' not in result
    assert path.read_bytes() == before
    assert others(tmp_path, path) == []
    assert 'SystemdCgroup = true' in result['diff']['after']


def test_no_diff_unless_asked(tmp_path):
    path = copy_fixture(tmp_path, 'default-1.7.24.toml')
    assert 'diff' not in run(gpu_args(path))


def test_backup_false(tmp_path):
    path = copy_fixture(tmp_path, 'default-1.7.24.toml')
    result = run(gpu_args(path, backup=False))
    assert result['changed'] and 'backup_file' not in result
    assert others(tmp_path, path) == []


def test_existing_mode_is_kept_and_mode_option_applies(tmp_path):
    path = copy_fixture(tmp_path, 'default-1.7.24.toml', mode=0o600)
    run(gpu_args(path, backup=False))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    result = run(gpu_args(path, backup=False, mode='0644'))
    assert result['changed']  # only the mode changed
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_corrupt_file_is_refused_and_kept(tmp_path):
    path = copy_fixture(tmp_path, 'corrupt.toml')
    before = path.read_bytes()
    result = run(gpu_args(path))
    assert result['_failed']
    assert 'not valid TOML, refusing to edit it' in result['msg']
    assert path.read_bytes() == before
    assert others(tmp_path, path) == []


def test_validate_runs_on_the_temporary_file(tmp_path):
    path = copy_fixture(tmp_path, 'default-1.7.24.toml')
    seen = {}

    def validate(self, args, **kwargs):
        tmp = args.split()[2]
        seen['args'] = args
        seen['text'] = Path(tmp).read_text()
        return 0, '', ''

    result = run(gpu_args(path, validate='containerd --config %s config dump'), validate)
    assert result['changed']
    assert seen['args'].startswith('containerd --config %s/.config.toml.' % tmp_path)
    assert seen['args'].endswith(' config dump')
    assert seen['text'] == path.read_text()
    assert others(tmp_path, path) == [Path(result['backup_file']).name]


def test_validate_failure_keeps_the_file(tmp_path):
    path = copy_fixture(tmp_path, 'default-1.7.24.toml')
    before = path.read_bytes()
    runner = RunCommand((1, '', 'containerd: failed to load TOML'))
    result = run(gpu_args(path, validate='containerd --config %s config dump', backup=False), runner)
    assert result['_failed']
    assert result['msg'] == 'failed to validate the new config: containerd --config %s config dump'
    assert result['stderr'] == 'containerd: failed to load TOML'
    assert path.read_bytes() == before
    assert others(tmp_path, path) == []


def test_validate_requires_asks_containerd_only_when_writing(tmp_path):
    path = copy_fixture(tmp_path, 'default-1.7.24.toml')
    runner = RunCommand((0, 'USAGE: containerd config command\n  default\n  dump\n', ''), (0, '', ''))
    args = gpu_args(path, validate='containerd --config %s config dump', validate_requires='dump', backup=False)
    result = run(args, runner)
    assert result['changed'] and not result['_failed']
    assert runner.calls[0] == ['containerd', 'config', '--help']
    assert runner.calls[1].endswith(' config dump')
    # Nothing to write: containerd is not asked at all.
    again = RunCommand()
    result = run(args, again)
    assert not result['changed'] and again.calls == []


def test_validate_skipped_with_a_warning_when_containerd_lacks_the_word(tmp_path):
    path = copy_fixture(tmp_path, 'default-1.7.24.toml')
    runner = RunCommand((0, 'USAGE: containerd config command\n  default\n', ''))
    args = gpu_args(path, validate='containerd --config %s config dump', validate_requires='dump', backup=False)
    with mock.patch.object(basic.AnsibleModule, 'warn') as warn:
        result = run(args, runner)
    assert result['changed'] and not result['_failed']
    assert runner.calls == [['containerd', 'config', '--help']]
    assert 'was not validated' in warn.call_args[0][0]


def test_validate_needs_placeholder(tmp_path):
    path = copy_fixture(tmp_path, 'default-1.7.24.toml')
    result = run(gpu_args(path, validate='containerd config dump', backup=False))
    assert result['_failed'] and 'must contain %s' in result['msg']


def test_v1_file_refused_on_containerd_2(tmp_path):
    path = copy_fixture(tmp_path, 'v1-legacy.toml')
    before = path.read_bytes()
    runner = RunCommand((0, VERSION_21, ''))
    result = run(gpu_args(path), runner)
    assert runner.calls == [['containerd', '--version']]
    assert result['_failed']
    assert 'containerd 2.1.9 ignores the CRI settings of a version 1 file' in result['msg']
    assert path.read_bytes() == before


def test_v1_file_edited_on_containerd_1_7(tmp_path):
    path = copy_fixture(tmp_path, 'v1-legacy.toml')
    runner = RunCommand((0, VERSION_17, ''))
    result = run(gpu_args(path, backup=False), runner)
    assert runner.calls == [['containerd', '--version']]
    assert result['changed'] and result['version'] == 1
    data = tomlkit.parse(path.read_text()).unwrap()
    assert data['plugins']['cri']['containerd']['runtimes']['nvidia']['options']['SystemdCgroup'] is True


def test_v2_file_does_not_run_containerd(tmp_path):
    path = copy_fixture(tmp_path, 'user-edited-v2.toml')
    runner = RunCommand()
    result = run(gpu_args(path, backup=False), runner)
    assert runner.calls == []
    assert result['changed'] and result['version'] == 2
    assert result['runtimes'] == ['runc', 'runc-debug', 'kata', 'nvidia']


def test_merge_error_is_reported(tmp_path):
    path = copy_fixture(tmp_path, 'user-edited-v2.toml')
    result = run(gpu_args(path, registry_config_path='/etc/containerd/certs.d'))
    assert result['_failed'] and 'mirrors' in result['msg']


def test_missing_tomlkit_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(containerd_config, 'HAS_TOMLKIT', False)
    result = run(gpu_args(tmp_path / 'config.toml'))
    assert result['_failed']
    assert 'python3-tomlkit' in result['msg']


def test_unchanged_file_keeps_its_bytes(tmp_path):
    """A file needing nothing is not rewritten, even if tomlkit would re-render it."""
    path = tmp_path / 'config.toml'
    path.write_text('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n'
                    'runtime_type = "io.containerd.runc.v2"\n'
                    '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n'
                    'SystemdCgroup = true\n')
    before = os.stat(path)
    result = run(dict(path=str(path)))
    assert not result['changed']
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns
    assert os.stat(path).st_ino == before.st_ino


# --------------------------------------------------------------------------
# a symlinked config.toml: the link's target is edited, the link is kept

def symlinked(tmp_path, name='default-1.7.24.toml', relative=False):
    """etc/containerd/config.toml -> srv/cfg/containerd.toml (the file an admin manages)."""
    target = tmp_path / 'srv' / 'cfg' / 'containerd.toml'
    target.parent.mkdir(parents=True)
    target.write_text((FIXTURES / name).read_text())
    link = tmp_path / 'etc' / 'containerd' / 'config.toml'
    link.parent.mkdir(parents=True)
    link.symlink_to(os.path.relpath(target, link.parent) if relative else target)
    return link, target


@pytest.mark.parametrize('relative', [False, True], ids=['absolute', 'relative'])
def test_symlinked_config_edits_the_target_and_keeps_the_link(tmp_path, relative):
    link, target = symlinked(tmp_path, relative=relative)
    pointer = os.readlink(link)
    original = target.read_text()
    result = run(gpu_args(link), diff=True)
    assert not result['_failed'], result
    assert result['changed'] and not result['created']
    assert link.is_symlink() and os.readlink(link) == pointer
    assert os.listdir(link.parent) == ['config.toml']   # no backup or temp file by the link
    assert result['target'] == str(target)
    data = tomlkit.parse(target.read_text()).unwrap()
    runtimes = data
    for key in V2_RUNTIMES:
        runtimes = runtimes[key]
    assert runtimes['nvidia']['options']['BinaryName'] == NVIDIA_BIN
    assert runtimes['runc']['options']['SystemdCgroup'] is True
    # the backup is of the target's content, next to the target
    backup = Path(result['backup_file'])
    assert backup.parent == target.parent and backup.read_text() == original
    assert result['diff']['before'] == original
    assert result['diff']['after'] == target.read_text()
    assert result['diff']['before_header'] == str(target)

    again = run(gpu_args(link), diff=True)
    assert not again['changed'] and 'backup_file' not in again
    assert link.is_symlink() and os.readlink(link) == pointer


def test_symlinked_config_check_mode_writes_nothing(tmp_path):
    link, target = symlinked(tmp_path)
    before = target.read_bytes()
    result = run(gpu_args(link), check_mode=True, diff=True)
    assert result['changed'] and result['target'] == str(target)
    assert result['diff']['before'] == before.decode()
    assert 'nvidia-container-runtime' in result['diff']['after']
    assert target.read_bytes() == before
    assert link.is_symlink()
    assert sorted(os.listdir(target.parent)) == ['containerd.toml']


def test_symlinked_config_mode_applies_to_the_target(tmp_path):
    link, target = symlinked(tmp_path)
    target.chmod(0o600)
    result = run(gpu_args(link, backup=False, mode='0644'))
    assert result['changed']
    assert link.is_symlink()
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_chain_of_links_edits_the_last_target(tmp_path):
    link, target = symlinked(tmp_path)
    first = tmp_path / 'config.toml'
    first.symlink_to(link)
    result = run(gpu_args(first, backup=False))
    assert result['changed'] and result['target'] == str(target)
    assert first.is_symlink() and link.is_symlink()
    assert 'nvidia-container-runtime' in target.read_text()


def test_dangling_link_is_refused(tmp_path):
    link = tmp_path / 'config.toml'
    missing = tmp_path / 'srv' / 'containerd.toml'
    link.symlink_to(missing)
    runner = RunCommand()   # containerd is not asked for its defaults
    result = run(gpu_args(link), runner)
    assert result['_failed']
    assert runner.calls == []
    msg = result['msg']
    assert str(link) in msg and str(missing) in msg
    assert 'does not exist' in msg and 'Fix:' in msg
    assert link.is_symlink() and os.readlink(link) == str(missing)
    assert not missing.exists() and os.listdir(tmp_path) == ['config.toml']


def test_link_to_a_directory_is_refused(tmp_path):
    directory = tmp_path / 'cfg'
    directory.mkdir()
    link = tmp_path / 'config.toml'
    link.symlink_to(directory)
    result = run(gpu_args(link))
    assert result['_failed']
    assert str(directory) in result['msg'] and 'not a regular file' in result['msg']
    assert link.is_symlink()


# --------------------------------------------------------------------------
# an empty or comment-only file gets the installed containerd's layout

@pytest.mark.parametrize('text', ['', '# managed by the platform team\n'], ids=['empty', 'comments'])
@pytest.mark.parametrize('version_output, layout', [
    ('containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n', 2),
    (VERSION_17, 2),
    (VERSION_21, 3),
], ids=['1.6', '1.7', '2.1'])
def test_blank_file_takes_the_installed_layout(tmp_path, text, version_output, layout):
    path = tmp_path / 'config.toml'
    path.write_text(text)
    runner = RunCommand((0, version_output, ''))
    result = run(gpu_args(path, backup=False), runner)
    assert not result['_failed'], result
    assert runner.calls == [['containerd', '--version']]
    assert result['changed'] and not result['created']
    assert result['version'] == layout
    assert result['containerd_version'] == '.'.join(
        str(p) for p in containerd_config.parse_containerd_version(version_output))
    data = tomlkit.parse(path.read_text()).unwrap()
    assert data['version'] == layout
    runtimes = data
    for key in (V2_RUNTIMES if layout == 2 else V3_RUNTIMES):
        runtimes = runtimes[key]
    assert runtimes['runc']['options']['SystemdCgroup'] is True
    assert runtimes['nvidia']['options']['BinaryName'] == NVIDIA_BIN
    # the second run reads the version key and asks containerd nothing
    again = RunCommand()
    assert not run(gpu_args(path, backup=False), again)['changed'] and again.calls == []


def test_blank_file_when_containerd_does_not_say_its_version(tmp_path):
    path = tmp_path / 'config.toml'
    path.write_text('')
    runner = RunCommand((127, '', 'containerd: not found'))
    with mock.patch.object(basic.AnsibleModule, 'warn') as warn:
        result = run(gpu_args(path, backup=False), runner)
    assert result['changed'] and result['version'] == 2
    assert 'containerd_version' not in result
    assert 'version 2 layout' in warn.call_args[0][0]
    assert tomlkit.parse(path.read_text())['version'] == 2


def test_blank_file_check_mode(tmp_path):
    path = tmp_path / 'config.toml'
    path.write_text('# empty\n')
    result = run(gpu_args(path), RunCommand((0, VERSION_21, '')), check_mode=True, diff=True)
    assert result['changed'] and result['version'] == 3
    assert result['diff']['before'] == '# empty\n'
    assert 'version = 3' in result['diff']['after']
    assert path.read_text() == '# empty\n' and others(tmp_path, path) == []


# --------------------------------------------------------------------------
# Docker's containerd.io config.toml: disabled_plugins = ["cri"]

@pytest.mark.parametrize('version_output, layout', [(VERSION_17, 2), (VERSION_21, 3)], ids=['1.7', '2.1'])
def test_docker_stock_config_gets_cri_back(tmp_path, version_output, layout):
    path = copy_fixture(tmp_path, 'docker-containerd-io-stock.toml')
    original = path.read_text()
    result = run(gpu_args(path), RunCommand((0, version_output, '')), diff=True)
    assert not result['_failed'], result
    assert result['changed'] and result['version'] == layout
    assert result['reenabled_plugins'] == ['cri']
    assert 'disabled_plugins = ["cri"]' in result['diff']['before']
    assert 'disabled_plugins = []' in result['diff']['after']
    data = tomlkit.parse(path.read_text()).unwrap()
    assert data['disabled_plugins'] == [] and data['version'] == layout
    assert Path(result['backup_file']).read_text() == original


def test_other_disabled_plugins_are_kept(tmp_path):
    path = tmp_path / 'config.toml'
    path.write_text('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs"]\n')
    result = run(gpu_args(path, backup=False), diff=True)
    assert result['reenabled_plugins'] == ['io.containerd.grpc.v1.cri']
    assert tomlkit.parse(path.read_text())['disabled_plugins'].unwrap() == ['io.containerd.snapshotter.v1.aufs']


def test_nothing_reenabled_is_reported_empty(tmp_path):
    path = copy_fixture(tmp_path, 'default-1.7.24.toml')
    assert run(gpu_args(path, backup=False))['reenabled_plugins'] == []


# --------------------------------------------------------------------------
# the same with the real containerd (skipped without scripts/fetch-containerd.sh)

real_containerd = pytest.mark.parametrize(
    'binary', REAL_BINS or [pytest.param(None, marks=pytest.mark.skip(
        reason='no containerd under .cache/containerd-bins; run scripts/fetch-containerd.sh'))],
    ids=lambda binary: binary.parent.name if binary else 'none')


def real_args(path, binary, **extra):
    return gpu_args(path, containerd_bin=str(binary), validate='%s --config %%s config dump' % binary,
                    validate_requires='dump', **extra)


def real_dump(binary, config):
    dump = subprocess.run([str(binary), '--config', str(config), 'config', 'dump'],
                          capture_output=True, text=True, check=False)
    assert dump.returncode == 0, dump.stderr
    assert not re.search(r'level=(error|fatal)', dump.stderr), dump.stderr
    return tomlkit.parse(dump.stdout).unwrap(), dump.stderr


def real_runtimes(data):
    runtimes = data
    for key in (V2_RUNTIMES if data['version'] == 2 else V3_RUNTIMES):
        runtimes = runtimes[key]
    return runtimes


@real_containerd
@pytest.mark.parametrize('text', ['', '# nothing set here yet\n'], ids=['empty', 'comments'])
def test_real_blank_file_takes_effect_in_the_installed_containerd(tmp_path, binary, text):
    path = tmp_path / 'config.toml'
    path.write_text(text)
    result = run_real(real_args(path, binary, backup=False))
    assert not result['_failed'], result
    installed = subprocess.run([str(binary), '--version'], capture_output=True, text=True, check=True).stdout
    major = containerd_config.parse_containerd_version(installed)[0]
    assert result['version'] == (2 if major == 1 else 3)
    assert result['containerd_version'].startswith('%d.' % major)
    data, stderr = real_dump(binary, path)
    assert 'deprecated' not in stderr and 'Ignoring unknown key' not in stderr, stderr
    runtimes = real_runtimes(data)
    assert runtimes['runc']['options']['SystemdCgroup'] is True
    assert runtimes['nvidia']['options']['SystemdCgroup'] is True
    assert runtimes['nvidia']['options']['BinaryName'] == NVIDIA_BIN
    assert not run_real(real_args(path, binary, backup=False))['changed']


@real_containerd
def test_real_docker_stock_config_behind_a_symlink(tmp_path, binary):
    link, target = symlinked(tmp_path, 'docker-containerd-io-stock.toml', relative=True)
    original = target.read_text()
    before, _stderr = real_dump(binary, link)
    assert 'io.containerd.grpc.v1.cri' not in before['plugins']     # CRI off: no kubelet
    result = run_real(real_args(link, binary))
    assert not result['_failed'], result
    assert result['changed'] and result['reenabled_plugins'] == ['cri']
    assert link.is_symlink() and result['target'] == str(target)
    assert Path(result['backup_file']).read_text() == original
    data, stderr = real_dump(binary, link)      # what containerd reads through the link
    assert 'deprecated' not in stderr, stderr
    assert 'io.containerd.grpc.v1.cri' in data['plugins']
    assert data['disabled_plugins'] == []
    runtimes = real_runtimes(data)
    assert runtimes['runc']['options']['SystemdCgroup'] is True
    assert runtimes['nvidia']['options']['BinaryName'] == NVIDIA_BIN
    again = run_real(real_args(link, binary))
    assert not again['changed'] and again['reenabled_plugins'] == []
