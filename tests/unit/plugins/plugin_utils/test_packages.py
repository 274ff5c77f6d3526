# SPDX-License-Identifier: Apache-2.0
"""What the kubegpu role's entry point `package` installs and holds, from host_state's reading."""

from __future__ import annotations

from ansible_collections.kubegpu.cluster.plugins.plugin_utils._packages import held, split_request, to_install


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
