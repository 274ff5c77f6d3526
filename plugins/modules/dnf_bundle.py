#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: dnf_bundle
short_description: A signed dnf repository of packages with their whole dependency closure, for an air-gapped fleet
version_added: "0.4.0"
description:
  - The dnf counterpart of M(kubegpu.cluster.apt_bundle). Runs on a connected staging host (Debian or Ubuntu with
    Debian's packages C(dnf), C(python3-dnf), C(createrepo-c), C(rpm) and C(gnupg)). Resolves O(packages) with every
    dependency down to C(glibc) from O(repos), downloads the closure into C(Packages/) of O(dest) and writes a
    signed rpm-md repository there (C(repodata/)) for ONE distribution release, which the air-gapped hosts use as
    their only repository.
  - dnf runs in a configuration of its own under O(work_dir) - its own C(dnf.conf), repository files (C(reposdir)),
    cache, log and persist directories and an EMPTY installroot whose rpmdb is never loaded, so the closure is
    complete. The host's C(/etc/dnf), C(/etc/yum.repos.d) and rpmdb are never read nor written.
  - Per architecture (C(--forcearch)), dnf's Python API (run by O(dnf_python)) resolves the closure without weak
    dependencies (C(install_weak_deps=False); C(Recommends) are not part of the closure) and gives each package's
    SHA256 from the repository's primary metadata. Every file is downloaded with its size and SHA256 verified; a
    package of a repository with O(repos[].gpgcheck) must also carry a good signature by that repository's
    O(repos[].gpgkey) (C(rpmkeys --checksig) against a keyring of that key alone), or the module fails and the
    file stays out of the pool.
  - The pool holds exactly the closure - files no longer in it are removed. C(createrepo_c) rewrites C(repodata/)
    only when the pool changed or the metadata does not list exactly the pool (missing, stale).
  - The module metadata of the source repositories (C(modules.yaml) with module streams, profiles and defaults, e.g. the
    C(nvidia-driver) streams of NVIDIA's CUDA repository, whose profiles the driver stage installs) is carried
    into the bundle, every document once, with C(modifyrepo_c --mdtype=modules), so a client installs a module
    profile from the bundle as it would from the source. It is rewritten where repomd.xml's C(modules) entry
    differs (its open-checksum).
  - C(repodata/repomd.xml) is signed (C(repodata/repomd.xml.asc), an ASCII-armoured detached signature) with the
    bundle's own key in O(gpg_home), made with C(gpg --quick-gen-key) (no passphrase, uid
    C(kubegpu bundle <bundle@kubegpu.invalid>)) when it holds none - the same key as
    M(kubegpu.cluster.apt_bundle)'s when both use the same O(gpg_home). Its public key is written ASCII-armoured
    to O(public_key); clients install it as C(/etc/pki/rpm-gpg/kubegpu-bundle.asc) and use the repository with
    C(repo_gpgcheck=1) (RV(repo_file)).
  - Downloads use the C(http_proxy)/C(https_proxy) environment, as dnf does.
author:
  - kubegpu maintainers (@kubegpu)
attributes:
  check_mode:
    support: full
    description:
      - Resolves the closure and reports which pool files would be added and removed; writes nothing in O(dest) and
        makes no key.
      - dnf still refreshes its metadata, into O(work_dir) where that directory exists (it holds only dnf's private
        configuration and cache), otherwise into a temporary directory that is removed afterwards.
  diff_mode:
    support: full
    description: The pool's file names before and after.
  idempotent:
    support: full
    description:
      - Reports C(changed=false) when the pool holds exactly the closure and the metadata, its signature and the
        public key are as they should be. A new version published in O(repos) (a security update) changes the
        closure, and so the bundle.
options:
  dest:
    description:
      - The repository root for one distribution release, e.g. C(/srv/kubegpu-bundle/dnf/rocky-9).
      - RPMs go to C(<dest>/Packages/), metadata to C(<dest>/repodata/). Created when missing. Serve it (or copy it)
        to the air-gapped hosts as it is.
    type: path
    required: true
  work_dir:
    description:
      - dnf's private configuration, installroot, cache and the downloads in progress. Not part of the repository;
        kept between runs, so dnf refreshes its metadata instead of downloading it again. Keep it outside O(dest).
    type: path
    required: true
  repos:
    description:
      - The repositories the closure is resolved from, e.g. the release's BaseOS and AppStream and the vendors'
        (Kubernetes, NVIDIA CUDA).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The repository's id (letters, digits, C(.), C(_), C(:), C(-)).
        type: str
        required: true
      baseurl:
        description:
          - Its base URL (http, https, ftp or file). C($releasever) and C($basearch) are expanded by dnf, from
            O(releasever) and each of O(architectures).
        type: str
        required: true
      gpgkey:
        description:
          - The local path of the repository's ASCII-armoured signing key, already checked (fingerprint) by the
            caller.
        type: path
      gpgcheck:
        description:
          - Whether every package of this repository must carry a good signature by O(repos[].gpgkey).
          - Left out - true when O(repos[].gpgkey) is given.
        type: bool
      repo_gpgcheck:
        description:
          - Whether dnf verifies the repository's signed metadata (C(repodata/repomd.xml.asc)) with
            O(repos[].gpgkey) - for repositories that sign their metadata rather than (or as well as) their
            packages, such as NVIDIA's.
        type: bool
        default: false
      module_hotfixes:
        description: dnf's C(module_hotfixes) for this repository (its packages are not filtered by modularity).
        type: bool
        default: false
  releasever:
    description: The distribution release the closure is for (dnf's C($releasever)), e.g. C(9).
    type: str
    required: true
  architectures:
    description: The architectures of the closure, each resolved separately (C(noarch) packages come along).
    type: list
    elements: str
    choices: [x86_64, aarch64]
    default: [x86_64]
  packages:
    description:
      - The packages to bundle - names or specs as dnf accepts them, e.g. C(kubelet-1.35.0), C(cuda-drivers-580*).
        Their dependencies come along; weak dependencies do not.
    type: list
    elements: str
    required: true
  gpg_home:
    description:
      - The bundle's signing keyring directory (a GnuPG home). Created (mode 0700) with a new signing key when it
        holds none; the first usable signing secret key in it signs.
      - Keep it, outside O(dest), for as long as clients trust the key; a new key needs a new C(public_key) on
        every client. Give M(kubegpu.cluster.apt_bundle) the same one, so one bundle has one key.
    type: path
    required: true
  key_algorithm:
    description: The algorithm of a signing key made in O(gpg_home) (an existing key is used as it is).
    type: str
    choices: [ed25519, rsa4096]
    default: ed25519
  public_key:
    description:
      - Where the bundle's ASCII-armoured public key is written.
      - Left out - C(<dest>/kubegpu-bundle.asc).
    type: path
  client_baseurl:
    description:
      - The URL the repository is served at, for RV(repo_file).
      - Left out - the literal placeholder C({{ url }}).
    type: str
  dnf_python:
    description:
      - The python with dnf's bindings (Debian's C(python3-dnf)) that resolves the closure - a path, or a name
        looked up in C(PATH).
    type: str
    default: /usr/bin/python3
notes:
  - The staging host needs C(createrepo_c) (Debian package createrepo-c), gpg and gpgv (gnupg), C(rpmkeys) (rpm)
    when a repository has gpgcheck, and dnf's Python bindings (python3-dnf); the module fails naming what is
    missing.
  - A package no repository has fails the module with its name; a repository that cannot be read fails it with
    the repository's name and dnf's words.
  - Only repositories whose metadata gives SHA256 checksums (createrepo_c's default, used by the distributions and
    vendors) can be bundled.
  - Clients use RV(repo_file) with C(gpgcheck=0) and C(repo_gpgcheck=1) - the signed C(repomd.xml) carries the
    checksum of C(primary.xml), which carries each package's SHA256, and dnf refuses a package whose checksum
    differs; the vendors' signatures were checked on the staging host (O(repos[].gpgcheck)). So clients need the
    bundle's key alone, and a package is trusted exactly when the bundle's signed metadata names it.
seealso:
  - module: kubegpu.cluster.apt_bundle
  - name: createrepo_c(8)
    description: How the metadata is made.
    link: https://manpages.debian.org/bookworm/createrepo-c/createrepo_c.8.en.html
"""

EXAMPLES = r"""
- name: Bundle kubelet and kubeadm with their closure for Rocky Linux 9 (x86_64 and aarch64)
  kubegpu.cluster.dnf_bundle:
    dest: /srv/kubegpu-bundle/dnf/rocky-9
    work_dir: /var/lib/kubegpu/dnf-work/rocky-9
    gpg_home: /var/lib/kubegpu/bundle-gnupg
    releasever: "9"
    architectures: [x86_64, aarch64]
    repos:
      - name: baseos
        baseurl: https://dl.rockylinux.org/pub/rocky/$releasever/BaseOS/$basearch/os/
        gpgkey: /var/lib/kubegpu/keys/RPM-GPG-KEY-Rocky-9
      - name: appstream
        baseurl: https://dl.rockylinux.org/pub/rocky/$releasever/AppStream/$basearch/os/
        gpgkey: /var/lib/kubegpu/keys/RPM-GPG-KEY-Rocky-9
      - name: kubernetes
        baseurl: https://pkgs.k8s.io/core:/stable:/v1.35/rpm/
        gpgkey: /var/lib/kubegpu/keys/kubernetes-rpm.asc
    packages: [kubelet-1.35.0, kubeadm-1.35.0, kubectl-1.35.0, cri-tools]
  register: bundle

- name: On an air-gapped host, use the bundle (served at http://mirror.example/dnf/rocky-9) as the repository
  ansible.builtin.copy:
    dest: /etc/yum.repos.d/kubegpu-bundle.repo
    content: "{{ bundle.repo_file | replace('{{ url }}', 'http://mirror.example/dnf/rocky-9') }}"
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
      sample: kubelet
    version:
      description: Its version, C([epoch:]version-release).
      type: str
      sample: 1.35.0-150500.1.1
    architecture:
      description: Its architecture (C(noarch) for architecture-independent packages).
      type: str
      sample: x86_64
    filename:
      description: Its path relative to O(dest), C(Packages/name-version-release.arch.rpm).
      type: str
      sample: Packages/kubelet-1.35.0-150500.1.1.x86_64.rpm
    size:
      description: Its size in bytes.
      type: int
      sample: 11563392
    sha256:
      description: Its SHA256, as the repository's metadata gives it (and verified on download).
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
  description: Whether C(repodata/) or its signature C(repodata/repomd.xml.asc) was (would be) rewritten.
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
module_metadata:
  description: Whether the bundle carries module metadata (some source repository had C(modules.yaml)).
  returned: always
  type: bool
repo_file:
  description:
    - The text of the C(.repo) file a client puts in C(/etc/yum.repos.d/), with O(client_baseurl) or the literal
      placeholder C({{ url }}) where the URL the repository is served at goes (the URL of O(dest), e.g.
      C(http://mirror.example/dnf/rocky-9) or C(file:///srv/kubegpu-bundle/dnf/rocky-9)), and the public key
      installed as C(/etc/pki/rpm-gpg/kubegpu-bundle.asc).
    - C(gpgcheck=0), C(repo_gpgcheck=1) - see the notes; C(module_hotfixes=1), so enabled module streams of other
      repositories do not hide the bundle's packages.
  returned: always
  type: str
  sample: "[kubegpu-bundle]\nname=kubegpu offline bundle\nbaseurl={{ url }}\nenabled=1\ngpgcheck=0\nrepo_gpgcheck=1\n
    gpgkey=file:///etc/pki/rpm-gpg/kubegpu-bundle.asc\nmodule_hotfixes=1\n"
releasever:
  description: The release the closure is for.
  returned: always
  type: str
  sample: "9"
architectures:
  description: The architectures of the closure.
  returned: always
  type: list
  elements: str
  sample: [x86_64]
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubegpu.cluster.plugins.module_utils._apt_bundle import BundleError
from ansible_collections.kubegpu.cluster.plugins.module_utils._dnf_bundle import run

REQUIRED_TOOLS = ('createrepo_c', 'modifyrepo_c', 'gpg', 'gpgv')


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type='path', required=True),
            work_dir=dict(type='path', required=True),
            repos=dict(type='list', elements='dict', required=True, options=dict(
                name=dict(type='str', required=True),
                baseurl=dict(type='str', required=True),
                gpgkey=dict(type='path', no_log=False),
                gpgcheck=dict(type='bool'),
                repo_gpgcheck=dict(type='bool', default=False),
                module_hotfixes=dict(type='bool', default=False),
            )),
            releasever=dict(type='str', required=True),
            architectures=dict(type='list', elements='str', choices=['x86_64', 'aarch64'], default=['x86_64']),
            packages=dict(type='list', elements='str', required=True),
            gpg_home=dict(type='path', required=True),
            key_algorithm=dict(type='str', choices=['ed25519', 'rsa4096'], default='ed25519'),
            public_key=dict(type='path'),
            client_baseurl=dict(type='str'),
            dnf_python=dict(type='str', default='/usr/bin/python3'),
        ),
        supports_check_mode=True,
    )
    tools = dict((name, module.get_bin_path(name, required=True)) for name in REQUIRED_TOOLS)
    tools['gpgconf'] = module.get_bin_path('gpgconf')
    if any(repo.get('gpgcheck') or (repo.get('gpgcheck') is None and repo.get('gpgkey')) for repo in module.params['repos']):
        tools['rpmkeys'] = module.get_bin_path('rpmkeys', required=True)
    python = module.params['dnf_python']
    if os.path.sep not in python:
        python = module.get_bin_path(python, required=True)
    elif not os.access(python, os.X_OK):
        module.fail_json(msg='dnf_python %s is not an executable: the staging host needs a python with dnf\'s bindings '
                             '(Debian packages python3 and python3-dnf)' % python)
    tools['python'] = python

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
