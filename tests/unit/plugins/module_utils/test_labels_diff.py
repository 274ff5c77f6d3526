# SPDX-License-Identifier: Apache-2.0
"""Label/taint reconciliation (module_utils/_labels_diff.py) and the node_labels module."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.kubegpu.cluster.plugins.module_utils import _labels_diff as ld

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "k8s"
ANN = ld.MANAGED_ANNOTATION


def test_first_run_sets_labels_and_records_them():
    diff = ld.diff_labels({"kubernetes.io/hostname": "gpu1"}, {"nvidia.com/gpu.count": "8", "nvidia.com/gpu.present": "true"})
    assert diff == {"set": {"nvidia.com/gpu.count": "8", "nvidia.com/gpu.present": "true"}, "remove": [],
                    "managed": ["nvidia.com/gpu.count", "nvidia.com/gpu.present"]}
    patch = ld.merge_patch(diff, "42")
    assert patch == {"metadata": {"labels": {"nvidia.com/gpu.count": "8", "nvidia.com/gpu.present": "true"},
                                  "annotations": {ANN: "nvidia.com/gpu.count,nvidia.com/gpu.present"},
                                  "resourceVersion": "42"}}


def test_second_run_changes_nothing():
    current = {"nvidia.com/gpu.count": "8", "nvidia.com/gpu.present": "true", "kubernetes.io/hostname": "gpu1"}
    annotations = {ANN: "nvidia.com/gpu.count,nvidia.com/gpu.present"}
    diff = ld.diff_labels(current, {"nvidia.com/gpu.count": "8", "nvidia.com/gpu.present": "true"}, annotations)
    assert diff["set"] == {} and diff["remove"] == []
    assert not ld.needs_patch(diff, annotations)


def test_labels_that_no_longer_hold_are_removed_but_others_kept():
    current = {"nvidia.com/gpu.count": "8", "nvidia.com/gpu.product": "NVIDIA-H100",
               "nvidia.com/gfd.timestamp": "1700000000",           # GFD's, not ours
               "nvidia.com/gpu.machine": "HGX",                     # our prefix, but not set by us
               "team": "ml"}
    annotations = {ANN: "nvidia.com/gpu.count,nvidia.com/gpu.product"}
    diff = ld.diff_labels(current, {"nvidia.com/gpu.count": "4"}, annotations)
    assert diff["set"] == {"nvidia.com/gpu.count": "4"}
    assert diff["remove"] == ["nvidia.com/gpu.product"]
    patch = ld.merge_patch(diff)
    assert patch["metadata"]["labels"] == {"nvidia.com/gpu.count": "4", "nvidia.com/gpu.product": None}
    assert patch["metadata"]["annotations"] == {ANN: "nvidia.com/gpu.count"}


def test_node_that_lost_its_gpus_loses_our_labels_and_the_annotation():
    current = {"nvidia.com/gpu.present": "true", "aliyun.accelerator/nvidia_count": "2"}
    annotations = {ANN: "aliyun.accelerator/nvidia_count,nvidia.com/gpu.present"}
    diff = ld.diff_labels(current, {}, annotations)
    assert diff["remove"] == ["aliyun.accelerator/nvidia_count", "nvidia.com/gpu.present"]
    assert ld.merge_patch(diff)["metadata"]["annotations"] == {ANN: None}
    assert ld.needs_patch(diff, annotations)


def test_cpu_node_without_history_is_left_alone():
    diff = ld.diff_labels({"nvidia.com/gpu.present": "true"}, {}, {})
    assert diff == {"set": {}, "remove": [], "managed": []}
    assert not ld.needs_patch(diff, {})


def test_labels_outside_prefixes_refused():
    with pytest.raises(ValueError, match="team"):
        ld.diff_labels({}, {"team": "ml"})


def test_values_are_strings():
    assert ld.diff_labels({}, {"nvidia.com/gpu.count": 8})["set"] == {"nvidia.com/gpu.count": "8"}


GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def test_taint_added_kept_removed():
    taints, changed = ld.reconcile_taints([CP_TAINT], [GPU_TAINT], ["nvidia.com/gpu"])
    assert changed and taints == [CP_TAINT, GPU_TAINT]
    taints, changed = ld.reconcile_taints([CP_TAINT, dict(GPU_TAINT, timeAdded=None)], [GPU_TAINT], ["nvidia.com/gpu"])
    assert not changed
    taints, changed = ld.reconcile_taints([CP_TAINT, GPU_TAINT], [], ["nvidia.com/gpu"])
    assert changed and taints == [CP_TAINT]
    taints, changed = ld.reconcile_taints([CP_TAINT], [], ["nvidia.com/gpu"])
    assert not changed and taints == [CP_TAINT]


def test_taint_value_change():
    taints, changed = ld.reconcile_taints([dict(GPU_TAINT, value="yes")], [GPU_TAINT], ["nvidia.com/gpu"])
    assert changed and taints == [GPU_TAINT]


# --- the module, with run_command mocked -----------------------------------------------

class _Exit(Exception):
    pass


class FakeModule:
    def __init__(self, params, node, check_mode=False, patch_rc=0):
        self.params = dict({"prefixes": list(ld.DEFAULT_PREFIXES), "taints": [], "managed_taint_keys": [],
                            "kubectl": "kubectl", "kubeconfig": "/etc/kubernetes/admin.conf", "labels": {}}, **params)
        self.check_mode = check_mode
        self._diff = True
        self.node = node
        self.patch_rc = patch_rc
        self.commands = []
        self.result = None

    def run_command(self, args):
        self.commands.append(args)
        if args[3] == "get":
            return 0, json.dumps(self.node), ""
        return self.patch_rc, "node/x patched", "" if self.patch_rc == 0 else "conflict"

    def exit_json(self, **kwargs):
        self.result = kwargs
        raise _Exit()

    def fail_json(self, **kwargs):
        self.result = dict(kwargs, failed=True)
        raise _Exit()


def _gpu1():
    return json.loads((FIXTURES / "nodes.json").read_text())["items"][1]


def _run(module):
    with pytest.raises(_Exit):
        ld.run_node_labels(module)
    return module.result


def test_module_patches_once_with_resource_version():
    module = FakeModule({"name": "gpu1", "labels": {"nvidia.com/gpu.count": "8", "nvidia.com/gpu.present": "true",
                                                    "nvidia.com/gpu.family": "hopper"}}, _gpu1())
    result = _run(module)
    assert result["changed"] and result["added"] == {"nvidia.com/gpu.family": "hopper"}
    assert module.commands[0] == ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "get", "node", "gpu1", "-o", "json"]
    patch_cmd = module.commands[1]
    assert patch_cmd[3:8] == ["patch", "node", "gpu1", "--type", "merge"]
    patch = json.loads(patch_cmd[-1])
    assert patch["metadata"]["resourceVersion"] == "12345"
    assert "spec" not in patch  # the existing GPU taint is not ours to manage here


def test_module_check_mode_does_not_patch():
    module = FakeModule({"name": "gpu1", "labels": {"nvidia.com/gpu.family": "hopper"}}, _gpu1(), check_mode=True)
    result = _run(module)
    assert result["changed"] and len(module.commands) == 1
    assert result["diff"]["after"]["labels"]["nvidia.com/gpu.family"] == "hopper"


def test_module_unchanged_when_everything_matches():
    node = _gpu1()
    node["metadata"]["annotations"][ANN] = "nvidia.com/gpu.count,nvidia.com/gpu.present,nvidia.com/gpu.product"
    labels = {k: v for k, v in node["metadata"]["labels"].items() if k.startswith("nvidia.com/")}
    module = FakeModule({"name": "gpu1", "labels": labels, "taints": [GPU_TAINT],
                         "managed_taint_keys": ["nvidia.com/gpu"]}, node)
    result = _run(module)
    assert not result["changed"] and len(module.commands) == 1


def test_module_removes_taint():
    module = FakeModule({"name": "gpu1", "labels": {}, "managed_taint_keys": ["nvidia.com/gpu"]}, _gpu1())
    result = _run(module)
    assert result["taints_changed"]
    assert json.loads(module.commands[1][-1])["spec"] == {"taints": []}


def test_module_reports_patch_failure():
    module = FakeModule({"name": "gpu1", "labels": {"nvidia.com/gpu.family": "hopper"}}, _gpu1(), patch_rc=1)
    result = _run(module)
    assert result["failed"] and "conflict" in result["msg"]


CONFLICT = ('Error from server (Conflict): Operation cannot be fulfilled on nodes "gpu1": the object has been '
            'modified; please apply your changes to the latest version and try again')


class ConflictingModule(FakeModule):
    """The API server as a kubelet writing the node between our read and our patch: each
    conflicting patch is answered 409 and the node's resourceVersion (and a label another
    writer set) moves on; patches after `conflicts` of them succeed."""

    def __init__(self, params, node, conflicts):
        super().__init__(params, node)
        self.conflicts = conflicts

    def run_command(self, args):
        self.commands.append(args)
        if args[3] == "get":
            return 0, json.dumps(self.node), ""
        if json.loads(args[-1])["metadata"]["resourceVersion"] != self.node["metadata"]["resourceVersion"]:
            return 1, "", CONFLICT
        if self.conflicts > 0:
            self.conflicts -= 1
            meta = self.node["metadata"]
            meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
            meta["labels"]["other.example.com/written-meanwhile"] = str(self.conflicts)
            return 1, "", CONFLICT
        return 0, "node/gpu1 patched", ""


def test_module_reads_again_and_patches_after_a_conflict():
    module = ConflictingModule({"name": "gpu1", "labels": {"nvidia.com/gpu.family": "hopper"}}, _gpu1(), conflicts=2)
    result = _run(module)
    assert not result.get("failed") and result["changed"]
    verbs = [c[3] for c in module.commands]
    assert verbs == ["get", "patch", "get", "patch", "get", "patch"]
    # the last patch carries the resourceVersion of the last reading, and only our labels
    last = json.loads(module.commands[-1][-1])
    assert last["metadata"]["resourceVersion"] == "12347"
    assert "other.example.com/written-meanwhile" not in last["metadata"]["labels"]


def test_module_gives_up_after_the_last_conflicting_attempt():
    module = ConflictingModule({"name": "gpu1", "labels": {"nvidia.com/gpu.family": "hopper"}}, _gpu1(),
                               conflicts=ld.CONFLICT_ATTEMPTS)
    result = _run(module)
    assert result["failed"] and "attempt %d" % ld.CONFLICT_ATTEMPTS in result["msg"] and "Conflict" in result["msg"]
    assert [c[3] for c in module.commands].count("patch") == ld.CONFLICT_ATTEMPTS


def test_module_does_not_retry_other_errors():
    module = FakeModule({"name": "gpu1", "labels": {"nvidia.com/gpu.family": "hopper"}}, _gpu1(), patch_rc=1)
    result = _run(module)
    assert result["failed"] and "attempt 1" in result["msg"]
    assert [c[3] for c in module.commands] == ["get", "patch"]
