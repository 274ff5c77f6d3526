# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the kubegpu.cluster.host_file_differs filter (plugins/filter/host_state.py)."""

from __future__ import annotations

import hashlib

from ansible_collections.kubegpu.cluster.plugins.filter.host_state import FilterModule

host_file_differs = FilterModule().filters()["host_file_differs"]
CONTENT = "debug: false\n"
HAVE = {"exists": True, "isreg": True, "mode": "0644", "uid": 0, "gid": 0,
        "checksum": hashlib.sha1(CONTENT.encode()).hexdigest()}


def test_same_content_mode_and_owner():
    assert host_file_differs(HAVE, CONTENT) is False


def test_content_mode_owner_or_absence_differ():
    assert host_file_differs(HAVE, "debug: true\n") is True
    assert host_file_differs(dict(HAVE, mode="0600"), CONTENT) is True
    assert host_file_differs(dict(HAVE, uid=1000), CONTENT) is True
    assert host_file_differs(dict(HAVE, gid=4), CONTENT) is True
    assert host_file_differs({"exists": False}, CONTENT) is True
    assert host_file_differs(HAVE, CONTENT, mode="0755") is True
