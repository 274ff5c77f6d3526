# SPDX-License-Identifier: Apache-2.0
"""The dnf_bundle module for real: a Debian 12 container is the staging host (Debian's dnf,
python3-dnf, createrepo-c, rpm and gnupg from deb.debian.org); ansible on this machine runs
the module in it over the community.docker.docker connection.

The "upstream" repositories are made in the container from tiny spec files (rpmbuild) and
createrepo_c, served as file:// URLs: ``plain`` (alpha Requires beta; gamma; delta
Recommends epsilon; archy for x86_64 and aarch64) and ``signed`` (signedpkg Requires gamma;
the package and the repository's repomd.xml signed by an upstream test key: the repository
has gpgcheck and repo_gpgcheck with that key).

1. The bundle of alpha, delta and signedpkg is exactly alpha, beta, delta, gamma,
   signedpkg (the weak dependency epsilon is not in it); repomd.xml.asc verifies with the
   exported public key (gpg --verify).
2. A second run, and a check-mode run, report changed=false and rewrite nothing; dnf
   touched none of the host's rpm or dnf state (rpmdb, /var/lib/dnf, cache, logs).
3. A check-mode run without delta reports its removal and writes nothing; the real run
   removes it from the pool and from the metadata.
4. A CLIENT dnf (empty installroot, only the bundle's repo file, repo_gpgcheck=1) installs
   alpha and signedpkg with their dependencies from the bundle alone; a tampered RPM in the
   pool is refused by it, and so is a tampered repomd.xml.
5. Failures: a package no repository has, a repository that cannot be read, one whose
   metadata lacks the signature its repo_gpgcheck asks for, a package that lacks the
   signature its repository's gpgcheck asks for.
6. Both architectures: archy for x86_64 and aarch64 side by side in one pool.
7. Module metadata: a repository ``modular`` with a module stream (kgmod:1, profile default:
   mpkg, as NVIDIA's CUDA repository has nvidia-driver streams) resolved with
   module_hotfixes: the bundle carries its modules.yaml (modifyrepo_c), a client installs
   the profile with ``dnf module install kgmod:1/default`` from the bundle alone; a second
   run changes nothing; without the modular repository the metadata goes again.

The staging image (the test image plus those packages) is built once per machine and
reused. Skipped without docker or the test image, or where deb.debian.org cannot be reached
from a container. About 1 minute (2 more the first time, for the image).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent
BASE_IMAGE = "kubegpu-test:bookworm-r4"
STAGING_IMAGE = "kubegpu-test:bookworm-r4-dnf-staging"
CONTAINER = "kubegpu-dnf-bundle-staging"
STAGING_PACKAGES = ["dnf", "python3-dnf", "createrepo-c", "rpm", "gnupg", "python3"]

# Builds the upstream repositories in the container.
UPSTREAM = r"""
set -eu
top=/srv/up
rm -rf "$top" /srv/upkey; mkdir -p "$top/build" "$top/plain" "$top/signed"
spec() {  # name, Requires, Recommends, BuildArch
  {
    echo "Name: $1"; echo "Version: 1.0"; echo "Release: 1"; echo "Summary: test package $1"; echo "License: MIT"
    [ -z "$4" ] || echo "BuildArch: $4"
    [ -z "$2" ] || echo "Requires: $2"
    [ -z "$3" ] || echo "Recommends: $3"
    printf '%%description\ntest package %s\n%%install\nmkdir -p %%{buildroot}/usr/share/kg\n' "$1"
    printf 'echo %s > %%{buildroot}/usr/share/kg/%s\n%%files\n/usr/share/kg/%s\n' "$1" "$1" "$1"
  } > "$top/build/$1.spec"
}
build() {  # spec name, rpmbuild options
  name=$1; shift
  rpmbuild -bb --quiet --define "_topdir $top/build/t" --define '_build_id_links none' "$@" "$top/build/$name.spec"
}
spec alpha beta "" noarch; build alpha
spec beta "" "" noarch; build beta
spec gamma "" "" noarch; build gamma
spec delta "" epsilon noarch; build delta
spec epsilon "" "" noarch; build epsilon
spec archy "" "" ""; build archy --target x86_64; build archy --target aarch64
spec signedpkg gamma "" noarch; build signedpkg
spec mpkg beta "" noarch; build mpkg
find "$top/build/t/RPMS" -name '*.rpm' ! -name 'signedpkg-*' ! -name 'mpkg-*' -exec cp {} "$top/plain/" \;
cp "$top/build/t/RPMS/noarch/signedpkg-1.0-1.noarch.rpm" "$top/signed/"
mkdir -p "$top/modular"
cp "$top/build/t/RPMS/noarch/mpkg-1.0-1.noarch.rpm" "$top/modular/"
createrepo_c --quiet "$top/modular"
cat > "$top/build/modules.yaml" <<'YAML'
---
document: modulemd
version: 2
data:
  name: kgmod
  stream: "1"
  version: 1
  context: "00000000"
  arch: x86_64
  summary: kubegpu test module
  description: A module stream whose default profile is mpkg.
  license:
    module: [MIT]
  profiles:
    default:
      rpms: [mpkg]
  artifacts:
    rpms: [mpkg-0:1.0-1.noarch]
