# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the dnf_bundle module (module_utils/_dnf_bundle): the pure logic (dnf's
private configuration, the resolver's output, rpmkeys' output, the metadata, failure
messages) and whole runs against a stand-in for the resolver, createrepo_c, rpmkeys, gpg
and gpgv whose package files are real files served by file:// URLs. The outputs are the
real tools', captured in a Debian 12 container (dnf 4.14, createrepo_c 0.17.3, rpm 4.18).
The real thing: tests/integration/test_dnf_bundle_real.py."""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os

import pytest

from ansible_collections.kubegpu.cluster.tests.unit.compat import patch_module_exits, run_module_main
from ansible_collections.kubegpu.cluster.tests.unit.plugins.modules.test_apt_bundle import FakeHost

from ansible_collections.kubegpu.cluster.plugins.module_utils import _dnf_bundle as db
from ansible_collections.kubegpu.cluster.plugins.modules import dnf_bundle

# The resolver's output for alpha (Requires: beta) and signedpkg (Requires: gamma), x86_64.
RESOLVED = (
    '{"packages": [{"arch": "noarch", "checksum": "9bdde964f67a84d6c38132a454ccfde46813a6d5c2d6dfa5cc803a83da0ef98f", '
    '"checksum_type": "sha256", "epoch": 0, "location": "alpha-1.0-1.noarch.rpm", "name": "alpha", "release": "1", '
    '"repo": "plain", "size": 6078, "url": "file:///srv/up/plain/alpha-1.0-1.noarch.rpm", "version": "1.0"}, '
    '{"arch": "noarch", "checksum": "7d68c010e0bb0571349992368376086f7862c83eb6d09557bc119898c1edceb9", '
    '"checksum_type": "sha256", "epoch": 0, "location": "beta-1.0-1.noarch.rpm", "name": "beta", "release": "1", '
    '"repo": "plain", "size": 6066, "url": "file:///srv/up/plain/beta-1.0-1.noarch.rpm", "version": "1.0"}, '
    '{"arch": "noarch", "checksum": "a691f1b9bb797487a961218420171677cfa606d735dd76e37eb5d04a947460aa", '
    '"checksum_type": "sha256", "epoch": 0, "location": "signedpkg-1.0-1.noarch.rpm", "name": "signedpkg", '
    '"release": "1", "repo": "signed", "size": 6107, "url": "file:///srv/up/signed/signedpkg-1.0-1.noarch.rpm", '
    '"version": "1.0"}]}\n')

REPO_ERROR = ('{"error": "repo", "message": "Failed to download metadata for repo \'broken\': Cannot download repomd.xml: '
              'Cannot download repodata/repomd.xml: All mirrors were tried", "repo": "broken"}\n')
REPO_ERROR_STDERR = ("Errors during downloading metadata for repository 'broken':\n"
                     "  - Curl error (37): Couldn't read a file:// file for file:///srv/nothere/repodata/repomd.xml "
                     "[Couldn't open file /srv/nothere/repodata/repomd.xml]\n")
DEPSOLVE = ('{"error": "depsolve", "message": "\\n Problem: conflicting requests\\n  - package archy-1.0-1.x86_64 does '
            'not have a compatible architecture"}\n')

# createrepo_c 0.17.3's repomd.xml and primary.xml (one package), as they come.
REPOMD = """<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1796344868</revision>
  <data type="primary">
    <checksum type="sha256">aeec48b3211b55b9caaf18a4bf6e54865192fa750ad66a13d0cc2220948531fd</checksum>
    <open-checksum type="sha256">445cc281cb206856cbd638b8a64998bb9c061e79584f31829ef6095cfe088454</open-checksum>
    <location href="repodata/%s"/>
    <timestamp>1796344868</timestamp>
    <size>972</size>
    <open-size>4889</open-size>
  </data>
  <data type="filelists">
    <checksum type="sha256">785596e0a6c8deca219c2ee82a842a232b4fb3efe1ea6ff583f3144d78e6ec9b</checksum>
    <location href="repodata/785596e0a6c8deca219c2ee82a842a232b4fb3efe1ea6ff583f3144d78e6ec9b-filelists.xml.gz"/>
  </data>
</repomd>
"""

PRIMARY_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n<metadata xmlns="http://linux.duke.edu/metadata/common" '
                'xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="%d">\n')
PRIMARY_PACKAGE = """<package type="rpm">
  <name>%(name)s</name>
  <arch>%(arch)s</arch>
  <version epoch="0" ver="1.0" rel="1"/>
  <checksum type="sha256" pkgid="YES">%(sha256)s</checksum>
  <summary>test package %(name)s</summary>
  <size package="%(size)d" installed="6" archive="264"/>
  <location href="%(href)s"/>
  <format>
    <rpm:license>MIT</rpm:license>
    <rpm:provides>
      <rpm:entry name="%(name)s" flags="EQ" epoch="0" ver="1.0" rel="1"/>
    </rpm:provides>
  </format>
