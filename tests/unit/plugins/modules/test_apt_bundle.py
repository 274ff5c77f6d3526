# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the apt_bundle module (module_utils/_apt_bundle): the pure logic (apt's
private configuration, apt's output, the pool plan, the index, failure messages) and whole
runs against a stand-in for apt-get, apt-cache, apt-ftparchive, gpg and gpgv whose
package files are real files served by file:// URLs. The real thing against
deb.debian.org: tests/integration/test_apt_bundle_real.py."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from urllib.parse import quote

import pytest

from ansible_collections.kubegpu.cluster.tests.unit.compat import patch_module_exits, run_module_main

from ansible_collections.kubegpu.cluster.plugins.module_utils import _apt_bundle as ab
from ansible_collections.kubegpu.cluster.plugins.modules import apt_bundle

# apt-get 2.6's --print-uris lines (Debian 12), as they come.
PRINT_URIS = (
    "'http://deb.debian.org/debian/pool/main/g/glibc/libc6_2.36-9%2bdeb12u14_amd64.deb' "
    "libc6_2.36-9+deb12u14_amd64.deb 2759320 MD5Sum:8d98f0c882f269aaee8437bcfe89346e\n"
    "'http://deb.debian.org/debian/pool/main/o/openssl/libssl3_3.0.20-1%7edeb12u2_amd64.deb' "
    "libssl3_3.0.20-1~deb12u2_amd64.deb 2036016 MD5Sum:4efab63a42e193c6107a3e1d1c46eaa4\n"
    "'http://deb.debian.org/debian/pool/main/libt/libtirpc/libtirpc-common_1.3.3%2bds-1_all.deb' "
    "libtirpc-common_1.3.3+ds-1_all.deb 14048 MD5Sum:e49aca93814724ed80fa8932a1f7523b\n"
)

SHOW = """\
Package: libc6
Version: 2.36-9+deb12u14
Architecture: amd64
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb
Size: 2759320
SHA256: %s

Package: libssl3
Version: 3.0.20-1~deb12u2
Architecture: amd64
Filename: pool/main/o/openssl/libssl3_3.0.20-1~deb12u2_amd64.deb
Size: 2036016
SHA256: 89BE24B41BFF568EE6E7CAF5680A3D808E80315ED92E407056CE0FA7A5BDA025

Package: libtirpc-common
Version: 1.3.3+ds-1
Architecture: all
Filename: pool/main/libt/libtirpc/libtirpc-common_1.3.3+ds-1_all.deb
Size: 14048
SHA256: 3e3ef129b4bf61513144236e15e1b4ec57fa5ae3dc8a72137abdbefb7a63af85
""" % ('a' * 64)

COLONS = """\
sec:r:255:22:1111111111111111:1700000000:::u:::sc:::+::ed25519:::0:
fpr:::::::::REVOKED0000000000000000000000000000000000:
uid:r::::1700000000::AAAA::old <old@kubegpu.invalid>::::::::::0:
sec:u:255:22:790E0050FF6EA402:1796304892:::u:::scSC:::+::ed25519:::0:
fpr:::::::::420B27D94EA441AB11465286790E0050FF6EA402:
grp:::::::::E87C89444325BB8126BCDA502D0C47CC43CAAB6D:
uid:u::::1796304892::36A3::kubegpu bundle <bundle@kubegpu.invalid>::::::::::0:
ssb:u:255:18:2222222222222222:1796304892::::::e:::+::cv25519::
fpr:::::::::SUBKEY0000000000000000000000000000000000:
"""


# ---------------------------------------------------------------------------------------
# Inputs


def test_source_lines_are_parsed_and_normalized():
    src = ab.parse_source_line("deb [signed-by=/usr/share/keyrings/x.gpg arch=amd64] https://repo.example/debian  bookworm main contrib  # c")
    assert src == {'options': 'signed-by=/usr/share/keyrings/x.gpg arch=amd64', 'uri': 'https://repo.example/debian',
                   'suite': 'bookworm', 'components': ['main', 'contrib']}
    assert ab.parse_source_line('deb file:/srv/flat ./')['components'] == []
    text = ab.sources_list_text(['deb   http://deb.debian.org/debian bookworm main',
                                 'deb [signed-by=/k.gpg] http://deb.debian.org/debian-security bookworm-security main'])
    assert text == ('deb http://deb.debian.org/debian bookworm main\n'
                    'deb [signed-by=/k.gpg] http://deb.debian.org/debian-security bookworm-security main\n')


@pytest.mark.parametrize('line, words', [
    ('deb-src http://deb.debian.org/debian bookworm main', 'only "deb"'),
    ('deb http://deb.debian.org/debian bookworm', 'names no component'),
    ('deb cdrom:[Debian]/ bookworm main', 'only http, https'),
    ('http://deb.debian.org/debian', 'not an apt source line'),
    ('', 'not an apt source line'),
])
def test_bad_source_lines_are_refused(line, words):
    with pytest.raises(ab.BundleError, match=words):
        ab.parse_source_line(line)


