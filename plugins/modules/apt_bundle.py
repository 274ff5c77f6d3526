#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: apt_bundle
short_description: A signed apt repository of packages with their whole dependency closure, for an air-gapped fleet
version_added: "0.4.0"
description:
  - Runs on a connected staging host (Debian or Ubuntu with apt, apt-utils and gnupg). Resolves O(packages) with
    every dependency down to C(libc6) from O(sources), downloads the closure into C(pool/<component>/) of O(dest)
    and writes a signed apt repository there for ONE distribution release (C(dists/<suite>/)), which the
    air-gapped hosts use as their only source.
  - apt runs in a configuration of its own under O(work_dir) - its own sources list, trusted keyrings, lists,
    caches and an EMPTY dpkg status, and none of the host's C(apt.conf), preferences or sources. The host's apt
    state, sources, lists and caches are never read for the resolution nor written.
  - Per architecture, C(apt-get install --print-uris --no-install-recommends) gives the closure and
    C(apt-cache show) each file's SHA256 from the signed index; every file is downloaded with its size and
    SHA256 verified. Recommends are not part of the closure (kubegpu installs without them).
  - The pool holds exactly the closure - files no longer in it are removed. C(dists/<suite>/<component>/binary-<arch>/Packages)
    and C(Packages.gz) (C(apt-ftparchive packages)), C(dists/<suite>/Release) (C(apt-ftparchive release); Origin
    C(kubegpu), Label C(kubegpu bundle), Suite and Codename O(suite)), C(InRelease) and C(Release.gpg) are
    rewritten only where they differ. A Release that differs only by its C(Date) is kept with its signatures.
  - The repository is signed with the bundle's own key in O(gpg_home), made with C(gpg --quick-gen-key)
    (no passphrase, uid C(kubegpu bundle <bundle@kubegpu.invalid>)) when it holds none. Its public key is
    written ASCII-armoured to O(public_key); clients install it as C(/etc/apt/keyrings/kubegpu-bundle.asc).
  - Downloads use the C(http_proxy)/C(https_proxy) environment, as apt does.
author:
  - kubegpu maintainers (@kubegpu)
attributes:
  check_mode:
    support: full
    description:
      - Resolves the closure and reports which pool files would be added and removed; writes nothing in O(dest)
        and makes no key.
      - C(apt-get update) still runs, into O(work_dir) where that directory exists (it holds only apt's private
        lists), otherwise into a temporary directory that is removed afterwards.
  diff_mode:
    support: full
    description: The pool's file names before and after.
  idempotent:
    support: full
    description:
      - Reports C(changed=false) when the pool holds exactly the closure and the index, its signatures and the
        public key are as they should be. A new version published in O(sources) (a security update) changes the
        closure, and so the bundle.