</package>
"""

# rpmkeys --checksig (rpm 4.18): a signed package, an unsigned one (rc 0 too), a tampered one (rc 1).
CHECKSIG_SIGNED = '/srv/up/signed/signedpkg-1.0-1.noarch.rpm: digests signatures OK\n'
CHECKSIG_UNSIGNED = '/srv/up/plain/beta-1.0-1.noarch.rpm: digests OK\n'
CHECKSIG_BAD = '/tmp/t.rpm: DIGESTS SIGNATURES NOT OK\n'


def primary_xml(packages):
    return (PRIMARY_HEAD % len(packages) + ''.join(PRIMARY_PACKAGE % p for p in packages) + '</metadata>\n').encode()


# ---------------------------------------------------------------------------------------
# Inputs


def test_repos_are_checked_and_normalized(tmp_path):
    key = tmp_path / 'RPM-GPG-KEY'
    key.write_text('-----BEGIN PGP PUBLIC KEY BLOCK-----\n')
    repos = db.check_repos([{'name': 'baseos', 'baseurl': 'https://dl.rockylinux.org/pub/rocky/$releasever/BaseOS/$basearch/os/',
                             'gpgkey': str(key)},
                            {'name': 'local', 'baseurl': 'file:///srv/up', 'gpgcheck': None, 'module_hotfixes': True}])
    assert repos == [
        {'name': 'baseos', 'baseurl': 'https://dl.rockylinux.org/pub/rocky/$releasever/BaseOS/$basearch/os/',
         'gpgkey': str(key), 'gpgcheck': True, 'repo_gpgcheck': False, 'module_hotfixes': False},
        {'name': 'local', 'baseurl': 'file:///srv/up', 'gpgkey': None, 'gpgcheck': False, 'repo_gpgcheck': False,
         'module_hotfixes': True}]
    nvidia = db.check_repos([{'name': 'k', 'baseurl': 'http://x/', 'gpgkey': str(key), 'gpgcheck': False, 'repo_gpgcheck': True}])
    assert nvidia[0]['gpgcheck'] is False and nvidia[0]['repo_gpgcheck'] is True


@pytest.mark.parametrize('repo, words', [
    ({'name': 'a b', 'baseurl': 'http://x/'}, 'not a dnf repository id'),
    ({'name': '', 'baseurl': 'http://x/'}, 'not a dnf repository id'),
    ({'name': 'a', 'baseurl': 'rsync://x/'}, 'not an http, https, ftp or file URL'),
    ({'name': 'a', 'baseurl': 'http://x/\ngpgcheck=0'}, 'not an http, https, ftp or file URL'),
    ({'name': 'a', 'baseurl': 'http://x/', 'gpgcheck': True}, 'gpgcheck needs gpgkey'),
    ({'name': 'a', 'baseurl': 'http://x/', 'repo_gpgcheck': True}, 'repo_gpgcheck needs gpgkey'),
    ({'name': 'a', 'baseurl': 'http://x/', 'gpgkey': '/nonexistent/key.asc'}, 'gpgkey /nonexistent/key.asc does not exist'),
])
def test_bad_repos_are_refused(repo, words):
    with pytest.raises(db.BundleError, match=words):
        db.check_repos([repo])


def test_repos_named_twice_or_none():
    with pytest.raises(db.BundleError, match='named twice'):
        db.check_repos([{'name': 'a', 'baseurl': 'http://x/'}, {'name': 'a', 'baseurl': 'http://y/'}])
    with pytest.raises(db.BundleError, match='repos is empty'):
        db.check_repos([])


def test_package_specs_architectures_and_release():
    specs = ['kubelet', 'kubelet-1.35.0', 'cuda-drivers-580*', 'glibc-2.34-100.el9.x86_64', 'perl(File::Temp)',
             '/usr/bin/python3',
             'libstdc++', 'python3.11', 'kernel-core-5.14.0-570.el9']
    assert db.check_packages(specs) == specs
    for bad in ('-y', '--setopt=x', 'a b', '', 'x;y', 'a\nb'):
        with pytest.raises(db.BundleError, match='not a package name'):
            db.check_packages([bad])
    with pytest.raises(db.BundleError, match='packages is empty'):
        db.check_packages([])
    assert db.check_architectures(['x86_64', 'aarch64', 'x86_64']) == ['x86_64', 'aarch64']
    with pytest.raises(db.BundleError, match="'amd64' is not one of x86_64, aarch64"):
        db.check_architectures(['amd64'])
    with pytest.raises(db.BundleError, match='empty'):
        db.check_architectures([])
    assert db.check_releasever('9') == '9' and db.check_releasever('9.6') == '9.6'
    for bad in ('', '9 --x', '../9'):
        with pytest.raises(db.BundleError, match='not a release version'):
            db.check_releasever(bad)


# ---------------------------------------------------------------------------------------
# dnf's private configuration


def test_dnf_config_is_isolated_from_the_host(tmp_path):
    layout = db.work_layout(str(tmp_path / 'work'))
    text = db.dnf_conf_text(layout)
    items = dict(line.split('=', 1) for line in text.splitlines()[1:] if line)
    assert text.splitlines()[0] == '[main]'
    for key in ('cachedir', 'logdir', 'persistdir', 'reposdir'):
        assert items[key].startswith(str(tmp_path / 'work') + os.sep), key
    assert items['reposdir'] == layout['reposdir']
    assert items['install_weak_deps'] == 'False' and items['plugins'] == 'False'
    assert items['skip_if_unavailable'] == 'False' and items['metadata_expire'] == '0'
    with pytest.raises(db.BundleError, match='newline'):
        db.dnf_conf_text(db.work_layout('/srv/x\ny'))


def test_repos_file_and_argv(tmp_path):
    key = tmp_path / 'k.asc'
    key.write_text('k')
    repos = db.check_repos([{'name': 'baseos', 'baseurl': 'https://r.example/$releasever/BaseOS/$basearch/os/', 'gpgkey': str(key),
                             'repo_gpgcheck': True},
                            {'name': 'local', 'baseurl': 'file:///srv/up', 'module_hotfixes': True}])
    assert db.repos_text(repos) == (
        '[baseos]\nname=baseos\nbaseurl=https://r.example/$releasever/BaseOS/$basearch/os/\nenabled=1\ngpgcheck=1\n'
        'gpgkey=file://%s\nrepo_gpgcheck=1\nmodule_hotfixes=0\nskip_if_unavailable=0\n\n'
        '[local]\nname=local\nbaseurl=file:///srv/up\nenabled=1\ngpgcheck=0\nrepo_gpgcheck=0\nmodule_hotfixes=1\n'
        'skip_if_unavailable=0\n' % key)
    layout = db.work_layout('/w')
    assert db.resolve_argv('/usr/bin/python3', layout, '9', 'aarch64', ['kubelet-1.35.0', 'jq']) == [
        '/usr/bin/python3', '/w/resolve.py', '--config', '/w/dnf.conf', '--installroot', '/w/root', '--releasever', '9',
        '--forcearch', 'aarch64', 'kubelet-1.35.0', 'jq']
    tools = {'createrepo_c': '/usr/bin/createrepo_c', 'rpmkeys': 'rpmkeys'}
    assert db.createrepo_argv(tools, layout, '/srv/b') == [
        '/usr/bin/createrepo_c', '--quiet', '--no-database', '--checksum', 'sha256', '--general-compress-type', 'gz',
        '--pkglist', '/w/pkglist', '/srv/b']
    assert db.rpmkeys_import_argv(tools, '/w/rpmkeys/x', '/k.asc') == ['rpmkeys', '--dbpath', '/w/rpmkeys/x', '--import', '/k.asc']
    assert db.rpmkeys_checksig_argv(tools, '/w/rpmkeys/x', '/p.rpm') == ['rpmkeys', '--dbpath', '/w/rpmkeys/x', '--checksig', '/p.rpm']


def test_resolver_script_compiles():
    compile(db.RESOLVER, 'resolve.py', 'exec')
    for word in ('load_system_repo=False', 'conf.arch = args.forcearch', 'conf.installroot', 'base.resolve()',
                 'strict=True'):
        assert word in db.RESOLVER


# ---------------------------------------------------------------------------------------
# The resolver's output


REPOS = db.check_repos([{'name': 'plain', 'baseurl': 'file:///srv/up/plain'},
                        {'name': 'signed', 'baseurl': 'file:///srv/up/signed', 'gpgkey': __file__}])


def test_resolution_parsed_into_closure_entries():
    result = db.parse_resolution('some noise\n' + RESOLVED)
    entries = db.closure_entries(result, 'x86_64', REPOS)
    assert [e['filename'] for e in entries] == ['alpha-1.0-1.noarch.rpm', 'beta-1.0-1.noarch.rpm', 'signedpkg-1.0-1.noarch.rpm']
    assert entries[2] == {'name': 'signedpkg', 'version': '1.0-1', 'architecture': 'noarch',
                          'filename': 'signedpkg-1.0-1.noarch.rpm', 'url': 'file:///srv/up/signed/signedpkg-1.0-1.noarch.rpm',
                          'size': 6107, 'sha256': 'a691f1b9bb797487a961218420171677cfa606d735dd76e37eb5d04a947460aa',
                          'repo': 'signed'}
    assert db.evr({'epoch': 2, 'version': '1.35.0', 'release': '150500.1.1'}) == '2:1.35.0-150500.1.1'
    assert db.parse_resolution('Traceback (most recent call last):\n') is None


@pytest.mark.parametrize('change, words', [
    ({'checksum_type': 'sha1', 'checksum': 'a' * 40}, "gives its checksum as 'sha1', not SHA256"),
    ({'repo': 'other'}, "comes from repository 'other', which is not in repos"),
    ({'url': '/srv/up/plain/alpha-1.0-1.noarch.rpm'}, 'gives no downloadable URL'),
    ({'name': '../x'}, 'is not a package file name'),
])
def test_bad_resolutions_are_refused(change, words):
    result = json.loads(RESOLVED)
    result['packages'][0].update(change)
    with pytest.raises(db.BundleError, match=words):
        db.closure_entries(result, 'x86_64', REPOS)
    with pytest.raises(db.BundleError, match='empty closure'):
        db.closure_entries({'packages': []}, 'x86_64', REPOS)


def test_failure_messages_name_the_package_or_repository_and_the_fix():
    no_match = db.parse_resolution('{"error": "no-match", "specs": ["nosuch", "kubelet-9.9"]}\n')
    assert db.resolve_failure(no_match, 'x86_64', 1, '', '') == (
        'no repository has nosuch, kubelet-9.9 (x86_64): check the name and version, or add the repository that has it '
        'to repos')
    message = db.resolve_failure(db.parse_resolution(REPO_ERROR), 'aarch64', 1, REPO_ERROR, REPO_ERROR_STDERR)
    assert message.startswith("cannot read repository broken (aarch64): Failed to download metadata for repo 'broken'")
    assert "Couldn't open file /srv/nothere/repodata/repomd.xml" in message and 'check its baseurl' in message
    assert db.resolve_failure(db.parse_resolution(DEPSOLVE), 'x86_64', 1, '', '') == (
        'dnf cannot resolve the dependencies for x86_64: Problem: conflicting requests - package archy-1.0-1.x86_64 does '
        'not have a compatible architecture; a dependency is in none of repos, or the versions asked for conflict')
    python = {'error': 'python', 'message': "No module named 'dnf' (/usr/bin/python3)"}
    assert 'install python3-dnf, or set dnf_python' in db.resolve_failure(python, 'x86_64', 1, '', '')
    crashed = db.resolve_failure(None, 'x86_64', 1, '', 'Traceback (most recent call last):\nOSError: boom\n')
    assert crashed == 'the dnf resolver failed for x86_64: Traceback (most recent call last):; OSError: boom'


def test_rpmkeys_output():
    assert db.signature_ok(0, CHECKSIG_SIGNED, '/srv/up/signed/signedpkg-1.0-1.noarch.rpm')
    assert not db.signature_ok(0, CHECKSIG_UNSIGNED, '/srv/up/plain/beta-1.0-1.noarch.rpm')
    assert not db.signature_ok(1, CHECKSIG_BAD, '/tmp/t.rpm')
    assert not db.signature_ok(0, CHECKSIG_SIGNED, '/other.rpm')


# ---------------------------------------------------------------------------------------
# The metadata


def write_metadata(dest, packages, href='a1-primary.xml.gz', compress=True):
    (dest / 'repodata').mkdir(parents=True, exist_ok=True)
    (dest / 'repodata' / 'repomd.xml').write_text(REPOMD % href)
    data = primary_xml(packages)
    (dest / 'repodata' / href).write_bytes(gzip.compress(data) if compress else data)


def test_metadata_listing_and_currency(tmp_path):
    pkg = {'name': 'alpha', 'arch': 'noarch', 'sha256': 'ab' * 32, 'size': 6078, 'href': 'Packages/alpha-1.0-1.noarch.rpm'}
    write_metadata(tmp_path, [pkg])
    assert db.primary_href((tmp_path / 'repodata' / 'repomd.xml').read_bytes()) == 'repodata/a1-primary.xml.gz'
    assert db.metadata_listing(str(tmp_path)) == {'Packages/alpha-1.0-1.noarch.rpm': 'ab' * 32}
    wanted = {'alpha-1.0-1.noarch.rpm': {'sha256': 'ab' * 32}}
    assert db.metadata_current(str(tmp_path), wanted)
    assert not db.metadata_current(str(tmp_path), {'alpha-1.0-1.noarch.rpm': {'sha256': 'cd' * 32}})
    assert not db.metadata_current(str(tmp_path), dict(wanted, **{'beta-1.0-1.noarch.rpm': {'sha256': 'ab' * 32}}))
    write_metadata(tmp_path, [pkg], href='plain-primary.xml', compress=False)
    assert db.metadata_current(str(tmp_path), wanted)
    (tmp_path / 'repodata' / 'plain-primary.xml').unlink()
    assert db.metadata_listing(str(tmp_path)) is None
    (tmp_path / 'repodata' / 'repomd.xml').write_text('<not xml')
    assert db.metadata_listing(str(tmp_path)) is None
    assert db.metadata_listing(str(tmp_path / 'absent')) is None


def test_repo_file():
    assert db.repo_file() == ('[kubegpu-bundle]\nname=kubegpu offline bundle\nbaseurl={{ url }}\nenabled=1\ngpgcheck=0\n'
                              'repo_gpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/kubegpu-bundle.asc\nmodule_hotfixes=1\n')
    assert 'baseurl=http://mirror.example/dnf/rocky-9\n' in db.repo_file('http://mirror.example/dnf/rocky-9')


# ---------------------------------------------------------------------------------------
# Whole runs against a stand-in for the resolver, createrepo_c, rpmkeys and gpg


class FakeDnfHost(FakeHost):
    """The resolver (python3 resolve.py), createrepo_c and rpmkeys as far as dnf_bundle uses
    them, and test_apt_bundle's gpg, gpgv and gpgconf. The "repositories" are directories
    of real files served by file:// URLs; a signed package's bytes start with SIGNED."""

    def __init__(self, tmp_path):  # pylint: disable=super-init-not-called
        self.mirror = tmp_path / 'mirror'
        self.mirror.mkdir()
        self.available = {}
        self.closure = {'alpha': ['alpha', 'beta'], 'signedpkg': ['signedpkg', 'gamma'], 'archy': ['archy']}
        self.calls = []
        self.clock = 0
        self.resolver_out = None
        self.modules = []       # the resolver's "modules": [{"repo", "path"}]
        for name, repo in (('alpha', 'plain'), ('beta', 'plain'), ('gamma', 'plain'), ('signedpkg', 'signed')):
            self.publish(name, '1.0', 'noarch', repo=repo)
        for arch in ('x86_64', 'aarch64'):
            self.publish('archy', '1.0', arch, repo='plain')

    def publish(self, name, version, arch, content=None, repo='plain'):
        filename = '%s-%s-1.%s.rpm' % (name, version, arch)
        data = content or ((b'SIGNED ' if repo == 'signed' else b'') + ('%s %s %s\n' % (name, version, arch)).encode() * 10)
        (self.mirror / filename).write_bytes(data)
        self.available[(name, arch)] = (version, repo, filename, data)

    def _python3(self, argv, env, cwd):
        assert os.path.isfile(argv[1]) and argv[1].endswith('resolve.py')
        config = argv[argv.index('--config') + 1]
        assert os.path.isfile(config) and os.path.isdir(argv[argv.index('--installroot') + 1])
        assert os.listdir(argv[argv.index('--installroot') + 1]) == []
        if self.resolver_out is not None:
            return self.resolver_out
        arch = argv[argv.index('--forcearch') + 1]
        specs = argv[argv.index('--forcearch') + 2:]
        missing = [spec for spec in specs if spec.split('-')[0] not in self.closure]
        if missing:
            return 1, json.dumps({'error': 'no-match', 'specs': missing}) + '\n', ''
        packages = []
        for spec in specs:
            for name in self.closure[spec.split('-')[0]]:
                version, repo, filename, data = self.available.get((name, arch)) or self.available[(name, 'noarch')]
                entry = {'arch': filename.rsplit('.', 2)[1], 'checksum': hashlib.sha256(data).hexdigest(),
                         'checksum_type': 'sha256', 'epoch': 0, 'location': filename, 'name': name, 'release': '1',
                         'repo': repo, 'size': len(data), 'url': (self.mirror / filename).as_uri(), 'version': version}
                if entry not in packages:
                    packages.append(entry)
        return 0, json.dumps({'packages': packages, 'modules': self.modules}, sort_keys=True) + '\n', ''

    def _createrepo_c(self, argv, env, cwd):
        dest = argv[-1]
        if os.path.exists(os.path.join(dest, '.repodata')):
            return 1, '', ('Temporary repodata directory %s/.repodata/ already exists! (Another createrepo process is '
                           'running?)\n' % dest)
        with open(argv[argv.index('--pkglist') + 1]) as stream:
            hrefs = stream.read().split()
        packages = []
        for href in hrefs:
            with open(os.path.join(dest, href), 'rb') as stream:
                data = stream.read()
            name, arch = os.path.basename(href).split('-')[0], href.rsplit('.', 2)[1]
            packages.append({'name': name, 'arch': arch, 'sha256': hashlib.sha256(data).hexdigest(), 'size': len(data),
                             'href': href})
        self.clock += 1
        repodata = os.path.join(dest, 'repodata')
        if os.path.isdir(repodata):
            for name in os.listdir(repodata):
                os.unlink(os.path.join(repodata, name))
        os.makedirs(repodata, exist_ok=True)
        primary = gzip.compress(primary_xml(packages))
        href = '%s-primary.xml.gz' % hashlib.sha256(primary).hexdigest()
        with open(os.path.join(repodata, href), 'wb') as stream:
            stream.write(primary)
        with open(os.path.join(repodata, 'repomd.xml'), 'w') as stream:
            stream.write((REPOMD % href).replace('1796344868', str(1796344868 + self.clock)))
        return 0, '', ''

    def _modifyrepo_c(self, argv, env, cwd):
        """modifyrepo_c --mdtype=modules ... FILE REPODATA: a modules entry in repomd.xml whose
        open-checksum is the file's SHA256 (createrepo_c 0.17.3's modifyrepo_c writes it so)."""
        assert '--mdtype=modules' in argv
        source, repodata = argv[-2], argv[-1]
        with open(source, 'rb') as stream:
            data = stream.read()
        compressed = gzip.compress(data)
        href = '%s-modules.yaml.gz' % hashlib.sha256(compressed).hexdigest()
        with open(os.path.join(repodata, href), 'wb') as stream:
            stream.write(compressed)
        path = os.path.join(repodata, 'repomd.xml')
        with open(path) as stream:
            repomd = stream.read()
        entry = ('  <data type="modules">\n    <checksum type="sha256">%s</checksum>\n'
                 '    <open-checksum type="sha256">%s</open-checksum>\n    <location href="repodata/%s"/>\n  </data>\n'
                 % (hashlib.sha256(compressed).hexdigest(), hashlib.sha256(data).hexdigest(), href))
        with open(path, 'w') as stream:
            stream.write(repomd.replace('</repomd>', entry + '</repomd>'))
        return 0, '', ''

    def _rpmkeys(self, argv, env, cwd):
        dbpath = argv[argv.index('--dbpath') + 1]
        if '--import' in argv:
            open(os.path.join(dbpath, 'imported'), 'w').close()
            return 0, '', ''
        path = argv[-1]
        with open(path, 'rb') as stream:
            signed = stream.read().startswith(b'SIGNED') and os.path.exists(os.path.join(dbpath, 'imported'))
        return (0, '%s: digests signatures OK\n' % path, '') if signed else (0, '%s: digests OK\n' % path, '')


