# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""A signed apt repository of a package set with its whole dependency closure, built on a
connected staging host for an air-gapped fleet (the apt_bundle module, issue #19).

apt resolves in a configuration of its own under the work directory: its own sources
list, trusted keyrings, lists, caches, an EMPTY dpkg status (so every dependency down to
libc6 is part of the closure) and none of the host's apt.conf, preferences or sources.
The host's own apt state is never read for resolution nor written.

  1. ``apt-get update`` into the work directory.
  2. Per architecture, ``apt-get install --print-uris`` gives the closure (URL, size);
     ``apt-cache show name=version`` gives each file's SHA256 from the signed index.
  3. The pool (``pool/<component>/``) is compared with the closure; what is missing or
     differs is downloaded (urllib, size and SHA256 verified), what is not in the closure
     is removed.
  4. The index is made in a staging directory (``apt-ftparchive packages`` per
     architecture, ``apt-ftparchive release``) and copied over only where it differs; a
     Release that differs only by its Date is kept, with its signatures, so a second run
     with the same inputs changes nothing.
  5. ``InRelease`` and ``Release.gpg`` are signed with the bundle's own key (made with
     ``gpg --quick-gen-key`` in gpg_home when there is none) whenever the Release changed
     or the signatures do not verify with that key.

The standard library and ansible's open_url (downloads) only: the module hands in
``run_command(argv, env, cwd) -> (rc, out, err)``; failures are raised as BundleError.
"""

from __future__ import absolute_import, division, print_function


__metaclass__ = type

import glob
import gzip
import hashlib
import io
import os
import re
import shutil
import tempfile
from contextlib import closing
from urllib.parse import unquote, urlsplit

from ansible.module_utils.urls import open_url

from ansible_collections.kubegpu.cluster.plugins.module_utils._host_files import _read

KEY_UID = 'kubegpu bundle <bundle@kubegpu.invalid>'
CLIENT_KEYRING = '/etc/apt/keyrings/kubegpu-bundle.asc'
URL_PLACEHOLDER = '{{ url }}'
DEFAULT_KEYRINGS = ('/usr/share/keyrings/debian-archive-keyring.gpg', '/etc/apt/trusted.gpg.d/*')
RELEASE_FIELDS = (('Origin', 'kubegpu'), ('Label', 'kubegpu bundle'))
DOWNLOAD_TIMEOUT = 120
SIGNATURES = ('InRelease', 'Release.gpg')

_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9.+_-]*$')
_ARCH = re.compile(r'^[a-z0-9][a-z0-9-]*$')
_PACKAGE = re.compile(r'^(?P<name>[a-z0-9][a-z0-9.+-]*)(?:=(?P<version>[A-Za-z0-9.+~:*?-]+)|/(?P<release>[A-Za-z0-9.+~_-]+))?$')
_SOURCE = re.compile(r'^(?P<type>\S+)\s+(?:\[(?P<options>[^\]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)(?P<components>(?:\s+\S+)*)\s*$')
_PRINT_URI = re.compile(r"^'(?P<url>[^']+)'\s+(?P<filename>\S+)\s+(?P<size>\d+)(?:\s+(?P<hash>\S+))?\s*$")
_UPDATE_FAILURES = ('E:', 'Err:', 'W: Failed to fetch', 'W: GPG error', 'W: Some index files failed', 'W: The repository')


class BundleError(Exception):
    """A failure the module reports with fail_json (str(exc) is the message)."""


# ---------------------------------------------------------------------------------------
# Inputs


def check_name(value, what):
    """A suite or component name: one path element, no spaces."""
    if not value or not _NAME.match(value):
        raise BundleError('%s %r is not a valid name (letters, digits, ".", "+", "_", "-"; no "/")' % (what, value))
    return value


def check_architectures(architectures):
    if not architectures:
        raise BundleError('architectures is empty: name at least one (e.g. amd64)')
    for arch in architectures:
        if not _ARCH.match(arch or '') or arch == 'all':
            raise BundleError('architecture %r is not a Debian architecture name (e.g. amd64, arm64)' % (arch,))
    seen = []
    for arch in architectures:
        if arch not in seen:
            seen.append(arch)
    return seen


def check_packages(packages, pattern=_PACKAGE, what='name, name=version or name/release'):
    """The package specs: name, name=version or name/release; nothing apt would read as an option.
    A version may be a pattern (``nvidia-kernel-dkms=535.*``: the driver stage asks apt for a branch
    so), which apt-get matches itself. dnf_bundle checks its specs with its own pattern."""
    if not packages:
        raise BundleError('packages is empty: name at least one package')
    bad = [spec for spec in packages if not pattern.match(spec or '')]
    if bad:
        raise BundleError('not a package %s: %s' % (what, ', '.join(repr(b) for b in bad)))
    return list(packages)


def package_name(spec):
    return _PACKAGE.match(spec).group('name')


def parse_source_line(line):
    """One one-line-style apt source: {'options': str, 'uri', 'suite', 'components': [..]}."""
    text = (line or '').split('#', 1)[0].strip()
    match = _SOURCE.match(text)
    if not match:
        raise BundleError('not an apt source line ("deb [options] URI suite component..."): %r' % (line,))
    if match.group('type') != 'deb':
        raise BundleError('only "deb" source lines can be bundled, not %r: %r' % (match.group('type'), line))
    components = match.group('components').split()
    suite = match.group('suite')
    if not components and not suite.endswith('/'):
        raise BundleError('source line names no component (and its suite is not a flat "path/"): %r' % (line,))
    if urlsplit(match.group('uri')).scheme not in ('http', 'https', 'ftp', 'file', 'copy'):
        raise BundleError('source %r: only http, https, ftp, file and copy URIs can be fetched' % (line,))
    return {'options': (match.group('options') or '').strip(), 'uri': match.group('uri'),
            'suite': suite, 'components': components}


def sources_list_text(sources):
    """The generated sources.list (one normalized line per source)."""
    if not sources:
        raise BundleError('sources is empty: name at least one "deb ..." line')
    lines = []
    for line in sources:
        src = parse_source_line(line)
        options = '[%s] ' % src['options'] if src['options'] else ''
        lines.append(' '.join(['deb', options + src['uri'], src['suite']] + src['components']))
    return ''.join(entry + '\n' for entry in lines)


def expand_keyrings(patterns, defaults=False):
    """The keyring files of patterns (paths or globs). An explicit path that matches nothing
    is an error; the defaults take what exists."""
    found = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else ([pattern] if os.path.isfile(pattern) else [])
        matches = [path for path in matches if os.path.isfile(path)]
        if not matches and not defaults and not glob.has_magic(pattern):
            raise BundleError('trusted keyring %s does not exist' % pattern)
        found.extend(path for path in matches if path not in found)
    if not found:
        raise BundleError('no trusted keyring found (%s): apt could not verify any source; '
                          'set trusted_keyrings' % ', '.join(patterns))
    return found


def trusted_part_name(index, path, head=b''):
    """The name of a keyring's copy in the private trusted.gpg.d: apt reads only *.gpg and *.asc."""
    base = re.sub(r'[^A-Za-z0-9._-]', '_', os.path.basename(path)) or 'keyring'
    if not base.endswith(('.gpg', '.asc')):
        base += '.asc' if head.lstrip().startswith(b'-----BEGIN PGP') else '.gpg'
    return '%02d-%s' % (index, base)


