# SPDX-License-Identifier: Apache-2.0
"""Package, source and repository selection for the nvidia_driver role."""
from __future__ import annotations

import pytest

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _driver_packages as dp
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._driver_packages import DriverPackagesError

UBUNTU = ("Debian", "Ubuntu", "24.04")
UBUNTU22 = ("Debian", "Ubuntu", "22.04")
BOOKWORM = ("Debian", "Debian", "12.12")
TRIXIE = ("Debian", "Debian", "13.1")
RHEL9 = ("RedHat", "RedHat", "9.4")
ROCKY8 = ("RedHat", "Rocky", "8.10")
KERNEL = "6.8.0-51-generic"


def sel(osinfo, branch, flavour, source, **kw):
    kw.setdefault("kernel_release", KERNEL)
    return dp.select(*osinfo, branch, flavour, source, **kw)


# --- default source and constraints ------------------------------------------------

@pytest.mark.parametrize("osinfo, expected", [
    (UBUNTU, "ubuntu"), (BOOKWORM, "debian"), (RHEL9, "rhel"), (ROCKY8, "rhel"),
    (("RedHat", "AlmaLinux", "9.4"), "rhel"),
])
def test_default_source(osinfo, expected):
    assert dp.default_source(osinfo[0], osinfo[1]) == expected


def test_default_source_refuses_unknown_os():
    with pytest.raises(DriverPackagesError, match="not supported"):
        dp.default_source("Suse", "SLES")


@pytest.mark.parametrize("osinfo, branch, flavour", [
    (BOOKWORM, 535, "proprietary"),
    (TRIXIE, 550, None),
])
def test_debian_constraints(osinfo, branch, flavour):
    c = dp.source_constraints("debian", *osinfo)
    assert c["branch"] == branch and c["flavour"] == flavour
    assert "non-free" in c["reason"]


@pytest.mark.parametrize("source, osinfo", [("cuda", BOOKWORM), ("ubuntu", UBUNTU), ("rhel", RHEL9)])
def test_other_sources_fix_nothing(source, osinfo):
    assert dp.source_constraints(source, *osinfo) == {"branch": None, "flavour": None, "reason": ""}


# --- Ubuntu ---------------------------------------------------------------------------

@pytest.mark.parametrize("osinfo", [UBUNTU, UBUNTU22])
@pytest.mark.parametrize("flavour, suffix", [("open", "-open"), ("proprietary", "")])
def test_ubuntu_precompiled(osinfo, flavour, suffix):
    s = sel(osinfo, "580", flavour, "ubuntu")
    assert s["names"] == [
        "nvidia-headless-no-dkms-580-server" + suffix,
        "nvidia-utils-580-server",
        "linux-modules-nvidia-580-server%s-generic" % suffix,
        "linux-modules-nvidia-580-server%s-%s" % (suffix, KERNEL),
    ]
    # userspace pinned to the branch, the kernel-versioned module packages not.
    assert s["packages"][:2] == ["nvidia-headless-no-dkms-580-server%s=580.*" % suffix, "nvidia-utils-580-server=580.*"]
    assert s["packages"][2:] == s["names"][2:]
    assert s["builds_modules"] is False and s["signed_modules"] is True
    assert s["headers_packages"] == []
    assert s["hold"] == s["names"]
    assert s["repo"] == {"kind": "apt_components", "components": ["restricted"]}
    other = "" if suffix else "-open"
    assert "nvidia-headless-no-dkms-580-server" + other in s["conflicts"]
    assert s["manager"] == "apt"


@pytest.mark.parametrize("flavour, suffix", [("open", "-open"), ("proprietary", "")])
def test_ubuntu_dkms(flavour, suffix):
    s = sel(UBUNTU, "570", flavour, "ubuntu", precompiled=False)
    assert s["names"] == ["nvidia-headless-570-server" + suffix, "nvidia-utils-570-server"]
    assert s["builds_modules"] is True and s["signed_modules"] is False
    assert s["headers_packages"] == ["linux-headers-" + KERNEL]


def test_ubuntu_not_headless_and_fabric_manager_and_exact_version():
    s = sel(UBUNTU, "580", "open", "ubuntu", headless=False, fabric_manager=True, version_pin="580.95.05")
    assert s["names"][0] == "nvidia-driver-580-server-open"
    assert s["fabric_manager_packages"] == ["nvidia-fabricmanager-580", "libnvidia-nscq-580"]
    assert "nvidia-fabricmanager-580=580.95.05-*" in s["packages"]
    assert "nvidia-fabricmanager-580" in s["hold"]


