# SPDX-License-Identifier: Apache-2.0
"""The metallb stage (issue #18 item 2): its pool rules, the objects it renders, and MetalLB's
controller on the simulated control plane.

- the pool objects the role writes (filter metallb_pool_objects over the role's variables) are
  validated against the openAPIV3Schema of the CRDs in the stand-in tests/sim/manifests/metallb-
  native.yaml, whose fields and types follow metallb v0.16.1's api/v1beta1 types;
- on the simulated API server, with the REAL kubectl: the stand-in manifest and the pools are
  applied server-side, a LoadBalancer Service (the Jupyter example's) is created, and the
  simulated MetalLB controller (tests/sim/kubegpu_sim/metallb.py) gives it the first free
  address of the pool; kubectl reads it back; a second pass changes nothing; a Service that
  becomes ClusterIP gives its address back.
"""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _network as n
from ansible_collections.kubegpu.cluster.tests.unit.sim.conftest import cluster  # noqa: F401 pylint: disable=unused-import
from ansible_collections.kubegpu.cluster.tests.unit.compat import trust_as_template
from ansible_collections.kubegpu.cluster.tests.unit.test_k8s_render import EXAMPLE, Renderer

ROOT = Path(__file__).resolve().parents[3]
STAND_IN = ROOT / "tests" / "sim" / "manifests" / "metallb-native.yaml"
JUPYTER = ROOT / "examples" / "jupyter-tensorflow-gpu" / "tf-notebook-lb.yaml"
POOLS = [{"name": "default", "addresses": ["10.10.0.240-10.10.0.250"]},
         {"name": "reserved", "addresses": ["10.10.1.0/28"], "auto_assign": False}]