...
YAML
modifyrepo_c --mdtype=modules "$top/build/modules.yaml" "$top/modular/repodata"
export GNUPGHOME=/srv/upkey
mkdir -m 0700 "$GNUPGHOME"
gpg --batch --passphrase '' --quick-gen-key 'upstream <upstream@example.invalid>' rsa2048 sign never 2>/dev/null
gpg --batch --armor --export > /srv/upstream.asc
rpmsign --define '_gpg_name upstream' --define '__gpg /usr/bin/gpg' --addsign "$top/signed/"*.rpm >/dev/null
createrepo_c --quiet "$top/plain"
createrepo_c --quiet "$top/signed"
gpg --batch --armor --detach-sign --output "$top/signed/repodata/repomd.xml.asc" "$top/signed/repodata/repomd.xml"
gpgconf --kill gpg-agent
"""

# A client: only the bundle's repo file (the module's repo_file, its baseurl filled in),
# an empty installroot, its own cache; arguments: the bundle's directory, then dnf's
# command (install NAME..., module install STREAM/PROFILE).
CLIENT = r"""
set -u
B=$1; shift
C=/tmp/client
rm -rf "$C"; mkdir -p "$C/root" "$C/repos.d" "$C/cache" "$C/log" "$C/persist" "$C/keys"
cp "$B/kubegpu-bundle.asc" "$C/keys/kubegpu-bundle.asc"
sed -e "s|{{ url }}|file://$B|" -e "s|file:///etc/pki/rpm-gpg/|file://$C/keys/|" /tmp/bundle.repo \
  > "$C/repos.d/kubegpu-bundle.repo"
printf '[main]\ncachedir=%s\nlogdir=%s\npersistdir=%s\nreposdir=%s\nplugins=False\n' \
  "$C/cache" "$C/log" "$C/persist" "$C/repos.d" > "$C/dnf.conf"
dnf -y --config "$C/dnf.conf" --installroot "$C/root" --releasever 9 --setopt=reposdir="$C/repos.d" \
  --setopt=cachedir="$C/cache" "$@"
"""

PLAIN = {"name": "plain", "baseurl": "file:///srv/up/plain"}
# As the bundle's plan gives NVIDIA's CUDA repository: its modular packages are not filtered.
MODULAR = {"name": "modular", "baseurl": "file:///srv/up/modular", "module_hotfixes": True}
SIGNED = {"name": "signed", "baseurl": "file:///srv/up/signed", "gpgkey": "/srv/upstream.asc", "repo_gpgcheck": True}


def docker(*args, check=True, timeout=300, **kwargs):
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and proc.returncode != 0:
        pytest.fail("docker %s failed (rc=%d):\n%s\n%s"
                    % (" ".join(args[:3]), proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc


def sh(script, *args, check=True, timeout=300):
    """Run a bash script in the container (stdin), with args."""
    return docker("exec", "-i", CONTAINER, "bash", "-s", "--", *args, input=script, check=check, timeout=timeout)


def staging_image():
    """The test image with the staging host's packages, built once per machine."""
    if docker("image", "inspect", STAGING_IMAGE, check=False, timeout=30).returncode == 0:
        return STAGING_IMAGE
    builder = CONTAINER + "-build"
    docker("rm", "-f", builder, check=False)
    docker("run", "-d", "--name", builder, BASE_IMAGE, "sleep", "infinity")
    try:
        install = docker("exec", "-e", "DEBIAN_FRONTEND=noninteractive", builder, "sh", "-c",
                         "apt-get -qq update && apt-get -qq install -y --no-install-recommends %s >/dev/null"
                         % " ".join(STAGING_PACKAGES), check=False, timeout=600)
        if install.returncode != 0:
            pytest.skip("cannot install %s from deb.debian.org in a container: %s"
                        % (", ".join(STAGING_PACKAGES), (install.stderr or install.stdout)[-500:]))
        docker("exec", builder, "apt-get", "clean")
        docker("commit", builder, STAGING_IMAGE)
    finally:
        docker("rm", "-f", builder, check=False)
    return STAGING_IMAGE