# ---------------------------------------------------------------------------------------
# apt's private configuration


def work_layout(work_dir):
    """The paths of apt's private state under the work directory."""
    join = os.path.join
    return {
        'root': work_dir,
        'apt_conf': join(work_dir, 'apt.conf'),
        'etc': join(work_dir, 'etc'),
        'conf_parts': join(work_dir, 'etc', 'apt.conf.d'),
        'preferences': join(work_dir, 'etc', 'preferences'),
        'preferences_parts': join(work_dir, 'etc', 'preferences.d'),
        'sources_list': join(work_dir, 'etc', 'sources.list'),
        'sources_parts': join(work_dir, 'etc', 'sources.list.d'),
        'trusted': join(work_dir, 'etc', 'trusted.gpg'),
        'trusted_parts': join(work_dir, 'etc', 'trusted.gpg.d'),
        'state': join(work_dir, 'state'),
        'lists': join(work_dir, 'state', 'lists'),
        'status': join(work_dir, 'dpkg', 'status'),
        'extended_states': join(work_dir, 'state', 'extended_states'),
        'cache': join(work_dir, 'cache'),
        'archives': join(work_dir, 'cache', 'archives'),
        'log': join(work_dir, 'log'),
        'download': join(work_dir, 'download'),
        'stage': join(work_dir, 'stage'),
        'keyring': join(work_dir, 'bundle-keyring.gpg'),
    }


