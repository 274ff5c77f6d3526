# SPDX-License-Identifier: Apache-2.0
"""Unit tests of plugins/module_utils/_containerd.py on real and documented configs."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
import tomlkit

from ansible_collections.kubegpu.cluster.plugins.module_utils import _containerd as c

FIXTURES = Path(__file__).resolve().parents[3] / 'fixtures' / 'containerd'
NVIDIA_BIN = '/usr/bin/nvidia-container-runtime'
NVIDIA = [{'name': 'nvidia', 'binary_name': NVIDIA_BIN}]

V2_CRI = ('plugins', 'io.containerd.grpc.v1.cri')
V3_RT = ('plugins', 'io.containerd.cri.v1.runtime')
V3_IMG = ('plugins', 'io.containerd.cri.v1.images')

# fixture -> config version; every one of these is a real-world input
INPUTS = {
    'default-1.6.20.toml': 2,             # real `containerd config default`, Debian bookworm
    'default-1.7.24.toml': 2,             # real, Debian trixie
    'default-2.1.9.toml': 3,              # real, Debian sid
    'debian-package-config.toml': 2,      # real /etc/containerd/config.toml of the .deb
    'nvidia-ctk-configured-1.7.24.toml': 2,
    'nvidia-ctk-minimal.toml': 2,
    'user-edited-v2.toml': 2,
    'toolkit-1.18-main-2.1.9.toml': 3,
    'toolkit-1.18-conf.d-99-nvidia.toml': 3,
    'v1-legacy.toml': 1,
}

GPU_SETTINGS = dict(
    systemd_cgroup=True,
    runtimes=NVIDIA,
    default_runtime='nvidia',
    sandbox_image='registry.k8s.io/pause:3.10',
    cdi=True,
    cdi_spec_dirs=['/etc/cdi', '/var/run/cdi'],
    imports=['/etc/containerd/conf.d/*.toml'],
)


def read(name):
    return (FIXTURES / name).read_text()


def dig(data, path):
    for key in path:
        data = data[key]
    return data


def runtimes_of(data, version):
    return dig(data, c.cri_paths(version)['runtimes'])


def flatten(data, prefix=()):
    """{path: value} of every leaf (lists are leaves)."""
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, prefix + (key,)))
            if not value:
                out[prefix + (key,)] = {}
        else:
            out[prefix + (key,)] = value
    return out


def owned_paths(version):
    paths = c.cri_paths(version)
    return {paths[k] for k in ('default_runtime_name', 'sandbox_image', 'enable_cdi',
                               'cdi_spec_dirs', 'registry_config_path')} | {('imports',)}


def is_owned(path, version):
    runtimes = c.cri_paths(version)['runtimes']
    if path in owned_paths(version):
        return True
    # SystemdCgroup / BinaryName / runtime_type of a runtime
    return (path[:len(runtimes)] == runtimes
            and (path[-1] in ('SystemdCgroup', 'BinaryName', 'runtime_type')))


# --------------------------------------------------------------------------
# every real-world input: merged, then merged again (no-op, byte-identical)

@pytest.mark.parametrize('name', sorted(INPUTS))
def test_merge_twice_is_idempotent(name):
    text = read(name)
    first = c.merge(text, **GPU_SETTINGS)
    assert first.changed
    assert first.version == INPUTS[name]
    second = c.merge(first.after, **GPU_SETTINGS)
    assert not second.changed
    assert second.after == first.after


@pytest.mark.parametrize('name', sorted(INPUTS))
def test_merge_sets_gpu_settings(name):
    version = INPUTS[name]
    result = c.merge(read(name), **GPU_SETTINGS)
    data = tomlkit.parse(result.after).unwrap()
    paths = c.cri_paths(version)
    runtimes = runtimes_of(data, version)
    assert runtimes['runc']['options']['SystemdCgroup'] is True
    assert runtimes['nvidia']['options']['SystemdCgroup'] is True
    assert runtimes['nvidia']['options']['BinaryName'] == NVIDIA_BIN
    assert runtimes['nvidia']['runtime_type'] == 'io.containerd.runc.v2'
    assert dig(data, paths['default_runtime_name']) == 'nvidia'
    assert dig(data, paths['sandbox_image']) == 'registry.k8s.io/pause:3.10'
    assert dig(data, paths['enable_cdi']) is True
    assert dig(data, paths['cdi_spec_dirs']) == ['/etc/cdi', '/var/run/cdi']
    assert '/etc/containerd/conf.d/*.toml' in data['imports']
    assert result.runtimes[:0] == [] and {'runc', 'nvidia'} <= set(result.runtimes)
    assert result.default_runtime == 'nvidia'


@pytest.mark.parametrize('name', sorted(INPUTS))
def test_merge_keeps_everything_it_does_not_own(name):
    version = INPUTS[name]
    text = read(name)
    result = c.merge(text, **GPU_SETTINGS)
    before = flatten(tomlkit.parse(text).unwrap())
    after = flatten(tomlkit.parse(result.after).unwrap())
    for path, value in before.items():
        assert path in after, 'lost %r' % (path,)
        if not is_owned(path, version) and path[-1] != 'imports':
            assert after[path] == value, path
    # no comment line is lost
    for line in text.splitlines():
        if line.strip().startswith('#'):
            assert line in result.after.splitlines()
    # the only removed lines are lines of keys the module owns
    owned_keys = {p[-1] for p in owned_paths(version)} | {'SystemdCgroup', 'BinaryName', 'runtime_type'}
    diff = difflib.ndiff(text.splitlines(), result.after.splitlines())
    for line in diff:
        if line.startswith('- ') and line[2:].strip():
            key = line[2:].split('=')[0].strip().strip('"\'')
            assert key in owned_keys, line


# --------------------------------------------------------------------------
# version detection and paths

@pytest.mark.parametrize('text, version', [
    ('', 1),
    ('[plugins.cri]\n', 1),
    ('version = 1\n', 1),
    ('version = 2\n', 2),
    ('version = 3\n', 3),
    ('version = 4\n', 4),
])
def test_detect_version(text, version):
    assert c.detect_version(c.parse(text)) == version


@pytest.mark.parametrize('text, message', [
    ('version = 5\n', 'not supported'),
    ('version = "2"\n', 'must be an integer'),
    ('version = true\n', 'must be an integer'),
])
def test_detect_version_refuses(text, message):
    with pytest.raises(c.ContainerdConfigError, match=message):
        c.detect_version(c.parse(text))


def test_cri_paths_v1_v2_v3():
    assert c.cri_paths(1)['runtimes'] == ('plugins', 'cri', 'containerd', 'runtimes')
    assert c.cri_paths(2)['runtimes'] == V2_CRI + ('containerd', 'runtimes')
    assert c.cri_paths(2)['sandbox_image'] == V2_CRI + ('sandbox_image',)
    assert c.cri_paths(2)['registry_config_path'] == V2_CRI + ('registry', 'config_path')
    assert c.cri_paths(3)['runtimes'] == V3_RT + ('containerd', 'runtimes')
    assert c.cri_paths(3)['default_runtime_name'] == V3_RT + ('containerd', 'default_runtime_name')
    assert c.cri_paths(3)['enable_cdi'] == V3_RT + ('enable_cdi',)
    assert c.cri_paths(3)['sandbox_image'] == V3_IMG + ('pinned_images', 'sandbox')
    assert c.cri_paths(3)['registry_config_path'] == V3_IMG + ('registry', 'config_path')
    assert c.cri_paths(4) == c.cri_paths(3)
    with pytest.raises(c.ContainerdConfigError):
        c.cri_paths(5)


@pytest.mark.parametrize('name', ['default-1.6.20.toml', 'default-1.7.24.toml', 'default-2.1.9.toml'])
def test_paths_exist_in_real_defaults(name):
    """Every owned path is where the real `containerd config default` has it."""
    data = tomlkit.parse(read(name)).unwrap()
    paths = c.cri_paths(INPUTS[name])
    for key in ('runtimes', 'default_runtime_name', 'sandbox_image', 'registry_config_path'):
        dig(data, paths[key])
    dig(data, paths['runtimes'] + ('runc', 'options', 'SystemdCgroup'))
    if name != 'default-1.6.20.toml':   # containerd 1.6 has no CDI
        assert dig(data, paths['enable_cdi']) in (True, False)
        assert dig(data, paths['cdi_spec_dirs']) == ['/etc/cdi', '/var/run/cdi']


def test_v3_uses_new_plugins_only():
    result = c.merge(read('default-2.1.9.toml'), **GPU_SETTINGS)
    data = tomlkit.parse(result.after).unwrap()
    assert 'containerd' not in data['plugins']['io.containerd.grpc.v1.cri']
    assert 'sandbox_image' not in data['plugins']['io.containerd.grpc.v1.cri']
    assert data['plugins']['io.containerd.cri.v1.images']['pinned_images']['sandbox'] == \
        'registry.k8s.io/pause:3.10'
    # containerd 2.x writes literal strings; new values follow the file's style
    assert "BinaryName = '/usr/bin/nvidia-container-runtime'" in result.after
    assert "default_runtime_name = 'nvidia'" in result.after


def test_v4_is_edited_like_v3():
    text = "version = 4\n\n[plugins]\n  [plugins.'io.containerd.cri.v1.runtime']\n    enable_cdi = false\n"
    result = c.merge(text, **GPU_SETTINGS)
    data = tomlkit.parse(result.after).unwrap()
    assert result.version == 4
    assert data['plugins']['io.containerd.cri.v1.runtime']['enable_cdi'] is True
    nvidia = data['plugins']['io.containerd.cri.v1.runtime']['containerd']['runtimes']['nvidia']
    assert nvidia['options'] == {'BinaryName': NVIDIA_BIN, 'SystemdCgroup': True}


def test_v2_paths_on_the_debian_stub():
    result = c.merge(read('debian-package-config.toml'), **GPU_SETTINGS)
    data = tomlkit.parse(result.after).unwrap()
    cri = data['plugins']['io.containerd.grpc.v1.cri']
    assert cri['cni'] == {'bin_dir': '/usr/lib/cni', 'conf_dir': '/etc/cni/net.d'}
    assert cri['containerd']['runtimes']['runc'] == {
        'runtime_type': 'io.containerd.runc.v2', 'options': {'SystemdCgroup': True}}
    assert data['plugins']['io.containerd.internal.v1.opt'] == {'path': '/var/lib/containerd/opt'}
    assert result.after.startswith('version = 2\nimports = ["/etc/containerd/conf.d/*.toml"]\n')


# --------------------------------------------------------------------------
# runtimes and SystemdCgroup

def test_nvidia_runtime_is_a_copy_of_runc():
    result = c.merge(read('default-2.1.9.toml'), runtimes=NVIDIA)
    runtimes = runtimes_of(tomlkit.parse(result.after).unwrap(), 3)
    runc, nvidia = runtimes['runc'], runtimes['nvidia']
    assert nvidia['sandboxer'] == runc['sandboxer'] == 'podsandbox'
    assert set(nvidia['options']) == set(runc['options'])
    assert nvidia['options']['SystemdCgroup'] is True
    assert {k: v for k, v in nvidia['options'].items() if k != 'BinaryName'} == \
        {k: v for k, v in runc['options'].items() if k != 'BinaryName'}
    assert runc['options']['BinaryName'] == ''
    assert result.runtimes == ['runc', 'nvidia']


def test_nvidia_runtime_inherits_systemd_cgroup_when_runc_is_missing():
    result = c.merge(read('nvidia-ctk-minimal.toml'), runtimes=NVIDIA)
    runtimes = runtimes_of(tomlkit.parse(result.after).unwrap(), 2)
    assert runtimes['runc']['options']['SystemdCgroup'] is True
    assert runtimes['nvidia']['options'] == {'BinaryName': NVIDIA_BIN, 'SystemdCgroup': True}
    # keys nvidia-ctk wrote are kept
    assert runtimes['nvidia']['runtime_engine'] == ''
    assert result.default_runtime == 'nvidia'


def test_existing_nvidia_runtime_keeps_its_keys():
    text = read('nvidia-ctk-configured-1.7.24.toml')
    result = c.merge(text, runtimes=NVIDIA)
    before = runtimes_of(tomlkit.parse(text).unwrap(), 2)['nvidia']
    after = runtimes_of(tomlkit.parse(result.after).unwrap(), 2)['nvidia']
    assert before['options']['SystemdCgroup'] is False
    assert after['options']['SystemdCgroup'] is True
    before['options']['SystemdCgroup'] = True
    assert after == before
    # the only changed lines: SystemdCgroup of runc and nvidia
    changed = [line for line in difflib.ndiff(text.splitlines(), result.after.splitlines())
               if line[:2] in ('- ', '+ ')]
    assert changed == ['-             SystemdCgroup = false', '+             SystemdCgroup = true'] * 2


def test_user_edits_runtimes():
    text = read('user-edited-v2.toml')
    result = c.merge(text, runtimes=NVIDIA)
    runtimes = runtimes_of(tomlkit.parse(result.after).unwrap(), 2)
    assert runtimes['runc']['options'] == {'SystemdCgroup': True, 'BinaryName': '/usr/bin/runc'}
    # runc-derived runtime without options gets an options table
    assert runtimes['runc-debug']['options'] == {'SystemdCgroup': True}
    assert runtimes['runc-debug']['pod_annotations'] == ['io.kubernetes.cri-o.Devices']
    # a runtime of another shim is not touched
    assert runtimes['kata'] == {'runtime_type': 'io.containerd.kata.v2',
                                'privileged_without_host_devices': True}
    assert runtimes['nvidia']['options'] == {
        'SystemdCgroup': True, 'BinaryName': NVIDIA_BIN}
    # comments, unknown keys and the legacy mirrors survive
    assert '# cgroupfs on purpose until the kubelet flag is flipped\nSystemdCgroup = true\n' in result.after
    assert 'root = "/data/containerd"  # moved to the NVMe disk' in result.after
    assert 'some_future_setting = "kept as is"  # unknown to this module' in result.after
    assert '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]' in result.after
    # no indentation invented for an unindented file
    assert '\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n' in result.after
    assert '\nruntime_type = "io.containerd.runc.v2"\n' in result.after


def test_systemd_cgroup_false():
    text = c.merge(read('default-1.7.24.toml'), runtimes=NVIDIA).after
    result = c.merge(text, systemd_cgroup=False)
    runtimes = runtimes_of(tomlkit.parse(result.after).unwrap(), 2)
    assert runtimes['runc']['options']['SystemdCgroup'] is False
    assert runtimes['nvidia']['options']['SystemdCgroup'] is False
    # false is containerd's default: no options table is created for it
    again = c.merge(read('user-edited-v2.toml'), systemd_cgroup=False)
    assert 'options' not in runtimes_of(tomlkit.parse(again.after).unwrap(), 2)['runc-debug']
    assert not again.changed


def test_systemd_cgroup_none_leaves_runtimes_alone():
    text = read('default-1.7.24.toml')
    assert not c.merge(text, systemd_cgroup=None).changed


def test_runtime_options_and_other_shims():
    result = c.merge(read('default-1.7.24.toml'), runtimes=[
        {'name': 'kata', 'runtime_type': 'io.containerd.kata.v2', 'inherit_from': None},
        {'name': 'nvidia-legacy', 'binary_name': NVIDIA_BIN, 'options': {'Root': '/run/nv'}},
    ])
    runtimes = runtimes_of(tomlkit.parse(result.after).unwrap(), 2)
    assert runtimes['kata'] == {'runtime_type': 'io.containerd.kata.v2'}
    assert runtimes['nvidia-legacy']['options']['Root'] == '/run/nv'
    assert runtimes['nvidia-legacy']['options']['SystemdCgroup'] is True
    assert not c.merge(result.after, runtimes=[
        {'name': 'kata', 'runtime_type': 'io.containerd.kata.v2', 'inherit_from': None},
        {'name': 'nvidia-legacy', 'binary_name': NVIDIA_BIN, 'options': {'Root': '/run/nv'}},
    ]).changed


def test_inherit_from_unknown_runtime_is_refused():
    with pytest.raises(c.ContainerdConfigError, match="inherits from 'gvisor'"):
        c.merge(read('default-1.7.24.toml'), runtimes=[{'name': 'x', 'inherit_from': 'gvisor'}])


# --------------------------------------------------------------------------
# default runtime, sandbox, CDI, registry, imports

def test_default_runtime_set_and_unset():
    text = read('default-1.7.24.toml')
    on = c.merge(text, runtimes=NVIDIA, default_runtime='nvidia')
    assert on.default_runtime == 'nvidia'
    assert '      default_runtime_name = "nvidia"\n' in on.after
    off = c.merge(on.after, runtimes=NVIDIA, default_runtime='runc')
    assert off.changed and off.default_runtime == 'runc'
    assert off.after == c.merge(text, runtimes=NVIDIA).after
    # omitted: left as it is
    assert c.merge(on.after, runtimes=NVIDIA).default_runtime == 'nvidia'


def test_default_runtime_must_exist():
    with pytest.raises(c.ContainerdConfigError, match='not a configured runtime'):
        c.merge(read('default-1.7.24.toml'), default_runtime='nvidia')


def test_registry_config_path():
    result = c.merge(read('default-2.1.9.toml'), registry_config_path='/etc/containerd/certs.d')
    assert "    [plugins.'io.containerd.cri.v1.images'.registry]\n      config_path = '/etc/containerd/certs.d'\n" \
        in result.after
    result = c.merge(read('default-1.7.24.toml'), registry_config_path='/etc/containerd/certs.d')
    assert '      config_path = "/etc/containerd/certs.d"\n' in result.after


def test_registry_config_path_refused_with_legacy_mirrors():
    with pytest.raises(c.ContainerdConfigError, match='mirrors'):
        c.merge(read('user-edited-v2.toml'), registry_config_path='/etc/containerd/certs.d')


def test_imports_keep_user_entries():
    text = 'version = 2\nimports = ["/etc/containerd/local.toml"]  # mine\n\n[plugins]\n'
    result = c.merge(text, systemd_cgroup=None, imports=['/etc/containerd/conf.d/*.toml'])
    assert result.after.startswith(
        'version = 2\nimports = ["/etc/containerd/local.toml", "/etc/containerd/conf.d/*.toml"]  # mine\n')
    assert not c.merge(result.after, systemd_cgroup=None,
                       imports=['/etc/containerd/local.toml', '/etc/containerd/conf.d/*.toml']).changed


def test_imports_already_there_from_toolkit():
    result = c.merge(read('toolkit-1.18-main-2.1.9.toml'), systemd_cgroup=None,
                     imports=['/etc/containerd/conf.d/*.toml'])
    assert not result.changed


def test_cdi_on_1_7_and_2_1():
    r17 = c.merge(read('default-1.7.24.toml'), systemd_cgroup=None, cdi=True)
    assert r17.changed and '    enable_cdi = true\n' in r17.after
    # containerd 2.1 enables CDI by default already
    assert not c.merge(read('default-2.1.9.toml'), systemd_cgroup=None, cdi=True).changed


def test_sandbox_image_v1():
    result = c.merge(read('v1-legacy.toml'), sandbox_image='registry.k8s.io/pause:3.10')
    assert '  sandbox_image = "registry.k8s.io/pause:3.10"\n' in result.after
    assert '        SystemdCgroup = true\n' in result.after


# --------------------------------------------------------------------------
# refusals and helpers

def test_corrupt_file_is_refused():
    with pytest.raises(c.ContainerdConfigError, match='not valid TOML, refusing'):
        c.merge(read('corrupt.toml'), **GPU_SETTINGS)


@pytest.mark.parametrize('text', [
    '[a]\nx = 1\n[a]\ny = 2\n',          # table defined twice
    'a = 1\na = 2\n',                    # key defined twice
    '[plugins.\n',                       # truncated header
])
def test_other_broken_toml_is_refused(text):
    with pytest.raises(c.ContainerdConfigError, match='not valid TOML'):
        c.merge(text)


def test_non_table_in_the_way_is_refused():
    with pytest.raises(c.ContainerdConfigError, match='is not a table'):
        c.merge('version = 2\n[plugins]\n"io.containerd.grpc.v1.cri" = 1\n')


@pytest.mark.parametrize('output, expected', [
    ('containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n', (1, 6, 20)),
    ('containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1\n', (1, 7, 24)),
    ('containerd github.com/containerd/containerd/v2 2.1.9+unknown \n', (2, 1, 9)),
    ('containerd containerd.io v2.1.4 75cb2b7193e4e490e9fbdc236c0e811ccaba3376\n', (2, 1, 4)),
    ('', None),
    ('garbage', None),
])
def test_parse_containerd_version(output, expected):
    assert c.parse_containerd_version(output) == expected


def test_format_path():
    assert c.format_path(V2_CRI + ('containerd',)) == 'plugins."io.containerd.grpc.v1.cri".containerd'


# --------------------------------------------------------------------------
# a file that configures nothing takes the installed containerd's layout

BLANK_TEXTS = {
    'empty': '',
    'blank-lines': '\n\n',
    'comments-only': '# managed by hand\n\n#root = "/var/lib/containerd"\n#[grpc]\n#  uid = 0\n',
    'docker-stock': read('docker-containerd-io-stock.toml'),
    'empty-disabled-list': 'disabled_plugins = []\n',
}


@pytest.mark.parametrize('installed, layout', [
    ((1, 6, 20), 2), ((1, 7, 24), 2), ((2, 0, 0), 3), ((2, 1, 9), 3), ((3, 0, 1), 3),
    (None, 2),   # unknown: version 2, which 1.x reads and 2.x migrates on load
])
def test_layout_for_installed_containerd(installed, layout):
    assert c.layout_for(installed) == layout


@pytest.mark.parametrize('layout', [2, 3])
@pytest.mark.parametrize('kind', sorted(BLANK_TEXTS))
def test_blank_file_is_filled_in_the_given_layout(kind, layout):
    text = BLANK_TEXTS[kind]
    result = c.merge(text, blank_version=layout, **GPU_SETTINGS)
    assert result.changed and result.version == layout
    data = tomlkit.parse(result.after).unwrap()
    assert data['version'] == layout
    runtimes = runtimes_of(data, layout)
    assert runtimes['runc']['options']['SystemdCgroup'] is True
    assert runtimes['nvidia']['options'] == {'SystemdCgroup': True, 'BinaryName': NVIDIA_BIN}
    assert dig(data, c.cri_paths(layout)['default_runtime_name']) == 'nvidia'
    # nothing lands in the version 1 plugin, which containerd 2.x ignores
    assert 'cri' not in data.get('plugins', {})
    # the version key comes before every other key and table
    first_key = next(line for line in result.after.splitlines()
                     if line.strip() and not line.lstrip().startswith('#'))
    assert first_key == 'version = %d' % layout
    for line in text.splitlines():
        if line.startswith('#'):
            assert line in result.after.splitlines()
    again = c.merge(result.after, blank_version=layout, **GPU_SETTINGS)
    assert not again.changed and again.after == result.after


def test_blank_file_keeps_its_header_comment_above_the_version_key():
    result = c.merge(BLANK_TEXTS['docker-stock'], blank_version=2, **GPU_SETTINGS)
    lines = result.after.splitlines()
    assert lines.index('version = 2') > lines.index('#   Its second paragraph.')
    assert lines.index('version = 2') < lines.index('#root = "/var/lib/containerd"')


@pytest.mark.parametrize('kind', sorted(BLANK_TEXTS))
def test_blank_file_without_a_layout_stays_version_1(kind):
    """What the host_state filter asks (it has no containerd to ask): version 1, so it
    reports the file as pending and leaves the layout to the module."""
    result = c.merge(BLANK_TEXTS[kind], **GPU_SETTINGS)
    assert result.version == 1
    assert 'version' not in tomlkit.parse(result.after)


@pytest.mark.parametrize('text', [
    'root = "/data/containerd"\n',
    '[plugins.cri]\n  sandbox_image = "registry.k8s.io/pause:3.9"\n',
    'disabled_plugins = ["aufs"]\n',    # a version 1 short id: not valid in version 2+
    'version = 2\n',
])
def test_file_that_configures_something_keeps_its_version(text):
    expected = c.detect_version(c.parse(text))
    result = c.merge(text, blank_version=3, **GPU_SETTINGS)
    assert result.version == expected
    assert c.detect_version(c.parse(result.after)) == expected


@pytest.mark.parametrize('layout', [1, 5, True])
def test_blank_version_must_be_a_layout_the_module_writes(layout):
    with pytest.raises(c.ContainerdConfigError, match='blank_version'):
        c.merge('', blank_version=layout)


# --------------------------------------------------------------------------
# disabled_plugins: the CRI plugin is turned back on, nothing else

@pytest.mark.parametrize('text, kept, removed', [
    (read('docker-containerd-io-stock.toml'), [], ['cri']),
    ('disabled_plugins = ["cri", "aufs"]\n', ['aufs'], ['cri']),
    ('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs"]\n',
     ['io.containerd.snapshotter.v1.aufs'], ['io.containerd.grpc.v1.cri']),
    ('version = 2\ndisabled_plugins = [\n  "cri",  # short id, refused by containerd in version 2\n'
     '  "io.containerd.snapshotter.v1.btrfs",\n]\n',
     ['io.containerd.snapshotter.v1.btrfs'], ['cri']),
    ("version = 3\ndisabled_plugins = ['io.containerd.grpc.v1.cri', 'io.containerd.cri.v1.runtime', "
     "'io.containerd.snapshotter.v1.zfs', 'io.containerd.cri.v1.images']\n",
     ['io.containerd.snapshotter.v1.zfs'],
     ['io.containerd.grpc.v1.cri', 'io.containerd.cri.v1.runtime', 'io.containerd.cri.v1.images']),
])
def test_cri_is_removed_from_disabled_plugins(text, kept, removed):
    result = c.merge(text, **GPU_SETTINGS)
    assert result.changed
    assert result.reenabled_plugins == removed
    assert tomlkit.parse(result.after)['disabled_plugins'].unwrap() == kept
    again = c.merge(result.after, **GPU_SETTINGS)
    assert again.reenabled_plugins == [] and not again.changed


def test_cri_is_removed_even_when_nothing_else_is_asked():
    result = c.merge('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n',
                     systemd_cgroup=None)
    assert result.changed and result.reenabled_plugins == ['io.containerd.grpc.v1.cri']
    assert result.after == 'version = 2\ndisabled_plugins = []\n'


@pytest.mark.parametrize('name', sorted(INPUTS))
def test_enabled_cri_reports_nothing_reenabled(name):
    assert c.merge(read(name), **GPU_SETTINGS).reenabled_plugins == []


def test_disabled_plugins_must_be_a_list():
    with pytest.raises(c.ContainerdConfigError, match='disabled_plugins'):
        c.merge('disabled_plugins = "cri"\n', **GPU_SETTINGS)
