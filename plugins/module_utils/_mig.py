# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""MIG (Multi-Instance GPU) layouts: read, validate, plan.

Host code, standard library only (the module kubegpu.cluster.mig_layout runs it on the
GPU host; preflight calls the same validity function on the controller through
plugins/plugin_utils/_mig_plan.py).

- Parsers for ``nvidia-smi mig -lgip``, ``mig -lgi``, ``mig -lci``, ``nvidia-smi -L`` and the
  MIG-mode CSV query (``QUERY_ARGS``). Formats as printed in NVIDIA's MIG User Guide,
  "Getting Started with MIG" (https://docs.nvidia.com/datacenter/tesla/mig-user-guide/
  getting-started-with-mig.html: -lgi, -lci, -cgi, -L examples) and "MIG Device Names"
  (mig-device-names.html: the -L listing of R470+ drivers); see
  tests/fixtures/gpu/mig/README.md for each fixture's source.
- ``PRODUCTS``: the GPU-instance profiles each product supports, from the guide's
  "Supported MIG Profiles" (https://docs.nvidia.com/datacenter/tesla/mig-user-guide/
  supported-mig-profiles.html, tables "GPU Instance Profiles on A30/A100/H100/H200/B200";
  the A100 80GB names from the note under the A100 table), with the PCI device ids
  NVIDIA's mig-parted groups them by (github:NVIDIA/mig-parted
  deployments/systemd/config-default.yaml, ``device-filter`` lists and their comments).
