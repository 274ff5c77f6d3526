# SPDX-License-Identifier: Apache-2.0
"""containerd's runtime handlers and the one RuntimeClass rule (stage 7 and validate)."""
from pathlib import Path

import pytest

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _runtime_class as rc

CONTAINERD = Path(__file__).resolve().parents[3] / "fixtures" / "containerd"


@pytest.mark.parametrize("name, default, has_nvidia", [
    ("default-1.7.24.toml", "runc", False),
    ("default-2.1.9.toml", "runc", False),
    ("nvidia-ctk-configured-1.7.24.toml", None, True),
])
def test_handlers_from_fixtures(name, default, has_nvidia):
    handlers = rc.cri_handlers((CONTAINERD / name).read_text(encoding="utf-8"))
    assert ("nvidia" in handlers["names"]) is has_nvidia
    if default:
        assert handlers["default"] == default


def test_unknown_and_merged():
    assert rc.cri_handlers(None) is None
    assert rc.cri_handlers("not [toml") is None
    merged = {"changed": True, "runtimes": ["runc", "nvidia"], "default_runtime": "nvidia"}
    assert rc.cri_handlers("", merged=merged) == {"default": "nvidia", "names": ["nvidia", "runc"]}
    assert rc.cri_handlers(None, merged={"skipped": True}) is None


def test_runtime_class_rule():
    nvidia = {"default": "nvidia", "names": ["nvidia", "runc"]}
    runc = {"default": "runc", "names": ["nvidia", "runc"]}
    assert rc.runtime_class_needed([nvidia, nvidia]) is False
    assert rc.runtime_class_needed([nvidia, runc]) is True
    assert rc.runtime_class_needed([nvidia, None]) is True
    assert rc.runtime_class_needed([nvidia, {}]) is True
    assert rc.runtime_class_needed([]) is False
