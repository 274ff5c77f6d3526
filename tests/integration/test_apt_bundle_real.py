# SPDX-License-Identifier: Apache-2.0
"""The apt_bundle module for real, on this machine as the staging host, against
deb.debian.org (Debian 12 bookworm, amd64; issue #19).

1. ``ansible localhost -m kubegpu.cluster.apt_bundle`` bundles jq and socat: the pool holds
   jq, libjq1, libonig5, socat and libc6 (the closure down to libc6, from an empty dpkg
   status), the Packages index lists them, and InRelease and Release.gpg verify with
   gpgv against the exported public key (made a keyring with gpg --dearmor).
2. A second run, and a check-mode run, report changed=false; the signed index is untouched.
3. An apt client with ONLY that repository as its source (file:// URL, signed-by the
   exported key, its own Dir::State and an empty dpkg status) runs apt-get update and
   resolves jq and socat entirely from it: exactly the bundle's pool.

Skipped where deb.debian.org cannot be reached, or apt-ftparchive (apt-utils), gpg, gpgv
or Debian's archive keyring are missing. About 15 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.request import Request, urlopen

import pytest

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent
MIRROR = "http://deb.debian.org"
SOURCES = [
    "deb %s/debian bookworm main" % MIRROR,
    "deb %s/debian bookworm-updates main" % MIRROR,
    "deb %s/debian-security bookworm-security main" % MIRROR,
]
ARCHIVE_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
EXPECTED = ("jq", "libjq1", "libonig5", "socat", "libc6")


@pytest.fixture(scope="module")
def staging_host():
    """Skip unless this machine can be the staging host."""
    missing = [tool for tool in ("apt-get", "apt-cache", "apt-ftparchive", "gpg", "gpgv", "gpgconf") if not shutil.which(tool)]
    if missing:
        pytest.skip("the staging host needs %s (Debian packages apt, apt-utils, gnupg)" % ", ".join(missing))
    if not os.path.isfile(ARCHIVE_KEYRING):
        pytest.skip("%s missing (Debian package debian-archive-keyring)" % ARCHIVE_KEYRING)
    try:
        urlopen(Request("%s/debian/dists/bookworm/InRelease" % MIRROR, method="HEAD"), timeout=10).close()
    except OSError as exc:
        pytest.skip("%s unreachable: %s" % (MIRROR, exc))


def bundle(env, args, cwd, check=False):
    """Run the module on localhost (from cwd: not the checkout's ansible.cfg, whose callback
    would print around the JSON); its result."""
    cmd = [str(VENV_BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
           "-e", "ansible_python_interpreter=%s" % sys.executable,
           "-m", "kubegpu.cluster.apt_bundle", "-a", json.dumps(args)] + (["--check"] if check else [])
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False)
    try:
        out = json.loads(proc.stdout)
        return out["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        pytest.fail("ansible gave no result (rc=%d):\n%s\n%s" % (proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))


def run(*cmd, **kwargs):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=120, check=False, **kwargs)


def apt_client(tmp_path, repo, key):
    """The environment of apt-get for a client whose only source is the bundle (APT_CONFIG)."""
    root = tmp_path / "client"
    for sub in ("etc/apt.conf.d", "etc/sources.list.d", "etc/preferences.d", "etc/trusted.gpg.d", "state/lists/partial",
                "cache/archives/partial", "dpkg", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "dpkg" / "status").write_text("")
    (root / "etc" / "sources.list").write_text(
        "deb [arch=amd64 signed-by=%s] %s kubegpu main\n" % (key, repo.as_uri()))
    conf = {
        "Dir::Etc::Main": os.devnull, "Dir::Etc::Parts": root / "etc/apt.conf.d",
        "Dir::Etc::SourceList": root / "etc/sources.list", "Dir::Etc::SourceParts": root / "etc/sources.list.d",
        "Dir::Etc::Preferences": root / "etc/preferences", "Dir::Etc::PreferencesParts": root / "etc/preferences.d",
        "Dir::Etc::Trusted": root / "etc/trusted.gpg", "Dir::Etc::TrustedParts": root / "etc/trusted.gpg.d",
        "Dir::State": root / "state", "Dir::State::Lists": root / "state/lists", "Dir::State::status": root / "dpkg/status",
        "Dir::Cache": root / "cache", "Dir::Cache::archives": root / "cache/archives", "Dir::Cache::pkgcache": "",
        "Dir::Cache::srcpkgcache": "", "Dir::Log": root / "log",
        "APT::Architecture": "amd64", "APT::Architectures": "amd64", "Acquire::Languages": "none",
        # pytest's tmp_path (0700) is no place for apt's _apt sandbox user: no warning about it.
        "APT::Sandbox::User": "root",
    }
    (root / "apt.conf").write_text("".join('%s "%s";\n' % (k, v) for k, v in conf.items()))
    env = dict(os.environ, APT_CONFIG=str(root / "apt.conf"), LC_ALL="C")
    return env


def test_bundle_jq_and_socat_for_bookworm(tmp_path, staging_host, ansible_environment):
    env = ansible_environment(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    env.pop("ANSIBLE_CONFIG", None)
    repo = tmp_path / "apt" / "debian-bookworm"
    args = {"dest": str(repo), "gpg_home": str(tmp_path / "gnupg"), "sources": SOURCES, "packages": ["jq", "socat"],
            "architectures": ["amd64"]}

    # 1. The bundle.
    first = bundle(env, args, tmp_path)
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] and first["key_created"] and first["index_updated"]
    pool = repo / "pool" / "main"
    debs = sorted(p.name for p in pool.iterdir())
    names = {p["name"] for p in first["packages"]}
    for name in EXPECTED:
        assert name in names, name
        assert any(deb.startswith(name + "_") for deb in debs), name
    assert debs == sorted(p["filename"].split("/")[-1] for p in first["packages"])
    assert first["added"] == ["pool/main/" + deb for deb in debs] and first["removed"] == []
    assert all(p["architecture"] in ("amd64", "all") for p in first["packages"])
    assert first["source_line"] == "deb [arch=amd64 signed-by=/etc/apt/keyrings/kubegpu-bundle.asc] {{ url }} kubegpu main"
    packages = (repo / "dists/kubegpu/main/binary-amd64/Packages").read_text()
    listed = [line.split(": ", 1)[1] for line in packages.splitlines() if line.startswith("Package: ")]
    assert sorted(listed) == sorted(p["name"] for p in first["packages"])
    assert (repo / "dists/kubegpu/main/binary-amd64/Packages.gz").exists()
    release = (repo / "dists/kubegpu/Release").read_text()
    for field in ("Origin: kubegpu", "Label: kubegpu bundle", "Suite: kubegpu", "Codename: kubegpu",
                  "Architectures: amd64", "Components: main"):
        assert field in release.splitlines()
    assert " main/binary-amd64/Packages.gz" in release

    # The signatures verify with the exported public key alone.
    asc = repo / "kubegpu-bundle.asc"
    keyring = tmp_path / "bundle-keyring.gpg"
    (tmp_path / "verify-home").mkdir(mode=0o700)
    dearmor = run("gpg", "--homedir", str(tmp_path / "verify-home"), "--batch", "--yes", "--output", str(keyring),
                  "--dearmor", str(asc))
    assert dearmor.returncode == 0, dearmor.stderr
    inrelease = run("gpgv", "--status-fd", "1", "--keyring", str(keyring), str(repo / "dists/kubegpu/InRelease"))
    assert inrelease.returncode == 0, inrelease.stderr
    assert "VALIDSIG %s" % first["key_fingerprint"] in inrelease.stdout
    detached = run("gpgv", "--keyring", str(keyring), str(repo / "dists/kubegpu/Release.gpg"), str(repo / "dists/kubegpu/Release"))
    assert detached.returncode == 0, detached.stderr

    # 2. Idempotent; check mode changes nothing either.
    signed = {name: (repo / "dists/kubegpu" / name).read_bytes() for name in ("Release", "InRelease", "Release.gpg")}
    second = bundle(env, args, tmp_path)
    assert not second.get("failed"), second.get("msg")
    assert not second["changed"] and second["added"] == [] and second["removed"] == [] and not second["index_updated"]
    assert second["key_fingerprint"] == first["key_fingerprint"]
    checked = bundle(env, args, tmp_path, check=True)
    assert not checked.get("failed"), checked.get("msg")
    assert not checked["changed"]
    assert {name: (repo / "dists/kubegpu" / name).read_bytes() for name in signed} == signed

    # 3. A client with only the bundle as its source.
    client = apt_client(tmp_path, repo, asc)
    update = run("apt-get", "-q", "update", env=client)
    assert update.returncode == 0, update.stdout + update.stderr
    assert not [line for line in (update.stdout + update.stderr).splitlines() if line.startswith(("W:", "E:", "Err:"))], \
        update.stdout + update.stderr
    resolve = run("apt-get", "-qq", "install", "--download-only", "--print-uris", "-y", "jq", "socat", env=client)
    assert resolve.returncode == 0, resolve.stdout + resolve.stderr
    uris = [line.split("'")[1] for line in resolve.stdout.splitlines() if line.startswith("'")]
    assert uris and all(uri.startswith("file:%s/pool/main/" % repo) for uri in uris), uris
    assert sorted(uri.rsplit("/", 1)[1].replace("%2b", "+").replace("%7e", "~") for uri in uris) == debs
