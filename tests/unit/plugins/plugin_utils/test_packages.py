# SPDX-License-Identifier: Apache-2.0
"""What kubegpu.cluster.packages reads, installs and holds, from host_state's reading."""

from __future__ import annotations

from ansible_collections.kubegpu.cluster.plugins.plugin_utils._packages import (
    APT_LISTS, handed_reading, held, manager, no_index, path_exists_after, read_request, reads_first, split_request, to_hold,
    to_install)


def test_a_request_splits_into_names_and_pinned_versions():
    assert split_request(["jq", "containerd=1.7.*", "runc="]) == {
        "names": ["jq", "containerd", "runc"], "versions": {"containerd": "1.7.*"}}
    assert split_request(None) == {"names": [], "versions": {}}


def test_only_what_the_reading_reports_missing_is_installed_with_its_pin():
    state = {"packages_missing": ["containerd"], "packages": {"jq": {"installed": True}}}
    assert to_install(["jq", "containerd=1.7.*"], state) == ["containerd=1.7.*"]
    assert to_install(["jq"], {"packages_missing": []}) == []


def test_without_a_reading_everything_is_installed():
    # the read was skipped (dnf, state absent, .deb files): apt/dnf decide alone
    assert to_install(["jq", "curl"], None) == ["jq", "curl"]
    assert to_install(["jq"], {"skipped": True, "changed": False}) == ["jq"]


def test_held_is_what_dpkg_holds():
    state = {"packages": {"containerd": {"installed": True, "held": True},
                          "runc": {"installed": True, "held": False},
                          "cri-tools": {"installed": False, "held": False}}}
    assert held(["containerd", "runc", "cri-tools", "unknown"], state) == ["containerd"]
    assert held(["containerd"], None) == []


def test_the_package_manager_follows_the_facts_unless_asked():
    assert manager("dnf", {"pkg_mgr": "apt"}) == "dnf"
    assert manager(None, {"pkg_mgr": "apt"}) == "apt"
    assert manager(None, {"pkg_mgr": "dnf5"}) == "dnf"
    # without pkg_mgr: the Debian family is apt
    assert manager(None, {"os_family": "Debian"}) == "apt"
    assert manager(None, {"os_family": "RedHat"}) == "dnf"
    assert manager(None, None) == "dnf"


def test_only_an_apt_install_of_names_reads_first():
    assert reads_first({"names": ["jq"]}, "apt")
    assert reads_first({"names": ["jq"], "state": "present"}, "apt")
    # holds alone are read, unless the caller read them
    assert reads_first({"names": [], "hold": ["containerd"]}, "apt")
    assert not reads_first({"names": [], "hold": ["containerd"], "held": []}, "apt")
    assert not reads_first({"names": ["jq"]}, "dnf")
    assert not reads_first({"names": ["jq"], "state": "latest"}, "apt")
    assert not reads_first({"names": ["jq"], "state": "absent"}, "apt")
    assert not reads_first({"debs": ["/tmp/a.deb"], "names": None}, "apt")
    assert not reads_first({"names": None, "update_cache": True}, "apt")


def test_the_reading_asks_for_names_holds_pins_and_apt_lists():
    assert read_request({"names": ["jq", "containerd=1.7.*"], "hold": ["containerd", "runc"]}) == {
        "packages": ["jq", "containerd", "runc"], "package_versions": {"containerd": "1.7.*"}, "globs": [APT_LISTS]}


def _reading(packages, lists=("/var/lib/apt/lists/deb_Packages",)):
    return {"changed": False, "packages": packages, "globs": {APT_LISTS: list(lists)},
            "packages_missing": [n for n, e in packages.items() if not e["satisfied"]]}


def test_a_handed_reading_is_used_only_where_it_answers_the_request():
    entry = {"installed": True, "version": "1.7.24-1", "held": False, "wanted_version": None, "satisfied": True}
    request = read_request({"names": ["containerd"]})
    used = handed_reading(_reading({"containerd": entry, "jq": dict(entry)}), request)
    # only this request's packages, their missing ones from `satisfied`
    assert used == {"packages": {"containerd": entry}, "packages_missing": [],
                    "globs": {APT_LISTS: ["/var/lib/apt/lists/deb_Packages"]}}
    assert to_install(["containerd"], used) == []
    # a package the caller did not read; apt's lists not looked at; another pin; failed or skipped
    assert handed_reading(_reading({"jq": entry}), request) is None
    assert handed_reading({"packages": {"containerd": entry}, "packages_missing": [], "globs": {}}, request) is None
    assert handed_reading(_reading({"containerd": entry}), read_request({"names": ["containerd=1.7.*"]})) is None
    assert handed_reading(dict(_reading({"containerd": entry}), failed=True), request) is None
    assert handed_reading({"skipped": True}, request) is None
    assert handed_reading(None, request) is None


def test_a_missing_package_in_a_handed_reading_is_installed():
    entry = {"installed": False, "version": None, "held": False, "wanted_version": None, "satisfied": False}
    used = handed_reading(_reading({"jq": entry}), read_request({"names": ["jq"]}))
    assert to_install(["jq"], used) == ["jq"]


def test_no_index_is_a_reading_that_found_no_lists():
    assert no_index(_reading({}, lists=()))
    assert not no_index(_reading({}))
    # no reading (dnf, package files): nothing known, no download
    assert not no_index(None)


def test_what_is_held_now():
    reading = {"packages": {"containerd": {"held": True}, "runc": {"held": False}}}
    assert to_hold(["containerd", "runc"], None, False, reading) == ["runc"]
    # the caller's own knowledge wins over the reading
    assert to_hold(["containerd", "runc"], ["containerd", "runc"], False, reading) == []
    # an install moves the packages: all held again
    assert to_hold(["containerd", "runc"], ["containerd", "runc"], True, reading) == ["containerd", "runc"]
    assert to_hold([], None, False, None) == []


def test_a_reading_before_unchanged_installs_tells_whether_a_path_exists():
    reading = {"changed": False, "paths": {"/usr/bin/containerd": {"exists": True}, "/usr/bin/runc": {"exists": False}}}
    unchanged = [{"changed": False}, {"skipped": True, "changed": False}, {}]
    assert path_exists_after(reading, "/usr/bin/containerd", unchanged) is True
    assert path_exists_after(reading, "/usr/bin/runc", unchanged) is False


def test_the_reading_cannot_tell_after_an_install_or_without_the_path():
    reading = {"changed": False, "paths": {"/usr/bin/containerd": {"exists": False}}}
    # an install since changed the host (in check mode: would have): look again
    assert path_exists_after(reading, "/usr/bin/containerd", [{"changed": False}, {"changed": True}]) is None
    # a path it did not read, or a reading that did not run
    assert path_exists_after(reading, "/usr/local/bin/containerd") is None
    assert path_exists_after(None, "/usr/bin/containerd") is None
    assert path_exists_after({"skipped": True, "changed": False}, "/usr/bin/containerd") is None
    assert path_exists_after({"failed": True, "msg": "x"}, "/usr/bin/containerd") is None