def apt_config_items(layout, architectures):
    """(key, value) pairs of apt's private configuration; nothing of the host's is read."""
    return [
        # Read first (APT_CONFIG), so these decide that /etc/apt/apt.conf{,.d} are not read.
        ('Dir::Etc::Main', os.devnull),
        ('Dir::Etc::Parts', layout['conf_parts']),
        ('Dir::Etc::Preferences', layout['preferences']),
        ('Dir::Etc::PreferencesParts', layout['preferences_parts']),
        ('Dir::Etc::SourceList', layout['sources_list']),
        ('Dir::Etc::SourceParts', layout['sources_parts']),
        ('Dir::Etc::Trusted', layout['trusted']),
        ('Dir::Etc::TrustedParts', layout['trusted_parts']),
        ('Dir::State', layout['state']),
        ('Dir::State::Lists', layout['lists']),
        ('Dir::State::status', layout['status']),
        ('Dir::State::extended_states', layout['extended_states']),
        ('Dir::Cache', layout['cache']),
        ('Dir::Cache::archives', layout['archives']),
        # apt's binary caches, in the work directory: each apt call after the update reads them
        # instead of parsing every Packages list again (apt rebuilds them when lists or
        # architectures change).
        ('Dir::Cache::pkgcache', os.path.join(layout['cache'], 'pkgcache.bin')),
        ('Dir::Cache::srcpkgcache', os.path.join(layout['cache'], 'srcpkgcache.bin')),
        ('Dir::Log', layout['log']),
        ('APT::Architecture', architectures[0]),
        ('APT::Architectures', ','.join(architectures)),
        ('APT::Install-Recommends', 'false'),
        ('APT::Install-Suggests', 'false'),
        ('APT::Get::AllowUnauthenticated', 'false'),
        ('Acquire::AllowInsecureRepositories', 'false'),
        ('Acquire::AllowDowngradeToInsecureRepositories', 'false'),
        ('Acquire::Languages', 'none'),
        ('Acquire::Retries', '3'),
        ('Debug::NoLocking', 'false'),
        ('Debug::pkgProblemResolver', 'false'),
        ('Debug::pkgDepCache::AutoInstall', 'false'),
        ('Debug::Acquire::http', 'false'),
        ('Debug::pkgAcquire::Worker', 'false'),
    ]


def apt_config_text(layout, architectures):
    """apt.conf syntax of apt_config_items (given to apt as APT_CONFIG)."""
    lines = []
    for key, value in apt_config_items(layout, architectures):
        if '"' in value or '\n' in value:
            raise BundleError('%s: a path with a double quote or a newline cannot go into apt.conf: %r' % (key, value))
        lines.append('%s "%s";' % (key, value))
    return '\n'.join(lines) + '\n'


def apt_env(layout):
    return {'APT_CONFIG': layout['apt_conf'], 'LC_ALL': 'C', 'LANG': 'C', 'LANGUAGE': 'C', 'DEBIAN_FRONTEND': 'noninteractive'}


def update_argv(tools):
    return [tools['apt-get'], '-qq', 'update']


def resolve_argv(tools, arch, packages):
    """apt-get's closure of packages for one architecture, as URLs (nothing downloaded)."""
    return [tools['apt-get'], '-qq', '-o', 'APT::Architecture=%s' % arch, '-o', 'APT::Architectures=%s' % arch,
            'install', '--print-uris', '--download-only', '--no-install-recommends', '-y'] + list(packages)


def show_argv(tools, arch, specs):
    return [tools['apt-cache'], '-o', 'APT::Architecture=%s' % arch, '-o', 'APT::Architectures=%s' % arch,
            'show'] + list(specs)


# ---------------------------------------------------------------------------------------
# apt's output


def update_failures(rc, out, err):
    """The lines of apt-get update that mean an index was not fetched or not verified."""
    lines = [line.strip() for line in (err or '').splitlines() + (out or '').splitlines()]
    bad = [line for line in lines if line.startswith(_UPDATE_FAILURES)]
    if rc != 0 and not bad:
        bad = [line for line in lines if line] or ['apt-get update exited with %d' % rc]
    return bad


def parse_print_uris(text):
    """apt-get --print-uris lines: [{'url', 'filename', 'size', 'hash'}] (filename as apt names it)."""
    entries = []
    for line in (text or '').splitlines():
        match = _PRINT_URI.match(line.strip())
        if match:
            entries.append({'url': match.group('url'), 'filename': match.group('filename'),
                            'size': int(match.group('size')), 'hash': match.group('hash') or ''})
    return entries


def deb_identity(filename):
    """(name, version, architecture) of an apt archive file name (name_version_arch.deb,
    the epoch's colon written %3a)."""
    base = os.path.basename(filename)
    if not base.endswith('.deb') or base.count('_') != 2:
        raise BundleError('%s is not a package file name (name_version_architecture.deb)' % base)
    name, version, arch = base[:-len('.deb')].split('_')
    return name, unquote(version), arch


def pool_name(url):
    """The file's name in the pool: its name in the archive it comes from (no epoch)."""
    base = unquote(urlsplit(url).path.rsplit('/', 1)[-1])
    if not base.endswith('.deb') or '/' in base or base.startswith('.'):
        raise BundleError('%s does not name a .deb file' % url)
    return base


def parse_control(text):
    """RFC 822-like stanzas (Packages, apt-cache show) as a list of {field: value}."""
    stanzas, current, key = [], {}, None
    for line in (text or '').splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
        elif line[0] in ' \t' and key:
            current[key] += '\n' + line
        elif ':' in line:
            key, value = line.split(':', 1)
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def resolve_failure(packages, arch, rc, out, err):
    """The message of a closure apt could not make: the packages apt names, and apt's words."""
    lines = [line.rstrip() for line in (err or '').splitlines() + (out or '').splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith('E:')]
    text = '\n'.join(lines)
    named = [spec for spec in packages
             if re.search(r"(?<![A-Za-z0-9.+-])%s(?![A-Za-z0-9.+-])" % re.escape(package_name(spec)), text)]
    detail = '; '.join(errors or lines[:20]) or 'apt-get exited with %d' % rc
    return 'cannot resolve %s for %s: %s' % (', '.join(named or packages), arch, detail)


