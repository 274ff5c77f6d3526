# SPDX-License-Identifier: Apache-2.0
"""plugins/plugin_utils/_mig_plan.py: preflight's MIG refusal (the module's check, called on the
controller) and the mig.config labels from GPU facts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _mig_plan, _preflight_host

A100 = {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "pci_device_id": "20b2", "mig_capable": True}


def facts(*gpus):
    return {"count": len(gpus), "gpus": [dict(g, index=i) for i, g in enumerate(gpus)]}


def test_unset_layout_is_no_problem():
    assert _mig_plan.layout_problems(facts(A100), "") == []
    assert _mig_plan.layout_problems(facts(A100), None) == []
    assert _mig_plan.config_labels(facts(A100), "") == {}


def test_fitting_layouts():
    assert _mig_plan.layout_problems(facts(A100, A100), "all-balanced") == []
    assert _mig_plan.layout_problems(facts(A100, A100), [["4g.40gb", "3g.40gb"], "disabled"]) == []


def test_too_many_instances_names_variable_and_fix():
    records = _mig_plan.layout_problems(facts(A100), [["1g.10gb"] * 8])
    assert records[0]["variable"] == "nvidia_mig_layout"
    assert records[0]["problem"] == "GPU 0 (NVIDIA A100-SXM4-80GB): 8 x 1g.10gb asked, the A100 80GB holds at most 7"
    assert records[0]["fix"].startswith("set nvidia_mig_layout to all-balanced, all-<profile> or one list of profiles")
    assert "1g.10gb, 1g.10gb+me, 1g.20gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb" in records[0]["fix"]


def test_unknown_name_and_profile():
    assert "not a MIG layout name" in _mig_plan.layout_problems(facts(A100), "all-half")[0]["problem"]
    assert "names profile 1g.5gb" in _mig_plan.layout_problems(facts(A100), "all-1g.5gb")[0]["problem"]
    record = _mig_plan.layout_problems(facts({"name": "Tesla T4", "pci_device_id": "1eb8"}), "all-balanced")[0]
    assert "knows no MIG profiles" in record["problem"]
    assert record["fix"].startswith("set nvidia_mig_layout: all-disabled on this host")


@pytest.mark.parametrize("gpu, state", [
    (dict(A100, mig_mode_current="disabled", mig_mode_pending="disabled"), "pending"),
    (dict(A100, mig_mode_current="disabled", mig_mode_pending="enabled"), "pending"),
    (dict(A100, mig_mode_current="enabled", mig_mode_pending="enabled"), "pending"),      # devices unknown
    (dict(A100, mig_mode_current="enabled", mig_mode_pending="enabled",
          mig_devices=[{"profile": p} for p in ("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb")]), "success"),
    (dict(A100, mig_mode_current="enabled", mig_mode_pending="enabled",
          mig_devices=["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"]), "success"),
    (dict(A100, mig_mode_current="enabled", mig_mode_pending="enabled", mig_devices=["7g.80gb"]), "pending"),
])
def test_config_labels_state(gpu, state):
    assert _mig_plan.config_labels(facts(gpu), "all-balanced") == {
        "nvidia.com/mig.config": "all-balanced", "nvidia.com/mig.config.state": state}


def test_config_labels_custom_name_and_override():
    gpu = dict(A100, mig_mode_current="disabled", mig_mode_pending="disabled")
    assert _mig_plan.config_labels(facts(gpu), ["disabled"]) == {
        "nvidia.com/mig.config": "custom", "nvidia.com/mig.config.state": "success"}
    assert _mig_plan.config_labels(facts(gpu), "all-disabled", state="failed")["nvidia.com/mig.config.state"] == "failed"
    assert _mig_plan.config_labels(facts(gpu), "all-1g.5gb")["nvidia.com/mig.config.state"] == "failed"
    with pytest.raises(ValueError):
        _mig_plan.config_labels(facts(gpu), "all-disabled", state="rebooting")


def test_preflight_host_report_refuses_a_layout():
    """The hook in host_report: the record arrives among the host's problems."""
    report = _preflight_host.host_report(
        "gpu1", {"nvidia_mig_layout": [["1g.10gb"] * 8]}, {"kubegpu_gpu": facts(A100)}, {})
    mig = [p for p in report["problems"] if p["variable"] == "nvidia_mig_layout"]
    assert mig and "holds at most 7" in mig[0]["problem"]
    report = _preflight_host.host_report("gpu1", {"nvidia_mig_layout": "all-balanced"}, {"kubegpu_gpu": facts(A100)}, {})
    assert not [p for p in report["problems"] if p["variable"] == "nvidia_mig_layout"]


