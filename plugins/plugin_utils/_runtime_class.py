# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: which runtime handlers containerd's config gives the CRI plugin, and
whether pods need ``runtimeClassName: nvidia`` (docs/contracts.md).

The container_runtime stage publishes ``container_runtime_cri_handlers`` per host from
the config.toml it merged (or read) in this run; stage 7 (RuntimeClass ``nvidia``) and
validate (runtimeClassName of its test pods) decide from it with
:func:`runtime_class_needed`, the one rule both use.

containerd's CRI plugin runs pods without a runtimeClassName on ``default_runtime_name``
(``runc`` when the key is absent: containerd's pkg/cri/config DefaultConfig), and a
RuntimeClass's ``handler`` must name a runtime of that table (kubelet passes it through
the CRI RunPodSandbox request; containerd's criService looks it up in
``containerd.runtimes``).
"""

from __future__ import annotations

try:
    import tomllib as _toml  # Python >= 3.11 (every ansible-core 2.19 controller)
except ImportError:  # pragma: no cover - Python 3.10 controllers (ansible-core 2.17/2.18)
    _toml = None

from ansible_collections.kubegpu.cluster.plugins.module_utils import _containerd

UNKNOWN = None


def _parse(text):
    if _toml is not None:
        return _toml.loads(text)
    return _containerd.parse(text).unwrap()


def _get(doc, path):
    node = doc
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def cri_handlers(text, merged=None):
    """``{'default': <handler>, 'names': [...]}`` for a containerd config, or None (unknown).

    ``merged`` is the registered result of kubegpu.cluster.containerd_config when the merge
    ran in this run (its ``default_runtime`` and ``runtimes`` describe the file as written,
    or as check mode would write it); a skipped or failed merge is ignored and ``text``
    (the file as read in this run; None when absent or not read) is parsed instead.
    Unknown (None) when there is no file or it does not parse.
    """
    if isinstance(merged, dict) and not merged.get("skipped") and not merged.get("failed") \
            and "runtimes" in merged:
        return {"default": merged.get("default_runtime") or "runc",
                "names": sorted(str(n) for n in merged.get("runtimes") or [])}
    if not text:
        return UNKNOWN
    try:
        doc = _parse(text)
        version = doc.get("version", 1)
        paths = _containerd.cri_paths(version)
    except (ValueError, TypeError, _containerd.ContainerdConfigError):
        return UNKNOWN
    runtimes = _get(doc, paths["runtimes"])
    names = sorted(str(n) for n, v in (runtimes or {}).items() if isinstance(v, dict))
    return {"default": _get(doc, paths["default_runtime_name"]) or "runc", "names": names}


def runtime_class_needed(nodes, handler="nvidia"):
    """True when pods on any of ``nodes`` (each a cri_handlers() answer, None = unknown)
    need ``runtimeClassName: <handler>``: the handler is not that node's default runtime,
    or nothing was read in this run (a RuntimeClass is harmless where it is the default;
    its absence where it is not leaves GPU pods without NVML)."""
    for node in nodes or []:
        if not isinstance(node, dict) or node.get("default") != handler:
            return True
    return False