def closure_entries(print_uris, records, arch):
    """Merge apt-get's URLs with apt-cache's records into the closure's entries:
    {'name', 'version', 'architecture', 'filename' (pool name), 'url', 'size', 'sha256'}."""
    by_file = {}
    for record in records:
        if record.get('Filename'):
            by_file.setdefault(os.path.basename(record['Filename']), []).append(record)
    entries = []
    for item in print_uris:
        name, version, deb_arch = deb_identity(item['filename'])
        filename = pool_name(item['url'])
        candidates = [r for r in by_file.get(filename, [])
                      if r.get('Package') == name and r.get('Version') == version and r.get('SHA256')]
        if not candidates:
            raise BundleError('%s %s (%s): apt-cache shows no SHA256 for %s; the index is incomplete' % (name, version, arch, filename))
        record = candidates[0]
        size = int(record.get('Size') or -1)
        if size != item['size']:
            raise BundleError('%s: apt-get says %d bytes, the index says %d' % (filename, item['size'], size))
        hash_type, _sep, digest = item['hash'].partition(':')
        if hash_type.upper() == 'SHA256' and digest.lower() != record['SHA256'].lower():
            raise BundleError('%s: apt-get and the index disagree on its SHA256' % filename)
        entries.append({'name': name, 'version': version, 'architecture': record.get('Architecture') or deb_arch,
                        'filename': filename, 'url': item['url'], 'size': size, 'sha256': record['SHA256'].lower()})
    return entries


def merge_closures(closures):
    """One entry per pool file over every architecture's closure ("all" packages come once)."""
    merged = {}
    for entries in closures:
        for entry in entries:
            known = merged.get(entry['filename'])
            if known and (known['sha256'] != entry['sha256'] or known['size'] != entry['size']):
                raise BundleError('%s comes from two sources with different content (%s, %s): the pool '
                                  'cannot hold both' % (entry['filename'], known['url'], entry['url']))
            merged.setdefault(entry['filename'], entry)
    return merged


# ---------------------------------------------------------------------------------------
# The pool


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def pool_listing(pool_dir):
    """{file name: size} of the plain files in the pool directory."""
    if not os.path.isdir(pool_dir):
        return {}
    listing = {}
    for name in os.listdir(pool_dir):
        path = os.path.join(pool_dir, name)
        if os.path.isfile(path) and not os.path.islink(path):
            listing[name] = os.path.getsize(path)
    return listing


def plan_pool(wanted, listing, digest_of):
    """(to fetch, to remove): the wanted file names missing from the pool or differing
    (size, then SHA256 via digest_of(name)), and the pool's files not wanted."""
    fetch = sorted(name for name, entry in wanted.items()
                   if listing.get(name) != entry['size'] or digest_of(name) != entry['sha256'])
    remove = sorted(name for name in listing if name not in wanted)
    return fetch, remove


def download(url, path, size, sha256, timeout=DOWNLOAD_TIMEOUT):
    """Fetch url into path, verifying its size and SHA256 (the file is removed when they differ)."""
    if url.startswith('copy:'):
        url = 'file:' + url[len('copy:'):]
    digest, got = hashlib.sha256(), 0
    try:
        # ansible's open_url: the proxy settings of the environment, file: URLs (copy:) too.
        with closing(open_url(url, timeout=timeout, follow_redirects='safe')) as response, open(path, 'wb') as out:
            for chunk in iter(lambda: response.read(1 << 16), b''):
                digest.update(chunk)
                got += len(chunk)
                out.write(chunk)
    except Exception as exc:  # pylint: disable=broad-except  # urllib's, ansible's ConnectionError, ssl's
        _unlink(path)
        raise BundleError('cannot download %s: %s' % (url, exc))
    if got != size or digest.hexdigest() != sha256:
        _unlink(path)
        raise BundleError('%s: got %d bytes with SHA256 %s, the signed index says %d bytes with SHA256 %s'
                          % (url, got, digest.hexdigest(), size, sha256))


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


# ---------------------------------------------------------------------------------------
# The index


def sort_stanzas(text):
    """apt-ftparchive's Packages with its stanzas in file-name order (independent of the
    order the directory is read in)."""
    blocks = [block.strip('\n') for block in re.split(r'\n\s*\n', text or '') if block.strip()]

    def key(block):
        match = re.search(r'^Filename: (.*)$', block, re.M)
        return match.group(1) if match else block
    return ''.join(block + '\n\n' for block in sorted(blocks, key=key))