def test_package_specs():
    assert ab.check_packages(['jq', 'socat=1.7.4.4-2', 'libc6=2.36-9+deb12u14', 'tzdata/bookworm-updates', 'x=1:2.0~rc1']) == [
        'jq', 'socat=1.7.4.4-2', 'libc6=2.36-9+deb12u14', 'tzdata/bookworm-updates', 'x=1:2.0~rc1']
    # The driver stage asks for a branch as a version pattern (plugin_utils/_driver_packages.select).
    assert ab.check_packages(['nvidia-kernel-dkms=535.*', 'libcuda1=535.2?7*']) == ['nvidia-kernel-dkms=535.*', 'libcuda1=535.2?7*']
    for bad in ('-o', '--allow-unauthenticated', 'jq socat', 'Jq', 'jq=', '', 'jq=1 -o'):
        with pytest.raises(ab.BundleError, match='not a package name'):
            ab.check_packages([bad])
    with pytest.raises(ab.BundleError, match='packages is empty'):
        ab.check_packages([])


def test_names_and_architectures():
    assert ab.check_name('kubegpu', 'suite') == 'kubegpu'
    for bad in ('a/b', '', '../x', 'two words'):
        with pytest.raises(ab.BundleError, match='not a valid name'):
            ab.check_name(bad, 'suite')
    assert ab.check_architectures(['amd64', 'arm64', 'amd64']) == ['amd64', 'arm64']
    for bad in (['all'], ['AMD64'], ['amd64 arm64']):
        with pytest.raises(ab.BundleError, match='not a Debian architecture'):
            ab.check_architectures(bad)
    with pytest.raises(ab.BundleError, match='empty'):
        ab.check_architectures([])


def test_keyrings_expand(tmp_path):
    (tmp_path / 'trusted.gpg.d').mkdir()
    for name in ('b.asc', 'a.gpg'):
        (tmp_path / 'trusted.gpg.d' / name).write_bytes(b'k')
    (tmp_path / 'main.gpg').write_bytes(b'k')
    found = ab.expand_keyrings([str(tmp_path / 'main.gpg'), str(tmp_path / 'trusted.gpg.d' / '*')])
    assert found == [str(tmp_path / n) for n in ('main.gpg', 'trusted.gpg.d/a.gpg', 'trusted.gpg.d/b.asc')]
    # The defaults take what exists; an explicit path must exist.
    assert ab.expand_keyrings([str(tmp_path / 'absent.gpg'), str(tmp_path / 'main.gpg')], defaults=True) == [str(tmp_path / 'main.gpg')]
    with pytest.raises(ab.BundleError, match='absent.gpg does not exist'):
        ab.expand_keyrings([str(tmp_path / 'absent.gpg')])
    with pytest.raises(ab.BundleError, match='no trusted keyring found'):
        ab.expand_keyrings([str(tmp_path / 'none' / '*')])


def test_trusted_part_names_keep_what_apt_reads():
    assert ab.trusted_part_name(0, '/usr/share/keyrings/debian-archive-keyring.gpg') == '00-debian-archive-keyring.gpg'
    assert ab.trusted_part_name(3, '/etc/apt/trusted.gpg.d/x.asc') == '03-x.asc'
    assert ab.trusted_part_name(1, '/opt/vendor.key', b'-----BEGIN PGP PUBLIC KEY BLOCK-----') == '01-vendor.key.asc'
    assert ab.trusted_part_name(2, '/opt/vendor key', b'\x99\x01') == '02-vendor_key.gpg'


# ---------------------------------------------------------------------------------------
# apt's private configuration


def test_apt_config_is_isolated_from_the_host(tmp_path):
    layout = ab.work_layout(str(tmp_path / 'work'))
    items = dict(ab.apt_config_items(layout, ['amd64', 'arm64']))
    for key, value in items.items():
        if key.startswith('Dir::'):
            assert value == os.devnull or value.startswith(str(tmp_path / 'work') + os.sep), key
    assert items['Dir::State::status'] == str(tmp_path / 'work' / 'dpkg' / 'status')
    assert items['Dir::Etc::SourceList'] == layout['sources_list']
    assert items['Dir::Etc::SourceParts'] == layout['sources_parts']
    assert items['Dir::Etc::Parts'] == layout['conf_parts']
    assert items['Dir::Etc::TrustedParts'] == layout['trusted_parts']
    assert items['Dir::Cache::pkgcache'] == str(tmp_path / 'work' / 'cache' / 'pkgcache.bin')
    assert items['APT::Architecture'] == 'amd64' and items['APT::Architectures'] == 'amd64,arm64'
    assert items['APT::Install-Recommends'] == 'false'
    assert items['Acquire::AllowInsecureRepositories'] == 'false'
    assert all(value == 'false' for key, value in items.items() if key.startswith('Debug::'))
    text = ab.apt_config_text(layout, ['amd64'])
    assert 'Dir::State::Lists "%s";' % layout['lists'] in text.splitlines()
    assert text.splitlines()[0] == 'Dir::Etc::Main "/dev/null";'
    with pytest.raises(ab.BundleError, match='double quote'):
        ab.apt_config_text(ab.work_layout('/srv/"x"'), ['amd64'])
    assert ab.apt_env(layout)['APT_CONFIG'] == layout['apt_conf']


