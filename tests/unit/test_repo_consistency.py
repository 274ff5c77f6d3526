# SPDX-License-Identifier: Apache-2.0
"""Facts that live in one place and are referred to elsewhere stay in step."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _image_rev() -> str:
    text = (ROOT / "scripts" / "images.sh").read_text(encoding="utf-8")
    match = re.search(r"^IMAGE_REV=(\d+)$", text, re.MULTILINE)
    assert match, "scripts/images.sh defines IMAGE_REV"
    return match.group(1)


def test_every_test_image_reference_uses_the_built_revision():
    rev = _image_rev()
    refs = {}
    for path in list(ROOT.glob("molecule/*/molecule.yml")) + list(ROOT.glob("tests/integration/*.py")) + [
            ROOT / "scripts" / "lab.sh", ROOT / "bench" / "fleet.py"]:
        if not path.is_file():
            continue
        for found in re.findall(r"kubegpu-test:(?:bookworm|trixie)-r(\d+)", path.read_text(encoding="utf-8")):
            refs.setdefault(found, []).append(str(path.relative_to(ROOT)))
    assert refs, "no test image reference found"
    assert set(refs) == {rev}, f"images.sh builds r{rev}; references: {refs}"


def test_site_imports_every_stage_in_product_order():
    # gpu_operator is stage 7 in GPU Operator mode, beside nvidia_device_plugin.
    stages = ["preflight", "os_prereqs", "nvidia_driver", "container_runtime", "kubernetes",
              "calico", "metallb", "nvidia_device_plugin", "gpu_operator", "nvidia_dra_driver",
              "gpu_node_labels", "validate"]
    site = yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text(encoding="utf-8"))
    imported = [entry["ansible.builtin.import_playbook"].removesuffix(".yml") for entry in site]
    assert imported == stages
    for stage in stages:
        plays = yaml.safe_load((ROOT / "playbooks" / f"{stage}.yml").read_text(encoding="utf-8"))
        assert all(stage in play.get("tags", []) for play in plays), f"every play of {stage}.yml is tagged {stage}"
        assert (ROOT / "roles" / stage / "tasks" / "main.yml").is_file()


def test_containerd_merge_task_passes_every_setting_and_runs_unguarded():
    """containerd.yml's merge task passes each of the module's merge settings from one dict
    (_container_runtime_config_settings) and runs on every run where containerd can be
    configured: the module itself compares and acts (no guard of its own)."""
    from ansible_collections.kubegpu.cluster.plugins.module_utils._containerd import MERGE_SETTINGS

    role = ROOT / "roles" / "container_runtime"
    settings = yaml.safe_load((role / "vars" / "main.yml").read_text(encoding="utf-8"))["_container_runtime_config_settings"]
    assert set(settings) == set(MERGE_SETTINGS)
    tasks = yaml.safe_load((role / "tasks" / "containerd.yml").read_text(encoding="utf-8"))
    block = next(t for t in tasks if t.get("name") == "Configure containerd")["block"]
    merge = next(t for t in block if "kubegpu.cluster.containerd_config" in t)
    args = merge["kubegpu.cluster.containerd_config"]
    for key in MERGE_SETTINGS:
        assert "_container_runtime_config_settings.%s" % key in str(args.get(key)), key
    assert "when" not in merge
