# SPDX-License-Identifier: Apache-2.0
"""Verify of the day2 scenario: what add_node did, read from the recording fakes.

The fakes (tests/fakes/kubeadm, kubectl) append every call to calls.jsonl in their
shared state directory, which this controller sees at $KUBEGPU_DAY2_FAKE_DIR. The
record holds converge AND idempotence (prepare cleared it), so each assertion about
"once" also says the second run touched nothing. Proves order and scope against
fakes only: no real cluster, kubelet or GPU is involved.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

STATE = Path(os.environ.get("KUBEGPU_DAY2_FAKE_DIR", "/tmp/kubegpu-molecule-day2"))
EXISTING = ("cp1", "w1")


@pytest.fixture(scope="module")
def calls():
    path = STATE / "calls.jsonl"
    if not path.exists():
        pytest.fail("no call record at %s: did prepare and converge run?" % path)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _kubectl(call):
    """kubectl's arguments without --kubeconfig <file>, or None for other programs."""
    argv = call["argv"]
    if argv[:1] != ["kubectl"]:
        return None
    args = argv[1:]
    if "--kubeconfig" in args:
        index = args.index("--kubeconfig")
        del args[index:index + 2]
    return args


def _node_verbs(calls):
    """(index, verb, node) for every call that acts on one node, in order."""
    out = []
    for index, call in enumerate(calls):
        args = _kubectl(call)
        if args is None:
            continue
        if args[:1] in (["cordon"], ["uncordon"], ["drain"]):
            out.append((index, args[0], args[1]))
        elif args[:2] in (["annotate", "node"], ["patch", "node"], ["delete", "node"]):
            out.append((index, args[0], args[2]))
        elif args[:2] == ["create", "-f"]:
            match = re.search(r"nvidia-smi-(.+)\.yaml$", args[2])
            if match:
                out.append((index, "job", match.group(1)))
    return out


def _first(verbs, verb, node):
    found = [index for index, v, n in verbs if v == verb and n == node]
    assert found, "no %s for %s in %s" % (verb, node, [(v, n) for _i, v, n in verbs])
    return found[0]


def test_gpu2_joined_once_then_cordoned_before_labels_job_and_uncordon(calls):
    joins = [i for i, c in enumerate(calls) if c["argv"][:1] == ["join"]]
    assert [calls[i]["host"] for i in joins] == ["gpu2"], "exactly one join, on gpu2, over both runs"
    verbs = _node_verbs(calls)
    cordon = _first(verbs, "cordon", "gpu2")
    assert calls[cordon]["host"] == "cp1", "the cordon comes from the first control plane"
    assert joins[0] < cordon
    order = [cordon, _first(verbs, "annotate", "gpu2"), _first(verbs, "drain", "gpu2"),
             _first(verbs, "patch", "gpu2"), _first(verbs, "job", "gpu2"), _first(verbs, "uncordon", "gpu2")]
    assert order == sorted(order), [(v, n) for _i, v, n in verbs]
    # once each: the idempotence run added nothing
    for verb in ("cordon", "drain", "job", "uncordon"):
        assert len([1 for _i, v, n in verbs if (v, n) == (verb, "gpu2")]) == 1, verb


def test_existing_nodes_untouched(calls):
    verbs = _node_verbs(calls)
    assert [(v, n) for _i, v, n in verbs if n in EXISTING] == []
    assert [c["argv"] for c in calls if c["host"] == "w1"] == [], "no kubeadm or kubectl call ran on w1"
    on_cp1 = [c["argv"][:2] for c in calls if c["host"] == "cp1" and c["argv"][:1] != ["kubectl"]]
    assert on_cp1 == [["token", "create"]], "cp1 only made gpu2's join token"
    # nodes: cp1 and w1 as prepared, gpu2 once
    assert (STATE / "nodes").read_text().split() == ["cp1", "w1", "gpu2"]


def test_gpu2_ends_schedulable_labelled_and_without_the_pending_mark():
    state = json.loads((STATE / "node-state.json").read_text())
    gpu2 = state["gpu2"]
    assert not gpu2.get("unschedulable")
    assert "kubegpu.io/add-node" not in gpu2.get("annotations", {})
    assert gpu2.get("labels"), "gpu_node_labels did not label gpu2"
    for node in EXISTING:
        assert not state.get(node, {}).get("unschedulable"), node