def test_apt_argv():
    tools = {'apt-get': '/usr/bin/apt-get', 'apt-cache': '/usr/bin/apt-cache', 'apt-ftparchive': 'apt-ftparchive'}
    argv = ab.resolve_argv(tools, 'arm64', ['jq', 'socat=1.7.4.4-2'])
    assert argv[0] == '/usr/bin/apt-get' and argv[-2:] == ['jq', 'socat=1.7.4.4-2']
    for flag in ('install', '--print-uris', '--download-only', '--no-install-recommends', '-y', 'APT::Architecture=arm64',
                 'APT::Architectures=arm64'):
        assert flag in argv
    assert ab.update_argv(tools) == ['/usr/bin/apt-get', '-qq', 'update']
    assert ab.show_argv(tools, 'amd64', ['jq=1'])[-2:] == ['show', 'jq=1']
    assert ab.packages_argv(tools, 'amd64', 'main') == ['apt-ftparchive', '--arch', 'amd64', 'packages', 'pool/main']
    release = ab.release_argv(tools, 'kubegpu', 'main', ['amd64', 'arm64'], '/d/dists/kubegpu')
    for option in ('APT::FTPArchive::Release::Origin=kubegpu', 'APT::FTPArchive::Release::Label=kubegpu bundle',
                   'APT::FTPArchive::Release::Suite=kubegpu', 'APT::FTPArchive::Release::Codename=kubegpu',
                   'APT::FTPArchive::Release::Architectures=amd64 arm64', 'APT::FTPArchive::Release::Components=main'):
        assert option in release
    assert release[-2:] == ['release', '/d/dists/kubegpu']


# ---------------------------------------------------------------------------------------
# apt's output


def test_print_uris_parsed():
    entries = ab.parse_print_uris('Reading package lists...\n' + PRINT_URIS)
    assert [e['filename'] for e in entries] == ['libc6_2.36-9+deb12u14_amd64.deb', 'libssl3_3.0.20-1~deb12u2_amd64.deb',
                                                'libtirpc-common_1.3.3+ds-1_all.deb']
    assert entries[0]['size'] == 2759320 and entries[0]['hash'].startswith('MD5Sum:')
    assert entries[1]['url'].endswith('libssl3_3.0.20-1%7edeb12u2_amd64.deb')
    assert ab.parse_print_uris("'file:/x/a_1_all.deb' a_1_all.deb 3\n")[0]['hash'] == ''


def test_deb_identity_and_pool_name():
    assert ab.deb_identity('libc6_2.36-9+deb12u14_amd64.deb') == ('libc6', '2.36-9+deb12u14', 'amd64')
    assert ab.deb_identity('perl_1%3a5.36.0-7_amd64.deb') == ('perl', '1:5.36.0-7', 'amd64')
    with pytest.raises(ab.BundleError, match='not a package file name'):
        ab.deb_identity('README')
    assert ab.pool_name('http://deb.debian.org/debian/pool/main/o/openssl/libssl3_3.0.20-1%7edeb12u2_amd64.deb') == \
        'libssl3_3.0.20-1~deb12u2_amd64.deb'
    with pytest.raises(ab.BundleError, match='does not name a .deb'):
        ab.pool_name('http://x/pool/')


def test_control_parsed_with_continuation_lines():
    stanzas = ab.parse_control(SHOW)
    assert [s['Package'] for s in stanzas] == ['libc6', 'libssl3', 'libtirpc-common']
    assert stanzas[0]['Description'].endswith('the system.')
    assert stanzas[0]['Size'] == '2759320'


def test_closure_entries_take_sha256_from_the_index():
    entries = ab.closure_entries(ab.parse_print_uris(PRINT_URIS), ab.parse_control(SHOW), 'amd64')
    assert [(e['name'], e['version'], e['architecture']) for e in entries] == [
        ('libc6', '2.36-9+deb12u14', 'amd64'), ('libssl3', '3.0.20-1~deb12u2', 'amd64'), ('libtirpc-common', '1.3.3+ds-1', 'all')]
    assert entries[0]['sha256'] == 'a' * 64
    assert entries[1]['sha256'] == '89be24b41bff568ee6e7caf5680a3d808e80315ed92e407056ce0fa7a5bda025'
    assert entries[1]['filename'] == 'libssl3_3.0.20-1~deb12u2_amd64.deb'