def test_gpu_operator_mode_refuses_a_layout():
    from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean
    records = _mig_plan.layout_problems(facts(A100), "all-balanced", gpu_operator="true", boolean=boolean)
    assert "GPU Operator mode" in records[0]["problem"] and "mig-manager" in records[0]["fix"]
    assert _mig_plan.layout_problems(facts(A100), "all-balanced", gpu_operator=False, boolean=boolean) == []
    report = _preflight_host.host_report(
        "gpu1", {"nvidia_mig_layout": "all-balanced", "kubegpu_gpu_operator": True}, {"kubegpu_gpu": facts(A100)}, {})
    assert [p for p in report["problems"] if p["variable"] == "nvidia_mig_layout"]


class _Render:
    """test_k8s_render.py's Renderer run in a fresh interpreter (Ansible's collection loader
    cannot take over in this one), as that file's own _fresh_expr does."""

    ROOT = Path(__file__).resolve().parents[4]
    EXAMPLE = ROOT / "inventory" / "example" / "hosts.yml"

    def _fresh_expr(self, inventory, host, expression, overrides=None, facts=None):
        script = (
            "import json, runpy, sys\n"
            "m = runpy.run_path(sys.argv[1])\n"
            "args = json.loads(sys.argv[2])\n"
            "r = m['Renderer'](args['inventory'], 'gpu_node_labels', overrides=args['overrides'], facts=args['facts'])\n"
            "print(json.dumps(r.expr(args['host'], args['expression'])))\n")
        args = {"inventory": str(inventory), "host": host, "expression": expression,
                "overrides": overrides or {}, "facts": facts or {}}
        done = subprocess.run([sys.executable, "-c", script, str(self.ROOT / "tests" / "unit" / "test_k8s_render.py"),
                               json.dumps(args)], capture_output=True, text=True, check=False, cwd=str(self.ROOT))
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])


def test_gpu_node_labels_role_adds_the_mig_labels_and_extra():
    """roles/gpu_node_labels' desired labels, rendered as Ansible does (test_k8s_render's
    Renderer, in a fresh interpreter): the mig.config labels with a layout, the pause label
    roles/nvidia_mig passes in gpu_node_labels_extra, the failed override."""
    render = _Render()
    gpu = dict(A100, mig_mode_current="enabled", mig_mode_pending="enabled",
               mig_devices=[{"profile": p} for p in ("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb")])
    labels = render._fresh_expr(render.EXAMPLE, "gpu1", "_gpu_node_labels_desired",
                                overrides={"nvidia_mig_layout": "all-balanced",
                                           "gpu_node_labels_extra": {"nvidia.com/gpu.deploy.device-plugin":
                                                                     "paused-for-mig-change"}},
                                facts={"gpu1": facts(gpu)})
    assert labels["nvidia.com/mig.config"] == "all-balanced"
    assert labels["nvidia.com/mig.config.state"] == "success"
    assert labels["nvidia.com/gpu.deploy.device-plugin"] == "paused-for-mig-change"
    failed = render._fresh_expr(render.EXAMPLE, "gpu1", "_gpu_node_labels_desired",
                                overrides={"nvidia_mig_layout": "all-balanced", "_gpu_node_labels_mig_state": "failed"},
                                facts={"gpu1": facts(gpu)})
    assert failed["nvidia.com/mig.config.state"] == "failed"
    plain = render._fresh_expr(render.EXAMPLE, "gpu1", "_gpu_node_labels_desired", facts={"gpu1": facts(gpu)})
    assert not [k for k in plain if k.startswith("nvidia.com/mig.config") or k.startswith("nvidia.com/gpu.deploy")]


def test_device_plugin_strategy_single_needs_one_profile_everywhere():
    """k8s-device-plugin's rules (through _gpu_resources.expected_resources) on the facts the
    layout will give: single refuses mixed profiles and MIG on some GPUs only."""
    problems = _mig_plan.layout_problems(facts(A100, A100), "all-balanced", mig_strategy="single")
    assert len(problems) == 1 and "more than one MIG device type" in problems[0]["problem"]
    assert problems[0]["fix"].startswith("set nvidia_device_plugin_mig_strategy: mixed")
    problems = _mig_plan.layout_problems(facts(A100, A100), ["all-1g.10gb", "disabled"], mig_strategy="single")
    assert "MIG enabled on all GPUs or none" in problems[0]["problem"]
    assert _mig_plan.layout_problems(facts(A100, A100), "all-1g.10gb", mig_strategy="single") == []
    assert _mig_plan.layout_problems(facts(A100, A100), "all-balanced", mig_strategy="mixed") == []
    assert _mig_plan.layout_problems(facts(A100, A100), "all-balanced", mig_strategy="none") == []
    future = _mig_plan.future_facts(facts(A100), {0: ["1g.10gb", "3g.40gb"]})
    assert future["gpus"][0]["mig_devices"] == [{"profile": "3g.40gb"}, {"profile": "1g.10gb"}]