@pytest.mark.parametrize("kernel, flavour", [
    ("6.8.0-51-generic", "generic"), ("6.8.0-1015-aws", "aws"), ("6.8.0-1017-nvidia", "nvidia"),
    ("6.8.0-51-generic-64k", "generic-64k"), ("6.1.0-27-amd64", "amd64"), ("weird", ""),
])
def test_kernel_flavour(kernel, flavour):
    assert dp.kernel_flavour(kernel) == flavour


def test_ubuntu_kernel_flavour_override():
    s = sel(UBUNTU, 580, "open", "ubuntu", kernel_flavour_name="generic-hwe-24.04")
    assert "linux-modules-nvidia-580-server-open-generic-hwe-24.04" in s["names"]


def test_ubuntu_precompiled_needs_a_kernel_flavour():
    with pytest.raises(DriverPackagesError, match="nvidia_driver_ubuntu_kernel_flavour"):
        sel(UBUNTU, 580, "open", "ubuntu", kernel_release="custom")


@pytest.mark.parametrize("osinfo", [BOOKWORM, RHEL9])
def test_ubuntu_source_needs_ubuntu(osinfo):
    with pytest.raises(DriverPackagesError, match="nvidia_driver_source=ubuntu needs Ubuntu"):
        sel(osinfo, 580, "open", "ubuntu")


def test_ubuntu_toolkit_is_the_distro_one():
    s = sel(UBUNTU, 580, "open", "ubuntu", cuda_toolkit=True, cuda_toolkit_version="12.0")
    assert s["cuda_toolkit_packages"] == ["nvidia-cuda-toolkit"]
    assert "nvidia-cuda-toolkit" in s["packages"]  # unversioned: its version is not the branch
    with pytest.raises(DriverPackagesError, match="Ubuntu 24 packages CUDA toolkit 12.0"):
        sel(UBUNTU, 580, "open", "ubuntu", cuda_toolkit=True, cuda_toolkit_version="12.8")


# --- Debian ---------------------------------------------------------------------------

def test_debian_bookworm_proprietary():
    s = sel(BOOKWORM, 535, "proprietary", "debian", kernel_release="6.1.0-27-amd64")
    assert s["names"] == ["nvidia-kernel-dkms", "firmware-nvidia-gsp", "nvidia-smi", "libnvidia-ml1", "libcuda1",
                          "nvidia-persistenced"]
    assert s["packages"] == [n + "=535.*" for n in s["names"]]
    assert s["hold"] == s["names"]
    assert s["conflicts"] == ["nvidia-open-kernel-dkms"]
    assert s["builds_modules"] is True and s["signed_modules"] is False
    assert s["headers_packages"] == ["linux-headers-6.1.0-27-amd64"]
    assert s["repo"] == {"kind": "apt_components", "components": ["contrib", "non-free", "non-free-firmware"],
                         "codename": "bookworm"}
    assert "^nvidia-" in s["unattended_blacklist"] and "^libnvidia-" in s["unattended_blacklist"]


@pytest.mark.parametrize("flavour, kernel_pkg, other", [
    ("open", "nvidia-open-kernel-dkms", "nvidia-kernel-dkms"),
    ("proprietary", "nvidia-kernel-dkms", "nvidia-open-kernel-dkms"),
])
def test_debian_trixie(flavour, kernel_pkg, other):
    s = sel(TRIXIE, 550, flavour, "debian")
    assert s["names"][0] == kernel_pkg and s["conflicts"] == [other]
    assert s["packages"][0] == kernel_pkg + "=550.*"
    assert s["repo"]["codename"] == "trixie"


def test_debian_not_headless_adds_the_driver_metapackage():
    assert "nvidia-driver" in sel(TRIXIE, 550, "open", "debian", headless=False)["names"]


@pytest.mark.parametrize("osinfo, branch, have", [(BOOKWORM, 580, 535), (TRIXIE, 580, 550), (BOOKWORM, 550, 535)])
def test_debian_refuses_another_branch(osinfo, branch, have):
    with pytest.raises(DriverPackagesError) as err:
        sel(osinfo, branch, "proprietary", "debian")
    msg = str(err.value)
    assert "ships driver branch R%d only" % have in msg
    assert "nvidia_driver_branch: %d" % have in msg and "nvidia_driver_source: cuda" in msg


def test_debian_bookworm_refuses_open_modules():
    with pytest.raises(DriverPackagesError) as err:
        sel(BOOKWORM, 535, "open", "debian")
    assert "firmware-nvidia-gsp" in str(err.value) and "nvidia_driver_flavour: proprietary" in str(err.value)