def test_closure_entries_refuse_what_the_index_does_not_back():
    uris = ab.parse_print_uris(PRINT_URIS)
    with pytest.raises(ab.BundleError, match='no SHA256 for libssl3'):
        ab.closure_entries(uris, [s for s in ab.parse_control(SHOW) if s['Package'] != 'libssl3'], 'amd64')
    wrong_size = SHOW.replace('Size: 14048', 'Size: 1')
    with pytest.raises(ab.BundleError, match='14048 bytes, the index says 1'):
        ab.closure_entries(uris, ab.parse_control(wrong_size), 'amd64')
    sha_uris = [dict(uris[0], hash='SHA256:' + 'b' * 64)]
    with pytest.raises(ab.BundleError, match='disagree on its SHA256'):
        ab.closure_entries(sha_uris, ab.parse_control(SHOW), 'amd64')


def test_merge_closures_keeps_all_packages_once():
    amd = ab.closure_entries(ab.parse_print_uris(PRINT_URIS), ab.parse_control(SHOW), 'amd64')
    arm = [dict(amd[2])]
    merged = ab.merge_closures([amd, arm])
    assert sorted(merged) == ['libc6_2.36-9+deb12u14_amd64.deb', 'libssl3_3.0.20-1~deb12u2_amd64.deb',
                              'libtirpc-common_1.3.3+ds-1_all.deb']
    with pytest.raises(ab.BundleError, match='two sources with different content'):
        ab.merge_closures([amd, [dict(amd[2], sha256='0' * 64, url='http://other/x.deb')]])


def test_update_failures():
    assert ab.update_failures(0, '', '') == []
    assert ab.update_failures(0, 'Get:1 http://x bookworm InRelease\n', 'N: Download is performed unsandboxed as root\n') == []
    fetch = ('W: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  Could not resolve host\n'
             'W: Some index files failed to download. They have been ignored, or old ones used instead.\n')
    assert len(ab.update_failures(0, '', fetch)) == 2
    signed = "E: The repository 'http://deb.debian.org/debian bookworm InRelease' is not signed.\n"
    assert ab.update_failures(100, '', signed) == [signed.strip()]
    assert ab.update_failures(100, '', '') == ['apt-get update exited with 100']


def test_resolve_failure_names_the_package_and_apt():
    msg = ab.resolve_failure(['jq=9', 'nosuchpkg', 'socat'], 'amd64', 100, '',
                             "E: Version '9' for 'jq' was not found\nE: Unable to locate package nosuchpkg\n")
    assert msg == ("cannot resolve jq=9, nosuchpkg for amd64: E: Version '9' for 'jq' was not found; "
                   "E: Unable to locate package nosuchpkg")
    broken = ('Some packages could not be installed.\nThe following packages have unmet dependencies:\n'
              ' kubelet : Depends: conntrack but it is not installable\n'
              'E: Unable to correct problems, you have held broken packages.\n')
    msg = ab.resolve_failure(['kubelet', 'jq'], 'arm64', 100, broken, '')
    assert msg == 'cannot resolve kubelet for arm64: E: Unable to correct problems, you have held broken packages.'
    assert 'exited with 100' in ab.resolve_failure(['jq'], 'amd64', 100, '', '')


# ---------------------------------------------------------------------------------------
# The pool and the index


def test_plan_pool_added_and_removed():
    wanted = {'a_1_amd64.deb': {'size': 3, 'sha256': 'aa'}, 'b_1_amd64.deb': {'size': 4, 'sha256': 'bb'},
              'c_1_all.deb': {'size': 5, 'sha256': 'cc'}, 'd_1_all.deb': {'size': 6, 'sha256': 'dd'}}
    listing = {'a_1_amd64.deb': 3, 'b_1_amd64.deb': 9, 'c_1_all.deb': 5, 'old_1_amd64.deb': 7, 'stray.txt': 1}
    digests = {'a_1_amd64.deb': 'aa', 'c_1_all.deb': 'XX'}
    asked = []

    def digest_of(name):
        asked.append(name)
        return digests[name]
    fetch, remove = ab.plan_pool(wanted, listing, digest_of)
    assert fetch == ['b_1_amd64.deb', 'c_1_all.deb', 'd_1_all.deb']
    assert remove == ['old_1_amd64.deb', 'stray.txt']
    assert sorted(asked) == ['a_1_amd64.deb', 'c_1_all.deb']  # no hashing where the size already differs


