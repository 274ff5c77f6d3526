# SPDX-License-Identifier: Apache-2.0
"""Unit tests of plugins/module_utils/_mig.py: the parsers on recorded nvidia-smi outputs
(tests/fixtures/gpu/mig/, sources in its README), the profile table and the validity
check, named layouts, and the plan."""

from __future__ import annotations

import os

import pytest

from ansible_collections.kubegpu.cluster.plugins.module_utils import _mig

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "gpu", "mig")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


# ------------------------------------------------------------------ parsers

def test_parse_lgi_guide_3211_geometry():
    rows = _mig.parse_lgi(fixture("a100-40gb-lgi-3211.txt"))
    assert [(r["profile"], r["profile_id"], r["gi_id"], r["placement"]) for r in rows] == [
        ("1g.5gb", 19, 7, "0:1"), ("1g.5gb", 19, 8, "1:1"), ("2g.10gb", 14, 4, "2:2"), ("3g.20gb", 9, 2, "4:4")]
    assert all(r["gpu"] == 0 for r in rows)


def test_parse_lgi_none_found():
    assert _mig.parse_lgi(fixture("lgi-none.txt")) == []


def test_parse_lci_guide_sub_compute_instances():
    rows = _mig.parse_lci(fixture("a100-40gb-lci-gi1.txt"))
    assert [(r["gpu"], r["gi_id"], r["profile"], r["profile_id"], r["ci_id"]) for r in rows] == [
        (0, 1, "1c.3g.20gb", 0, 0), (0, 1, "1c.3g.20gb", 0, 1), (0, 1, "1c.3g.20gb", 0, 2)]


def test_parse_lgip_h100_nvl_capture():
    rows = _mig.parse_lgip(fixture("h100-nvl-lgip.txt"))
    assert [(r["profile"], r["id"], r["free"], r["total"]) for r in rows] == [
        ("1g.12gb", 19, 7, 7), ("1g.12gb+me", 20, 1, 1), ("1g.24gb", 15, 4, 4), ("2g.24gb", 14, 3, 3),
        ("3g.47gb", 9, 2, 2), ("4g.47gb", 5, 1, 1), ("7g.94gb", 0, 1, 1)]
    assert rows[-1]["memory_gib"] == pytest.approx(92.62)


def test_lgip_capture_agrees_with_the_table():
    """The recorded H100 NVL -lgip lists exactly the H100-94GB profiles and counts."""
    rows = _mig.parse_lgip(fixture("h100-nvl-lgip.txt"))
    table = _mig.PRODUCTS["H100-94GB"]["profiles"]
    assert dict((r["profile"], r["total"]) for r in rows) == dict((k, v["max"]) for k, v in table.items())


def test_parse_list_guide_eight_gpus():
    gpus = _mig.parse_list(fixture("a100-40gb-8gpu-L.txt"))
    assert [g["index"] for g in gpus] == list(range(8))
    assert gpus[0]["name"] == "A100-SXM4-40GB"
    assert [d["profile"] for d in gpus[0]["mig_devices"]] == ["1g.5gb"] * 7
    assert [d["profile"] for d in gpus[6]["mig_devices"]] == ["1c.7g.40gb", "2c.7g.40gb", "3c.7g.40gb"]
    assert [d["profile"] for d in gpus[7]["mig_devices"]] == ["4g.20gb", "2g.10gb", "1g.5gb"]
    assert gpus[7]["mig_devices"][2] == {"profile": "1g.5gb", "device": 2, "gi_id": None, "ci_id": None,
                                         "uuid": "MIG-83e71a6c-f0c3-5dfc-8577-6e8b17885e1f"}


def test_parse_list_h100_captures():
    nvl = _mig.parse_list(fixture("h100-nvl-L.txt"))
    assert nvl[0]["name"] == "NVIDIA H100 NVL" and nvl[0]["uuid"] == "GPU-f4548330-27be-041a-ad8e-95b3005644b8"
    assert [d["device"] for d in nvl[0]["mig_devices"]] == list(range(7))
    r570 = _mig.parse_list(fixture("h100-80gb-L-r570.txt"))
    assert [d["profile"] for d in r570[0]["mig_devices"]] == ["1c.3g.40gb"] * 3 + ["1g.10gb"] * 2