def test_debian_refuses_fabric_manager_and_exact_versions():
    with pytest.raises(DriverPackagesError, match="fabric manager.*nvidia_driver_source: cuda"):
        sel(TRIXIE, 550, "open", "debian", fabric_manager=True)
    with pytest.raises(DriverPackagesError, match="cannot be pinned"):
        sel(TRIXIE, 550, "open", "debian", version_pin="550.163.01")


@pytest.mark.parametrize("osinfo", [UBUNTU, RHEL9])
def test_debian_source_needs_debian(osinfo):
    with pytest.raises(DriverPackagesError, match="nvidia_driver_source=debian needs Debian"):
        sel(osinfo, 535, "proprietary", "debian")


def test_debian_unsupported_release():
    with pytest.raises(DriverPackagesError, match="Debian 11"):
        sel(("Debian", "Debian", "11.9"), 470, "proprietary", "debian")


@pytest.mark.parametrize("osinfo, version, ok", [(BOOKWORM, "11.8", True), (TRIXIE, "12.4", True), (TRIXIE, "12.8", False)])
def test_debian_toolkit(osinfo, version, ok):
    branch = 535 if osinfo is BOOKWORM else 550
    if ok:
        s = sel(osinfo, branch, "proprietary", "debian", cuda_toolkit=True, cuda_toolkit_version=version)
        assert s["cuda_toolkit_packages"] == ["nvidia-cuda-toolkit"] and "nvidia-cuda-toolkit" in s["hold"]
    else:
        with pytest.raises(DriverPackagesError, match="nvidia_driver_cuda_toolkit_version"):
            sel(osinfo, branch, "proprietary", "debian", cuda_toolkit=True, cuda_toolkit_version=version)


# --- RHEL -----------------------------------------------------------------------------

@pytest.mark.parametrize("osinfo, major", [(RHEL9, "9"), (ROCKY8, "8")])
@pytest.mark.parametrize("flavour, stream, kmod", [("open", "580-open", "kmod-nvidia-open-dkms"),
                                                   ("proprietary", "580-dkms", "kmod-nvidia-latest-dkms")])
def test_rhel_module_streams(osinfo, major, flavour, stream, kmod):
    s = sel(osinfo, 580, flavour, "rhel", kernel_release="5.14.0-427.el9.x86_64")
    assert s["manager"] == "dnf"
    assert s["dnf_module"] == {"name": "nvidia-driver", "stream": stream, "profile": "default"}
    assert s["packages"] == ["@nvidia-driver:%s/default" % stream, "nvidia-persistenced"]
    assert kmod in s["hold"]
    assert s["headers_packages"] == ["kernel-devel-5.14.0-427.el9.x86_64", "kernel-headers"]
    assert s["repo"]["kind"] == "dnf_repo"
    assert s["repo"]["url"] == "https://developer.download.nvidia.com/compute/cuda/repos/rhel%s/x86_64/" % major
    assert s["repo"]["key_url"].endswith("/D42D0685.pub")
    assert s["repo"]["fingerprint"] == "610C7B14E068A878070DA4E99CD0A493D42D0685"
    assert s["unattended_blacklist"] == []


def test_rhel_fabric_manager_profile_and_toolkit_and_arm():
    s = sel(RHEL9, 570, "open", "rhel", fabric_manager=True, cuda_toolkit=True, cuda_toolkit_version="12.8",
            architecture="aarch64")
    assert s["packages"][0] == "@nvidia-driver:570-open/fm"
    assert "nvidia-fabric-manager" in s["packages"] and "cuda-toolkit-12-8" in s["packages"]
    assert "/rhel9/sbsa/" in s["repo"]["url"]


def test_cuda_source_on_rhel_uses_the_module_streams():
    assert sel(RHEL9, 580, "open", "cuda")["dnf_module"]["stream"] == "580-open"


def test_rhel_refusals():
    with pytest.raises(DriverPackagesError, match="nvidia_driver_source=rhel needs RHEL"):
        sel(UBUNTU, 580, "open", "rhel")
    with pytest.raises(DriverPackagesError, match="RHEL 10"):
        sel(("RedHat", "RedHat", "10.0"), 580, "open", "rhel")
    with pytest.raises(DriverPackagesError, match="cannot be pinned"):
        sel(RHEL9, 580, "open", "rhel", version_pin="580.95.05")


# --- CUDA repository (apt) ------------------------------------------------------------