def gzip_bytes(data):
    """Deterministic gzip (no name, mtime 0): the same Packages gives the same Packages.gz."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename='', mode='wb', fileobj=buf, mtime=0, compresslevel=9) as stream:
        stream.write(data)
    return buf.getvalue()


def packages_argv(tools, arch, component):
    return [tools['apt-ftparchive'], '--arch', arch, 'packages', 'pool/%s' % component]


def release_argv(tools, suite, component, architectures, path):
    fields = list(RELEASE_FIELDS) + [('Suite', suite), ('Codename', suite), ('Architectures', ' '.join(architectures)),
                                     ('Components', component), ('Description', 'kubegpu air-gapped package bundle')]
    argv = [tools['apt-ftparchive']]
    for key, value in fields:
        argv += ['-o', 'APT::FTPArchive::Release::%s=%s' % (key, value)]
    return argv + ['release', path]


def release_without_date(text):
    return [line for line in (text or '').splitlines() if not line.startswith('Date:')]


def same_release(old, new):
    """Whether two Release files differ by their Date line at most."""
    return old is not None and release_without_date(old) == release_without_date(new)


def package_list(wanted, prefix):
    """The module's packages return value: one dict per pool file, in name order."""
    entries = sorted(wanted.values(), key=lambda e: (e['name'], e['architecture'], e['version']))
    return [{'name': e['name'], 'version': e['version'], 'architecture': e['architecture'],
             'filename': prefix + e['filename'], 'size': e['size'], 'sha256': e['sha256']} for e in entries]


def source_line(architectures, suite, component, url=URL_PLACEHOLDER, keyring=CLIENT_KEYRING):
    """The line a client puts in its sources.list for this repository."""
    return 'deb [arch=%s signed-by=%s] %s %s %s' % (','.join(architectures), keyring, url, suite, component)


# ---------------------------------------------------------------------------------------
# gpg


def parse_secret_keys(colons):
    """Fingerprints of the usable signing secret keys in gpg --with-colons --list-secret-keys
    output (not revoked, expired or disabled; capability S)."""
    keys, primary = [], None
    for line in (colons or '').splitlines():
        fields = line.split(':')
        if fields[0] == 'sec':
            capabilities = fields[11] if len(fields) > 11 else ''
            primary = {'usable': fields[1] not in ('r', 'e', 'd', 'i') and 'S' in capabilities, 'fpr': ''}
            keys.append(primary)
        elif fields[0] == 'fpr' and primary is not None and len(fields) > 9:
            primary['fpr'] = fields[9]
            primary = None
        elif fields[0] == 'ssb':
            primary = None
    return [key['fpr'] for key in keys if key['usable'] and key['fpr']]


def gpg_base(tools, gpg_home):
    return [tools['gpg'], '--homedir', gpg_home, '--batch', '--no-tty', '--pinentry-mode', 'loopback', '--passphrase', '']


def genkey_argv(tools, gpg_home, algorithm):
    return gpg_base(tools, gpg_home) + ['--quick-gen-key', KEY_UID, algorithm, 'sign', 'never']


def sign_argv(tools, gpg_home, fingerprint, mode, source, target):
    flag = ['--clearsign'] if mode == 'clear' else ['--detach-sign', '--armor']
    return gpg_base(tools, gpg_home) + ['--yes', '--local-user', fingerprint, '--digest-algo', 'SHA512'] + flag + [
        '--output', target, source]


def verified_text(tools, run_command, keyring, signed, data=None):
    """The signed text of a clearsigned file, or '' for a detached signature that verifies;
    None when it does not verify with keyring."""
    argv = [tools['gpgv'], '--quiet', '--keyring', keyring]
    if data is None:
        argv += ['--output', '-', signed]
    else:
        argv += [signed, data]
    rc, out, _err = run_command(argv, env={'LC_ALL': 'C'})
    if rc != 0:
        return None
    return out if data is None else ''


# ---------------------------------------------------------------------------------------
# The run


def _write_if_changed(path, data, mode=0o644):
    try:
        with open(path, 'rb') as stream:
            if stream.read() == data:
                return False
    except (IOError, OSError):
        pass
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    with os.fdopen(fd, 'wb') as stream:
        stream.write(data)
    os.chmod(tmp, mode)
    os.rename(tmp, path)
    return True


def _mkdirs(*paths):
    for path in paths:
        if not os.path.isdir(path):
            os.makedirs(path, 0o755)