- Named layouts as mig-parted's default config names them (same file): ``all-disabled``,
  ``all-enabled`` (MIG on, no instances), ``all-<profile>`` (that profile as many times as
  the GPU holds it; ``+`` written ``.``, e.g. ``all-1g.10gb.me`` = one ``1g.10gb+me``), and
  ``all-balanced`` (2 x 1g, 1 x 2g, 1 x 3g of the product's smallest memory size).
- ``layout_problems``: whether a product can hold a list of profiles (per-profile
  instance limits, 7 compute / 8 memory slices, and a placement for every instance).
- ``plan``: per GPU, the nvidia-smi steps from the current reading to the desired layout.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# nvidia-smi CSV query for the MIG mode (fields documented in `nvidia-smi --help-query-gpu`).
QUERY_FIELDS = ("index", "name", "pci.device_id", "uuid", "mig.mode.current", "mig.mode.pending")
QUERY_ARGS = ("--query-gpu=" + ",".join(QUERY_FIELDS), "--format=csv,noheader")

# mig-manager's values of the node label nvidia.com/mig.config.state
# (github:NVIDIA/mig-parted deployments/container/reconfigure-mig.sh: __set_state_and_exit
# "success"/"failed", "pending" while it works, "rebooting" before it reboots the host).
STATE_SUCCESS = "success"
STATE_FAILED = "failed"
STATE_PENDING = "pending"

DISABLED = "disabled"


class MigError(Exception):
    pass


def _p(compute, memory, count):
    return {"compute": compute, "memory": memory, "max": count}


# Profile name -> compute slices, memory slices, most instances. Memory slices are the
# "Fraction of Memory" column in eighths (quarters on the A30); where the guide's table
# says 1/8 for the A100 40GB's 1g.10gb, its placement list (`nvidia-smi mig -lgipp`,
# profile 15: "{0,2,4,6}:2") shows 2 slices, which is used.
PRODUCTS = {
    "A30-24GB": {
        "label": "A30 24GB", "compute_slices": 4, "memory_slices": 4,
        "device_ids": ("20b7",), "balanced": ("1g.6gb", "1g.6gb", "2g.12gb"),
        "profiles": {
            "1g.6gb": _p(1, 1, 4), "1g.6gb+me": _p(1, 1, 1), "2g.12gb": _p(2, 2, 2),
            "2g.12gb+me": _p(2, 2, 1), "4g.24gb": _p(4, 4, 1),
        },
    },
    "A100-40GB": {
        "label": "A100 40GB", "compute_slices": 7, "memory_slices": 8,
        "device_ids": ("20b0", "20b1", "20f1", "20f6"), "balanced": ("1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"),
        "profiles": {
            "1g.5gb": _p(1, 1, 7), "1g.5gb+me": _p(1, 1, 1), "1g.10gb": _p(1, 2, 4), "2g.10gb": _p(2, 2, 3),
            "3g.20gb": _p(3, 4, 2), "4g.20gb": _p(4, 4, 1), "7g.40gb": _p(7, 8, 1),
        },
    },
    "A100-80GB": {
        "label": "A100 80GB", "compute_slices": 7, "memory_slices": 8,
        "device_ids": ("20b2", "20b5", "20f3", "20f5"), "balanced": ("1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"),
        "profiles": {
            "1g.10gb": _p(1, 1, 7), "1g.10gb+me": _p(1, 1, 1), "1g.20gb": _p(1, 2, 4), "2g.20gb": _p(2, 2, 3),
            "3g.40gb": _p(3, 4, 2), "4g.40gb": _p(4, 4, 1), "7g.80gb": _p(7, 8, 1),
        },
    },
    "H100-80GB": {
        "label": "H100 80GB", "compute_slices": 7, "memory_slices": 8,
        "device_ids": ("2330", "2331", "2322", "2324"), "balanced": ("1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"),
        "profiles": {
            "1g.10gb": _p(1, 1, 7), "1g.10gb+me": _p(1, 1, 1), "1g.20gb": _p(1, 2, 4), "2g.20gb": _p(2, 2, 3),
            "3g.40gb": _p(3, 4, 2), "4g.40gb": _p(4, 4, 1), "7g.80gb": _p(7, 8, 1),
        },
    },
    # H100 NVL / 94GB: the guide names the table without rows in the copy read; the profile
    # names and counts are those of a real `nvidia-smi mig -lgip` of an H100 NVL (driver
    # 550.127.06, tests/fixtures/gpu/mig/h100-nvl-lgip.txt), matching mig-parted's
    # all-*gb configs commented "H100 NVL, H800 NVL".
    "H100-94GB": {
        "label": "H100 94GB (NVL)", "compute_slices": 7, "memory_slices": 8,
        "device_ids": ("2321", "233a"), "balanced": ("1g.12gb", "1g.12gb", "2g.24gb", "3g.47gb"),
        "profiles": {
            "1g.12gb": _p(1, 1, 7), "1g.12gb+me": _p(1, 1, 1), "1g.24gb": _p(1, 2, 4), "2g.24gb": _p(2, 2, 3),
            "3g.47gb": _p(3, 4, 2), "4g.47gb": _p(4, 4, 1), "7g.94gb": _p(7, 8, 1),
        },
    },
    # H100 96GB (GH200) and H20: mig-parted's all-balanced filter "H100-96GB, PG506-96GB,
    # GH200, H20" and its all-3g.48gb / all-4g.48gb / all-7g.96gb configs.
    "H100-96GB": {
        "label": "H100 96GB / H20", "compute_slices": 7, "memory_slices": 8,
        "device_ids": ("2342", "233d", "20b6", "2329"), "balanced": ("1g.12gb", "1g.12gb", "2g.24gb", "3g.48gb"),
        "profiles": {
            "1g.12gb": _p(1, 1, 7), "1g.12gb+me": _p(1, 1, 1), "1g.24gb": _p(1, 2, 4), "2g.24gb": _p(2, 2, 3),
            "3g.48gb": _p(3, 4, 2), "4g.48gb": _p(4, 4, 1), "7g.96gb": _p(7, 8, 1),
        },
    },
    "H200-141GB": {
        "label": "H200 141GB", "compute_slices": 7, "memory_slices": 8,
        "device_ids": ("2335", "233b"), "balanced": ("1g.18gb", "1g.18gb", "2g.35gb", "3g.71gb"),
        "profiles": {
            "1g.18gb": _p(1, 1, 7), "1g.18gb+me": _p(1, 1, 1), "1g.35gb": _p(1, 2, 4), "2g.35gb": _p(2, 2, 3),
            "3g.71gb": _p(3, 4, 2), "4g.71gb": _p(4, 4, 1), "7g.141gb": _p(7, 8, 1),
        },
    },
    "B200-180GB": {
        "label": "B200 180GB", "compute_slices": 7, "memory_slices": 8,
        "device_ids": ("2901",), "balanced": ("1g.23gb", "1g.23gb", "2g.45gb", "3g.90gb"),
        "profiles": {
            "1g.23gb": _p(1, 1, 7), "1g.23gb+me": _p(1, 1, 1), "1g.45gb": _p(1, 2, 4), "2g.45gb": _p(2, 2, 3),
            "3g.90gb": _p(3, 4, 2), "4g.90gb": _p(4, 4, 1), "7g.180gb": _p(7, 8, 1),
        },
    },
}

# Where an instance of a (compute, memory) shape may start, in memory slices: the guide's
# `nvidia-smi mig -lgipp` of an A100 40GB ("Getting Started with MIG": profile 19 {0..6}:1,
# 15 {0,2,4,6}:2, 14 {0,2,4}:2, 9 {0,4}:4, 5 {0}:4, 0 {0}:8); the A30's 4-slice layout from a
# recorded A30 -lgipp (14/21 {0,1,2,3}:1, 5/6 {0,2}:2, 0 {0}:4).
PLACEMENTS = {
    8: {(1, 1): (0, 1, 2, 3, 4, 5, 6), (1, 2): (0, 2, 4, 6), (2, 2): (0, 2, 4), (3, 4): (0, 4), (4, 4): (0,),
        (7, 8): (0,)},
    4: {(1, 1): (0, 1, 2, 3), (2, 2): (0, 2), (4, 4): (0,)},
}

NAMED_PREFIX = "all-"
NAMED_FIXED = ("all-disabled", "all-enabled", "all-balanced")


def normalise_device_id(value):
    """'0x20B210DE' / '20b2' / 0x20b2 -> '20b2'."""
    if value is None:
        return None
    if isinstance(value, int):
        return "%04x" % (value & 0xFFFF)
    text = str(value).strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    if len(text) == 8:          # nvidia-smi writes device then vendor: 20B210DE
        text = text[:4]
    return text if re.match(r"^[0-9a-f]{4}$", text) else None


def product_for(name=None, device_id=None):
    """The PRODUCTS key of a GPU, by PCI device id, else by its name; None if unknown."""
    dev = normalise_device_id(device_id)
    if dev:
        for key, spec in PRODUCTS.items():
            if dev in spec["device_ids"]:
                return key
    text = (name or "").upper()
    if not text:
        return None
    if re.search(r"\bA30\b", text):
        return "A30-24GB"
    if "A100" in text or "A800" in text:
        return "A100-80GB" if "80GB" in text else "A100-40GB"
    if "B200" in text and "GB200" not in text:
        return "B200-180GB"
    if "H200" in text and "GH200" not in text:
        return "H200-141GB"
    if re.search(r"\bH20\b", text) or "GH200" in text or "96GB" in text:
        return "H100-96GB"
    if "H100" in text or "H800" in text:
        return "H100-94GB" if ("NVL" in text or "94GB" in text) else "H100-80GB"
    return None


def profile_names():
    """Every profile name of every product."""
    names = set()
    for spec in PRODUCTS.values():
        names.update(spec["profiles"])
    return names


def _named_profile(name):
    """'all-1g.10gb.me' -> '1g.10gb+me' (mig-parted writes '+' as '.' in config names)."""
    rest = name[len(NAMED_PREFIX):]
    for suffix in (".me.all", ".me", ".gfx"):
        if rest.endswith(suffix) and re.match(r"^\d+g\.\d+gb$", rest[:-len(suffix)]):
            return rest[:-len(suffix)] + "+" + suffix[1:]
    return rest


def is_known_layout_name(name):
    if not isinstance(name, str):
        return False
    if name in NAMED_FIXED:
        return True
    return name.startswith(NAMED_PREFIX) and _named_profile(name) in profile_names()


def named_layout(name, product):
    """Profiles of a named layout on one product: None for MIG disabled, a list otherwise.

    Raises MigError for an unknown name, or a name the product has no profile for."""
    if name == "all-disabled":
        return None
    if name == "all-enabled":
        return []
    if not is_known_layout_name(name):
        raise MigError("%r is not a MIG layout name (all-disabled, all-enabled, all-balanced, all-<profile>)" % name)
    spec = PRODUCTS.get(product)
    if spec is None:
        raise MigError("kubegpu knows no MIG profiles for this GPU (MIG-capable products: %s)"
                       % ", ".join(PRODUCTS[k]["label"] for k in sorted(PRODUCTS)))
    if name == "all-balanced":
        return list(spec["balanced"])
    profile = _named_profile(name)
    if profile not in spec["profiles"]:
        raise MigError("%s names profile %s, which the %s does not have (it has %s)"
                       % (name, profile, spec["label"], ", ".join(sorted(spec["profiles"], key=_size_key))))
    return [profile] * spec["profiles"][profile]["max"]


def _size_key(profile):
    match = re.match(r"^(?:(\d+)c\.)?(\d+)g\.(\d+)gb", profile)
    if not match:
        return (0, 0, profile)
    return (int(match.group(2)), int(match.group(3)), profile)


def creation_order(profiles):
    """Largest first: the guide ("Creating GPU Instances", example 2) notes 3g.20gb must be
    created before the smaller ones."""
    return sorted(profiles, key=_size_key, reverse=True)


def _place(shapes, placements, used, total):
    if not shapes:
        return True
    (compute, memory), rest = shapes[0], shapes[1:]
    for start in placements.get((compute, memory), ()):
        span = set(range(start, start + memory))
        if start + memory > total or span & used:
            continue
        if _place(rest, placements, used | span, total):
            return True
    return False


def layout_problems(product, profiles):
    """Why `product` (a PRODUCTS key) cannot hold GPU instances of `profiles` (a list of
    names, e.g. ['4g.40gb', '3g.40gb']); [] when it can. None/[] (MIG off / on, empty) fit."""
    spec = PRODUCTS.get(product)
    if spec is None:
        return ["no MIG profiles are known for this GPU (known: %s)" % ", ".join(sorted(PRODUCTS))]
    profiles = list(profiles or [])
    problems = []
    unknown = sorted(set(p for p in profiles if p not in spec["profiles"]))
    if unknown:
        problems.append("the %s has no MIG profile %s (it has %s)" % (
            spec["label"], ", ".join(unknown), ", ".join(sorted(spec["profiles"], key=_size_key))))
        return problems
    counts = {}
    for profile in profiles:
        counts[profile] = counts.get(profile, 0) + 1
    for profile in sorted(counts, key=_size_key):
        most = spec["profiles"][profile]["max"]
        if counts[profile] > most:
            problems.append("%d x %s asked, the %s holds at most %d" % (counts[profile], profile, spec["label"], most))
    compute = sum(spec["profiles"][p]["compute"] for p in profiles)
    memory = sum(spec["profiles"][p]["memory"] for p in profiles)
    if compute > spec["compute_slices"]:
        problems.append("%s use %d compute slices, the %s has %d" % (
            " + ".join(creation_order(profiles)), compute, spec["label"], spec["compute_slices"]))
    if memory > spec["memory_slices"]:
        problems.append("%s use %d memory slices, the %s has %d" % (
            " + ".join(creation_order(profiles)), memory, spec["label"], spec["memory_slices"]))
    if not problems:
        shapes = [(spec["profiles"][p]["compute"], spec["profiles"][p]["memory"]) for p in creation_order(profiles)]
        if not _place(shapes, PLACEMENTS[spec["memory_slices"]], set(), spec["memory_slices"]):
            problems.append("%s cannot be placed together on the %s (no placement fits them all)"
                            % (" + ".join(creation_order(profiles)), spec["label"]))
    return problems


def _entry_profiles(entry, product, where):
    """One GPU's desired state from a layout entry: None (MIG off) or a list of profiles."""
    if entry is None or entry == DISABLED or entry is False:
        return None
    if isinstance(entry, str):
        return named_layout(entry, product)
    if isinstance(entry, dict):
        profiles = []
        for name, count in sorted(entry.items()):
            try:
                number = int(count)
            except (TypeError, ValueError):
                raise MigError("%s: count of %s must be a whole number, got %r" % (where, name, count))
            profiles.extend([str(name)] * number)
        return profiles
    if isinstance(entry, (list, tuple)):
        return [str(p) for p in entry]
    raise MigError("%s: %r is neither a layout name, 'disabled', a list of profiles nor a profile: count mapping"
                   % (where, entry))


def desired_layout(layout, gpus):
    """Resolve a layout (a name, or a list with one entry per GPU) against the GPUs.

    gpus: [{index, name, device_id (optional), mig_capable (optional)}].
    Returns (desired, problems): desired = {index: None | [profiles]} for the GPUs the layout
    manages, problems = [text]."""
    problems = []
    desired = {}
    gpus = sorted(gpus or [], key=lambda g: g.get("index", 0))
    if layout is None or layout == "":
        return desired, problems
    if isinstance(layout, str):
        entries = [layout] * len(gpus)
        if not is_known_layout_name(layout):
            return desired, ["%r is not a MIG layout name: use all-disabled, all-enabled, all-balanced or "
                             "all-<profile> (mig-parted's names), or a list with one entry per GPU" % layout]
    elif isinstance(layout, (list, tuple)):
        entries = list(layout)
        if len(entries) != len(gpus):
            return desired, ["the layout lists %d GPU(s), the host has %d: give one entry per GPU, in index order"
                             % (len(entries), len(gpus))]
    else:
        return desired, ["the layout must be a name or a list with one entry per GPU, got %r" % (layout,)]
    for gpu, entry in zip(gpus, entries):
        index = gpu.get("index", 0)
        where = "GPU %s (%s)" % (index, gpu.get("name") or "unknown")
        product = product_for(gpu.get("name"), gpu.get("device_id"))
        try:
            profiles = _entry_profiles(entry, product, where)
        except MigError as exc:
            problems.append("%s: %s" % (where, exc))
            continue
        if profiles is None:
            desired[index] = None
            continue
        if product is None:
            problems.append("%s: kubegpu knows no MIG profiles for this GPU (MIG-capable products: %s)"
                            % (where, ", ".join(PRODUCTS[k]["label"] for k in sorted(PRODUCTS))))
            continue
        for text in layout_problems(product, profiles):
            problems.append("%s: %s" % (where, text))
        desired[index] = profiles
    return desired, problems


# ---------------------------------------------------------------- parsers

def _mode(text):
    low = (text or "").strip().lower()
    if low in ("enabled", "disabled"):
        return low
    return None


def parse_mode_query(text):
    """QUERY_ARGS output -> [{index, name, device_id, uuid, mode_current, mode_pending}].

    Non-MIG GPUs print "[N/A]" for the modes (None here)."""
    gpus = []
    for line in (text or "").splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(QUERY_FIELDS) or not fields[0].isdigit():
            continue
        gpus.append({
            "index": int(fields[0]),
            "name": fields[1],
            "device_id": normalise_device_id(fields[2]),
            "uuid": fields[3] if fields[3].startswith("GPU-") else None,
            "mode_current": _mode(fields[4]),
            "mode_pending": _mode(fields[5]),
        })
    return gpus


_ROW = re.compile(r"^\|(.*)\|\s*$")


def _rows(text):
    """Data rows of an nvidia-smi box table (after the ==== line), as cell lists."""
    rows = []
    started = False
    for line in (text or "").splitlines():
        line = line.rstrip()
        if line.startswith("|=") and line.endswith("|"):
            started = True
            continue
        if not started:
            continue
        match = _ROW.match(line)
        if match:
            rows.append(match.group(1).split())
    return rows


def _not_found(text):
    low = (text or "").lower()
    return "no gpu instances found" in low or "no compute instances found" in low or "no mig-enabled devices" in low


def parse_lgip(text):
    """`nvidia-smi mig -lgip` -> [{gpu, profile, id, free, total, memory_gib}]."""
    profiles = []
    for cells in _rows(text):
        # |   0  MIG 1g.10gb       19     7/7        9.62       No     14     1     0   |
        if len(cells) >= 6 and cells[0].isdigit() and cells[1] == "MIG" and "/" in cells[4]:
            free, total = cells[4].split("/", 1)
            try:
                memory = float(cells[5])
            except ValueError:
                memory = None
            profiles.append({"gpu": int(cells[0]), "profile": cells[2], "id": int(cells[3]),
                             "free": int(free), "total": int(total), "memory_gib": memory})
    return profiles


def parse_lgi(text):
    """`nvidia-smi mig -lgi` -> [{gpu, profile, profile_id, gi_id, placement}]."""
    if _not_found(text):
        return []
    instances = []
    for cells in _rows(text):
        # |   0  MIG 3g.20gb       9        1          4:4     |
        if len(cells) >= 6 and cells[0].isdigit() and cells[1] == "MIG":
            instances.append({"gpu": int(cells[0]), "profile": cells[2], "profile_id": int(cells[3]),
                              "gi_id": int(cells[4]), "placement": cells[5]})
    return instances


def parse_lci(text):
    """`nvidia-smi mig -lci` -> [{gpu, gi_id, profile, profile_id, ci_id, placement}]."""
    if _not_found(text):
        return []
    instances = []
    for cells in _rows(text):
        # |   0      1       MIG 1c.3g.20gb       0         0     |   (placement column on newer drivers)
        if len(cells) >= 6 and cells[0].isdigit() and cells[2] == "MIG":
            instances.append({"gpu": int(cells[0]), "gi_id": int(cells[1]), "profile": cells[3],
                              "profile_id": int(cells[4]), "ci_id": int(cells[5]),
                              "placement": cells[6] if len(cells) > 6 else None})
    return instances


_L_GPU = re.compile(r"^\s*GPU (\d+): (.*?) \(UUID: ([^)]+)\)\s*$")
_L_MIG = re.compile(r"^\s*MIG (\S+)\s+Device\s+(\d+): \(UUID: ([^)]+)\)\s*$")


def parse_list(text):
    """`nvidia-smi -L` -> [{index, name, uuid, mig_devices: [{profile, device, uuid, gi_id, ci_id}]}].

    -L gives no GPU/compute instance ids (None); the old R450 form of MIG UUIDs,
    MIG-GPU-<uuid>/<gi>/<ci>, carries them and they are read from it."""
    gpus = []
    for line in (text or "").splitlines():
        match = _L_GPU.match(line)
        if match:
            gpus.append({"index": int(match.group(1)), "name": match.group(2), "uuid": match.group(3),
                         "mig_devices": []})
            continue
        match = _L_MIG.match(line)
        if match and gpus:
            uuid = match.group(3)
            gi_id = ci_id = None
            old = re.match(r"^MIG-GPU-[0-9a-f-]+/(\d+)/(\d+)$", uuid)
            if old:
                gi_id, ci_id = int(old.group(1)), int(old.group(2))
            gpus[-1]["mig_devices"].append({"profile": match.group(1), "device": int(match.group(2)),
                                            "uuid": uuid, "gi_id": gi_id, "ci_id": ci_id})
    return gpus


# ---------------------------------------------------------------- current state and plan

def current_layout(mode_gpus, lgi=None, lci=None):
    """Merge the readings: {index: {index, name, device_id, uuid, mode_current, mode_pending,
    instances: [{gi_id, profile, placement, cis: [{ci_id, profile}]}]}}."""
    gpus = {}
    for gpu in mode_gpus:
        entry = dict(gpu)
        entry["instances"] = []
        gpus[gpu["index"]] = entry
    by_gi = {}
    for gi in lgi or []:
        if gi["gpu"] in gpus:
            instance = {"gi_id": gi["gi_id"], "profile": gi["profile"], "placement": gi["placement"], "cis": []}
            gpus[gi["gpu"]]["instances"].append(instance)
            by_gi[(gi["gpu"], gi["gi_id"])] = instance
    for ci in lci or []:
        instance = by_gi.get((ci["gpu"], ci["gi_id"]))
        if instance is not None:
            instance["cis"].append({"ci_id": ci["ci_id"], "profile": ci["profile"]})
    for gpu in gpus.values():
        gpu["instances"].sort(key=lambda i: (-_size_key(i["profile"])[0], i["gi_id"]))
    return gpus


def gpu_matches(gpu, profiles):
    """Whether one GPU's reading already is the desired state (None = MIG off)."""
    if profiles is None:
        return gpu.get("mode_current") != "enabled" and gpu.get("mode_pending") != "enabled"
    if gpu.get("mode_current") != "enabled" or gpu.get("mode_pending") != "enabled":
        return False
    have = sorted(i["profile"] for i in gpu.get("instances", []))
    if have != sorted(profiles):
        return False
    # Each GPU instance holds one compute instance spanning it (what -C creates).
    return all(len(i["cis"]) == 1 and i["cis"][0]["profile"] == i["profile"] for i in gpu.get("instances", []))


def plan(current, desired):
    """Steps per GPU index: [(action, args)], actions mode (0/1), destroy_ci, destroy_gi,
    create ([profiles]). GPUs whose reading already matches get no entry."""
    steps = {}
    for index in sorted(desired):
        profiles = desired[index]
        gpu = current.get(index)
        if gpu is None:
            continue
        if gpu_matches(gpu, profiles):
            continue
        todo = []
        has_ci = any(i["cis"] for i in gpu.get("instances", []))
        has_gi = bool(gpu.get("instances"))
        if profiles is None:
            if has_ci:
                todo.append(("destroy_ci", None))
            if has_gi:
                todo.append(("destroy_gi", None))
            todo.append(("mode", 0))
        else:
            if gpu.get("mode_current") != "enabled" or gpu.get("mode_pending") != "enabled":
                todo.append(("mode", 1))
            if has_ci:
                todo.append(("destroy_ci", None))
            if has_gi:
                todo.append(("destroy_gi", None))
            if profiles:
                todo.append(("create", creation_order(profiles)))
        steps[index] = todo
    return steps


def command(smi, index, step):
    """The nvidia-smi argv of one step on GPU `index`."""
    action, arg = step
    if action == "mode":
        return [smi, "-i", str(index), "-mig", str(arg)]
    if action == "destroy_ci":
        return [smi, "mig", "-i", str(index), "-dci"]
    if action == "destroy_gi":
        return [smi, "mig", "-i", str(index), "-dgi"]
    if action == "create":
        return [smi, "mig", "-i", str(index), "-cgi", ",".join(arg), "-C"]
    raise MigError("unknown step %r" % (action,))


def describe(current, indexes=None):
    """Layout text for diffs, one line per GPU."""
    lines = []
    for index in sorted(current):
        if indexes is not None and index not in indexes:
            continue
        gpu = current[index]
        mode = gpu.get("mode_current") or "not supported"
        text = "GPU %d (%s): MIG %s" % (index, gpu.get("name") or "unknown", mode)
        if gpu.get("mode_pending") and gpu.get("mode_pending") != gpu.get("mode_current"):
            text += " (%s after a GPU reset)" % gpu["mode_pending"]
        if gpu.get("mode_current") == "enabled":
            profiles = [i["profile"] for i in gpu.get("instances", [])]
            text += ": " + (", ".join(profiles) if profiles else "no instances")
        lines.append(text)
    return "\n".join(lines) + ("\n" if lines else "")


def describe_desired(current, desired):
    lines = []
    for index in sorted(desired):
        gpu = current.get(index, {})
        profiles = desired[index]
        if profiles is None:
            text = "GPU %d (%s): MIG disabled" % (index, gpu.get("name") or "unknown")
        else:
            text = "GPU %d (%s): MIG enabled: %s" % (
                index, gpu.get("name") or "unknown", ", ".join(creation_order(profiles)) or "no instances")
        lines.append(text)
    return "\n".join(lines) + ("\n" if lines else "")


def layout_summary(current):
    """Plain data of the reading: [{index, name, mig_mode_current, mig_mode_pending, mig_devices}]."""
    result = []
    for index in sorted(current):
        gpu = current[index]
        devices = []
        for instance in gpu.get("instances", []):
            for ci in instance["cis"] or [{"ci_id": None, "profile": instance["profile"]}]:
                devices.append({"profile": ci["profile"],
                                "gpu_instance_profile": instance["profile"], "gi_id": instance["gi_id"],
                                "ci_id": ci["ci_id"], "placement": instance["placement"]})
        result.append({"index": index, "name": gpu.get("name"), "uuid": gpu.get("uuid"),
                       "mig_mode_current": gpu.get("mode_current"), "mig_mode_pending": gpu.get("mode_pending"),
                       "mig_devices": devices})
    return result


# ---------------------------------------------------------------- the module's run

def _run(module, argv, commands):
    rc, out, err = module.run_command(argv)
    commands.append({"argv": argv, "rc": rc, "stdout": out, "stderr": err})
    return rc, out, err


def read_host(module, smi, commands):
    """Read the MIG mode, GPU instances and compute instances; (current, lgip) or fail."""
    rc, out, err = _run(module, [smi] + list(QUERY_ARGS), commands)
    if rc != 0:
        raise MigError("%s %s exited %s: %s" % (smi, " ".join(QUERY_ARGS), rc, (err or out).strip()))
    mode_gpus = parse_mode_query(out)
    if not mode_gpus:
        raise MigError("nvidia-smi reported no GPUs")
    lgi = lci = lgip = []
    if any(g["mode_current"] == "enabled" for g in mode_gpus):
        rc, out, err = _run(module, [smi, "mig", "-lgi"], commands)
        if rc != 0 and not _not_found(out + err):
            raise MigError("nvidia-smi mig -lgi exited %s: %s" % (rc, (err or out).strip()))
        lgi = parse_lgi(out)
        rc, out, err = _run(module, [smi, "mig", "-lci"], commands)
        if rc != 0 and not _not_found(out + err):
            raise MigError("nvidia-smi mig -lci exited %s: %s" % (rc, (err or out).strip()))
        lci = parse_lci(out)
        rc, out, err = _run(module, [smi, "mig", "-lgip"], commands)
        lgip = parse_lgip(out) if rc == 0 else []
    return current_layout(mode_gpus, lgi, lci), lgip


def _lgip_problems(desired, lgip):
    """Profiles the GPU's own -lgip does not list (when it was readable)."""
    problems = []
    offered = {}
    for row in lgip:
        offered.setdefault(row["gpu"], set()).add(row["profile"])
    for index, profiles in desired.items():
        if profiles and index in offered:
            missing = sorted(set(profiles) - offered[index])
            if missing:
                problems.append("GPU %d: nvidia-smi mig -lgip does not offer %s (it offers %s)"
                                % (index, ", ".join(missing), ", ".join(sorted(offered[index], key=_size_key))))
    return problems


def state_of(current, desired):
    """mig.config.state of a reading: success when every managed GPU matches, pending
    when a GPU's MIG mode waits for a reset, failed otherwise."""
    if all(gpu_matches(current[i], desired[i]) for i in desired if i in current):
        return STATE_SUCCESS
    for index in desired:
        gpu = current.get(index) or {}
        if gpu.get("mode_pending") and gpu.get("mode_pending") != gpu.get("mode_current"):
            return STATE_PENDING
    return STATE_FAILED


def run_module(module):
    """kubegpu.cluster.mig_layout: read, compare, act, report."""
    params = module.params
    smi = params["nvidia_smi_path"] or module.get_bin_path("nvidia-smi", required=False) or "/usr/bin/nvidia-smi"
    commands = []
    result = {"changed": False, "commands": [], "reset_required": [], "state": STATE_SUCCESS}
    try:
        current, lgip = read_host(module, smi, commands)
    except MigError as exc:
        module.fail_json(msg=str(exc), state=STATE_FAILED, commands=commands)
    gpus = [{"index": g["index"], "name": g["name"], "device_id": g["device_id"]} for g in current.values()]
    desired, problems = desired_layout(params["layout"], gpus)
    problems += _lgip_problems(desired, lgip)
    result["layout_before"] = layout_summary(current)
    if problems:
        module.fail_json(msg="MIG layout refused: " + "; ".join(problems), problems=problems, state=STATE_FAILED,
                         layout=result["layout_before"])
    steps = plan(current, desired)
    before_text = describe(current, desired)
    result["changed"] = bool(steps)
    if module._diff:
        result["diff"] = {"before": before_text, "after": describe_desired(current, desired),
                          "before_header": "MIG layout (read)", "after_header": "MIG layout (%s)" % params["layout_name"]}
    if module.check_mode or not steps:
        result["planned"] = dict((str(i), [command(smi, i, s) for s in todo]) for i, todo in steps.items())
        result["layout"] = result["layout_before"]
        result["state"] = STATE_SUCCESS if not steps else state_of(current, desired)
        if module.check_mode and steps:
            result["state"] = STATE_PENDING
        result["commands"] = [c["argv"] for c in commands]
        module.exit_json(**result)

    done = []
    for index in sorted(steps):
        for step in steps[index]:
            if step[0] == "create" and current[index].get("mode_current") != "enabled":
                break       # instances can only be made once MIG mode is in effect
            argv = command(smi, index, step)
            rc, out, err = _run(module, argv, commands)
            done.append(argv)
            if rc != 0:
                module.fail_json(msg="%s exited %s: %s" % (" ".join(argv), rc, (err or out).strip()),
                                 state=STATE_FAILED, changed=True, commands=done, layout_before=result["layout_before"])
            if step[0] == "mode":
                try:
                    reread, _unused = read_host(module, smi, commands)
                except MigError as exc:
                    module.fail_json(msg=str(exc), state=STATE_FAILED, changed=True, commands=done)
                current[index] = reread[index]
                if current[index].get("mode_current") != current[index].get("mode_pending"):
                    result["reset_required"].append(index)
                    break
    try:
        after, _unused = read_host(module, smi, commands)
    except MigError as exc:
        module.fail_json(msg=str(exc), state=STATE_FAILED, changed=True, commands=done)
    result["commands"] = done
    result["layout"] = layout_summary(after)
    result["state"] = state_of(after, desired)
    if module._diff:
        result["diff"]["after"] = describe(after, desired)
    if result["state"] == STATE_FAILED:
        module.fail_json(msg="MIG layout not reached; read after applying:\n%s" % describe(after, desired), **result)
    if result["reset_required"]:
        result["msg"] = ("MIG mode change pending on GPU(s) %s: the driver could not reset them; reboot the node "
                         "(or nvidia-smi --gpu-reset) and run again to create the instances"
                         % ", ".join(str(i) for i in result["reset_required"]))
    module.exit_json(**result)