def test_download_verifies_size_and_sha256(tmp_path):
    source = tmp_path / 'jq_1.6_amd64.deb'
    source.write_bytes(b'x' * 1000)
    digest = hashlib.sha256(b'x' * 1000).hexdigest()
    target = tmp_path / 'got'
    ab.download(source.as_uri(), str(target), 1000, digest)
    assert target.read_bytes() == b'x' * 1000
    ab.download('copy:' + str(source), str(target), 1000, digest)
    with pytest.raises(ab.BundleError, match='the signed index says 999 bytes'):
        ab.download(source.as_uri(), str(target), 999, digest)
    assert not target.exists()
    with pytest.raises(ab.BundleError, match='cannot download'):
        ab.download((tmp_path / 'absent.deb').as_uri(), str(target), 1, digest)


def test_index_text_is_deterministic():
    text = 'Package: b\nFilename: pool/main/b_1_all.deb\n\nPackage: a\nFilename: pool/main/a_1_all.deb\n\n'
    assert ab.sort_stanzas(text) == 'Package: a\nFilename: pool/main/a_1_all.deb\n\nPackage: b\nFilename: pool/main/b_1_all.deb\n\n'
    assert ab.gzip_bytes(b'abc') == ab.gzip_bytes(b'abc')
    assert gzip.decompress(ab.gzip_bytes(b'abc')) == b'abc'


def test_release_compared_without_its_date():
    old = 'Origin: kubegpu\nDate: Mon, 01 Jan 2024 00:00:00 UTC\nSHA256:\n aa 1 main/binary-amd64/Packages\n'
    assert ab.same_release(old, old.replace('Mon, 01 Jan 2024', 'Tue, 02 Jan 2024'))
    assert not ab.same_release(old, old.replace(' aa ', ' bb '))
    assert not ab.same_release(None, old)


def test_secret_keys_parsed():
    assert ab.parse_secret_keys(COLONS) == ['420B27D94EA441AB11465286790E0050FF6EA402']
    assert ab.parse_secret_keys('') == []


def test_source_line_and_gpg_argv():
    assert ab.source_line(['amd64'], 'kubegpu', 'main') == \
        'deb [arch=amd64 signed-by=/etc/apt/keyrings/kubegpu-bundle.asc] {{ url }} kubegpu main'
    assert ab.source_line(['amd64', 'arm64'], 's', 'c', url='file:///srv/b') == \
        'deb [arch=amd64,arm64 signed-by=/etc/apt/keyrings/kubegpu-bundle.asc] file:///srv/b s c'
    tools = {'gpg': 'gpg'}
    assert ab.genkey_argv(tools, '/g', 'ed25519')[-5:] == ['--quick-gen-key', 'kubegpu bundle <bundle@kubegpu.invalid>',
                                                           'ed25519', 'sign', 'never']
    assert '--clearsign' in ab.sign_argv(tools, '/g', 'FPR', 'clear', 'Release', 'InRelease')
    assert '--detach-sign' in ab.sign_argv(tools, '/g', 'FPR', 'detached', 'Release', 'Release.gpg')


# ---------------------------------------------------------------------------------------
# Whole runs against a stand-in for apt, apt-ftparchive and gpg


