# SPDX-License-Identifier: Apache-2.0
"""Optional: the real containerd parses every merged config (`config dump`).

Needs the binaries that scripts/fetch-containerd.sh puts under
.cache/containerd-bins/<version>/containerd (Debian's 1.6, 1.7 and 2.1 packages);
skipped when they are absent.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import tomlkit

from ansible_collections.kubegpu.cluster.plugins.module_utils import _containerd as c

ROOT = Path(__file__).resolve().parents[4]
BINS = ROOT / '.cache' / 'containerd-bins'
FIXTURES = ROOT / 'tests' / 'fixtures' / 'containerd'
NVIDIA_BIN = '/usr/bin/nvidia-container-runtime'

# fixture -> config version of the file
INPUTS = {
    'default-1.6.20.toml': 2,
    'default-1.7.24.toml': 2,
    'default-2.1.9.toml': 3,
    'debian-package-config.toml': 2,
    'nvidia-ctk-configured-1.7.24.toml': 2,
    'nvidia-ctk-minimal.toml': 2,
    'user-edited-v2.toml': 2,
    'toolkit-1.18-main-2.1.9.toml': 3,
    'toolkit-1.18-conf.d-99-nvidia.toml': 3,
    'v1-legacy.toml': 1,
}


def _binaries():
    found = {}
    for binary in sorted(BINS.glob('*/containerd')):
        out = subprocess.run([str(binary), '--version'], capture_output=True, text=True,
                             check=False).stdout
        version = c.parse_containerd_version(out)
        if version:
            found['.'.join(map(str, version))] = (binary, version)
    return found


BINARIES = _binaries()


def _cases():
    for name, config_version in sorted(INPUTS.items()):
        for label, (binary, version) in sorted(BINARIES.items()):
            major_minor = version[:2]
            if config_version >= 3 and version[0] < 2:
                continue  # containerd 1.x does not read version 3 configs
            if config_version == 1 and version[0] >= 2:
                continue  # containerd 2.x drops a version 1 file's CRI settings (the module refuses)
            yield pytest.param(name, binary, major_minor, id='%s-on-%s' % (name, label))


CASES = list(_cases())

pytestmark = pytest.mark.skipif(
    not BINARIES,
    reason='no containerd binaries under %s; run scripts/fetch-containerd.sh to fetch '
           "Debian's containerd 1.6/1.7/2.1 for this check" % BINS)


@pytest.mark.parametrize('name, binary, version', CASES or [pytest.param(None, None, None, id='none')])
def test_containerd_config_dump_of_merged_config(tmp_path, name, binary, version):
    text = (FIXTURES / name).read_text()
    result = c.merge(
        text,
        runtimes=[{'name': 'nvidia', 'binary_name': NVIDIA_BIN}],
        default_runtime='nvidia',
        sandbox_image='registry.k8s.io/pause:3.10',
        cdi=True,
        registry_config_path=None if name == 'user-edited-v2.toml' else '/etc/containerd/certs.d',
        imports=[str(tmp_path / 'conf.d' / '*.toml')],
    )
    config = tmp_path / 'config.toml'
    config.write_text(result.after)
    dump = subprocess.run([str(binary), '--config', str(config), 'config', 'dump'],
                          capture_output=True, text=True, check=False)
    assert dump.returncode == 0, dump.stderr
    assert not re.search(r'level=(error|fatal)', dump.stderr), dump.stderr

    data = tomlkit.parse(dump.stdout).unwrap()
    dumped_version = data['version']
    runtimes = data
    for key in c.cri_paths(dumped_version)['runtimes']:
        runtimes = runtimes[key]
    assert runtimes['runc']['options']['SystemdCgroup'] is True
    assert runtimes['nvidia']['options']['SystemdCgroup'] is True
    assert runtimes['nvidia']['options']['BinaryName'] == NVIDIA_BIN
    assert runtimes['nvidia']['runtime_type'] == 'io.containerd.runc.v2'
    paths = c.cri_paths(dumped_version)
    cri = data
    for key in paths['default_runtime_name']:
        cri = cri[key]
    assert cri == 'nvidia'
    image = data
    for key in paths['sandbox_image']:
        image = image[key]
    assert image == 'registry.k8s.io/pause:3.10'
    if version >= (1, 7):   # containerd 1.6 has no CDI and drops the key
        cdi = data
        for key in paths['enable_cdi']:
            cdi = cdi[key]
        assert cdi is True
    # the user's settings survive containerd's own parsing too
    if name == 'user-edited-v2.toml':
        assert data['root'] == '/data/containerd'
        assert runtimes['kata']['runtime_type'] == 'io.containerd.kata.v2'


# --------------------------------------------------------------------------
# files that configure nothing, and disabled_plugins, read by the real containerd

BLANK = {
    'empty': '',
    'comments-only': '# written by hand, nothing set yet\n#root = "/var/lib/containerd"\n',
    'docker-stock': (FIXTURES / 'docker-containerd-io-stock.toml').read_text(),
}
GPU = dict(runtimes=[{'name': 'nvidia', 'binary_name': NVIDIA_BIN}], default_runtime='nvidia')
# The CRI plugin's table in `config dump`: present only while the plugin is not disabled.
CRI_TABLE = 'io.containerd.grpc.v1.cri'


def _dump(binary, config):
    dump = subprocess.run([str(binary), '--config', str(config), 'config', 'dump'],
                          capture_output=True, text=True, check=False)
    assert dump.returncode == 0, dump.stderr
    assert not re.search(r'level=(error|fatal)', dump.stderr), dump.stderr
    return tomlkit.parse(dump.stdout).unwrap(), dump.stderr


def _dig(data, path):
    for key in path:
        data = data.get(key, {}) if isinstance(data, dict) else {}
    return data


def _by_binary(params):
    for label, (binary, version) in sorted(BINARIES.items()):
        for param in params:
            yield pytest.param(binary, version, param, id='%s-on-%s' % (param, label))


@pytest.mark.parametrize('binary, version, kind', list(_by_binary(sorted(BLANK))) or
                         [pytest.param(None, None, None, id='none')])
def test_blank_file_in_the_installed_layout_takes_effect(tmp_path, binary, version, kind):
    config = tmp_path / 'config.toml'
    if 'disabled_plugins' in BLANK[kind]:
        config.write_text(BLANK[kind])
        before, _stderr = _dump(binary, config)
        assert CRI_TABLE not in before['plugins']    # Docker's file: no CRI for kubelet
    result = c.merge(BLANK[kind], blank_version=c.layout_for(version), **GPU)
    assert result.filled
    config.write_text(result.after)
    data, stderr = _dump(binary, config)
    # neither the version 1 deprecation (1.x) nor dropped keys (2.x)
    assert 'deprecated' not in stderr and 'Ignoring unknown key' not in stderr, stderr
    paths = c.cri_paths(data['version'])
    runtimes = _dig(data, paths['runtimes'])
    assert runtimes['runc']['options']['SystemdCgroup'] is True
    assert runtimes['nvidia']['options']['SystemdCgroup'] is True
    assert runtimes['nvidia']['options']['BinaryName'] == NVIDIA_BIN
    assert _dig(data, paths['default_runtime_name']) == 'nvidia'
    assert CRI_TABLE in data['plugins']
    assert not set(data['disabled_plugins']) & set(c.CRI_PLUGIN_IDS)


@pytest.mark.parametrize('binary, version, kind', [
    p for p in _by_binary(['empty']) if p.values[1][0] >= 2] or [pytest.param(None, None, None, id='none')])
def test_blank_file_in_the_version_1_layout_is_lost_on_containerd_2(tmp_path, binary, version, kind):
    """Why a blank file must not stay at version 1: containerd 2.x drops its CRI settings."""
    result = c.merge(BLANK[kind], **GPU)
    assert result.version == 1
    config = tmp_path / 'config.toml'
    config.write_text(result.after)
    data, stderr = _dump(binary, config)
    runtimes = _dig(data, c.cri_paths(data['version'])['runtimes'])
    assert 'nvidia' not in runtimes
    assert runtimes['runc']['options']['SystemdCgroup'] is False


DISABLED = {
    # text, the disabled entries containerd must still have after the merge
    'v2-uri-and-aufs': ('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri", '
                        '"io.containerd.snapshotter.v1.aufs"]\n', ['io.containerd.snapshotter.v1.aufs']),
    'v2-short-cri': ('version = 2\ndisabled_plugins = ["cri"]\n', []),
    'v3-split-cri': ("version = 3\ndisabled_plugins = ['io.containerd.grpc.v1.cri', "
                     "'io.containerd.cri.v1.runtime', 'io.containerd.cri.v1.images', "
                     "'io.containerd.snapshotter.v1.zfs']\n", ['io.containerd.snapshotter.v1.zfs']),
}


def _disabled_cases():
    for case in _by_binary(sorted(DISABLED)):
        binary, version, kind = case.values
        if kind.startswith('v3') and version[0] < 2:
            continue    # containerd 1.7 refuses version 3
        yield case


@pytest.mark.parametrize('binary, version, kind', list(_disabled_cases()) or
                         [pytest.param(None, None, None, id='none')])
def test_cri_enabled_again_other_plugins_stay_disabled(tmp_path, binary, version, kind):
    text, kept = DISABLED[kind]
    config = tmp_path / 'config.toml'
    config.write_text(text)
    if kind == 'v2-short-cri':
        # a version 1 id in a version 2 file: containerd refuses to start at all
        refused = subprocess.run([str(binary), '--config', str(config), 'config', 'dump'],
                                 capture_output=True, text=True, check=False)
        assert refused.returncode != 0 and 'invalid disabled plugin URI "cri"' in refused.stderr
    else:
        before, _stderr = _dump(binary, config)
        assert CRI_TABLE not in before['plugins']
    result = c.merge(text, **GPU)
    assert result.reenabled_plugins and all(p in c.CRI_PLUGIN_IDS for p in result.reenabled_plugins)
    config.write_text(result.after)
    data, _stderr = _dump(binary, config)
    assert data['disabled_plugins'] == kept
    assert CRI_TABLE in data['plugins']
    runtimes = _dig(data, c.cri_paths(data['version'])['runtimes'])
    assert runtimes['nvidia']['options']['BinaryName'] == NVIDIA_BIN
