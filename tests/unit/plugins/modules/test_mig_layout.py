# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the mig_layout module against a fake nvidia-smi
(tests/fixtures/gpu/fake_nvidia_smi.py) that keeps its GPUs in a JSON file and prints the
formats of the recorded outputs in tests/fixtures/gpu/mig/: check mode, a real run, the
second run (changed=false), refusals, a mode change left pending, turning MIG off.

No real GPU is touched: MIG is never changed on a shared or lent device."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess

import pytest

from ansible_collections.kubegpu.cluster.tests.unit.compat import ModuleExit, patch_module_args, patch_module_exits

from ansible_collections.kubegpu.cluster.plugins.module_utils import _mig
from ansible_collections.kubegpu.cluster.plugins.modules import mig_layout

FAKE = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "gpu", "fake_nvidia_smi.py"))
_spec = importlib.util.spec_from_file_location("fake_nvidia_smi", FAKE)
fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake)


@pytest.fixture(autouse=True)
def module_exits(monkeypatch):
    patch_module_exits(monkeypatch)


class Host:
    def __init__(self, tmp_path, monkeypatch, gpus):
        self.path = tmp_path / "smi.json"
        self.path.write_text(json.dumps(fake.new_state(gpus)))
        monkeypatch.setenv("KUBEGPU_FAKE_SMI_STATE", str(self.path))

    @property
    def state(self):
        return json.loads(self.path.read_text())

    def changing_calls(self):
        return [c for c in self.state["calls"]
                if not (c[0].startswith("--query-gpu") or c in (["mig", "-lgi"], ["mig", "-lci"], ["mig", "-lgip"]))]

    def run(self, layout, check_mode=False, diff=True):
        args = {"layout": layout, "layout_name": layout if isinstance(layout, str) else "custom",
                "nvidia_smi_path": FAKE}
        if check_mode:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        with patch_module_args(args):
            with pytest.raises(ModuleExit) as caught:
                mig_layout.main()
        return caught.value.args[0]


def profiles_of(result, index=0):
    return sorted(d["profile"] for d in result["layout"][index]["mig_devices"])


def test_check_mode_changes_nothing(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, [fake.a100_80gb()])
    before = host.state["gpus"]
    result = host.run("all-balanced", check_mode=True)
    assert result["changed"] is True and result["state"] == "pending"
    assert result["planned"] == {"0": [[FAKE, "-i", "0", "-mig", "1"],
                                       [FAKE, "mig", "-i", "0", "-cgi", "3g.40gb,2g.20gb,1g.10gb,1g.10gb", "-C"]]}
    assert result["diff"]["before"] == "GPU 0 (NVIDIA A100-SXM4-80GB): MIG disabled\n"
    assert result["diff"]["after"] == "GPU 0 (NVIDIA A100-SXM4-80GB): MIG enabled: 3g.40gb, 2g.20gb, 1g.10gb, 1g.10gb\n"
    assert host.state["gpus"] == before
    assert host.changing_calls() == []


def test_apply_then_second_run_is_idempotent(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, [fake.a100_80gb(0), fake.a100_80gb(1)])
    result = host.run("all-1g.10gb")
    assert result["_failed"] is False and result["changed"] is True and result["state"] == "success"
    assert profiles_of(result, 0) == profiles_of(result, 1) == ["1g.10gb"] * 7
    assert host.changing_calls() == [
        ["-i", "0", "-mig", "1"], ["mig", "-i", "0", "-cgi", ",".join(["1g.10gb"] * 7), "-C"],
        ["-i", "1", "-mig", "1"], ["mig", "-i", "1", "-cgi", ",".join(["1g.10gb"] * 7), "-C"]]
    # gi and ci ids come from -lgi / -lci of the fake, in the recorded formats.
    device = result["layout"][0]["mig_devices"][0]
    assert device["gi_id"] is not None and device["ci_id"] == 0
    calls = len(host.state["calls"])
    again = host.run("all-1g.10gb")
    assert again["changed"] is False and again["state"] == "success" and again["planned"] == {}
    assert all(c[0].startswith("--query-gpu") or c[0] == "mig" and c[1] in ("-lgi", "-lci", "-lgip")
               for c in host.state["calls"][calls:])
    check = host.run("all-1g.10gb", check_mode=True)
    assert check["changed"] is False and check["state"] == "success"