@pytest.mark.parametrize("osinfo, repo_dir, key, fpr", [
    (UBUNTU, "ubuntu2404", "3bf863cc.pub", "EB693B3035CD5710E231E123A4B469963BF863CC"),
    (UBUNTU22, "ubuntu2204", "3bf863cc.pub", "EB693B3035CD5710E231E123A4B469963BF863CC"),
    (BOOKWORM, "debian12", "3bf863cc.pub", "EB693B3035CD5710E231E123A4B469963BF863CC"),
    (TRIXIE, "debian13", "8793F200.pub", "02182E60104FCDC26EAE1B8597A5D4CB8793F200"),
])
@pytest.mark.parametrize("flavour, main", [("open", "nvidia-open-580"), ("proprietary", "cuda-drivers-580")])
def test_cuda_apt(osinfo, repo_dir, key, fpr, flavour, main):
    s = sel(osinfo, 580, flavour, "cuda")
    assert s["names"] == [main] and s["packages"] == [main + "=580.*"]
    url = "https://developer.download.nvidia.com/compute/cuda/repos/%s/x86_64/" % repo_dir
    assert s["repo"] == {"kind": "apt_repo", "name": "kubegpu-cuda", "url": url, "suites": "/",
                         "key_url": url + key, "fingerprint": fpr}
    assert s["builds_modules"] is True and s["headers_packages"] == ["linux-headers-" + KERNEL]


def test_cuda_mirror_fabric_manager_toolkit():
    s = sel(BOOKWORM, 580, "open", "cuda", fabric_manager=True, cuda_toolkit=True, cuda_toolkit_version="13.0",
            cuda_repo_base_url="http://mirror.lan/cuda/", version_pin="580.95.05")
    assert s["repo"]["url"] == "http://mirror.lan/cuda/debian12/x86_64/"
    # From R580 NVIDIA's CUDA repository drops the branch from the fabric manager's names
    # (NVIDIA/gpu-driver-container, ubuntu24.04/install.sh: nvidia-fabricmanager=<version>*).
    assert s["packages"] == ["nvidia-open-580=580.95.05-*", "nvidia-fabricmanager=580.95.05-*",
                             "libnvidia-nscq=580.95.05-*", "cuda-toolkit-13-0"]


def test_toolkit_13_needs_580():
    with pytest.raises(DriverPackagesError, match="R580 or newer"):
        sel(UBUNTU, 570, "open", "cuda", cuda_toolkit=True, cuda_toolkit_version="13.0")
    with pytest.raises(DriverPackagesError, match="major.minor"):
        sel(UBUNTU, 580, "open", "cuda", cuda_toolkit=True, cuda_toolkit_version="latest")


def test_general_refusals():
    with pytest.raises(DriverPackagesError, match="nvidia_driver_source='yum'"):
        sel(UBUNTU, 580, "open", "yum")
    with pytest.raises(DriverPackagesError, match="must resolve the flavour"):
        sel(UBUNTU, 580, "auto", "cuda")
    with pytest.raises(DriverPackagesError, match="not a driver branch"):
        sel(UBUNTU, "latest", "open", "cuda")
    with pytest.raises(DriverPackagesError, match="not in branch R580"):
        sel(UBUNTU, 580, "open", "cuda", version_pin="570.1.2")
    with pytest.raises(DriverPackagesError, match="architecture ppc64le"):
        sel(UBUNTU, 580, "open", "cuda", architecture="ppc64le")
    with pytest.raises(DriverPackagesError, match="Ubuntu 20.04"):
        sel(("Debian", "Ubuntu", "20.04"), 580, "open", "ubuntu")


# --- pinned hosts without a detected GPU ----------------------------------------------

NO_GPU = {"count": 0, "gpus": [], "driver": {"loaded": False, "version": None, "flavour": None}}


def test_pinned_plan_defaults():
    p = dp.pinned_plan(NO_GPU)
    assert (p["branch"], p["flavour"], p["satisfied"], p["needed"]) == ("580", "open", False, True)


def test_pinned_plan_takes_the_source_branch_and_flavour():
    p = dp.pinned_plan(NO_GPU, "auto", "auto", {"branch": 535, "flavour": "proprietary"})
    assert (p["branch"], p["flavour"], p["branch_source"]) == ("535", "proprietary", "source")
    p = dp.pinned_plan(NO_GPU, "auto", "auto", {"branch": 550, "flavour": None})
    assert p["flavour"] == "proprietary"  # before R560 NVIDIA's default is proprietary


def test_pinned_plan_requested_and_exact():
    p = dp.pinned_plan(NO_GPU, "R570.124.06", "open")
    assert (p["branch"], p["version"], p["flavour"]) == ("570", "570.124.06", "open")
    with pytest.raises(DriverPackagesError):
        dp.pinned_plan(NO_GPU, "auto", "fast")