@pytest.fixture(scope="module")
def staging():
    """The staging container, with the upstream repositories built in it."""
    if shutil.which("docker") is None:
        pytest.skip("docker CLI not found")
    if docker("info", check=False, timeout=30).returncode != 0:
        pytest.skip("docker daemon not reachable (docker info failed)")
    if docker("image", "inspect", BASE_IMAGE, check=False, timeout=30).returncode != 0:
        pytest.skip("test image %s missing: build it with scripts/images.sh" % BASE_IMAGE)
    image = staging_image()
    docker("rm", "-f", CONTAINER, check=False)
    docker("run", "-d", "--name", CONTAINER, image, "sleep", "infinity")
    try:
        sh(UPSTREAM)
        yield CONTAINER
    finally:
        docker("rm", "-f", CONTAINER, check=False)


def bundle(env, cwd, args, check=False):
    """Run the module in the container (from cwd: not the checkout's ansible.cfg, whose
    callback would print around the JSON); its result."""
    cmd = [str(VENV_BIN / "ansible"), "all", "-i", CONTAINER + ",", "-c", "community.docker.docker",
           "-e", "ansible_python_interpreter=/usr/bin/python3",
           "-m", "kubegpu.cluster.dnf_bundle", "-a", json.dumps(args)] + (["--check"] if check else [])
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False)
    try:
        return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][CONTAINER]
    except (ValueError, KeyError, IndexError):
        pytest.fail("ansible gave no result (rc=%d):\n%s\n%s" % (proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))


def snapshot(path):
    """{relative path: sha256} of every file under path in the container."""
    out = sh('cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum', path).stdout
    return dict(reversed(line.split(None, 1)) for line in out.splitlines())


def args_for(dest, packages, repos=(PLAIN, SIGNED), **extra):
    args = {"dest": dest, "work_dir": dest.replace("/srv/bundle/", "/var/tmp/dnf-work/"), "gpg_home": "/var/tmp/bundle-gnupg",
            "releasever": "9", "repos": list(repos), "packages": packages}
    args.update(extra)
    return args