options:
  dest:
    description:
      - The repository root for one distribution release, e.g. C(/srv/kubegpu-bundle/apt/debian-bookworm).
      - Created when missing. Serve it (or copy it) to the air-gapped hosts as it is.
    type: path
    required: true
  sources:
    description:
      - One-line apt source lines the closure is resolved from, e.g.
        C(deb http://deb.debian.org/debian bookworm main contrib non-free non-free-firmware), the release's
        C(-updates) and C(-security) suites too.
      - A line may carry options, e.g. C([signed-by=/usr/share/keyrings/vendor.gpg]). Only C(deb) lines; http,
        https, ftp, file and copy URIs.
    type: list
    elements: str
    required: true
  packages:
    description:
      - The packages to bundle - names, C(name=version) (the version may be a pattern, C(nvidia-kernel-dkms=535.*))
        or C(name/release). Their dependencies come along.
    type: list
    elements: str
    required: true
  gpg_home:
    description:
      - The bundle's signing keyring directory (a GnuPG home). Created (mode 0700) with a new signing key when it
        holds none; the first usable signing secret key in it signs.
      - Keep it, outside O(dest), for as long as clients trust the key; a new key needs a new C(public_key) on
        every client.
    type: path
    required: true
  key_algorithm:
    description: The algorithm of a signing key made in O(gpg_home) (an existing key is used as it is).
    type: str
    choices: [ed25519, rsa4096]
    default: ed25519
  trusted_keyrings:
    description:
      - The keyrings apt trusts for O(sources) (paths or glob patterns; binary or ASCII-armoured). A source line
        with its own C(signed-by) is checked with that instead.
      - Left out - the host's C(/usr/share/keyrings/debian-archive-keyring.gpg) and C(/etc/apt/trusted.gpg.d/*),
        whichever exist.
    type: list
    elements: path
  architectures:
    description: The Debian architectures of the closure and of the repository (C(all) packages come along).
    type: list
    elements: str
    default: [amd64]
  suite:
    description: The repository's suite and codename (C(dists/<suite>)).
    type: str
    default: kubegpu
  component:
    description: The repository's one component (C(pool/<component>), C(dists/<suite>/<component>)).
    type: str
    default: main
  work_dir:
    description:
      - apt's private configuration, state, lists and caches, and the downloads in progress. Not part of the
        repository (the index covers only C(pool/) and C(dists/)); kept between runs, so apt refreshes its lists
        instead of downloading them again.
      - Left out - C(<dest>/.apt-work).
    type: path
  public_key:
    description:
      - Where the bundle's ASCII-armoured public key is written.
      - Left out - C(<dest>/kubegpu-bundle.asc).
    type: path
notes:
  - The staging host needs apt, C(apt-ftparchive) (Debian package apt-utils), gpg and gpgv (gnupg); the
    module fails naming what is missing.
  - A package or version apt cannot find fails the module with the package's name and apt's message.
seealso:
  - name: apt-ftparchive(1)
    description: How the index is made.
    link: https://manpages.debian.org/bookworm/apt-utils/apt-ftparchive.1.en.html
"""

EXAMPLES = r"""
- name: Bundle jq and socat with their closure for Debian 12 (amd64)
  kubegpu.cluster.apt_bundle:
    dest: /srv/kubegpu-bundle/apt/debian-bookworm
    gpg_home: /var/lib/kubegpu/bundle-gnupg
    sources:
      - deb http://deb.debian.org/debian bookworm main contrib non-free non-free-firmware
      - deb http://deb.debian.org/debian bookworm-updates main contrib non-free non-free-firmware
      - deb http://deb.debian.org/debian-security bookworm-security main contrib non-free non-free-firmware
    packages: [jq, socat, conntrack, ebtables, ethtool]
  register: bundle

- name: On an air-gapped host, use the bundle (served at http://mirror.example/apt/debian-bookworm) as the source
  ansible.builtin.copy:
    dest: /etc/apt/sources.list.d/kubegpu-bundle.list
    content: "{{ bundle.source_line | replace('{{ url }}', 'http://mirror.example/apt/debian-bookworm') }}\n"
    mode: "0644"
"""

RETURN = r"""
packages:
  description: The closure, one entry per file in the pool.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The package's name.
      type: str
      sample: libjq1
    version:
      description: Its version.
      type: str
      sample: 1.6-2.1+deb12u2
    architecture:
      description: Its architecture (C(all) for architecture-independent packages).
      type: str
      sample: amd64
    filename:
      description: Its path relative to O(dest), as the Packages index names it.
      type: str
      sample: pool/main/libjq1_1.6-2.1+deb12u2_amd64.deb
    size:
      description: Its size in bytes.
      type: int
      sample: 135656
    sha256:
      description: Its SHA256, as the source's signed index gives it (and verified on download).
      type: str
added:
  description: Pool files downloaded (would be, in check mode), relative to O(dest).
  returned: always
  type: list
  elements: str
removed:
  description: Pool files removed because they are no longer in the closure (would be, in check mode).
  returned: always
  type: list
  elements: str
total_size:
  description: The bytes of all the files in the closure.
  returned: always
  type: int
index_updated:
  description: Whether the Packages files, Release or its signatures were (would be) rewritten.
  returned: always
  type: bool
key_fingerprint:
  description: The fingerprint of the signing key; null in check mode when O(gpg_home) has no key yet.
  returned: always
  type: str
key_created:
  description: Whether a new signing key was (would be) made in O(gpg_home).
  returned: always
  type: bool
public_key:
  description: The path of the ASCII-armoured public key.
  returned: always
  type: str
source_line:
  description:
    - The line a client puts in its sources list, with the literal placeholder C({{ url }}) where the URL the
      repository is served at goes (the URL of O(dest), e.g. C(http://mirror.example/apt/debian-bookworm) or
      C(file:///srv/kubegpu-bundle/apt/debian-bookworm)), and the public key installed as
      C(/etc/apt/keyrings/kubegpu-bundle.asc).
  returned: always
  type: str
  sample: "deb [arch=amd64 signed-by=/etc/apt/keyrings/kubegpu-bundle.asc] {{ url }} kubegpu main"
suite:
  description: The repository's suite, as in RV(source_line).
  returned: always
  type: str
  sample: kubegpu
component:
  description: The repository's component, as in RV(source_line).
  returned: always
  type: str
  sample: main
architectures:
  description: The repository's architectures, as in RV(source_line).
  returned: always
  type: list
  elements: str
  sample: [amd64]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubegpu.cluster.plugins.module_utils._apt_bundle import BundleError, run

REQUIRED_TOOLS = ('apt-get', 'apt-cache', 'apt-ftparchive', 'gpg', 'gpgv')


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type='path', required=True),
            sources=dict(type='list', elements='str', required=True),
            packages=dict(type='list', elements='str', required=True),
            gpg_home=dict(type='path', required=True),
            key_algorithm=dict(type='str', choices=['ed25519', 'rsa4096'], default='ed25519'),
            trusted_keyrings=dict(type='list', elements='path', no_log=False),
            architectures=dict(type='list', elements='str', default=['amd64']),
            suite=dict(type='str', default='kubegpu'),
            component=dict(type='str', default='main'),
            work_dir=dict(type='path'),
            public_key=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    tools = dict((name, module.get_bin_path(name, required=True)) for name in REQUIRED_TOOLS)
    tools['gpgconf'] = module.get_bin_path('gpgconf')

    def run_command(argv, env=None, cwd=None):
        return module.run_command(argv, environ_update=env, cwd=cwd)

    try:
        result = run(module.params, module.check_mode, run_command, tools=tools)
    except BundleError as exc:
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop('diff', None)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