class FakeHost:
    """apt-get, apt-cache, apt-ftparchive, gpg, gpgv and gpgconf as far as apt_bundle uses
    them. The "archive" is a directory of real files served by file:// URLs; a signature
    is the signed text with the key's fingerprint."""

    FPR = '420B27D94EA441AB11465286790E0050FF6EA402'

    def __init__(self, tmp_path):
        self.mirror = tmp_path / 'mirror'
        self.mirror.mkdir()
        self.available = {}
        self.closure = {'jq': ['jq', 'libjq1', 'libonig5', 'libc6'], 'socat': ['socat', 'libssl3', 'libc6']}
        self.calls = []
        self.update_rc, self.update_err = 0, ''
        self.clock = 0
        for name, version, arch in (('jq', '1.6-2.1', 'amd64'), ('libjq1', '1.6-2.1', 'amd64'), ('libonig5', '6.9.8-1', 'amd64'),
                                    ('libc6', '2.36-9', 'amd64'), ('socat', '1.7.4.4-2', 'amd64'), ('libssl3', '3.0.20-1~deb12u2', 'amd64')):
            self.publish(name, version, arch)

    def publish(self, name, version, arch, content=None):
        filename = '%s_%s_%s.deb' % (name, version, arch)
        data = content or ('%s %s %s\n' % (name, version, arch)).encode() * 10
        (self.mirror / filename).write_bytes(data)
        self.available[name] = (version, arch, filename, data)

    def run(self, argv, env=None, cwd=None):
        self.calls.append((list(argv), dict(env or {}), cwd))
        tool = os.path.basename(argv[0])
        handler = getattr(self, '_' + tool.replace('-', '_'))
        return handler(argv, env or {}, cwd)

    # apt ---------------------------------------------------------------------------
    def _apt_get(self, argv, env, cwd):
        assert env['APT_CONFIG'].endswith('apt.conf') and os.path.isfile(env['APT_CONFIG'])
        if argv[-1] == 'update':
            return self.update_rc, '', self.update_err
        specs = argv[argv.index('-y') + 1:]
        missing = [s for s in specs if s.split('=')[0] not in self.closure]
        if missing:
            return 100, '', ''.join('E: Unable to locate package %s\n' % m for m in missing)
        names = []
        for spec in specs:
            names += [n for n in self.closure[spec.split('=')[0]] if n not in names]
        lines = []
        for name in names:
            version, arch, filename, data = self.available[name]
            url = (self.mirror / quote(filename)).as_uri().replace('%25', '%')
            lines.append("'%s' %s %d MD5Sum:%s" % (url, filename, len(data), hashlib.md5(data).hexdigest()))
        return 0, '\n'.join(lines) + '\n', ''

    def _apt_cache(self, argv, env, cwd):
        out = []
        for spec in argv[argv.index('show') + 1:]:
            name = spec.split('=')[0]
            version, arch, filename, data = self.available[name]
            out.append('Package: %s\nVersion: %s\nArchitecture: %s\nFilename: pool/main/x/%s\nSize: %d\nSHA256: %s\n'
                       % (name, version, arch, filename, len(data), hashlib.sha256(data).hexdigest()))
        return 0, '\n'.join(out), ''

    def _apt_ftparchive(self, argv, env, cwd):
        if 'packages' in argv:
            pool = os.path.join(cwd, argv[-1])
            stanzas = ['Package: %s\nFilename: %s/%s\nSize: %d\n' % (n.split('_')[0], argv[-1], n, os.path.getsize(os.path.join(pool, n)))
                       for n in os.listdir(pool)]
            return 0, '\n'.join(stanzas) + '\n', ''
        self.clock += 1
        top = argv[-1]
        lines = ['Origin: kubegpu', 'Date: tick %d' % self.clock, 'SHA256:']
        for root, _dirs, names in os.walk(top):
            for name in sorted(names):
                path = os.path.join(root, name)
                with open(path, 'rb') as stream:
                    lines.append(' %s %d %s' % (hashlib.sha256(stream.read()).hexdigest(), os.path.getsize(path), os.path.relpath(path, top)))
        return 0, '\n'.join(lines) + '\n', ''

    # gpg ---------------------------------------------------------------------------
    def _gpg(self, argv, env, cwd):
        home = argv[argv.index('--homedir') + 1]
        marker = os.path.join(home, 'secret-key')
        if '--list-secret-keys' in argv:
            return 0, (COLONS if os.path.exists(marker) else ''), ''
        if '--quick-gen-key' in argv:
            open(marker, 'w').close()
            return 0, '', ''
        if '--export' in argv and '--armor' in argv:
            return 0, '-----BEGIN PGP PUBLIC KEY BLOCK-----\n%s\n-----END PGP PUBLIC KEY BLOCK-----\n' % self.FPR, ''
        if '--export' in argv:
            with open(argv[argv.index('--output') + 1], 'w') as stream:
                stream.write(self.FPR)
            return 0, '', ''
        target = argv[argv.index('--output') + 1]
        with open(argv[-1]) as source, open(target, 'w') as out:
            text = source.read()
            out.write('SIGNED BY %s\n%s' % (self.FPR, text) if '--clearsign' in argv else 'DETACHED %s %s' % (
                self.FPR, hashlib.sha256(text.encode()).hexdigest()))
        return 0, '', ''

    def _gpgv(self, argv, env, cwd):
        with open(argv[argv.index('--keyring') + 1]) as stream:
            key = stream.read()
        if '--output' in argv:
            with open(argv[-1]) as stream:
                head, _sep, text = stream.read().partition('\n')
            return (0, text, '') if head == 'SIGNED BY %s' % key else (1, '', 'BAD')
        with open(argv[-2]) as sig, open(argv[-1]) as data:
            good = sig.read() == 'DETACHED %s %s' % (key, hashlib.sha256(data.read().encode()).hexdigest())
        return (0, '', '') if good else (1, '', 'BAD')

    def _gpgconf(self, argv, env, cwd):
        return 0, '', ''


@pytest.fixture
def host(tmp_path):
    return FakeHost(tmp_path)


def params(tmp_path, **extra):
    keyring = tmp_path / 'archive-keyring.gpg'
    keyring.write_bytes(b'\x99key')
    base = {'dest': str(tmp_path / 'repo'), 'gpg_home': str(tmp_path / 'gnupg'), 'packages': ['jq', 'socat'],
            'sources': ['deb http://deb.debian.org/debian bookworm main'], 'trusted_keyrings': [str(keyring)],
            'architectures': ['amd64'], 'suite': 'kubegpu', 'component': 'main', 'work_dir': None, 'public_key': None,
            'key_algorithm': 'ed25519'}
    base.update(extra)
    return base


def tree(top):
    found = {}
    for root, _dirs, names in os.walk(str(top)):
        for name in names:
            path = os.path.join(root, name)
            with open(path, 'rb') as stream:
                found[os.path.relpath(path, str(top))] = stream.read()
    return found