def test_relayout_destroys_then_creates(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, [fake.a100_80gb()])
    host.run(["all-7g.80gb"])
    result = host.run([{"4g.40gb": 1, "3g.40gb": 1}])
    assert result["changed"] is True and result["state"] == "success"
    assert profiles_of(result) == ["3g.40gb", "4g.40gb"]
    assert host.changing_calls()[-3:] == [["mig", "-i", "0", "-dci"], ["mig", "-i", "0", "-dgi"],
                                          ["mig", "-i", "0", "-cgi", "4g.40gb,3g.40gb", "-C"]]
    assert result["layout_before"][0]["mig_devices"][0]["profile"] == "7g.80gb"


def test_refuses_a_layout_the_gpu_cannot_hold(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, [fake.a100_80gb()])
    result = host.run([["1g.10gb"] * 8])
    assert result["_failed"] is True and result["state"] == "failed"
    assert result["problems"][0] == "GPU 0 (NVIDIA A100-SXM4-80GB): 8 x 1g.10gb asked, the A100 80GB holds at most 7"
    assert host.changing_calls() == []
    result = host.run("all-1g.5gb")
    assert result["_failed"] is True and "names profile 1g.5gb" in result["msg"]
    assert host.changing_calls() == []


def test_mode_change_left_pending(tmp_path, monkeypatch):
    """A GPU the driver cannot reset (the guide's VM passthrough case): state pending, no
    instances created, the GPU named in reset_required; no false success."""
    host = Host(tmp_path, monkeypatch, [fake.a100_80gb(reset_blocked=True)])
    result = host.run("all-balanced")
    assert result["_failed"] is False and result["changed"] is True
    assert result["state"] == "pending" and result["reset_required"] == [0]
    assert "reboot the node" in result["msg"]
    assert host.changing_calls() == [["-i", "0", "-mig", "1"]]
    # After the "reboot" (the fake's mode takes effect), the next run creates the instances.
    state = host.state
    state["gpus"][0]["mode_current"] = "enabled"
    state["gpus"][0]["reset_blocked"] = False
    host.path.write_text(json.dumps(state))
    result = host.run("all-balanced")
    assert result["state"] == "success", (result, host.state)
    assert profiles_of(result) == ["1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"]


def test_disable(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, [fake.a100_80gb()])
    host.run("all-3g.40gb")
    result = host.run("all-disabled")
    assert result["changed"] is True and result["state"] == "success"
    assert result["layout"][0]["mig_mode_current"] == "disabled" and result["layout"][0]["mig_devices"] == []
    assert host.changing_calls()[-3:] == [["mig", "-i", "0", "-dci"], ["mig", "-i", "0", "-dgi"], ["-i", "0", "-mig", "0"]]
    assert host.run("all-disabled")["changed"] is False


def test_failed_command_reports_failed_state(tmp_path, monkeypatch):
    """An instance the fake refuses (a busy GPU would do the same): failed, with the command."""
    gpu = fake.a100_80gb()
    gpu["profiles"]["3g.40gb"][3] = 1       # the fake offers one 3g.40gb only
    host = Host(tmp_path, monkeypatch, [gpu])
    result = host.run("all-3g.40gb")
    assert result["_failed"] is True and result["state"] == "failed"
    assert "Insufficient Resources" in result["msg"]


def test_fake_prints_the_recorded_formats(tmp_path, monkeypatch):
    """The fake's -lgi / -lci / -L parse like the recorded outputs do (same parser)."""
    host = Host(tmp_path, monkeypatch, [fake.a100_80gb()])
    host.run("all-balanced")
    for argv, parser in ((["mig", "-lgi"], _mig.parse_lgi), (["mig", "-lci"], _mig.parse_lci),
                         (["-L"], _mig.parse_list), (["mig", "-lgip"], _mig.parse_lgip)):
        out = subprocess.run([FAKE] + argv, capture_output=True, text=True, check=True).stdout
        assert parser(out), argv