def test_parse_list_old_uuid_form_carries_ids():
    text = "GPU 0: A100-SXM4-40GB (UUID: GPU-e86cb44c-6756-fd30-cd4a-1e6da3caf9b0)\n" \
           "  MIG 3g.20gb Device 0: (UUID: MIG-GPU-e86cb44c-6756-fd30-cd4a-1e6da3caf9b0/1/0)\n"
    device = _mig.parse_list(text)[0]["mig_devices"][0]
    assert (device["profile"], device["gi_id"], device["ci_id"]) == ("3g.20gb", 1, 0)


def test_parse_mode_query():
    text = ("0, NVIDIA A100-SXM4-80GB, 0x20B210DE, GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77, Enabled, Enabled\n"
            "1, NVIDIA A100-SXM4-80GB, 0x20B210DE, GPU-0aa11ebd-627f-af3f-1a0d-4e1fd92fd7b0, Disabled, Enabled\n"
            "2, Tesla T4, 0x1EB810DE, GPU-71086aca-c858-d1e0-aae1-275bed1008b9, [N/A], [N/A]\n")
    gpus = _mig.parse_mode_query(text)
    assert [(g["index"], g["device_id"], g["mode_current"], g["mode_pending"]) for g in gpus] == [
        (0, "20b2", "enabled", "enabled"), (1, "20b2", "disabled", "enabled"), (2, "1eb8", None, None)]


# ------------------------------------------------------------------ products and validity

@pytest.mark.parametrize("name, device, product", [
    ("NVIDIA A100-SXM4-80GB", "0x20B210DE", "A100-80GB"),
    ("NVIDIA A100-SXM4-40GB", None, "A100-40GB"),
    ("NVIDIA A100 80GB PCIe", None, "A100-80GB"),
    ("NVIDIA A30", None, "A30-24GB"),
    ("NVIDIA H100 80GB HBM3", "2330", "H100-80GB"),
    ("NVIDIA H100 NVL", None, "H100-94GB"),
    ("NVIDIA H200", "0x233510DE", "H200-141GB"),
    ("NVIDIA H20", None, "H100-96GB"),
    ("NVIDIA B200", "2901", "B200-180GB"),
    ("Tesla T4", "1eb8", None),
])
def test_product_for(name, device, product):
    assert _mig.product_for(name, device) == product