@pytest.fixture
def host(tmp_path):
    return FakeDnfHost(tmp_path)


def params(tmp_path, **extra):
    key = tmp_path / 'upstream.asc'
    key.write_text('-----BEGIN PGP PUBLIC KEY BLOCK-----\n')
    base = {'dest': str(tmp_path / 'repo'), 'work_dir': str(tmp_path / 'work'), 'gpg_home': str(tmp_path / 'gnupg'),
            'releasever': '9', 'packages': ['alpha', 'signedpkg'], 'architectures': ['x86_64'],
            'repos': [{'name': 'plain', 'baseurl': 'file:///srv/up/plain'},
                      {'name': 'signed', 'baseurl': 'file:///srv/up/signed', 'gpgkey': str(key)}],
            'public_key': None, 'key_algorithm': 'ed25519', 'client_baseurl': None, 'dnf_python': 'python3'}
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


ALL = ['Packages/alpha-1.0-1.noarch.rpm', 'Packages/beta-1.0-1.noarch.rpm', 'Packages/gamma-1.0-1.noarch.rpm',
       'Packages/signedpkg-1.0-1.noarch.rpm']


def test_first_run_builds_the_repository_second_changes_nothing(tmp_path, host):
    result = db.run(params(tmp_path), False, host.run)
    repo = tmp_path / 'repo'
    assert result['changed'] and result['key_created'] and result['index_updated']
    assert result['key_fingerprint'] == FakeHost.FPR
    assert result['added'] == ALL and result['removed'] == []
    assert [p['name'] for p in result['packages']] == ['alpha', 'beta', 'gamma', 'signedpkg']
    alpha = result['packages'][0]
    assert alpha == {'name': 'alpha', 'version': '1.0-1', 'architecture': 'noarch', 'filename': ALL[0],
                     'size': len((repo / ALL[0]).read_bytes()), 'sha256': hashlib.sha256((repo / ALL[0]).read_bytes()).hexdigest()}
    assert result['total_size'] == sum(p['size'] for p in result['packages'])
    assert result['repo_file'] == db.repo_file() and result['releasever'] == '9' and result['architectures'] == ['x86_64']
    files = tree(repo)
    assert sorted(f for f in files if not f.startswith('repodata/')) == sorted(['kubegpu-bundle.asc'] + ALL)
    assert db.metadata_listing(str(repo)) == dict((p['filename'], p['sha256']) for p in result['packages'])
    repomd = files['repodata/repomd.xml']
    assert files['repodata/repomd.xml.asc'].decode() == 'DETACHED %s %s' % (FakeHost.FPR, hashlib.sha256(repomd).hexdigest())
    assert oct(os.stat(str(tmp_path / 'gnupg')).st_mode & 0o777) == '0o700'
    # dnf ran with the private configuration only.
    work = tmp_path / 'work'
    resolver = [c for c in host.calls if c[0][0] == 'python3']
    assert len(resolver) == 1 and resolver[0][0][1] == str(work / 'resolve.py') and resolver[0][1]['LC_ALL'] == 'C'
    assert (work / 'resolve.py').read_text() == db.RESOLVER.lstrip('\n')
    assert os.listdir(str(work / 'repos.d')) == ['bundle-sources.repo']
    assert (work / 'pkglist').read_text() == ''.join(name + '\n' for name in ALL)
    # Only signedpkg's repository has gpgcheck: one keyring, one check.
    checks = [c[0] for c in host.calls if c[0][0] == 'rpmkeys']
    assert [c[-2] for c in checks] == ['--import', '--checksig']
    assert checks[0][-1] == str(tmp_path / 'upstream.asc')

    again = db.run(params(tmp_path), False, host.run)
    assert not again['changed'] and again['added'] == [] and again['removed'] == []
    assert not again['index_updated'] and not again['key_created']
    assert tree(repo) == files
    assert [c for c in host.calls if c[0][0] == 'createrepo_c'].__len__() == 1