@pytest.mark.parametrize("driver, satisfied", [
    ({"loaded": True, "version": "580.159.04", "flavour": "open"}, True),
    ({"loaded": True, "version": "580.159.04", "flavour": None}, True),
    ({"loaded": True, "version": "580.159.04", "flavour": "proprietary"}, False),
    ({"loaded": True, "version": "570.1.1", "flavour": "open"}, False),
    ({"loaded": False, "version": None, "flavour": None}, False),
])
def test_pinned_plan_satisfied(driver, satisfied):
    assert dp.pinned_plan({"gpus": [], "driver": driver})["satisfied"] is satisfied


# --- package changes (idempotence, upgrade path) --------------------------------------

def _pkgs(**versions):
    return {name.replace("_", "-"): [{"version": v}] for name, v in versions.items()}


def test_nothing_to_do_when_everything_is_installed():
    s = sel(BOOKWORM, 535, "proprietary", "debian")
    installed = {n: [{"version": "535.261.03-1"}] for n in s["names"]}
    installed["nvidia-persistenced"] = [{"version": "535.171.04-1~deb12u1"}]
    installed["nvidia-kernel-common"] = [{"version": "20220217+3~deb12u1"}]
    c = dp.package_changes(installed, s)
    assert c == {"stale": [], "outdated": [], "missing": [], "unhold": [], "install": False}


def test_fresh_host_installs_everything():
    s = sel(TRIXIE, 550, "open", "debian")
    c = dp.package_changes({"bash": [{"version": "5.2"}]}, s)
    assert c["missing"] == s["packages"] and c["install"] and not c["stale"]


def test_upgrade_replaces_the_old_branch():
    s = sel(UBUNTU, 580, "open", "ubuntu")
    installed = {
        "nvidia-headless-no-dkms-570-server-open": [{"version": "570.172.08-0ubuntu1"}],
        "nvidia-utils-570-server": [{"version": "570.172.08-0ubuntu1"}],
        "libnvidia-compute-570-server": [{"version": "570.172.08-0ubuntu1"}],
        "linux-modules-nvidia-570-server-open-generic": [{"version": "6.8.0-51.52"}],
        "cuda-toolkit-12-8": [{"version": "12.8.1-1"}],
        "nvidia-utils-580-server": [{"version": "580.95.05-0ubuntu1"}],
    }
    c = dp.package_changes(installed, s)
    assert c["stale"] == ["libnvidia-compute-570-server", "linux-modules-nvidia-570-server-open-generic",
                          "nvidia-headless-no-dkms-570-server-open", "nvidia-utils-570-server"]
    assert "nvidia-utils-580-server=580.*" not in c["missing"]
    assert c["unhold"] == c["stale"]


def test_flavour_switch_removes_the_other_flavour():
    s = sel(TRIXIE, 550, "open", "debian")
    installed = {n: [{"version": "550.163.01-2"}] for n in s["names"][1:]}
    installed["nvidia-kernel-dkms"] = [{"version": "550.163.01-2"}]
    c = dp.package_changes(installed, s)
    assert c["stale"] == ["nvidia-kernel-dkms"] and c["missing"] == ["nvidia-open-kernel-dkms=550.*"]


def test_same_name_new_branch_is_outdated():
    s = sel(TRIXIE, 550, "proprietary", "debian")
    installed = {n: [{"version": "535.261.03-1"}] for n in s["names"]}
    c = dp.package_changes(installed, s)
    assert c["outdated"] == s["names"] and c["missing"] == s["packages"] and c["unhold"] == sorted(s["names"])


def test_exact_version_pin_is_compared():
    s = sel(UBUNTU, 580, "open", "cuda", version_pin="580.95.05")
    assert dp.package_changes({"nvidia-open-580": [{"version": "580.95.05-0ubuntu1"}]}, s)["missing"] == []
    assert dp.package_changes({"nvidia-open-580": [{"version": "580.82.07-1"}]}, s)["outdated"] == ["nvidia-open-580"]


def test_dnf_module_changes():
    s = sel(RHEL9, 580, "open", "rhel")
    installed = {"nvidia-driver": [{"version": "570.172.08"}], "kmod-nvidia-open-dkms": [{"version": "570.172.08"}],
                 "nvidia-persistenced": [{"version": "580.95.05"}]}
    c = dp.package_changes(installed, s)
    assert c["stale"] == ["kmod-nvidia-open-dkms", "nvidia-driver"]
    assert c["missing"] == ["@nvidia-driver:580-open/default"]
    installed = {"nvidia-driver": [{"version": "580.95.05"}], "nvidia-persistenced": [{"version": "580.95.05"}]}
    assert dp.package_changes(installed, s)["install"] is False