def test_first_run_builds_the_repository_second_changes_nothing(tmp_path, host):
    result = ab.run(params(tmp_path), False, host.run)
    repo = tmp_path / 'repo'
    assert result['changed'] and result['key_created'] and result['index_updated']
    assert result['key_fingerprint'] == FakeHost.FPR
    assert result['added'] == ['pool/main/jq_1.6-2.1_amd64.deb', 'pool/main/libc6_2.36-9_amd64.deb',
                               'pool/main/libjq1_1.6-2.1_amd64.deb', 'pool/main/libonig5_6.9.8-1_amd64.deb',
                               'pool/main/libssl3_3.0.20-1~deb12u2_amd64.deb', 'pool/main/socat_1.7.4.4-2_amd64.deb']
    assert result['removed'] == []
    assert [p['name'] for p in result['packages']] == ['jq', 'libc6', 'libjq1', 'libonig5', 'libssl3', 'socat']
    libc6 = result['packages'][1]
    assert libc6['filename'] == 'pool/main/libc6_2.36-9_amd64.deb' and libc6['architecture'] == 'amd64'
    assert libc6['sha256'] == hashlib.sha256((repo / libc6['filename']).read_bytes()).hexdigest()
    assert result['total_size'] == sum(p['size'] for p in result['packages'])
    assert result['source_line'] == 'deb [arch=amd64 signed-by=/etc/apt/keyrings/kubegpu-bundle.asc] {{ url }} kubegpu main'
    files = tree(repo)
    assert sorted(f for f in files if not f.startswith('.apt-work')) == sorted(
        ['kubegpu-bundle.asc', 'dists/kubegpu/Release', 'dists/kubegpu/InRelease', 'dists/kubegpu/Release.gpg',
         'dists/kubegpu/main/binary-amd64/Packages', 'dists/kubegpu/main/binary-amd64/Packages.gz'] + result['added'])
    packages = files['dists/kubegpu/main/binary-amd64/Packages']
    assert gzip.decompress(files['dists/kubegpu/main/binary-amd64/Packages.gz']) == packages
    assert packages.decode().index('Filename: pool/main/jq_') < packages.decode().index('Filename: pool/main/socat_')
    assert files['dists/kubegpu/InRelease'].decode() == 'SIGNED BY %s\n%s' % (FakeHost.FPR, files['dists/kubegpu/Release'].decode())
    assert oct(os.stat(str(tmp_path / 'gnupg')).st_mode & 0o777) == '0o700'
    # apt ran with the private configuration only; the Packages index was made in dest.
    assert all(c[1]['APT_CONFIG'] == str(repo / '.apt-work' / 'apt.conf') for c in host.calls if c[0][0] in ('apt-get', 'apt-cache'))
    assert [c[2] for c in host.calls if c[0][0] == 'apt-ftparchive' and 'packages' in c[0]] == [str(repo)]
    assert (repo / '.apt-work' / 'dpkg' / 'status').read_bytes() == b''
    assert sorted(os.listdir(str(repo / '.apt-work' / 'etc' / 'trusted.gpg.d'))) == ['00-archive-keyring.gpg']

    again = ab.run(params(tmp_path), False, host.run)
    assert not again['changed'] and again['added'] == [] and again['removed'] == []
    assert not again['index_updated'] and not again['key_created']
    assert tree(repo) == files  # the Release whose Date alone differs is kept, with its signatures


def test_check_mode_writes_nothing(tmp_path, host):
    result = ab.run(params(tmp_path), True, host.run)
    assert result['changed'] and len(result['added']) == 6 and result['key_fingerprint'] is None and result['key_created']
    assert not (tmp_path / 'repo').exists() and not (tmp_path / 'gnupg').exists()
    ab.run(params(tmp_path), False, host.run)
    before = tree(tmp_path / 'repo')
    result = ab.run(params(tmp_path), True, host.run)
    assert not result['changed'] and result['key_fingerprint'] == FakeHost.FPR
    result = ab.run(params(tmp_path, packages=['jq']), True, host.run)
    assert result['changed'] and result['removed'] == ['pool/main/libssl3_3.0.20-1~deb12u2_amd64.deb',
                                                       'pool/main/socat_1.7.4.4-2_amd64.deb']
    after = tree(tmp_path / 'repo')
    assert {k: v for k, v in after.items() if not k.startswith('.apt-work')} == \
        {k: v for k, v in before.items() if not k.startswith('.apt-work')}


def test_check_mode_sees_a_missing_signature(tmp_path, host):
    ab.run(params(tmp_path), False, host.run)
    os.unlink(str(tmp_path / 'repo' / 'dists' / 'kubegpu' / 'InRelease'))
    result = ab.run(params(tmp_path), True, host.run)
    assert result['changed'] and result['index_updated'] and result['added'] == []
    result = ab.run(params(tmp_path), False, host.run)
    assert result['changed'] and result['index_updated']
    assert (tmp_path / 'repo' / 'dists' / 'kubegpu' / 'InRelease').exists()