class BundleBase:
    """What apt_bundle and dnf_bundle share: the run in the work directory (a temporary one in
    check mode while work_dir does not exist), the pool's plan and downloads, signing, and the
    bundle's signing key in gpg_home. A subclass sets layout_of (work_dir -> its layout, with
    'download' and 'keyring') and temp_prefix, has self.run_command, self.check_mode,
    self.fetch, self.tools ('gpg', 'gpgconf'), self.work_dir, self.pool_dir, self.gpg_home,
    self.algorithm and self.agent_homes (a list), and implements _run_in(layout)."""

    layout_of = staticmethod(work_layout)
    temp_prefix = 'kubegpu-bundle-'

    def _run(self, argv, env=None, cwd=None):
        return self.run_command(argv, env=env, cwd=cwd)

    def run(self):
        temp_work = None
        layout = self.layout_of(self.work_dir)
        if self.check_mode and not os.path.isdir(self.work_dir):
            temp_work = tempfile.mkdtemp(prefix=self.temp_prefix)
            layout = self.layout_of(temp_work)
        try:
            return self._run_in(layout)
        finally:
            self.stop_agents()
            if temp_work:
                shutil.rmtree(temp_work, ignore_errors=True)

    # the pool ----------------------------------------------------------------------

    def plan(self, wanted):
        """(the pool's {name: size}, names to fetch, names to remove) for the wanted closure."""
        listing = pool_listing(self.pool_dir)
        fetch, remove = plan_pool(wanted, listing, lambda name: sha256_file(os.path.join(self.pool_dir, name)))
        return listing, fetch, remove

    def pool_diff(self, listing, wanted):
        return {'before_header': self.pool_dir, 'after_header': self.pool_dir,
                'before': ''.join(name + '\n' for name in sorted(listing)),
                'after': ''.join(name + '\n' for name in sorted(wanted))}

    def fill_pool(self, layout, wanted, fetch, remove, verify=None):
        """Download the files to fetch (verified; then verify(entry, path) where given) into
        the pool, and remove the files to remove."""
        _mkdirs(self.pool_dir)
        for name in fetch:
            entry = wanted[name]
            fd, tmp = tempfile.mkstemp(prefix='.%s.' % name, dir=layout['download'])
            os.close(fd)
            try:
                self.fetch(entry['url'], tmp, entry['size'], entry['sha256'])
                if verify is not None:
                    verify(entry, tmp)
            except BundleError:
                _unlink(tmp)
                raise
            os.chmod(tmp, 0o644)
            shutil.move(tmp, os.path.join(self.pool_dir, name))
        for name in remove:
            os.unlink(os.path.join(self.pool_dir, name))

    def sign_file(self, fingerprint, mode, source, target):
        """Sign source into target (mode 'clear' or 'detached', armoured) with the bundle's key."""
        tmp = target + '.kubegpu-tmp'
        rc, out, err = self._run(sign_argv(self.tools, self.gpg_home, fingerprint, mode, source, tmp), env={'LC_ALL': 'C'})
        if rc != 0:
            _unlink(tmp)
            raise BundleError('gpg could not sign %s: %s' % (source, (err or out).strip()))
        os.chmod(tmp, 0o644)
        os.rename(tmp, target)

    # the signing key ---------------------------------------------------------------

    def signing_key(self, create):
        """(fingerprint or None, created)."""
        if not os.path.isdir(self.gpg_home):
            if not create:
                return None, False
            os.makedirs(self.gpg_home, 0o700)
        if create:
            os.chmod(self.gpg_home, 0o700)
        self.agent_homes.append(self.gpg_home)
        base = gpg_base(self.tools, self.gpg_home)
        rc, out, err = self._run(base + ['--with-colons', '--list-secret-keys'], env={'LC_ALL': 'C'})
        keys = parse_secret_keys(out) if rc == 0 else []
        if keys:
            return keys[0], False
        if not create:
            return None, False
        rc, out, err = self._run(genkey_argv(self.tools, self.gpg_home, self.algorithm), env={'LC_ALL': 'C'})
        if rc != 0:
            raise BundleError('gpg --quick-gen-key in %s failed: %s' % (self.gpg_home, (err or out).strip()))
        rc, out, err = self._run(base + ['--with-colons', '--list-secret-keys'], env={'LC_ALL': 'C'})
        keys = parse_secret_keys(out)
        if not keys:
            raise BundleError('gpg made a key in %s but lists no signing secret key: %s' % (self.gpg_home, (err or out).strip()))
        return keys[0], True

    def export_keys(self, fingerprint, layout):
        """The armoured public key (bytes) and the binary keyring gpgv verifies with."""
        base = gpg_base(self.tools, self.gpg_home)
        rc, armored, err = self._run(base + ['--armor', '--export', fingerprint], env={'LC_ALL': 'C'})
        if rc != 0 or 'BEGIN PGP PUBLIC KEY BLOCK' not in armored:
            raise BundleError('gpg --export %s failed: %s' % (fingerprint, (err or armored).strip()))
        rc, out, err = self._run(base + ['--yes', '--output', layout['keyring'], '--export', fingerprint], env={'LC_ALL': 'C'})
        if rc != 0:
            raise BundleError('gpg --export %s failed: %s' % (fingerprint, (err or out).strip()))
        return armored.encode('utf-8')

    def stop_agents(self):
        if not self.tools.get('gpgconf'):
            return
        for home in self.agent_homes:
            try:
                self._run([self.tools['gpgconf'], '--homedir', home, '--kill', 'gpg-agent'])
            except (IOError, OSError):
                pass