# --- apt sources merge ----------------------------------------------------------------

LIST = """# main archive
deb http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://security.debian.org/debian-security bookworm-security main contrib # sec
# deb http://deb.debian.org/debian bookworm-backports main
deb http://apt.example.com/repo stable main
"""


def test_merge_one_line_sources():
    r = dp.merge_apt_components(LIST, "list", ["contrib", "non-free", "non-free-firmware"], "bookworm")
    lines = r["content"].split("\n")
    assert lines[1] == "deb http://deb.debian.org/debian bookworm main contrib non-free non-free-firmware"
    assert lines[2] == "deb-src http://deb.debian.org/debian bookworm main contrib non-free non-free-firmware"
    assert lines[3] == ("deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://security.debian.org/debian-security "
                        "bookworm-security main contrib non-free non-free-firmware # sec")
    assert lines[4] == "# deb http://deb.debian.org/debian bookworm-backports main"
    assert lines[5] == "deb http://apt.example.com/repo stable main"
    assert r["matched"] == 3 and r["changed"]
    again = dp.merge_apt_components(r["content"], "list", ["contrib", "non-free", "non-free-firmware"], "bookworm")
    assert again["changed"] is False and again["content"] == r["content"]


DEB822 = """Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: trixie-security
Components: main non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://example.com/x
Suites: trixie
Components: extra
Enabled: yes
"""


def test_merge_deb822_sources():
    r = dp.merge_apt_components(DEB822, "deb822", ["contrib", "non-free", "non-free-firmware"], "trixie")
    assert r["matched"] == 2 and r["changed"]
    assert r["content"].count("Components: main contrib non-free non-free-firmware") == 1
    assert "Components: main non-free-firmware contrib non-free" in r["content"]
    assert "Components: extra" in r["content"]
    assert r["content"].endswith("Enabled: yes\n")
    again = dp.merge_apt_components(r["content"], "deb822", ["contrib", "non-free", "non-free-firmware"], "trixie")
    assert again == {"content": r["content"], "matched": 2, "changed": False}


def test_merge_ubuntu_restricted_and_disabled_stanzas():
    text = "Types: deb\nURIs: http://archive.ubuntu.com/ubuntu\nSuites: noble noble-updates\nComponents: main universe\nEnabled: no\n"
    r = dp.merge_apt_components(text, "deb822", ["restricted"], "noble")
    assert r == {"content": text, "matched": 0, "changed": False}
    r = dp.merge_apt_components(text.replace("Enabled: no\n", ""), "deb822", ["restricted"], "noble")
    assert "Components: main universe restricted" in r["content"] and r["matched"] == 1


def test_merge_no_match_and_bad_format():
    assert dp.merge_apt_components("", "list", ["non-free"], "bookworm")["matched"] == 0
    with pytest.raises(DriverPackagesError):
        dp.merge_apt_components("", "yaml", ["non-free"], "bookworm")


def _state(installed, absent=()):
    """host_state's packages: installed ones with version and hold, absent ones as such."""
    report = {name: {"installed": True, "version": v, "held": True, "wanted_version": None, "satisfied": True}
              for name, v in installed.items()}
    for name in absent:
        report[name] = {"installed": False, "version": None, "held": False, "wanted_version": None, "satisfied": False}
    return report


def test_host_state_packages_give_the_same_changes_as_package_facts():
    s = sel(UBUNTU, 580, "open", "ubuntu")
    installed = {
        "nvidia-headless-no-dkms-570-server-open": "570.172.08-0ubuntu1",
        "nvidia-utils-570-server": "570.172.08-0ubuntu1",
        "nvidia-utils-580-server": "580.95.05-0ubuntu1",
    }
    facts = {name: [{"version": v}] for name, v in installed.items()}
    # The names host_state was asked for and did not find count as absent, not installed:
    # a conflicting package that is not there is not stale.
    state = _state(installed, absent=[n for n in s["names"] + s["conflicts"] if n not in installed])
    assert dp.package_changes(state, s) == dp.package_changes(facts, s)
    stale = dp.package_changes(state, s)["stale"]
    assert stale == ["nvidia-headless-no-dkms-570-server-open", "nvidia-utils-570-server"]


def test_installed_packages_keeps_package_facts_as_it_is():
    facts = {"jq": [{"name": "jq", "version": "1.6-2.1"}]}
    assert dp.installed_packages(facts) == facts
    assert dp.installed_packages(_state({"jq": "1.6-2.1"}, absent=["curl"])) == {
        "jq": [{"name": "jq", "version": "1.6-2.1"}]}