def test_check_mode_writes_nothing(tmp_path, host):
    result = db.run(params(tmp_path), True, host.run)
    assert result['changed'] and result['added'] == ALL and result['key_fingerprint'] is None and result['key_created']
    assert result['index_updated']
    assert not (tmp_path / 'repo').exists() and not (tmp_path / 'gnupg').exists() and not (tmp_path / 'work').exists()
    db.run(params(tmp_path), False, host.run)
    before = tree(tmp_path / 'repo')
    result = db.run(params(tmp_path), True, host.run)
    assert not result['changed'] and result['key_fingerprint'] == FakeHost.FPR and not result['index_updated']
    result = db.run(params(tmp_path, packages=['alpha']), True, host.run)
    assert result['changed'] and result['removed'] == ['Packages/gamma-1.0-1.noarch.rpm', 'Packages/signedpkg-1.0-1.noarch.rpm']
    assert tree(tmp_path / 'repo') == before


def test_lost_signature_or_metadata_is_made_again(tmp_path, host):
    db.run(params(tmp_path), False, host.run)
    repo = tmp_path / 'repo'
    (repo / 'repodata' / 'repomd.xml.asc').unlink()
    result = db.run(params(tmp_path), True, host.run)
    assert result['changed'] and result['index_updated'] and result['added'] == []
    result = db.run(params(tmp_path), False, host.run)
    assert result['changed'] and result['index_updated'] and (repo / 'repodata' / 'repomd.xml.asc').exists()
    assert len([c for c in host.calls if c[0][0] == 'createrepo_c']) == 1  # signed again, not rewritten
    for name in os.listdir(str(repo / 'repodata')):
        (repo / 'repodata' / name).unlink()
    result = db.run(params(tmp_path), True, host.run)
    assert result['changed'] and result['index_updated']
    result = db.run(params(tmp_path), False, host.run)
    assert result['changed'] and result['index_updated'] and result['added'] == []
    assert len([c for c in host.calls if c[0][0] == 'createrepo_c']) == 2
    assert not db.run(params(tmp_path), False, host.run)['changed']
    # What an interrupted createrepo_c left behind does not stop the next one.
    (repo / '.repodata').mkdir()
    (repo / 'Packages' / 'beta-1.0-1.noarch.rpm').unlink()
    result = db.run(params(tmp_path), False, host.run)
    assert result['added'] == ['Packages/beta-1.0-1.noarch.rpm'] and result['index_updated']
    assert not (repo / '.repodata').exists()