@pytest.mark.parametrize("product, profiles, fits", [
    ("A100-80GB", ["1g.10gb"] * 7, True),
    ("A100-80GB", ["1g.10gb"] * 8, False),
    ("A100-80GB", ["4g.40gb", "3g.40gb"], True),
    ("A100-80GB", ["3g.40gb", "3g.40gb"], True),
    ("A100-80GB", ["3g.40gb", "3g.40gb", "1g.10gb"], False),     # 9 memory slices
    ("A100-80GB", ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"], True),
    ("A100-80GB", ["2g.20gb", "2g.20gb", "2g.20gb", "1g.10gb"], True),
    ("A100-80GB", ["4g.40gb", "2g.20gb", "2g.20gb"], False),     # 8 compute slices
    ("A100-80GB", ["1g.20gb"] * 4, True),
    ("A100-80GB", ["1g.20gb"] * 5, False),
    ("A100-80GB", ["7g.80gb"], True),
    ("A100-80GB", ["7g.80gb", "1g.10gb"], False),
    ("A100-80GB", ["1g.5gb"], False),                            # an A100 40GB profile
    ("A100-40GB", ["1g.10gb"] * 4, True),
    ("A100-40GB", ["1g.10gb", "1g.10gb", "1g.10gb", "1g.5gb", "1g.5gb"], True),    # 1g.10gb at 0, 2, 6
    ("A100-40GB", ["1g.10gb"] * 4 + ["1g.5gb"], False),                         # 9 memory slices
    ("A30-24GB", ["2g.12gb", "1g.6gb", "1g.6gb"], True),
    ("A30-24GB", ["2g.12gb", "2g.12gb", "1g.6gb"], False),
    ("H100-80GB", ["1g.10gb+me", "1g.10gb+me"], False),
    ("H200-141GB", ["3g.71gb", "2g.35gb", "1g.18gb", "1g.18gb"], True),
    ("H200-141GB", ["1g.35gb"] * 4, True),
    ("B200-180GB", ["4g.90gb", "3g.90gb"], True),
    ("B200-180GB", ["7g.180gb", "7g.180gb"], False),
])
def test_layout_problems(product, profiles, fits):
    problems = _mig.layout_problems(product, profiles)
    assert (problems == []) is fits, problems


def test_layout_problems_say_why():
    assert _mig.layout_problems("A100-80GB", ["1g.10gb"] * 8) == [
        "8 x 1g.10gb asked, the A100 80GB holds at most 7",
        "1g.10gb + 1g.10gb + 1g.10gb + 1g.10gb + 1g.10gb + 1g.10gb + 1g.10gb + 1g.10gb use 8 compute slices, "
        "the A100 80GB has 7"]
    assert "has no MIG profile 1g.5gb" in _mig.layout_problems("A100-80GB", ["1g.5gb"])[0]
    assert _mig.layout_problems("T4", ["1g.5gb"])[0].startswith("no MIG profiles are known")


def test_placement_search():
    """Starts of the guide's -lgipp: two 3g on 0 and 4, a 4g only at 0."""
    shapes = _mig.PLACEMENTS[8]
    assert _mig._place([(4, 4), (3, 4)], shapes, set(), 8)
    assert not _mig._place([(4, 4), (4, 4)], shapes, set(), 8)
    assert not _mig._place([(2, 2)] * 4, shapes, set(), 8)        # 2g starts at 0, 2, 4 only
    assert _mig._place([(1, 2)] * 4, shapes, set(), 8)


def test_slice_counts_and_placement_agree_on_every_combination():
    """For the products' shapes, every set within the instance and slice limits also has a
    placement: the search never refuses what the counts allow (it stays as the last check)."""
    import itertools
    for key, spec in _mig.PRODUCTS.items():
        for size in range(1, spec["compute_slices"] + 1):
            for combo in itertools.combinations_with_replacement(sorted(spec["profiles"]), size):
                problems = _mig.layout_problems(key, list(combo))
                assert not any("placement" in p for p in problems), (key, combo)


def test_every_balanced_layout_fits_its_product():
    for key, spec in _mig.PRODUCTS.items():
        assert _mig.layout_problems(key, list(spec["balanced"])) == [], key


def test_every_all_profile_layout_fits_its_product():
    """mig-parted's all-<profile> = the profile as many times as the product holds it."""
    for key, spec in _mig.PRODUCTS.items():
        for profile in spec["profiles"]:
            name = "all-" + profile.replace("+", ".")
            assert _mig.layout_problems(key, _mig.named_layout(name, key)) == [], (key, name)


@pytest.mark.parametrize("name, product, expected", [
    ("all-disabled", "A100-80GB", None),
    ("all-enabled", "A100-80GB", []),
    ("all-1g.10gb", "A100-80GB", ["1g.10gb"] * 7),
    ("all-1g.10gb", "A100-40GB", ["1g.10gb"] * 4),          # mig-parted: 4 on the 40GB filter
    ("all-1g.10gb.me", "H100-80GB", ["1g.10gb+me"]),
    ("all-1g.35gb", "H200-141GB", ["1g.35gb"] * 4),
    ("all-balanced", "A100-80GB", ["1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"]),
    ("all-balanced", "A30-24GB", ["1g.6gb", "1g.6gb", "2g.12gb"]),
])
def test_named_layout(name, product, expected):
    assert _mig.named_layout(name, product) == expected


def test_named_layout_refusals():
    with pytest.raises(_mig.MigError, match="does not have"):
        _mig.named_layout("all-1g.5gb", "A100-80GB")
    with pytest.raises(_mig.MigError, match="not a MIG layout name"):
        _mig.named_layout("half-and-half", "A100-80GB")
    assert _mig.is_known_layout_name("all-3g.71gb")
    assert not _mig.is_known_layout_name("all-9g.1tb")


GPUS = [{"index": 0, "name": "NVIDIA A100-SXM4-80GB", "device_id": "20b2"},
        {"index": 1, "name": "NVIDIA A100-SXM4-80GB", "device_id": "20b2"}]


def test_desired_layout_forms():
    desired, problems = _mig.desired_layout(
        [["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"], {"4g.40gb": 1, "3g.40gb": 1}], GPUS)
    assert problems == []
    assert desired == {0: ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"], 1: ["3g.40gb", "4g.40gb"]}
    desired, problems = _mig.desired_layout(["disabled", "all-7g.80gb"], GPUS)
    assert desired == {0: None, 1: ["7g.80gb"]} and problems == []
    assert _mig.desired_layout("", GPUS) == ({}, [])


def test_desired_layout_refusals():
    assert "lists 1 GPU(s), the host has 2" in _mig.desired_layout([["1g.10gb"]], GPUS)[1][0]
    assert "not a MIG layout name" in _mig.desired_layout("all-nonsense", GPUS)[1][0]
    _layout, problems = _mig.desired_layout([["1g.10gb"] * 8, "all-1g.5gb"], GPUS)
    assert problems[0].startswith("GPU 0 (NVIDIA A100-SXM4-80GB): 8 x 1g.10gb asked")
    assert problems[-1].startswith("GPU 1 (NVIDIA A100-SXM4-80GB): all-1g.5gb names profile 1g.5gb")
    _layout, problems = _mig.desired_layout("all-1g.10gb", [{"index": 0, "name": "Tesla T4", "device_id": "1eb8"}])
    assert "knows no MIG profiles" in problems[0]
    # MIG off is always possible, even where kubegpu knows no profiles.
    assert _mig.desired_layout("all-disabled", [{"index": 0, "name": "Tesla T4"}]) == ({0: None}, [])


# ------------------------------------------------------------------ plan

def _reading(mode="enabled", pending=None, lgi="", lci=""):
    mode_gpus = [{"index": 0, "name": "NVIDIA A100-SXM4-40GB", "device_id": "20b0", "uuid": None,
                  "mode_current": mode, "mode_pending": pending or mode}]
    return _mig.current_layout(mode_gpus, _mig.parse_lgi(lgi), _mig.parse_lci(lci))


def _full_cis(lgi_text):
    """-lci rows for one full compute instance per GPU instance of a -lgi reading."""
    rows = []
    for gi in _mig.parse_lgi(lgi_text):
        rows.append({"gpu": gi["gpu"], "gi_id": gi["gi_id"], "profile": gi["profile"], "profile_id": 0,
                     "ci_id": 0, "placement": None})
    return rows


def test_plan_nothing_when_matching():
    lgi = fixture("a100-40gb-lgi-3211.txt")
    current = _mig.current_layout(
        [{"index": 0, "name": "NVIDIA A100-SXM4-40GB", "mode_current": "enabled", "mode_pending": "enabled"}],
        _mig.parse_lgi(lgi), _full_cis(lgi))
    assert _mig.plan(current, {0: ["3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"]}) == {}
    assert _mig.describe(current) == "GPU 0 (NVIDIA A100-SXM4-40GB): MIG enabled: 3g.20gb, 2g.10gb, 1g.5gb, 1g.5gb\n"


def test_plan_enable_and_create_from_disabled():
    steps = _mig.plan(_reading(mode="disabled"), {0: ["1g.5gb", "3g.20gb"]})
    assert steps == {0: [("mode", 1), ("create", ["3g.20gb", "1g.5gb"])]}
    assert _mig.command("nvidia-smi", 0, steps[0][1]) == ["nvidia-smi", "mig", "-i", "0", "-cgi", "3g.20gb,1g.5gb", "-C"]


def test_plan_rebuild_when_sub_compute_instances():
    """GI 1 split into three 1c CIs (the guide's -lci example) is not the wanted layout."""
    steps = _mig.plan(_reading(lgi=fixture("a100-40gb-lgi-3g3g.txt"), lci=fixture("a100-40gb-lci-gi1.txt")),
                      {0: ["3g.20gb", "3g.20gb"]})
    assert steps == {0: [("destroy_ci", None), ("destroy_gi", None), ("create", ["3g.20gb", "3g.20gb"])]}


def test_plan_disable():
    steps = _mig.plan(_reading(lgi=fixture("a100-40gb-lgi-3g3g.txt")), {0: None})
    assert steps == {0: [("destroy_gi", None), ("mode", 0)]}
    assert _mig.plan(_reading(mode="disabled"), {0: None}) == {}


def test_plan_pending_mode_is_not_matching():
    assert _mig.plan(_reading(mode="disabled", pending="enabled"), {0: []}) == {0: [("mode", 1)]}
    assert _mig.state_of(_reading(mode="disabled", pending="enabled"), {0: []}) == _mig.STATE_PENDING