def _crd_schemas():
    schemas = {}
    for doc in yaml.safe_load_all(STAND_IN.read_text(encoding="utf-8")):
        if doc and doc["kind"] == "CustomResourceDefinition":
            version = doc["spec"]["versions"][0]
            schemas[doc["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return schemas


def _role_objects(pools, interfaces=()):
    renderer = Renderer(EXAMPLE, "metallb", overrides={"metallb_address_pools": pools,
                                                       "metallb_l2_interfaces": list(interfaces)})
    return renderer.expr("cp1", "metallb_address_pools | kubegpu.cluster.metallb_pool_objects(metallb_l2_interfaces)")


def _role_pools_file(pools):
    """The content tasks/install.yml writes to metallb-pools.yaml, templated from the task itself."""
    tasks = yaml.safe_load((ROOT / "roles" / "metallb" / "tasks" / "install.yml").read_text(encoding="utf-8"))
    (task,) = [t for t in tasks if t["name"] == "Write the address pools and their L2 advertisement"]
    content = task["kubegpu.cluster.host_files"]["files"][0]["content"]
    renderer = Renderer(EXAMPLE, "metallb", overrides={"metallb_enabled": True, "metallb_address_pools": pools})
    return renderer.templar("cp1").template(trust_as_template(content))


def test_the_stand_in_has_the_upstream_pieces():
    docs = [d for d in yaml.safe_load_all(STAND_IN.read_text(encoding="utf-8")) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Namespace", "metallb-system"), ("CustomResourceDefinition", "ipaddresspools.metallb.io"),
            ("CustomResourceDefinition", "l2advertisements.metallb.io"), ("Deployment", "controller"),
            ("DaemonSet", "speaker")} <= kinds
    images = [c["image"] for d in docs if d["kind"] in ("Deployment", "DaemonSet")
              for c in d["spec"]["template"]["spec"]["containers"]]
    assert images == ["quay.io/metallb/controller:v0.16.1", "quay.io/metallb/speaker:v0.16.1"]


def test_pool_objects_match_the_crd_schemas():
    schemas = _crd_schemas()
    objects = _role_objects(POOLS, ["eth0"])
    assert [o["kind"] for o in objects] == ["IPAddressPool", "IPAddressPool", "L2Advertisement"]
    for obj in objects:
        jsonschema.validate(obj, schemas[obj["kind"]])
        assert obj["metadata"]["namespace"] == "metallb-system"
    assert objects[1]["spec"] == {"addresses": ["10.10.1.0/28"], "autoAssign": False}
    assert objects[2]["spec"] == {"ipAddressPools": ["default", "reserved"], "interfaces": ["eth0"]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {},
                             "spec": {"addresses": "10.0.0.1/32"}}, schemas["IPAddressPool"])


def test_role_defaults_are_off_and_pinned():
    renderer = Renderer(EXAMPLE, "metallb")
    assert renderer.expr("cp1", "metallb_enabled") is False
    assert renderer.expr("cp1", "metallb_manifest_url") == \
        "https://raw.githubusercontent.com/metallb/metallb/v0.16.1/config/manifests/metallb-native.yaml"
    assert renderer.expr("cp1", "_metallb_problems") == []
    on = Renderer(EXAMPLE, "metallb", overrides={"metallb_enabled": True})
    assert [p["variable"] for p in on.expr("cp1", "_metallb_problems")] == ["metallb_address_pools"]
    assert Renderer(EXAMPLE, "metallb", overrides={"metallb_enabled": True, "metallb_address_pools": POOLS}) \
        .expr("cp1", "_metallb_problems") == []


CIDRS = {"kubegpu_pod_cidr": "192.168.0.0/16", "kubegpu_service_cidr": "10.96.0.0/12"}


@pytest.mark.parametrize("pools, fragment", [
    ({"name": "x"}, "must be a list of pools, got dict"),
    (["10.0.0.0/24"], "pool 1 is a str, not a mapping"),
    ([{"name": "Default", "addresses": ["10.0.0.0/28"]}], "pool 1: name 'Default' has upper-case letters"),
    ([{"name": "a", "addresses": []}], "pool a: addresses must be a non-empty list"),
    ([{"name": "a", "addresses": ["10.0.0.1/24"]}], "pool a: '10.0.0.1/24' has host bits set (the network is 10.0.0.0/24)"),
    ([{"name": "a", "addresses": ["10.0.0.9-10.0.0.1"]}], "pool a: '10.0.0.9-10.0.0.1' starts after it ends"),
    ([{"name": "a", "addresses": ["10.0.0.1-fd00::1"]}], "pool a: '10.0.0.1-fd00::1' mixes IPv4 and IPv6"),
    ([{"name": "a", "addresses": ["10.0.0.1-10.0.0.x"]}], "is not a range of two IP addresses"),
    ([{"name": "a", "addresses": ["10.0.0.0/28"]}, {"name": "b", "addresses": ["10.0.0.10-10.0.0.20"]}],
     "pool b: 10.0.0.10-10.0.0.20 overlaps 10.0.0.0/28 of pool a"),
    ([{"name": "a", "addresses": ["10.0.0.0/28"]}, {"name": "a", "addresses": ["10.0.1.0/28"]}],
     "pool a is listed twice"),
    ([{"name": "a", "addresses": ["10.96.0.0/28"]}], "pool a: 10.96.0.0/28 overlaps kubegpu_service_cidr 10.96.0.0/12"),
    ([{"name": "a", "addresses": ["192.168.5.1-192.168.5.9"]}], "overlaps kubegpu_pod_cidr 192.168.0.0/16"),
    ([{"name": "a", "addresses": ["10.0.0.0/28"]}], "pool a: 10.0.0.0/28 holds the control-plane VIP 10.0.0.5"),
    ([{"name": "a", "addresses": ["10.0.0.0/28"], "autoassign": False}], "pool a: unknown key(s) autoassign"),
])
def test_pool_problems(pools, fragment):
    found = n.metallb_pool_problems(pools, CIDRS, "10.0.0.5")
    assert any(fragment in p["problem"] for p in found), found
    assert all(p["variable"] == "metallb_address_pools" and p["fix"] for p in found)


def test_good_pools_pass():
    assert n.metallb_pool_problems(POOLS, CIDRS, "10.10.0.5") == []
    assert n.metallb_pool_problems([], CIDRS) == []
    assert n.metallb_enabled_problems(True, [])[0]["problem"].startswith("empty while metallb_enabled is true")
    assert n.metallb_enabled_problems(False, []) == []


# --- on the simulated API server ---------------------------------------------------------------

def _svc(cluster, name):  # noqa: F811
    return json.loads(cluster.kubectl("get", "service", name, "-o", "json").stdout)


def test_the_jupyter_service_gets_an_address_from_the_pool(cluster, tmp_path):  # noqa: F811
    import kubegpu_sim.metallb as sim_metallb

    cluster.kubectl("apply", "--server-side", "-f", str(STAND_IN))
    cluster.kubectl("wait", "--for=condition=Established", "crd/ipaddresspools.metallb.io", "--timeout=30s")
    pools = tmp_path / "pools.yaml"
    pools.write_text(_role_pools_file(POOLS), encoding="utf-8")
    cluster.kubectl("apply", "--server-side", "-f", str(pools))
    assert cluster.kubectl("diff", "--server-side", "-f", str(pools), check=False).returncode == 0
    listed = json.loads(cluster.kubectl("-n", "metallb-system", "get", "ipaddresspools,l2advertisements",
                                        "-o", "json").stdout)["items"]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in listed) == [
        ("IPAddressPool", "default"), ("IPAddressPool", "reserved"), ("L2Advertisement", "kubegpu")]
    services = [d for d in yaml.safe_load_all(JUPYTER.read_text(encoding="utf-8")) if d and d["kind"] == "Service"]
    assert [s["spec"]["type"] for s in services] == ["LoadBalancer"]
    service = dict(services[0], metadata=dict(services[0]["metadata"], namespace="default"))
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(yaml.safe_dump(service), encoding="utf-8")
    cluster.kubectl("apply", "--server-side", "-f", str(manifest))
    name = service["metadata"]["name"]

    api = cluster.client()
    assert sim_metallb.reconcile(api) == ["assigned 10.10.0.240 to default/%s from pool default" % name]
    got = _svc(cluster, name)
    assert got["status"]["loadBalancer"]["ingress"] == [{"ip": "10.10.0.240"}]
    assert got["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"] == "default"
    assert sim_metallb.reconcile(api) == []

    cluster.kubectl("patch", "service", name, "--type=merge", "-p", '{"spec":{"type":"ClusterIP"}}')
    assert sim_metallb.reconcile(api) == ["released default/%s" % name]
    got = _svc(cluster, name)
    assert not got["status"].get("loadBalancer", {}).get("ingress")
    assert "metallb.io/ip-allocated-from-pool" not in (got["metadata"].get("annotations") or {})