# --- what the stage reads on the host, enables and merges ---------------------------------------

@pytest.mark.parametrize("selection, expected", [
    # No selection (a run whose tags skip it): the repository key's packages alone.
    ({}, ["gnupg", "ca-certificates"]),
    (None, ["gnupg", "ca-certificates"]),
    ({"names": ["nvidia-driver-580-server-open", "@nvidia-driver:580-open/default", "libnvidia-compute-580"],
      "headers_packages": ["linux-headers-6.8.0-51-generic", "nvidia-driver-580-server-open"],
      "conflicts": ["nvidia-driver-535"], "hold": ["nvidia-driver-580-server-open", "gnupg"]},
     ["nvidia-driver-580-server-open", "libnvidia-compute-580", "linux-headers-6.8.0-51-generic",
      "nvidia-driver-535", "gnupg", "ca-certificates"]),
    ({"names": ["a"], "headers_packages": None, "conflicts": [], "hold": []}, ["a", "gnupg", "ca-certificates"]),
])
def test_state_packages(selection, expected):
    assert dp.state_packages(selection) == expected


UNIT = "nvidia-persistenced"


@pytest.mark.parametrize("changes, units, needed", [
    # Packages installed in this run: enable, whatever host_state read before.
    ({"install": True}, {"nvidia-persistenced.service": {"unit_file": "enabled"}}, True),
    # Enabled, or a unit that needs no enabling.
    ({"install": False}, {"nvidia-persistenced.service": {"unit_file": "enabled"}}, False),
    ({"install": False}, {"nvidia-persistenced.service": {"unit_file": "static"}}, False),
    ({"install": False}, {"nvidia-persistenced.service": {"unit_file": "enabled-runtime"}}, False),
    ({"install": False}, {"nvidia-persistenced.service": {"unit_file": "alias"}}, False),
    ({"install": False}, {"nvidia-persistenced.service": {"unit_file": "indirect"}}, False),
    ({"install": False}, {"nvidia-persistenced.service": {"unit_file": "generated"}}, False),
    # Disabled, masked, unknown to systemd or not read.
    ({"install": False}, {"nvidia-persistenced.service": {"unit_file": "disabled"}}, True),
    ({"install": False}, {"nvidia-persistenced.service": {"unit_file": "masked"}}, True),
    ({"install": False}, {"nvidia-persistenced.service": {"unit_file": ""}}, True),
    ({"install": False}, {"nvidia-persistenced.service": {}}, True),
    ({"install": False}, {}, True),
    ({}, None, True),
])
def test_unit_needs_enabling(changes, units, needed):
    assert dp.unit_needs_enabling(changes, {"units": units}, UNIT) is needed


APT_SOURCES = [{"path": "/etc/apt/sources.list", "format": "list"},
               {"path": "/etc/apt/sources.list.d/debian.sources", "format": "deb822"}]
SOURCE_PATHS = {"/etc/apt/sources.list": {"exists": True, "mode": "0644"},
                "/etc/apt/sources.list.d/debian.sources": {"exists": True, "mode": "0600"}}
BOOKWORM_DEB822 = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"


def test_merge_apt_sources_merges_each_file_host_state_read():
    state = {"files": {"/etc/apt/sources.list": "deb http://d/debian bookworm main\n",
                       "/etc/apt/sources.list.d/debian.sources": BOOKWORM_DEB822}, "paths": SOURCE_PATHS}
    repo = {"kind": "apt_components", "components": ["non-free"], "codename": "bookworm"}
    merged = dp.merge_apt_sources(APT_SOURCES, state, repo, "trixie")
    assert [(m["path"], m["mode"], m["merge"]["matched"], m["merge"]["changed"]) for m in merged] == [
        ("/etc/apt/sources.list", "0644", 1, True), ("/etc/apt/sources.list.d/debian.sources", "0600", 1, True)]
    assert merged[0]["merge"]["content"] == "deb http://d/debian bookworm main non-free\n"
    assert "Components: main non-free\n" in merged[1]["merge"]["content"]