class Bundle(BundleBase):
    """One run of the module. params: the module's parameters; run_command(argv, env=None,
    cwd=None) -> (rc, out, err); tools: {'apt-get': path, ...}; fetch: download()."""

    temp_prefix = 'kubegpu-apt-bundle-'

    def __init__(self, params, check_mode, run_command, tools=None, fetch=download):
        self.params = params
        self.check_mode = check_mode
        self.run_command = run_command
        self.tools = dict((name, name) for name in ('apt-get', 'apt-cache', 'apt-ftparchive', 'gpg', 'gpgv', 'gpgconf'))
        self.tools.update(tools or {})
        self.fetch = fetch
        self.dest = os.path.abspath(params['dest'])
        self.suite = check_name(params.get('suite') or 'kubegpu', 'suite')
        self.component = check_name(params.get('component') or 'main', 'component')
        self.architectures = check_architectures(params.get('architectures') or ['amd64'])
        self.packages = check_packages(params.get('packages'))
        self.sources_text = sources_list_text(params.get('sources'))
        self.gpg_home = os.path.abspath(params['gpg_home'])
        self.public_key = os.path.abspath(params.get('public_key') or os.path.join(self.dest, 'kubegpu-bundle.asc'))
        self.work_dir = os.path.abspath(params.get('work_dir') or os.path.join(self.dest, '.apt-work'))
        self.algorithm = params.get('key_algorithm') or 'ed25519'
        self.pool_dir = os.path.join(self.dest, 'pool', self.component)
        self.suite_dir = os.path.join(self.dest, 'dists', self.suite)
        self.agent_homes = []

    # apt ---------------------------------------------------------------------------

    def prepare_work(self, layout):
        """apt's private configuration, sources, keyrings and an empty dpkg status."""
        _mkdirs(layout['conf_parts'], layout['preferences_parts'], layout['sources_parts'], layout['trusted_parts'],
                os.path.join(layout['lists'], 'partial'), os.path.dirname(layout['status']),
                os.path.join(layout['archives'], 'partial'), layout['log'], layout['download'])
        _write_if_changed(layout['apt_conf'], apt_config_text(layout, self.architectures).encode('utf-8'))
        _write_if_changed(layout['sources_list'], self.sources_text.encode('utf-8'))
        _write_if_changed(layout['status'], b'')
        patterns = self.params.get('trusted_keyrings')
        keyrings = expand_keyrings(patterns or list(DEFAULT_KEYRINGS), defaults=not patterns)
        wanted = {}
        for index, path in enumerate(keyrings):
            data = _read(path)
            if data is None:
                raise BundleError('cannot read trusted keyring %s' % path)
            wanted[trusted_part_name(index, path, data[:64])] = data
        for name in os.listdir(layout['trusted_parts']):
            if name not in wanted:
                os.unlink(os.path.join(layout['trusted_parts'], name))
        for name, data in wanted.items():
            _write_if_changed(os.path.join(layout['trusted_parts'], name), data)

    def resolve(self, layout):
        """apt-get update, then the closure of every architecture: {pool name: entry}."""
        env = apt_env(layout)
        rc, out, err = self._run(update_argv(self.tools), env=env)
        failures = update_failures(rc, out, err)
        if failures:
            raise BundleError('apt-get update of the bundle sources failed: %s' % '; '.join(failures[:20]))
        closures = []
        for arch in self.architectures:
            rc, out, err = self._run(resolve_argv(self.tools, arch, self.packages), env=env)
            uris = parse_print_uris(out)
            if rc != 0 or not uris:
                raise BundleError(resolve_failure(self.packages, arch, rc, out, err))
            specs = sorted(set('%s=%s' % deb_identity(item['filename'])[:2] for item in uris))
            rc, shown, err = self._run(show_argv(self.tools, arch, specs), env=env)
            if rc != 0:
                raise BundleError('apt-cache show of the closure for %s failed: %s' % (arch, (err or shown).strip()))
            closures.append(closure_entries(uris, parse_control(shown), arch))
        return merge_closures(closures)

    # index -------------------------------------------------------------------------

    def stage_index(self, layout):
        """Packages, Packages.gz and Release made in the staging directory: {dest-relative path: bytes}."""
        stage_root = layout['stage']
        if os.path.isdir(stage_root):
            shutil.rmtree(stage_root)
        files = {}
        for arch in self.architectures:
            rc, out, err = self._run(packages_argv(self.tools, arch, self.component), cwd=self.dest, env={'LC_ALL': 'C'})
            if rc != 0:
                raise BundleError('apt-ftparchive packages for %s failed: %s' % (arch, (err or out).strip()))
            text = sort_stanzas(out).encode('utf-8')
            base = 'dists/%s/%s/binary-%s/' % (self.suite, self.component, arch)
            files[base + 'Packages'] = text
            files[base + 'Packages.gz'] = gzip_bytes(text)
        for relative, data in files.items():
            _write_if_changed(os.path.join(stage_root, relative), data)
        stage_suite = os.path.join(stage_root, 'dists', self.suite)
        rc, out, err = self._run(release_argv(self.tools, self.suite, self.component, self.architectures, stage_suite),
                                 env={'LC_ALL': 'C'})
        if rc != 0 or not out.strip():
            raise BundleError('apt-ftparchive release failed: %s' % (err or out).strip())
        files['dists/%s/Release' % self.suite] = out.encode('utf-8')
        return files

    def signatures_valid(self, layout, release):
        """Whether InRelease and Release.gpg are signatures of release by the bundle's key."""
        inrelease = os.path.join(self.suite_dir, 'InRelease')
        detached = os.path.join(self.suite_dir, 'Release.gpg')
        if release is None or not os.path.isfile(inrelease) or not os.path.isfile(detached):
            return False
        text = verified_text(self.tools, self._run, layout['keyring'], inrelease)
        if text is None or text.rstrip('\n') != release.decode('utf-8').rstrip('\n'):
            return False
        return verified_text(self.tools, self._run, layout['keyring'], detached,
                             data=os.path.join(self.suite_dir, 'Release')) is not None

    def index_plan(self, staged):
        """(files to write {relative: bytes}, stale relative paths) against dest."""
        write = {}
        for relative, data in staged.items():
            before = _read(os.path.join(self.dest, relative))
            if relative.endswith('/Release'):
                if before is None or not same_release(before.decode('utf-8', 'replace'), data.decode('utf-8')):
                    write[relative] = data
            elif before != data:
                write[relative] = data
        keep = set(staged) | set('dists/%s/%s' % (self.suite, name) for name in SIGNATURES)
        stale = []
        for root, _dirs, names in os.walk(self.suite_dir):
            for name in names:
                relative = os.path.relpath(os.path.join(root, name), self.dest).replace(os.sep, '/')
                if relative not in keep:
                    stale.append(relative)
        return write, sorted(stale)

    def sign(self, fingerprint):
        release = os.path.join(self.suite_dir, 'Release')
        for name, mode in (('InRelease', 'clear'), ('Release.gpg', 'detached')):
            self.sign_file(fingerprint, mode, release, os.path.join(self.suite_dir, name))

    # the whole run -----------------------------------------------------------------

    def _run_in(self, layout):
        self.prepare_work(layout)
        wanted = self.resolve(layout)
        listing, fetch, remove = self.plan(wanted)
        prefix = 'pool/%s/' % self.component
        result = {
            'changed': bool(fetch or remove),
            'added': [prefix + name for name in fetch],
            'removed': [prefix + name for name in remove],
            'packages': package_list(wanted, prefix),
            'total_size': sum(entry['size'] for entry in wanted.values()),
            'suite': self.suite,
            'component': self.component,
            'architectures': list(self.architectures),
            'source_line': source_line(self.architectures, self.suite, self.component),
            'public_key': self.public_key,
            'index_updated': False,
            'key_created': False,
            'diff': self.pool_diff(listing, wanted),
        }
        if self.check_mode:
            fingerprint, _created = self.signing_key(create=False)
            result['key_fingerprint'] = fingerprint
            if fingerprint is None:
                result['key_created'] = True
            if fingerprint is None or fetch or remove or not os.path.isdir(self.dest):
                result['changed'] = True
                result['index_updated'] = True
                return result
            armored = self.export_keys(fingerprint, layout)
            staged = self.stage_index(layout)
            write, stale = self.index_plan(staged)
            release = _read(os.path.join(self.dest, 'dists', self.suite, 'Release'))
            signed = self.signatures_valid(layout, release)
            index = bool(write or stale) or not signed
            result['index_updated'] = index
            result['changed'] = index or _read(self.public_key) != armored
            return result

        self.fill_pool(layout, wanted, fetch, remove)

        fingerprint, created = self.signing_key(create=True)
        result['key_fingerprint'] = fingerprint
        result['key_created'] = created
        armored = self.export_keys(fingerprint, layout)
        if _write_if_changed(self.public_key, armored):
            result['changed'] = True
        staged = self.stage_index(layout)
        write, stale = self.index_plan(staged)
        for relative in stale:
            os.unlink(os.path.join(self.dest, relative))
        for relative, data in write.items():
            _write_if_changed(os.path.join(self.dest, relative), data)
        _remove_empty_dirs(self.suite_dir)
        release = _read(os.path.join(self.suite_dir, 'Release'))
        if write or stale or not self.signatures_valid(layout, release):
            self.sign(fingerprint)
            result['index_updated'] = True
            result['changed'] = True
        return result


def _remove_empty_dirs(top):
    """Remove the empty directories below top (top itself stays)."""
    for root, _dirs, _names in os.walk(top, topdown=False):
        if root != top and not os.listdir(root):
            os.rmdir(root)


def run(params, check_mode, run_command, tools=None, fetch=download):
    """Build (or, in check mode, plan) the bundle; the module's result. Raises BundleError."""
    return Bundle(params, check_mode, run_command, tools=tools, fetch=fetch).run()