def test_new_version_replaces_and_removes(tmp_path, host):
    db.run(params(tmp_path), False, host.run)
    (tmp_path / 'repo' / 'Packages' / 'stray.rpm').write_bytes(b'x')
    host.publish('beta', '1.1', 'noarch')
    result = db.run(params(tmp_path), False, host.run)
    assert result['added'] == ['Packages/beta-1.1-1.noarch.rpm']
    assert result['removed'] == ['Packages/beta-1.0-1.noarch.rpm', 'Packages/stray.rpm']
    assert result['index_updated']
    pool = sorted(os.listdir(str(tmp_path / 'repo' / 'Packages')))
    assert pool == sorted(p['filename'].split('/')[-1] for p in result['packages'])
    assert sorted(db.metadata_listing(str(tmp_path / 'repo'))) == sorted(p['filename'] for p in result['packages'])


def test_corrupt_pool_file_is_downloaded_again(tmp_path, host):
    db.run(params(tmp_path), False, host.run)
    beta = tmp_path / 'repo' / 'Packages' / 'beta-1.0-1.noarch.rpm'
    good = beta.read_bytes()
    beta.write_bytes(b'X' * len(good))
    result = db.run(params(tmp_path), False, host.run)
    assert result['added'] == ['Packages/beta-1.0-1.noarch.rpm'] and result['changed'] and result['index_updated']
    assert beta.read_bytes() == good