def test_new_version_replaces_and_removes(tmp_path, host):
    ab.run(params(tmp_path), False, host.run)
    (tmp_path / 'repo' / 'pool' / 'main' / 'stray.deb').write_bytes(b'x')
    (tmp_path / 'repo' / 'dists' / 'kubegpu' / 'main' / 'binary-arm64').mkdir()
    (tmp_path / 'repo' / 'dists' / 'kubegpu' / 'main' / 'binary-arm64' / 'Packages').write_bytes(b'')
    host.publish('libssl3', '3.0.20-1~deb12u3', 'amd64')
    result = ab.run(params(tmp_path), False, host.run)
    assert result['added'] == ['pool/main/libssl3_3.0.20-1~deb12u3_amd64.deb']
    assert result['removed'] == ['pool/main/libssl3_3.0.20-1~deb12u2_amd64.deb', 'pool/main/stray.deb']
    assert result['index_updated']
    pool = sorted(os.listdir(str(tmp_path / 'repo' / 'pool' / 'main')))
    assert pool == sorted(p['filename'].split('/')[-1] for p in result['packages'])
    assert not (tmp_path / 'repo' / 'dists' / 'kubegpu' / 'main' / 'binary-arm64').exists()
    packages = (tmp_path / 'repo' / 'dists' / 'kubegpu' / 'main' / 'binary-amd64' / 'Packages').read_text()
    assert 'deb12u3' in packages and 'deb12u2' not in packages


def test_corrupt_pool_file_is_downloaded_again(tmp_path, host):
    ab.run(params(tmp_path), False, host.run)
    jq = tmp_path / 'repo' / 'pool' / 'main' / 'jq_1.6-2.1_amd64.deb'
    good = jq.read_bytes()
    jq.write_bytes(b'X' * len(good))
    result = ab.run(params(tmp_path), False, host.run)
    assert result['added'] == ['pool/main/jq_1.6-2.1_amd64.deb'] and result['changed']
    assert jq.read_bytes() == good


def test_failures(tmp_path, host):
    with pytest.raises(ab.BundleError, match='cannot resolve nosuch for amd64: E: Unable to locate package nosuch'):
        ab.run(params(tmp_path, packages=['jq', 'nosuch']), False, host.run)
    assert not (tmp_path / 'repo' / 'pool').exists()
    host.update_rc, host.update_err = 100, "E: The repository 'http://x bookworm InRelease' is not signed.\n"
    with pytest.raises(ab.BundleError, match='apt-get update of the bundle sources failed: E: The repository'):
        ab.run(params(tmp_path), False, host.run)
    host.update_rc, host.update_err = 0, ''
    host.publish('libc6', '2.36-9', 'amd64', content=b'other')
    real_apt_cache = host._apt_cache
    host._apt_cache = lambda argv, env, cwd: (0, real_apt_cache(argv, env, cwd)[1].replace(
        'SHA256: %s' % hashlib.sha256(b'other').hexdigest(), 'SHA256: ' + '0' * 64), '')
    with pytest.raises(ab.BundleError, match='libc6_2.36-9_amd64.deb: got 5 bytes with SHA256'):
        ab.run(params(tmp_path), False, host.run)


# ---------------------------------------------------------------------------------------
# The module


@pytest.fixture
def module_exits(monkeypatch):
    patch_module_exits(monkeypatch)


def run_module(args, host, check_mode=False, diff=False):
    return run_module_main(apt_bundle.main, args, host, check_mode=check_mode, diff=diff)


def test_module_runs_and_reports(tmp_path, host, module_exits):
    args = {k: v for k, v in params(tmp_path).items() if v is not None}
    result = run_module(args, host, diff=True)
    assert not result['_failed'] and result['changed']
    assert result['diff']['after'].splitlines()[0] == 'jq_1.6-2.1_amd64.deb' and result['diff']['before'] == ''
    json.dumps(result)
    result = run_module(args, host)
    assert not result['changed'] and 'diff' not in result
    result = run_module(dict(args, packages=['nosuch']), host)
    assert result['_failed'] and result['msg'] == 'cannot resolve nosuch for amd64: E: Unable to locate package nosuch'


def test_module_spec_matches_its_documentation():
    import yaml
    doc = yaml.safe_load(apt_bundle.DOCUMENTATION)['options']
    assert sorted(doc) == ['architectures', 'component', 'dest', 'gpg_home', 'key_algorithm', 'packages', 'public_key',
                           'sources', 'suite', 'trusted_keyrings', 'work_dir']
    assert doc['architectures']['default'] == ['amd64'] and doc['suite']['default'] == 'kubegpu'