def test_dnf_bundle_for_real(tmp_path, staging, ansible_environment):
    env = ansible_environment(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    env.pop("ANSIBLE_CONFIG", None)
    dest = "/srv/bundle/el9"
    args = args_for(dest, ["alpha", "delta", "signedpkg"])
    # The host's own rpm and dnf state: none (Debian's rpm keeps its rpmdb in ~/.rpmdb).
    host_state = "/root/.rpmdb /var/lib/rpm /var/lib/dnf /var/log/hawkey.log /var/log/dnf.log /var/cache/dnf/*"
    sh("rm -rf %s" % host_state)

    # 1. The bundle: the closure without the weak dependency.
    first = bundle(env, tmp_path, args)
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] and first["key_created"] and first["index_updated"]
    names = sorted(p["name"] for p in first["packages"])
    assert names == ["alpha", "beta", "delta", "gamma", "signedpkg"]
    files = ["Packages/%s-1.0-1.noarch.rpm" % name for name in names]
    assert first["added"] == files and first["removed"] == []
    assert sorted(p["filename"] for p in first["packages"]) == files
    assert all(p["version"] == "1.0-1" and p["architecture"] == "noarch" for p in first["packages"])
    assert first["total_size"] == sum(p["size"] for p in first["packages"])
    pool = sh('ls "$1/Packages"', dest).stdout.split()
    assert pool == [f.split("/")[1] for f in files]
    sums = snapshot(dest)
    assert all(sums["./" + p["filename"]] == p["sha256"] for p in first["packages"])
    assert first["repo_file"] == ("[kubegpu-bundle]\nname=kubegpu offline bundle\nbaseurl={{ url }}\nenabled=1\n"
                                  "gpgcheck=0\nrepo_gpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/kubegpu-bundle.asc\n"
                                  "module_hotfixes=1\n")
    primary = sh('zcat "$1"/repodata/*-primary.xml.gz', dest).stdout
    assert primary.count("<package ") == 5 and "<name>epsilon</name>" not in primary
    # The signature verifies with the exported public key alone.
    verify = sh('h=$(mktemp -d); gpg --homedir "$h" --batch --quiet --import "$1/kubegpu-bundle.asc" 2>/dev/null && '
                'gpg --homedir "$h" --batch --status-fd 1 --verify "$1/repodata/repomd.xml.asc" "$1/repodata/repomd.xml"',
                dest, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "VALIDSIG %s" % first["key_fingerprint"] in verify.stdout

    # 2. Idempotent; check mode changes nothing either.
    second = bundle(env, tmp_path, args)
    assert not second.get("failed"), second.get("msg")
    assert not second["changed"] and second["added"] == [] and second["removed"] == [] and not second["index_updated"]
    assert second["key_fingerprint"] == first["key_fingerprint"] and not second["key_created"]
    checked = bundle(env, tmp_path, args, check=True)
    assert not checked.get("failed"), checked.get("msg")
    assert not checked["changed"]
    assert snapshot(dest) == sums
    # dnf ran in its own configuration: the host's rpmdb, dnf state, cache and logs untouched.
    assert sh("ls -d %s 2>/dev/null; true" % host_state).stdout == ""

    # 3. Without delta: check mode reports, writes nothing; the run removes it.
    smaller = args_for(dest, ["alpha", "signedpkg"])
    planned = bundle(env, tmp_path, smaller, check=True)
    assert planned["changed"] and planned["removed"] == ["Packages/delta-1.0-1.noarch.rpm"] and planned["added"] == []
    assert snapshot(dest) == sums
    third = bundle(env, tmp_path, smaller)
    assert third["changed"] and third["index_updated"] and third["removed"] == ["Packages/delta-1.0-1.noarch.rpm"]
    assert "delta-1.0-1.noarch.rpm" not in sh('ls "$1/Packages"', dest).stdout
    assert "delta" not in sh('zcat "$1"/repodata/*-primary.xml.gz', dest).stdout
    assert not bundle(env, tmp_path, smaller)["changed"]

    # 4. A client with only the bundle: repo_gpgcheck=1, the bundle's key alone.
    docker("exec", "-i", CONTAINER, "sh", "-c", "cat > /tmp/bundle.repo", input=third["repo_file"])
    client = sh(CLIENT, dest, "install", "alpha", "signedpkg", check=False)
    assert client.returncode == 0, client.stdout[-3000:] + client.stderr[-3000:]
    assert "Importing GPG key" in client.stdout + client.stderr
    installed = sh("ls /tmp/client/root/usr/share/kg").stdout.split()
    assert installed == ["alpha", "beta", "gamma", "signedpkg"]
    # A tampered RPM is refused (its SHA256 is not what the signed metadata says) ...
    sh('cp -a "$1" /tmp/pristine && printf X | dd of="$1/Packages/beta-1.0-1.noarch.rpm" bs=1 seek=3000 conv=notrunc',
       dest)
    refused = sh(CLIENT, dest, "install", "alpha", check=False)
    assert refused.returncode != 0 and "incorrect checksum" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    # ... and so is tampered metadata.
    sh('rm -rf "$1" && cp -a /tmp/pristine "$1" && echo "<!-- -->" >> "$1/repodata/repomd.xml"', dest)
    refused = sh(CLIENT, dest, "install", "alpha", check=False)
    assert refused.returncode != 0 and "GPG signature verification error" in refused.stdout + refused.stderr
    # The module puts both right: the signature is made again, the RPM downloaded again.
    sh('printf X | dd of="$1/Packages/beta-1.0-1.noarch.rpm" bs=1 seek=3000 conv=notrunc', dest)
    repaired = bundle(env, tmp_path, smaller)
    assert repaired["changed"] and repaired["added"] == ["Packages/beta-1.0-1.noarch.rpm"] and repaired["index_updated"]
    assert sh(CLIENT, dest, "install", "alpha", check=False).returncode == 0

    # 5. Failures name the package or the repository, and leave no pool behind.
    failed = bundle(env, tmp_path, args_for("/srv/bundle/fail", ["alpha", "nosuch"]))
    assert failed.get("failed") and failed["msg"].startswith("no repository has nosuch (x86_64)"), failed.get("msg")
    broken = dict(PLAIN, name="broken", baseurl="file:///srv/up/absent/$basearch")
    failed = bundle(env, tmp_path, args_for("/srv/bundle/fail", ["alpha"], repos=[PLAIN, broken]))
    assert failed.get("failed") and failed["msg"].startswith("cannot read repository broken (x86_64)"), failed.get("msg")
    assert "/srv/up/absent/x86_64" in failed["msg"]
    unsigned_metadata = dict(PLAIN, gpgkey="/srv/upstream.asc", gpgcheck=False, repo_gpgcheck=True)
    failed = bundle(env, tmp_path, args_for("/srv/bundle/fail", ["beta"], repos=[unsigned_metadata]))
    assert failed.get("failed") and failed["msg"].startswith("cannot read repository plain (x86_64)"), failed.get("msg")
    assert "GPG signature is not available" in failed["msg"]
    unsigned = dict(PLAIN, gpgkey="/srv/upstream.asc")
    failed = bundle(env, tmp_path, args_for("/srv/bundle/fail", ["beta"], repos=[unsigned]))
    assert failed.get("failed") and "beta-1.0-1.noarch.rpm from repository plain is not signed by its gpgkey" in failed["msg"]
    assert sh('ls -A /srv/bundle/fail/Packages 2>/dev/null; true').stdout == ""

    # 6. Both architectures in one pool.
    both = bundle(env, tmp_path, args_for("/srv/bundle/multi", ["archy"], repos=[PLAIN],
                                          architectures=["x86_64", "aarch64"]))
    assert not both.get("failed"), both.get("msg")
    assert both["added"] == ["Packages/archy-1.0-1.aarch64.rpm", "Packages/archy-1.0-1.x86_64.rpm"]
    assert sorted(p["architecture"] for p in both["packages"]) == ["aarch64", "x86_64"]

    assert not both["module_metadata"]

    # 7. Module metadata carried over: a client installs the module profile from the bundle alone.
    mod_dest = "/srv/bundle/mod"
    modular = bundle(env, tmp_path, args_for(mod_dest, ["mpkg"], repos=[PLAIN, MODULAR]))
    assert not modular.get("failed"), modular.get("msg")
    assert modular["module_metadata"] and sorted(p["name"] for p in modular["packages"]) == ["beta", "mpkg"]
    carried = sh('zcat "$1"/repodata/*-modules.yaml.gz', mod_dest).stdout
    assert "name: kgmod" in carried and "mpkg-0:1.0-1.noarch" in carried
    assert 'type="modules"' in sh('cat "$1/repodata/repomd.xml"', mod_dest).stdout
    verify = sh('h=$(mktemp -d); gpg --homedir "$h" --batch --quiet --import "$1/kubegpu-bundle.asc" 2>/dev/null && '
                'gpg --homedir "$h" --batch --verify "$1/repodata/repomd.xml.asc" "$1/repodata/repomd.xml"',
                mod_dest, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    mod_sums = snapshot(mod_dest)
    again = bundle(env, tmp_path, args_for(mod_dest, ["mpkg"], repos=[PLAIN, MODULAR]))
    assert not again.get("failed") and not again["changed"], again
    assert snapshot(mod_dest) == mod_sums
    docker("exec", "-i", CONTAINER, "sh", "-c", "cat > /tmp/bundle.repo", input=modular["repo_file"])
    client = sh(CLIENT, mod_dest, "module", "install", "kgmod:1/default", check=False)
    assert client.returncode == 0, client.stdout[-3000:] + client.stderr[-3000:]
    assert sh("ls /tmp/client/root/usr/share/kg").stdout.split() == ["beta", "mpkg"]
    # The modular repository left out: the bundle's module metadata goes too.
    plain_only = bundle(env, tmp_path, args_for(mod_dest, ["beta"], repos=[PLAIN]))
    assert not plain_only.get("failed"), plain_only.get("msg")
    assert plain_only["changed"] and not plain_only["module_metadata"]
    assert 'type="modules"' not in sh('cat "$1/repodata/repomd.xml"', mod_dest).stdout


# The fleet's side (roles/kubegpu/tasks/offline.yml, RedHat block) run in the staging
# container made to look like a Rocky 9 host (its facts set, cacheable; it has dnf and
# python3-dnf): dnf's only repository becomes the bundle's, and kubegpu.cluster.packages
# installs from it, a module profile included.
FLEET_PLAY = """
- name: An offline Rocky 9 host (the staging container with its facts set)
  hosts: all
  gather_facts: false
  tasks:
    - name: The facts of a Rocky 9 host
      ansible.builtin.set_fact:
        os_family: RedHat
        distribution: Rocky
        distribution_major_version: "9"
        distribution_version: "9.4"
        pkg_mgr: dnf
        cacheable: true

    - name: Use only the offline bundle
      ansible.builtin.include_role:
        name: kubegpu.cluster.kubegpu
        tasks_from: offline

    # Not in check mode: the bundle's repository is not configured yet there (nothing written).
    - name: Install a package and a module profile from the bundle
      kubegpu.cluster.packages:
        manager: dnf
        names: [alpha, "@kgmod:1/default"]
      when: not ansible_check_mode
"""


def test_an_offline_dnf_host_uses_the_bundle_only(tmp_path, staging, ansible_environment, ansible_playbook):
    env = ansible_environment(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    env.pop("ANSIBLE_CONFIG", None)
    dest = "/srv/bundle/fleet"
    built = bundle(env, tmp_path, args_for(dest, ["alpha", "mpkg"], repos=[PLAIN, MODULAR]))
    assert not built.get("failed") and built["module_metadata"], built.get("msg")
    key = sh('cat "$1/kubegpu-bundle.asc"', dest).stdout
    # The host's own repository directory: a repository that must not be used (it does not exist).
    sh("mkdir -p /etc/yum.repos.d && printf '[distro]\\nname=distro\\nbaseurl=file:///srv/nothere\\n' "
       "> /etc/yum.repos.d/distro.repo; cp /etc/dnf/dnf.conf /tmp/dnf.conf.before")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {"rocky": {
        "ansible_host": CONTAINER, "ansible_connection": "community.docker.docker",
        "ansible_python_interpreter": "/usr/bin/python3",
        "kubegpu_offline": True, "kubegpu_bundle_dnf": {"rocky-9": "file://" + dest},
        "kubegpu_bundle_apt_key": key}}}}))
    playbook = tmp_path / "fleet.yml"
    playbook.write_text(FLEET_PLAY)

    checked = ansible_playbook(playbook, inventory, "--check", "--diff")
    assert checked.returncode == 0, checked.stdout[-4000:] + checked.stderr[-2000:]
    assert sh("cmp /etc/dnf/dnf.conf /tmp/dnf.conf.before && test ! -e /etc/kubegpu", check=False).returncode == 0

    first = ansible_playbook(playbook, inventory)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert sh("ls /usr/share/kg").stdout.split() == ["alpha", "beta", "mpkg"]
    conf = sh("cat /etc/dnf/dnf.conf").stdout
    assert "reposdir=/etc/kubegpu/yum.repos.d" in conf
    # Every line of the host's dnf.conf kept, the file backed up beside it; its repositories left alone.
    before = sh("cat /tmp/dnf.conf.before").stdout
    assert all(line in conf for line in before.splitlines() if line.strip())
    assert sh("ls /etc/dnf/ | grep -c '^dnf.conf\\..*~$'").stdout.strip() == "1"
    assert "baseurl=file:///srv/nothere" in sh("cat /etc/yum.repos.d/distro.repo").stdout
    repo = sh("cat /etc/kubegpu/yum.repos.d/kubegpu-bundle.repo").stdout
    assert "baseurl=file://%s" % dest in repo and "repo_gpgcheck=1" in repo
    assert sh("cat /etc/pki/rpm-gpg/kubegpu-bundle.asc").stdout == key

    again = ansible_playbook(playbook, inventory)
    assert again.returncode == 0, again.stdout[-4000:]
    assert re.search(r"rocky\s+:\s+ok=\d+\s+changed=0\s", again.stdout), again.stdout[-3000:]