def test_both_architectures_share_noarch(tmp_path, host):
    result = db.run(params(tmp_path, packages=['archy', 'alpha'], architectures=['x86_64', 'aarch64']), False, host.run)
    assert result['added'] == ['Packages/alpha-1.0-1.noarch.rpm', 'Packages/archy-1.0-1.aarch64.rpm',
                               'Packages/archy-1.0-1.x86_64.rpm', 'Packages/beta-1.0-1.noarch.rpm']
    assert [c[0][c[0].index('--forcearch') + 1] for c in host.calls if c[0][0] == 'python3'] == ['x86_64', 'aarch64']


def test_failures(tmp_path, host):
    with pytest.raises(db.BundleError, match=r'no repository has nosuch \(x86_64\): check the name'):
        db.run(params(tmp_path, packages=['alpha', 'nosuch']), False, host.run)
    assert not (tmp_path / 'repo').exists()
    host.resolver_out = (1, REPO_ERROR, REPO_ERROR_STDERR)
    with pytest.raises(db.BundleError, match='cannot read repository broken'):
        db.run(params(tmp_path), False, host.run)
    host.resolver_out = None
    # A package of a gpgcheck repository without a good signature stays out of the pool.
    host.publish('signedpkg', '1.0', 'noarch', repo='signed', content=b'unsigned')
    with pytest.raises(db.BundleError, match='signedpkg-1.0-1.noarch.rpm from repository signed is not signed by its gpgkey'):
        db.run(params(tmp_path, packages=['signedpkg']), False, host.run)
    assert os.listdir(str(tmp_path / 'repo' / 'Packages')) == ['gamma-1.0-1.noarch.rpm']
    assert os.listdir(str(tmp_path / 'work' / 'download')) == []
    # A download whose SHA256 is not what the metadata says.
    real = host._python3
    host._python3 = lambda argv, env, cwd: (0, real(argv, env, cwd)[1].replace(
        hashlib.sha256(host.available[('beta', 'noarch')][3]).hexdigest(), '0' * 64), '')
    with pytest.raises(db.BundleError, match=r'beta-1.0-1.noarch.rpm: got \d+ bytes with SHA256'):
        db.run(params(tmp_path, packages=['alpha']), False, host.run)