def test_merge_apt_sources_leaves_out_missing_files_and_takes_the_host_release():
    # A file host_state did not find reads None; an empty file is read (and matches nothing).
    state = {"files": {"/etc/apt/sources.list": "", "/etc/apt/sources.list.d/debian.sources": None}, "paths": SOURCE_PATHS}
    merged = dp.merge_apt_sources(APT_SOURCES, state, {"components": ["restricted"]}, "noble")
    assert merged == [{"path": "/etc/apt/sources.list", "mode": "0644",
                       "merge": {"content": "", "matched": 0, "changed": False}}]
    # Without a codename in the selection, the host's distribution_release.
    state = {"files": {"/etc/apt/sources.list": "deb http://a/ubuntu noble main\n"}, "paths": {}}
    merged = dp.merge_apt_sources(APT_SOURCES, state, {"components": ["restricted"]}, "noble")
    assert merged[0]["merge"]["content"] == "deb http://a/ubuntu noble main restricted\n" and merged[0]["mode"] is None
    assert dp.merge_apt_sources(APT_SOURCES, {}, {}, "noble") == [] == dp.merge_apt_sources(None, None, None, "x")


def test_merge_apt_sources_refuses_an_unknown_format():
    with pytest.raises(DriverPackagesError):
        dp.merge_apt_sources([{"path": "/x", "format": "toml"}], {"files": {"/x": ""}}, {"components": []}, "x")


# --- NVLink5 (HGX B200/B300): NVLSM beside the fabric manager ---------------------------------

def test_cuda_source_gives_an_nvlink5_host_nvlsm_unheld():
    """nvlsm and infiniband-diags from NVIDIA's CUDA repository (NVIDIA/gpu-driver-container
    nvlink5_pkgs_install): not versioned with the driver, so neither pinned nor held."""
    s = sel(UBUNTU, 580, "open", "cuda", fabric_manager=True, nvlsm=True, version_pin="580.95.05")
    assert s["fabric_manager_packages"] == ["nvidia-fabricmanager", "libnvidia-nscq"]
    assert s["nvlsm_packages"] == ["nvlsm", "infiniband-diags"]
    assert s["packages"][-2:] == ["nvlsm", "infiniband-diags"]
    assert "nvidia-fabricmanager=580.95.05-*" in s["packages"]
    assert "nvlsm" not in s["hold"] and "infiniband-diags" not in s["hold"]
    assert "nvidia-fabricmanager" in s["hold"]
    assert s["fabric_kernel_modules"] == ["mlx5_ib", "ib_umad"]
    assert s["fabric_manager_unit"] == "nvidia-fabricmanager"


def test_cuda_source_keeps_the_branch_in_fabric_manager_names_before_580():
    s = sel(UBUNTU, 570, "open", "cuda", fabric_manager=True, nvlsm=True)
    assert s["fabric_manager_packages"] == ["nvidia-fabricmanager-570", "libnvidia-nscq-570"]
    assert s["nvlsm_packages"] == ["nvlsm", "infiniband-diags"]


def test_no_nvlsm_no_infiniband_modules():
    s = sel(UBUNTU, 580, "open", "cuda", fabric_manager=True)
    assert s["nvlsm_packages"] == [] and s["fabric_kernel_modules"] == []


def test_rhel_nvlink5_host():
    s = sel(RHEL9, 580, "open", "rhel", fabric_manager=True, nvlsm=True)
    assert s["fabric_manager_packages"] == ["nvidia-fabricmanager"]      # R580: the CUDA repository's new name
    assert s["nvlsm_packages"] == ["nvlsm", "infiniband-diags"]
    assert "nvlsm" in s["packages"] and "nvlsm" not in s["hold"]
    assert sel(RHEL9, 570, "open", "rhel", fabric_manager=True)["fabric_manager_packages"] == ["nvidia-fabric-manager"]


def test_ubuntu_archive_has_no_nvlsm():
    with pytest.raises(DriverPackagesError, match=r"no NVLSM \(nvlsm\).*Set nvidia_driver_source: cuda"):
        sel(UBUNTU, 580, "open", "ubuntu", fabric_manager=True, nvlsm=True)
    # An NVSwitch host (no NVLSM) keeps Canonical's fabric manager.
    s = sel(UBUNTU, 580, "open", "ubuntu", fabric_manager=True)
    assert s["fabric_manager_packages"] == ["nvidia-fabricmanager-580", "libnvidia-nscq-580"]


def test_debian_refuses_an_nvlink5_host_naming_nvlsm():
    with pytest.raises(DriverPackagesError, match=r"nor NVLSM.*nvidia_driver_source: cuda.*and nvlsm"):
        sel(TRIXIE, 550, "open", "debian", fabric_manager=True, nvlsm=True)


def test_pinned_plan_carries_nvlsm():
    assert dp.pinned_plan({"nvlsm_needed": True, "fabric_manager_needed": True})["nvlsm"] is True
    assert dp.pinned_plan({})["nvlsm"] is False
