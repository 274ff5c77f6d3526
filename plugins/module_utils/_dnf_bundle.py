# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""A signed dnf (rpm-md) repository of a package set with its whole dependency closure,
built on a connected staging host for an air-gapped fleet (the dnf_bundle module): the dnf
counterpart of _apt_bundle, whose download, pool and signing-key helpers it uses.

dnf resolves in a configuration of its own under the work directory: its own dnf.conf,
repository files (reposdir), cache, log and persist directories, and an EMPTY installroot
whose rpmdb is never loaded (so every dependency down to glibc is part of the closure).
The host's /etc/dnf, /etc/yum.repos.d and rpmdb are never read nor written.

  1. Per architecture, RESOLVER (below, run with a python that has the ``dnf`` bindings,
     Debian's python3-dnf) loads every repository, marks the packages for installation
     and resolves without weak dependencies; it prints the transaction's install set as
     JSON with each package's checksum from the repository's primary metadata.
  2. The pool (``Packages/``) is compared with the closure; what is missing or differs is
     downloaded (urllib, size and SHA256 verified); a package of a repository with
     ``gpgcheck`` must also carry a signature by that repository's key (``rpmkeys
     --checksig`` against a private rpm keyring of that key alone). What is not in the
     closure is removed.
  3. ``createrepo_c`` writes ``repodata/`` when the pool changed or the metadata does not
     list exactly the pool (missing, stale); otherwise it is left as it is, so a second
     run with the same inputs changes nothing.
  3a. The repositories' module metadata (modules.yaml: module streams, their profiles and
     defaults, e.g. NVIDIA's nvidia-driver:<branch>-open stream the driver stage installs
     as a profile) is carried over, every document of every source repository, and added
     with ``modifyrepo_c --mdtype=modules``: a client installs a module profile from the
     bundle as it would from the source. Rewritten when it differs from repomd.xml's
     modules entry (its open-checksum).
  4. ``repodata/repomd.xml.asc`` (armoured detached signature by the bundle's key, made
     with ``gpg --quick-gen-key`` in gpg_home when there is none: the same key as the apt
     bundle's) is written whenever repomd.xml changed or the signature does not verify.

The standard library and ansible's open_url (downloads) only: the module hands in
``run_command(argv, env, cwd) -> (rc, out, err)``; failures are raised as BundleError.
"""

from __future__ import absolute_import, division, print_function


__metaclass__ = type

import bz2
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

from ansible_collections.kubegpu.cluster.plugins.module_utils._apt_bundle import (
    BundleBase, BundleError, URL_PLACEHOLDER, _mkdirs, _unlink, _write_if_changed, download, merge_closures,
    package_list, verified_text)
from ansible_collections.kubegpu.cluster.plugins.module_utils._apt_bundle import check_packages as apt_check_packages
from ansible_collections.kubegpu.cluster.plugins.module_utils._host_files import _read

ARCHITECTURES = ('x86_64', 'aarch64')
CLIENT_KEY = '/etc/pki/rpm-gpg/kubegpu-bundle.asc'
CLIENT_REPO_ID = 'kubegpu-bundle'
POOL = 'Packages'
REPOMD = 'repodata/repomd.xml'
SIGNATURE = 'repodata/repomd.xml.asc'
URL_SCHEMES = ('http', 'https', 'ftp', 'file')

_REPO_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._:-]*$')
# What dnf accepts as a package spec (a name, name-version[-release][.arch], globs, a
# provide such as perl(File::Temp) or a file path), and nothing it would read as an option.
_SPEC = re.compile(r'^[A-Za-z0-9_+/][A-Za-z0-9._+:~^*?\[\]()/-]*$')
_RELEASEVER = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*$')
_REPO_NS = '{http://linux.duke.edu/metadata/repo}'
_COMMON_NS = '{http://linux.duke.edu/metadata/common}'

# Run by the python with dnf's bindings: argv --config F --installroot D --releasever V
# --forcearch A SPEC...; prints one JSON object, {"packages": [...]} (rc 0) or {"error": ...}
# (rc 1). Kept free of the collection's imports: it runs outside ansible.
RESOLVER = r'''
import argparse
import json
import sys


def report(result):
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0 if "packages" in result else 1


def main():
    parser = argparse.ArgumentParser()
    for option in ("--config", "--installroot", "--releasever", "--forcearch"):
        parser.add_argument(option, required=True)
    parser.add_argument("specs", nargs="+")
    args = parser.parse_args()
    try:
        import dnf
        import dnf.conf
        import dnf.exceptions
        import hawkey
    except ImportError as exc:
        return report({"error": "python", "message": "%s (%s)" % (exc, sys.executable)})
    # The configuration made before the Base: dnf.Base() without one would read the host's
    # rpmdb to guess a releasever (dnf.rpm.detect_releasever("/")).
    conf = dnf.conf.Conf()
    conf.read(args.config)
    conf.installroot = args.installroot
    conf.releasever = args.releasever
    conf.arch = args.forcearch
    base = dnf.Base(conf)
    try:
        base.read_all_repos()
        for repo in sorted(base.repos.iter_enabled(), key=lambda r: r.id):
            try:
                repo.load()
            except dnf.exceptions.Error as exc:
                return report({"error": "repo", "repo": repo.id, "message": str(exc)})
        base.fill_sack(load_system_repo=False, load_available_repos=True)
        # Each repository's module metadata (modules.yaml, compressed as it came), carried
        # over into the bundle's repodata.
        modules = []
        for repo in sorted(base.repos.iter_enabled(), key=lambda r: r.id):
            path = repo.get_metadata_path("modules")
            if path:
                modules.append({"repo": repo.id, "path": path})
        missing = []
        for spec in args.specs:
            try:
                base.install(spec, strict=True)
            except dnf.exceptions.MarkingError:
                missing.append(spec)
        if missing:
            return report({"error": "no-match", "specs": missing})
        try:
            base.resolve()
        except dnf.exceptions.DepsolveError as exc:
            return report({"error": "depsolve", "message": str(exc)})
        found = []
        for pkg in sorted(base.transaction.install_set, key=lambda p: (p.name, p.arch, p.evr)):
            kind, digest = pkg.chksum or (None, b"")
            found.append({
                "name": pkg.name, "epoch": pkg.epoch, "version": pkg.version, "release": pkg.release,
                "arch": pkg.arch, "repo": pkg.reponame, "location": pkg.location,
                "url": pkg.remote_location(schemes=("http", "https", "ftp", "file")),
                "size": pkg.downloadsize,
                "checksum_type": hawkey.chksum_name(kind) if kind is not None else "",
                "checksum": digest.hex() if isinstance(digest, bytes) else str(digest or ""),
            })
        return report({"packages": found, "modules": modules})
    except dnf.exceptions.Error as exc:
        return report({"error": "dnf", "message": str(exc)})
    except Exception as exc:  # libdnf raises RuntimeError / OSError too
        return report({"error": "dnf", "message": "%s: %s" % (type(exc).__name__, exc)})
    finally:
        base.close()


if __name__ == "__main__":
    sys.exit(main())
'''


# ---------------------------------------------------------------------------------------
# Inputs


def check_architectures(architectures):
    if not architectures:
        raise BundleError('architectures is empty: name at least one (x86_64, aarch64)')
    seen = []
    for arch in architectures:
        if arch not in ARCHITECTURES:
            raise BundleError('architecture %r is not one of %s' % (arch, ', '.join(ARCHITECTURES)))
        if arch not in seen:
            seen.append(arch)
    return seen


def check_packages(packages):
    """Package specs as dnf accepts them (name, name-version, name-version-release.arch,
    globs, provides); nothing dnf would read as an option."""
    return apt_check_packages(packages, _SPEC, 'name or name-version spec')


def check_releasever(value):
    if not value or not _RELEASEVER.match(str(value)):
        raise BundleError('releasever %r is not a release version (e.g. "9", "9.6")' % (value,))
    return str(value)


def check_repos(repos):
    """The source repositories, normalized: [{name, baseurl, gpgkey, gpgcheck, repo_gpgcheck, module_hotfixes}]."""
    if not repos:
        raise BundleError('repos is empty: name at least one repository (name, baseurl)')
    checked, names = [], set()
    for repo in repos:
        name, baseurl = repo.get('name') or '', repo.get('baseurl') or ''
        if not _REPO_ID.match(name):
            raise BundleError('repository name %r is not a dnf repository id (letters, digits, ".", "_", ":", "-")' % (name,))
        if name in names:
            raise BundleError('repository %s is named twice in repos' % name)
        names.add(name)
        if urlsplit(baseurl).scheme not in URL_SCHEMES or '\n' in baseurl:
            raise BundleError('repository %s: baseurl %r is not an http, https, ftp or file URL' % (name, baseurl))
        gpgkey = repo.get('gpgkey')
        gpgcheck = repo.get('gpgcheck')
        if gpgcheck is None:
            gpgcheck = bool(gpgkey)
        if gpgcheck and not gpgkey:
            raise BundleError('repository %s: gpgcheck needs gpgkey (the local path of its ASCII key)' % name)
        if repo.get('repo_gpgcheck') and not gpgkey:
            raise BundleError('repository %s: repo_gpgcheck needs gpgkey (the local path of its ASCII key)' % name)
        if gpgkey and not os.path.isfile(gpgkey):
            raise BundleError('repository %s: gpgkey %s does not exist' % (name, gpgkey))
        checked.append({'name': name, 'baseurl': baseurl, 'gpgkey': os.path.abspath(gpgkey) if gpgkey else None,
                        'gpgcheck': bool(gpgcheck), 'repo_gpgcheck': bool(repo.get('repo_gpgcheck')),
                        'module_hotfixes': bool(repo.get('module_hotfixes'))})
    return checked


# ---------------------------------------------------------------------------------------
# dnf's private configuration


def work_layout(work_dir):
    """The paths of dnf's private state under the work directory."""
    join = os.path.join
    return {
        'root': work_dir,
        'dnf_conf': join(work_dir, 'dnf.conf'),
        'reposdir': join(work_dir, 'repos.d'),
        'repo_file': join(work_dir, 'repos.d', 'bundle-sources.repo'),
        'installroot': join(work_dir, 'root'),
        'cache': join(work_dir, 'cache'),
        'log': join(work_dir, 'log'),
        'persist': join(work_dir, 'persist'),
        'resolver': join(work_dir, 'resolve.py'),
        'rpmkeys': join(work_dir, 'rpmkeys'),
        'download': join(work_dir, 'download'),
        'pkglist': join(work_dir, 'pkglist'),
        'keyring': join(work_dir, 'bundle-keyring.gpg'),
        'modules': join(work_dir, 'modules', 'modules.yaml'),
    }


def _ini(sections):
    """INI text of [(section, [(key, value)])]; no value may span lines."""
    lines = []
    for section, items in sections:
        lines.append('[%s]' % section)
        for key, value in items:
            value = str(value)
            if '\n' in value:
                raise BundleError('%s: a value with a newline cannot go into a dnf configuration: %r' % (key, value))
            lines.append('%s=%s' % (key, value))
        lines.append('')
    return '\n'.join(lines)


def dnf_conf_text(layout):
    """dnf.conf of the private configuration: nothing of the host's is read."""
    return _ini([('main', [
        ('cachedir', layout['cache']),
        ('logdir', layout['log']),
        ('persistdir', layout['persist']),
        ('reposdir', layout['reposdir']),
        ('install_weak_deps', 'False'),
        ('plugins', 'False'),
        ('skip_if_unavailable', 'False'),
        # Every run asks each repository for its repomd.xml (a new version published there,
        # a security update, changes the closure); unchanged metadata stays in the cache.
        ('metadata_expire', '0'),
        ('keepcache', 'False'),
        ('best', 'True'),
    ])])


def repos_text(repos):
    """The source repositories as one .repo file."""
    sections = []
    for repo in repos:
        items = [('name', repo['name']), ('baseurl', repo['baseurl']), ('enabled', '1'),
                 ('gpgcheck', '1' if repo['gpgcheck'] else '0')]
        if repo['gpgkey']:
            items.append(('gpgkey', 'file://' + repo['gpgkey']))
        # dnf verifies repomd.xml's signature itself, with gpgkey (imported into a keyring in its
        # cache directory) when it loads the repository.
        items.append(('repo_gpgcheck', '1' if repo['repo_gpgcheck'] else '0'))
        items.append(('module_hotfixes', '1' if repo['module_hotfixes'] else '0'))
        items.append(('skip_if_unavailable', '0'))
        sections.append((repo['name'], items))
    return _ini(sections)


def resolve_argv(python, layout, releasever, arch, packages):
    return [python, layout['resolver'], '--config', layout['dnf_conf'], '--installroot', layout['installroot'],
            '--releasever', releasever, '--forcearch', arch] + list(packages)


def dnf_env():
    return {'LC_ALL': 'C', 'LANG': 'C', 'LANGUAGE': 'C'}


def createrepo_argv(tools, layout, dest):
    return [tools['createrepo_c'], '--quiet', '--no-database', '--checksum', 'sha256', '--general-compress-type', 'gz',
            '--pkglist', layout['pkglist'], dest]


def modifyrepo_argv(tools, layout, dest):
    """Add the module metadata to dest's repodata (type modules, gz, SHA256)."""
    return [tools['modifyrepo_c'], '--mdtype=modules', '--checksum', 'sha256', '--compress-type', 'gz',
            layout['modules'], os.path.join(dest, 'repodata')]


def rpmkeys_import_argv(tools, dbpath, key):
    return [tools['rpmkeys'], '--dbpath', dbpath, '--import', key]


def rpmkeys_checksig_argv(tools, dbpath, path):
    return [tools['rpmkeys'], '--dbpath', dbpath, '--checksig', path]


# ---------------------------------------------------------------------------------------
# The resolver's output


def rpm_filename(entry):
    """The file's name in the pool: name-version-release.arch.rpm (no epoch)."""
    base = '%s-%s-%s.%s.rpm' % (entry['name'], entry['version'], entry['release'], entry['arch'])
    if '/' in base or base.startswith('.'):
        raise BundleError('%r is not a package file name' % base)
    return base


def evr(entry):
    epoch = int(entry.get('epoch') or 0)
    return '%s%s-%s' % ('%d:' % epoch if epoch else '', entry['version'], entry['release'])


def parse_resolution(out):
    """The resolver's JSON object (its last line of output)."""
    for line in reversed((out or '').splitlines()):
        line = line.strip()
        if line.startswith('{'):
            try:
                return json.loads(line)
            except ValueError:
                break
    return None


def resolve_failure(result, arch, rc, out, err):
    """The message of a closure dnf could not make: the package or repository, and the fix."""
    details = [line.strip() for line in (err or '').splitlines() if line.strip()]
    if result is None:
        text = '; '.join(details[-20:] or [(out or '').strip()[-2000:]]) or 'exit status %d' % rc
        return 'the dnf resolver failed for %s: %s' % (arch, text)
    kind = result.get('error')
    if kind == 'no-match':
        return ('no repository has %s (%s): check the name and version, or add the repository that has it to repos'
                % (', '.join(result.get('specs') or []), arch))
    if kind == 'repo':
        said = ''.join('; ' + line for line in details[:10])
        return ('cannot read repository %s (%s): %s%s; check its baseurl (with $releasever and $basearch expanded) '
                'and that the staging host reaches it' % (result.get('repo'), arch, result.get('message'), said))
    if kind == 'depsolve':
        return ('dnf cannot resolve the dependencies for %s: %s; a dependency is in none of repos, or the '
                'versions asked for conflict' % (arch, ' '.join((result.get('message') or '').split())))
    if kind == 'python':
        return ('the python that runs dnf has no dnf bindings (%s): install python3-dnf, or set dnf_python'
                % result.get('message'))
    return 'dnf failed for %s: %s' % (arch, result.get('message') or kind)


def closure_entries(result, arch, repos):
    """The resolver's packages as closure entries: {'name', 'version' (epoch:version-release),
    'architecture', 'filename' (pool name), 'url', 'size', 'sha256', 'repo'}."""
    known = dict((repo['name'], repo) for repo in repos)
    entries = []
    for pkg in result.get('packages') or []:
        filename = rpm_filename(pkg)
        if pkg.get('repo') not in known:
            raise BundleError('%s (%s) comes from repository %r, which is not in repos' % (filename, arch, pkg.get('repo')))
        if (pkg.get('checksum_type') or '').lower() != 'sha256' or not re.match(r'^[0-9a-f]{64}$', pkg.get('checksum') or ''):
            raise BundleError('%s (%s): repository %s gives its checksum as %r, not SHA256; only repositories with '
                              'SHA256 metadata (createrepo_c\'s default) can be bundled'
                              % (filename, arch, pkg['repo'], pkg.get('checksum_type')))
        url = pkg.get('url') or ''
        if urlsplit(url).scheme not in URL_SCHEMES:
            raise BundleError('%s (%s): repository %s gives no downloadable URL for it (%r)' % (filename, arch, pkg['repo'], url))
        entries.append({'name': pkg['name'], 'version': evr(pkg), 'architecture': pkg['arch'], 'filename': filename,
                        'url': url, 'size': int(pkg['size']), 'sha256': pkg['checksum'], 'repo': pkg['repo']})
    if not entries:
        raise BundleError('dnf resolved an empty closure for %s' % arch)
    return entries


def signature_ok(rc, out, path):
    """Whether rpmkeys --checksig says path carries a good signature (an unsigned package
    passes with "digests OK" alone: not enough)."""
    if rc != 0:
        return False
    for line in (out or '').splitlines():
        head, _sep, words = line.rpartition(': ')
        if head == path:
            return 'signatures' in words.split() and words.split()[-1] == 'OK'
    return False


# ---------------------------------------------------------------------------------------
# The metadata


def primary_href(repomd):
    """The location of the primary metadata in repomd.xml (bytes), or None."""
    try:
        root = ET.fromstring(repomd)
    except ET.ParseError:
        return None
    for data in root.findall(_REPO_NS + 'data'):
        if data.get('type') == 'primary':
            location = data.find(_REPO_NS + 'location')
            if location is not None:
                return location.get('href')
    return None


def primary_listing(primary):
    """{location href: sha256} of primary.xml (bytes)."""
    listing = {}
    root = ET.fromstring(primary)
    for package in root.findall(_COMMON_NS + 'package'):
        checksum = package.find(_COMMON_NS + 'checksum')
        location = package.find(_COMMON_NS + 'location')
        if checksum is None or location is None:
            continue
        listing[location.get('href')] = (checksum.text or '').strip().lower() if checksum.get('type') == 'sha256' else ''
    return listing


def repomd_open_checksum(repomd, kind):
    """The sha256 of the uncompressed metadata of type ``kind`` in repomd.xml (bytes), "" where
    repomd.xml has no such entry, None where it cannot be read."""
    try:
        root = ET.fromstring(repomd)
    except ET.ParseError:
        return None
    for data in root.findall(_REPO_NS + 'data'):
        if data.get('type') == kind:
            checksum = data.find(_REPO_NS + 'open-checksum')
            if checksum is None or checksum.get('type') != 'sha256':
                return None
            return (checksum.text or '').strip().lower()
    return ''


def decompress(path, data):
    """The text of a metadata file as dnf cached it (.gz, .xz, .bz2 or plain)."""
    if path.endswith('.gz'):
        return gzip.decompress(data)
    if path.endswith('.xz'):
        return lzma.decompress(data)
    if path.endswith('.bz2'):
        return bz2.decompress(data)
    if path.endswith(('.yaml', '.yml')):
        return data
    raise BundleError('module metadata %s: compression not supported (gz, xz, bz2 or none); fix: a mirror of the '
                      'repository that serves those' % path)


def modules_text(closures_modules):
    """One modules.yaml of the source repositories' module metadata: [(arch, [{"repo", "path"}])],
    each repository's documents once (the first architecture's copy of an identical file),
    in the order of the architectures and then the repository ids."""
    parts, seen = [], set()
    for _arch, entries in closures_modules:
        for entry in sorted(entries, key=lambda e: e['repo']):
            data = _read(entry['path'])
            if data is None:
                raise BundleError('repository %s: dnf reported module metadata %s, which cannot be read'
                                  % (entry['repo'], entry['path']))
            text = decompress(entry['path'], data).decode('utf-8')
            digest = hashlib.sha256(text.encode('utf-8')).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            text = text if text.endswith('\n') else text + '\n'
            parts.append(text if text.lstrip().startswith('---') else '---\n' + text)
    return ''.join(parts)


def modules_current(dest, text):
    """Whether dest's repodata carries exactly this module metadata (none where text is empty)."""
    repomd = _read(os.path.join(dest, REPOMD))
    if repomd is None:
        return False
    have = repomd_open_checksum(repomd, 'modules')
    return have == (hashlib.sha256(text.encode('utf-8')).hexdigest() if text else '')


def metadata_listing(dest):
    """{href: sha256} of dest's repodata, or None where it is missing or unreadable."""
    repomd = _read(os.path.join(dest, REPOMD))
    href = primary_href(repomd) if repomd else None
    if not href or href.startswith('/') or '..' in href.split('/'):
        return None
    data = _read(os.path.join(dest, href))
    if data is None:
        return None
    try:
        if href.endswith('.gz'):
            data = gzip.decompress(data)
        elif not href.endswith('.xml'):
            return None
        return primary_listing(data)
    except (OSError, EOFError, ET.ParseError):
        return None


def metadata_current(dest, wanted):
    """Whether dest's repodata lists exactly the wanted pool files with their SHA256."""
    listing = metadata_listing(dest)
    return listing is not None and listing == dict(('%s/%s' % (POOL, name), entry['sha256']) for name, entry in wanted.items())


def repo_file(url=URL_PLACEHOLDER, key=CLIENT_KEY):
    """The .repo stanza a client uses for this repository. gpgcheck=0: the signed repomd.xml
    (repo_gpgcheck=1) carries primary.xml's checksum, which carries each package's SHA256,
    and dnf refuses a package whose checksum differs; the vendors' signatures were checked
    on the staging host (gpgcheck of repos)."""
    return _ini([(CLIENT_REPO_ID, [
        ('name', 'kubegpu offline bundle'),
        ('baseurl', url),
        ('enabled', '1'),
        ('gpgcheck', '0'),
        ('repo_gpgcheck', '1'),
        ('gpgkey', 'file://' + key),
        ('module_hotfixes', '1'),
    ])])


# ---------------------------------------------------------------------------------------
# The run


class Bundle(BundleBase):
    """One run of the module. params: the module's parameters; run_command(argv, env=None,
    cwd=None) -> (rc, out, err); tools: {'createrepo_c': path, 'rpmkeys': path, 'gpg': path,
    'gpgv': path, 'gpgconf': path, 'python': path}; fetch: download()."""

    layout_of = staticmethod(work_layout)
    temp_prefix = 'kubegpu-dnf-bundle-'

    def __init__(self, params, check_mode, run_command, tools=None, fetch=download):
        self.params = params
        self.check_mode = check_mode
        self.run_command = run_command
        self.tools = dict((name, name) for name in ('createrepo_c', 'modifyrepo_c', 'rpmkeys', 'gpg', 'gpgv', 'gpgconf'))
        self.tools['python'] = params.get('dnf_python') or '/usr/bin/python3'
        self.tools.update(tools or {})
        self.fetch = fetch
        self.dest = os.path.abspath(params['dest'])
        self.work_dir = os.path.abspath(params['work_dir'])
        self.repos = check_repos(params.get('repos'))
        self.releasever = check_releasever(params.get('releasever'))
        self.architectures = check_architectures(params.get('architectures') or ['x86_64'])
        self.packages = check_packages(params.get('packages'))
        self.gpg_home = os.path.abspath(params['gpg_home'])
        self.public_key = os.path.abspath(params.get('public_key') or os.path.join(self.dest, 'kubegpu-bundle.asc'))
        self.algorithm = params.get('key_algorithm') or 'ed25519'
        self.client_baseurl = params.get('client_baseurl') or URL_PLACEHOLDER
        self.pool_dir = os.path.join(self.dest, POOL)
        self.agent_homes = []
        self.modules, self.modules_text = [], ''

    # dnf ---------------------------------------------------------------------------

    def prepare_work(self, layout):
        """dnf's private configuration, repository files, resolver and an empty installroot."""
        _mkdirs(layout['reposdir'], layout['installroot'], layout['cache'], layout['log'], layout['persist'],
                layout['download'])
        _write_if_changed(layout['dnf_conf'], dnf_conf_text(layout).encode('utf-8'))
        _write_if_changed(layout['repo_file'], repos_text(self.repos).encode('utf-8'))
        _write_if_changed(layout['resolver'], RESOLVER.lstrip('\n').encode('utf-8'))
        for name in os.listdir(layout['reposdir']):
            if os.path.join(layout['reposdir'], name) != layout['repo_file']:
                _unlink(os.path.join(layout['reposdir'], name))

    def resolve(self, layout):
        """The closure of every architecture: {pool name: entry}."""
        closures, self.modules = [], []
        for arch in self.architectures:
            rc, out, err = self._run(resolve_argv(self.tools['python'], layout, self.releasever, arch, self.packages),
                                     env=dnf_env())
            result = parse_resolution(out)
            if rc != 0 or result is None or 'packages' not in result:
                raise BundleError(resolve_failure(result, arch, rc, out, err))
            closures.append(closure_entries(result, arch, self.repos))
            self.modules.append((arch, result.get('modules') or []))
        self.modules_text = modules_text(self.modules)
        return merge_closures(closures)

    def check_signature(self, layout, entry, path, keyrings):
        """Fail unless path carries a signature by the key of its repository (gpgcheck)."""
        repo = [r for r in self.repos if r['name'] == entry['repo']][0]
        if not repo['gpgcheck']:
            return
        dbpath = keyrings.get(repo['name'])
        if dbpath is None:
            dbpath = os.path.join(layout['rpmkeys'], repo['name'])
            if os.path.isdir(dbpath):
                shutil.rmtree(dbpath)
            os.makedirs(dbpath, 0o755)
            rc, out, err = self._run(rpmkeys_import_argv(self.tools, dbpath, repo['gpgkey']), env=dnf_env())
            if rc != 0:
                raise BundleError('repository %s: rpmkeys cannot import gpgkey %s: %s' % (repo['name'], repo['gpgkey'], (err or out).strip()))
            keyrings[repo['name']] = dbpath
        rc, out, err = self._run(rpmkeys_checksig_argv(self.tools, dbpath, path), env=dnf_env())
        if not signature_ok(rc, out, path):
            raise BundleError('%s from repository %s is not signed by its gpgkey %s (rpmkeys: %s); the file was not '
                              'added to the pool' % (entry['filename'], repo['name'], repo['gpgkey'], (out + err).strip()))

    # metadata ------------------------------------------------------------------------

    def write_metadata(self, layout, wanted):
        # createrepo_c works in <dest>/.repodata and refuses to start while one is there: what an
        # interrupted run left behind (nothing else writes this repository).
        shutil.rmtree(os.path.join(self.dest, '.repodata'), ignore_errors=True)
        _write_if_changed(layout['pkglist'], ''.join('%s/%s\n' % (POOL, name) for name in sorted(wanted)).encode('utf-8'))
        rc, out, err = self._run(createrepo_argv(self.tools, layout, self.dest), env=dnf_env(), cwd=self.dest)
        if rc != 0:
            raise BundleError('createrepo_c in %s failed: %s' % (self.dest, (err or out).strip()))
        if not metadata_current(self.dest, wanted):
            raise BundleError('createrepo_c wrote metadata in %s that does not list exactly the pool' % self.dest)
        if self.modules_text:
            _mkdirs(os.path.dirname(layout['modules']))
            _write_if_changed(layout['modules'], self.modules_text.encode('utf-8'))
            rc, out, err = self._run(modifyrepo_argv(self.tools, layout, self.dest), env=dnf_env(), cwd=self.dest)
            if rc != 0:
                raise BundleError('modifyrepo_c (module metadata) in %s failed: %s' % (self.dest, (err or out).strip()))
            if not modules_current(self.dest, self.modules_text):
                raise BundleError('modifyrepo_c wrote module metadata in %s that differs from the sources\' ' % self.dest)

    def metadata_as_wanted(self, wanted):
        """repodata lists exactly the pool and carries exactly the sources' module metadata."""
        return metadata_current(self.dest, wanted) and modules_current(self.dest, self.modules_text)

    def signature_valid(self, layout):
        repomd = os.path.join(self.dest, REPOMD)
        asc = os.path.join(self.dest, SIGNATURE)
        if not os.path.isfile(repomd) or not os.path.isfile(asc):
            return False
        return verified_text(self.tools, self._run, layout['keyring'], asc, data=repomd) is not None

    def sign(self, fingerprint):
        self.sign_file(fingerprint, 'detached', os.path.join(self.dest, REPOMD), os.path.join(self.dest, SIGNATURE))

    # the whole run -----------------------------------------------------------------

    def _run_in(self, layout):
        self.prepare_work(layout)
        wanted = self.resolve(layout)
        listing, fetch, remove = self.plan(wanted)
        result = {
            'changed': bool(fetch or remove),
            'added': ['%s/%s' % (POOL, name) for name in fetch],
            'removed': ['%s/%s' % (POOL, name) for name in remove],
            'packages': package_list(wanted, POOL + '/'),
            'total_size': sum(entry['size'] for entry in wanted.values()),
            'architectures': list(self.architectures),
            'releasever': self.releasever,
            'repo_file': repo_file(self.client_baseurl),
            'module_metadata': bool(self.modules_text),
            'public_key': self.public_key,
            'index_updated': False,
            'key_created': False,
            'diff': self.pool_diff(listing, wanted),
        }
        if self.check_mode:
            fingerprint, _created = self.signing_key(create=False)
            result['key_fingerprint'] = fingerprint
            result['key_created'] = fingerprint is None
            if fingerprint is None or fetch or remove or not self.metadata_as_wanted(wanted):
                result['changed'] = True
                result['index_updated'] = True
                return result
            armored = self.export_keys(fingerprint, layout)
            index = not self.signature_valid(layout)
            result['index_updated'] = index
            result['changed'] = index or _read(self.public_key) != armored
            return result

        keyrings = {}
        self.fill_pool(layout, wanted, fetch, remove,
                       verify=lambda entry, path: self.check_signature(layout, entry, path, keyrings))

        fingerprint, created = self.signing_key(create=True)
        result['key_fingerprint'] = fingerprint
        result['key_created'] = created
        armored = self.export_keys(fingerprint, layout)
        if _write_if_changed(self.public_key, armored):
            result['changed'] = True
        rewritten = False
        if fetch or remove or not self.metadata_as_wanted(wanted):
            self.write_metadata(layout, wanted)
            rewritten = True
        if rewritten or not self.signature_valid(layout):
            self.sign(fingerprint)
            result['index_updated'] = True
            result['changed'] = True
        return result


def run(params, check_mode, run_command, tools=None, fetch=download):
    """Build (or, in check mode, plan) the bundle; the module's result. Raises BundleError."""
    return Bundle(params, check_mode, run_command, tools=tools, fetch=fetch).run()