# ---------------------------------------------------------------------------------------
# The module


@pytest.fixture
def module_exits(monkeypatch):
    patch_module_exits(monkeypatch)


def run_module(args, host, check_mode=False, diff=False):
    return run_module_main(dnf_bundle.main, args, host, check_mode=check_mode, diff=diff)


def test_module_runs_and_reports(tmp_path, host, module_exits):
    args = {k: v for k, v in params(tmp_path).items() if v is not None}
    result = run_module(args, host, diff=True)
    assert not result['_failed'] and result['changed']
    assert result['diff']['after'].splitlines()[0] == 'alpha-1.0-1.noarch.rpm' and result['diff']['before'] == ''
    json.dumps(result)
    result = run_module(args, host)
    assert not result['changed'] and 'diff' not in result
    result = run_module(dict(args, packages=['nosuch']), host)
    assert result['_failed'] and result['msg'].startswith('no repository has nosuch (x86_64)')
    result = run_module(dict(args, client_baseurl='http://mirror.example/dnf/el9'), host)
    assert 'baseurl=http://mirror.example/dnf/el9\n' in result['repo_file']
    result = run_module(dict(args, dnf_python=str(tmp_path / 'no-python')), host)
    assert result['_failed'] and result['msg'].startswith('dnf_python %s is not an executable' % (tmp_path / 'no-python'))


