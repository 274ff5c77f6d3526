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