def test_module_spec_matches_its_documentation():
    import yaml
    doc = yaml.safe_load(dnf_bundle.DOCUMENTATION)['options']
    assert sorted(doc) == ['architectures', 'client_baseurl', 'dest', 'dnf_python', 'gpg_home', 'key_algorithm',
                           'packages', 'public_key', 'releasever', 'repos', 'work_dir']
    assert sorted(doc['repos']['suboptions']) == ['baseurl', 'gpgcheck', 'gpgkey', 'module_hotfixes', 'name', 'repo_gpgcheck']
    assert doc['architectures']['default'] == ['x86_64'] and doc['dnf_python']['default'] == '/usr/bin/python3'


# ---------------------------------------------------------------------------------------
# Module metadata (modules.yaml) carried over

MODULES_CUDA = """---
document: modulemd
version: 2
data:
  name: nvidia-driver
  stream: 580-open
  version: 1
  context: 00000000
  arch: x86_64
  summary: NVIDIA driver, open kernel modules
  profiles:
    default:
      rpms: [alpha]
  artifacts:
    rpms: [alpha-0:1.0-1.noarch]
...
"""
MODULES_APPSTREAM = """document: modulemd-defaults
version: 1
data:
  module: nodejs
  stream: 18
...
"""


def test_modules_text_and_repomd_checksum(tmp_path):
    cuda = tmp_path / 'cuda-modules.yaml.xz'
    cuda.write_bytes(lzma.compress(MODULES_CUDA.encode()))
    app = tmp_path / 'app-modules.yaml.gz'
    app.write_bytes(gzip.compress(MODULES_APPSTREAM.encode()))
    same = tmp_path / 'cuda-sbsa-modules.yaml'
    same.write_text(MODULES_CUDA)
    # Ordered by architecture, then repository; an identical document set once; a missing "---" added.
    text = db.modules_text([('x86_64', [{'repo': 'cuda', 'path': str(cuda)}, {'repo': 'appstream', 'path': str(app)}]),
                            ('aarch64', [{'repo': 'cuda-sbsa', 'path': str(same)}])])
    assert text == '---\n' + MODULES_APPSTREAM + MODULES_CUDA
    assert db.modules_text([]) == ''
    with pytest.raises(db.BundleError, match='modules.yaml.zst, which cannot be read'):
        db.modules_text([('x86_64', [{'repo': 'r', 'path': str(tmp_path / 'modules.yaml.zst')}])])
    (tmp_path / 'modules.yaml.zst').write_bytes(b'x')
    with pytest.raises(db.BundleError, match=r'modules.yaml.zst: compression not supported \(gz, xz, bz2 or none\)'):
        db.modules_text([('x86_64', [{'repo': 'r', 'path': str(tmp_path / 'modules.yaml.zst')}])])
    assert db.repomd_open_checksum((REPOMD % 'p.xml.gz').encode(), 'modules') == ''
    assert db.repomd_open_checksum((REPOMD % 'p.xml.gz').encode(), 'primary') == \
        '445cc281cb206856cbd638b8a64998bb9c061e79584f31829ef6095cfe088454'
    assert db.repomd_open_checksum(b'<not xml', 'modules') is None


def test_module_metadata_is_carried_over_once_and_kept(tmp_path, host):
    cache = tmp_path / 'cache-modules.yaml.gz'
    cache.write_bytes(gzip.compress(MODULES_CUDA.encode()))
    host.modules = [{'repo': 'signed', 'path': str(cache)}]
    result = db.run(params(tmp_path), False, host.run)
    repo = tmp_path / 'repo'
    assert result['changed'] and result['module_metadata'] is True
    modify = [c[0] for c in host.calls if c[0][0] == 'modifyrepo_c']
    assert len(modify) == 1 and modify[0][-1] == str(repo / 'repodata')
    assert (tmp_path / 'work' / 'modules' / 'modules.yaml').read_text() == MODULES_CUDA
    assert db.modules_current(str(repo), MODULES_CUDA)
    repomd = (repo / 'repodata' / 'repomd.xml').read_bytes()
    # signed after the modules entry was added
    assert (repo / 'repodata' / 'repomd.xml.asc').read_text() == 'DETACHED %s %s' % (
        FakeHost.FPR, hashlib.sha256(repomd).hexdigest())

    again = db.run(params(tmp_path), False, host.run)
    assert not again['changed'] and len([c for c in host.calls if c[0][0] == 'modifyrepo_c']) == 1

    # The source's module metadata changed (a new stream): the same pool, new metadata, signed again.
    cache.write_bytes(gzip.compress((MODULES_CUDA.replace('580-open', '590-open')).encode()))
    check = db.run(params(tmp_path), True, host.run)
    assert check['changed'] and check['index_updated'] and check['added'] == []
    changed = db.run(params(tmp_path), False, host.run)
    assert changed['changed'] and changed['index_updated'] and changed['added'] == []
    assert db.modules_current(str(repo), MODULES_CUDA.replace('580-open', '590-open'))

    # No source has module metadata any more: the entry goes with a fresh createrepo_c.
    host.modules = []
    gone = db.run(params(tmp_path), False, host.run)
    assert gone['changed'] and gone['module_metadata'] is False
    assert db.repomd_open_checksum((repo / 'repodata' / 'repomd.xml').read_bytes(), 'modules') == ''
