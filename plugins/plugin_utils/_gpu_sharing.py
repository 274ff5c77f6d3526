# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: how kubegpu's device plugin shares GPUs (time-slicing or MPS) and
whether CDI is on, decided once, here, for preflight (stage 1), the nvidia_device_plugin
stage (its config file) and validate (the expected resources).

The rules follow NVIDIA/k8s-device-plugin v0.20.0 (commit 1b826acc, 2026-08):

- api/config/v1/sharing.go ``SharingStrategy``: MPS when ``sharing.mps`` has a resource
  with more than one replica, else time-slicing when ``sharing.timeSlicing`` has one, else
  none; ``ReplicatedResources`` answers the MPS block whenever one is set - so with both
  set, time-slicing is silently dropped (kubegpu refuses that instead);
- api/config/v1/replicas.go ``ReplicatedResource.UnmarshalJSON``: ``replicas`` below 2 is
  an error ("number of replicas must be >= 2"); ``renameByDefault`` renames a shared
  resource ``<name>.shared`` (consts.go ``DefaultSharedResourceNameSuffix``), other renames
  and device subsets are ignored (config.go ``DisableResourceNamingInConfig``);
- api/config/v1/config.go ``parseConfig``: MPS's ``failRequestsGreaterThanOne`` is true
  unless the file sets it;
- cmd/nvidia-device-plugin/main.go ``validateFlags``: MPS with ``migStrategy: mixed`` is
  refused ("using --mig-strategy=mixed is not supported with MPS") and MPS needs
  ``mpsRoot``; internal/plugin/mps.go ``getMPSOptions``: MPS over MIG devices (migStrategy
  single on MIG-enabled GPUs) is refused ("sharing using MPS is not supported for MIG
  devices").

CDI is one cluster-wide setting, ``kubegpu_cdi`` (default true: the GPU Operator chart
v25.10.1 that kubegpu pins ships ``cdi.enabled: true``, deployments/gpu-operator/values.yaml).
``container_runtime_nvidia_cdi`` stays an override for the container_runtime stage; the
device plugin's ``cdi-annotations`` / ``cdi-cri`` device-list strategies need CDI on
(the plugin writes its CDI spec under /var/run/cdi and containerd must read it,
``enable_cdi``).
"""

from __future__ import annotations

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _network

problem = _network.problem

NONE, TIME_SLICING, MPS = "none", "time-slicing", "mps"
CDI_STRATEGIES = ("cdi-annotations", "cdi-cri")
# Settings the rules here read (the value set for the host, else the role default).
SETTINGS = (
    "kubegpu_gpu_operator", "kubegpu_cdi", "container_runtime_nvidia_cdi",
    "nvidia_device_plugin_mig_strategy", "nvidia_device_plugin_device_list_strategy",
    "nvidia_device_plugin_time_slicing_replicas", "nvidia_device_plugin_time_slicing_rename_by_default",
    "nvidia_device_plugin_time_slicing_fail_requests_greater_than_one",
    "nvidia_device_plugin_mps_replicas", "nvidia_device_plugin_mps_rename_by_default",
    "nvidia_device_plugin_mps_fail_requests_greater_than_one",
)


def _templated(value):
    """A role default that is a Jinja expression (preflight reads defaults as written)."""
    return isinstance(value, str) and "{{" in value


def flag_value(value, boolean, default):
    """A boolean setting as ``boolean`` (the argument specs' reading) reads it; ``default``
    where it is unset, a role default still templated, or not a boolean."""
    if value is None or _templated(value):
        return default
    try:
        return bool(boolean(value))
    except (TypeError, ValueError):
        return default      # the argument spec check names it


def _flag(settings, name, boolean, default):
    return flag_value(settings.get(name), boolean, default)


def _int(value, default=0):
    """An integer setting; ``default`` where it is none (the argument spec check names it)."""
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def cdi_enabled(settings, boolean):
    """Whether GPU nodes run with CDI: ``container_runtime_nvidia_cdi`` where it is set to
    a boolean (the override), else ``kubegpu_cdi`` (default true)."""
    settings = settings or {}
    cluster = _flag(settings, "kubegpu_cdi", boolean, True)
    return _flag(settings, "container_runtime_nvidia_cdi", boolean, cluster)


def sharing(settings, boolean):
    """The device plugin's sharing of ``nvidia.com/gpu``: ``{"strategy": none|time-slicing|mps,
    "replicas": n (1 when none), "rename_by_default": bool, "fail_requests_greater_than_one":
    bool}``; MPS wins over time-slicing as in sharing.go ``SharingStrategy``."""
    settings = settings or {}
    mps = _int(settings.get("nvidia_device_plugin_mps_replicas"))
    slicing = _int(settings.get("nvidia_device_plugin_time_slicing_replicas"))
    if mps > 1:
        return {"strategy": MPS, "replicas": mps,
                "rename_by_default": _flag(settings, "nvidia_device_plugin_mps_rename_by_default", boolean, False),
                "fail_requests_greater_than_one": _flag(
                    settings, "nvidia_device_plugin_mps_fail_requests_greater_than_one", boolean, True)}
    if slicing > 1:
        return {"strategy": TIME_SLICING, "replicas": slicing,
                "rename_by_default": _flag(settings, "nvidia_device_plugin_time_slicing_rename_by_default",
                                           boolean, False),
                "fail_requests_greater_than_one": _flag(
                    settings, "nvidia_device_plugin_time_slicing_fail_requests_greater_than_one", boolean, False)}
    return {"strategy": NONE, "replicas": 1, "rename_by_default": False, "fail_requests_greater_than_one": False}


def plugin_config(settings, boolean, mps_root="/run/nvidia/mps", extra_plugin_flags=None):
    """The device plugin's config file (``version: v1``) as data, from the role's settings:
    flags, and the one sharing block of ``sharing`` (``nvidia.com/gpu`` replicated)."""
    settings = settings or {}
    shared = sharing(settings, boolean)
    strategy = settings.get("nvidia_device_plugin_device_list_strategy") or "envvar"
    plugin = {"deviceListStrategy": strategy,
              "deviceIDStrategy": settings.get("nvidia_device_plugin_device_id_strategy") or "uuid"}
    for name, value in sorted((extra_plugin_flags or {}).items()):
        if value not in (None, ""):
            plugin[name] = value
    flags = {"migStrategy": str(settings.get("nvidia_device_plugin_mig_strategy") or "none"),
             "failOnInitError": _flag(settings, "nvidia_device_plugin_fail_on_init_error", boolean, True),
             "plugin": plugin}
    config = {"version": "v1", "flags": flags}
    if shared["strategy"] != NONE:
        block = {"renameByDefault": shared["rename_by_default"],
                 "failRequestsGreaterThanOne": shared["fail_requests_greater_than_one"],
                 "resources": [{"name": "nvidia.com/gpu", "replicas": shared["replicas"]}]}
        key = "mps" if shared["strategy"] == MPS else "timeSlicing"
        config["sharing"] = {key: block}
        if shared["strategy"] == MPS:
            flags["mpsRoot"] = mps_root
    return config


def plugin_manifests(settings, boolean, runtime_class=False):
    """The manifests roles/nvidia_device_plugin renders and applies, in order: the RuntimeClass
    (``runtime_class``: the role's RuntimeClass decision), the device plugin, the MPS control
    daemon when ``sharing`` is MPS, GPU Feature Discovery and the DCGM exporter when enabled."""
    settings = settings or {}
    return ((["runtimeclass.yaml"] if runtime_class else [])
            + ["device-plugin.yaml"]
            + (["mps-control-daemon.yaml"] if sharing(settings, boolean)["strategy"] == MPS else [])
            + (["gpu-feature-discovery.yaml"] if _flag(settings, "nvidia_device_plugin_gfd_enabled", boolean, False)
               else [])
            + (["dcgm-exporter.yaml"] if _flag(settings, "nvidia_device_plugin_dcgm_exporter_enabled", boolean, False)
               else []))


def _mig_enabled_gpus(facts):
    return [g for g in ((facts or {}).get("gpus") or []) if g.get("mig_mode_current") == "enabled"]


def sharing_problems(settings, boolean, facts=None):
    """Problem records of the device plugin's sharing and CDI settings (kubegpu's device
    plugin mode; CDI for both modes). ``facts``: the host's kubegpu_gpu facts, for the
    rules that depend on its GPUs (MPS over MIG devices)."""
    settings = settings or {}
    records = []
    operator = _flag(settings, "kubegpu_gpu_operator", boolean, False)
    if not operator:
        mig = str(settings.get("nvidia_device_plugin_mig_strategy") or "none")
        mps = settings.get("nvidia_device_plugin_mps_replicas")
        mps_n = _int(mps)
        slicing_n = _int(settings.get("nvidia_device_plugin_time_slicing_replicas"))
        if mps_n == 1 or mps_n < 0:
            records.append(problem(
                "nvidia_device_plugin_mps_replicas",
                "%s: the device plugin refuses MPS with fewer than 2 replicas (\"number of replicas must be >= 2\")"
                % mps_n, "nvidia_device_plugin_mps_replicas: 2 or more, or 0 (MPS off)"))
        if slicing_n < 0:
            records.append(problem(
                "nvidia_device_plugin_time_slicing_replicas", "%s is negative" % slicing_n,
                "nvidia_device_plugin_time_slicing_replicas: 2 or more, or 0 (time-slicing off)"))
        if mps_n > 1 and slicing_n > 1:
            records.append(problem(
                "nvidia_device_plugin_mps_replicas",
                "%d while nvidia_device_plugin_time_slicing_replicas is %d: the device plugin shares GPUs one way,"
                " and with both it silently uses MPS only" % (mps_n, slicing_n),
                "set one of nvidia_device_plugin_mps_replicas and nvidia_device_plugin_time_slicing_replicas, the"
                " other to 0"))
        if mps_n > 1 and mig == "mixed":
            records.append(problem(
                "nvidia_device_plugin_mps_replicas",
                "%d with nvidia_device_plugin_mig_strategy mixed: the device plugin refuses MPS with migStrategy"
                " mixed (\"using --mig-strategy=mixed is not supported with MPS\")" % mps_n,
                "nvidia_device_plugin_mig_strategy: none (GPUs without MIG), or nvidia_device_plugin_mps_replicas: 0"))
        mig_gpus = _mig_enabled_gpus(facts)
        if mps_n > 1 and mig == "single" and mig_gpus:
            records.append(problem(
                "nvidia_device_plugin_mps_replicas",
                "%d while MIG is enabled on GPU(s) %s and nvidia_device_plugin_mig_strategy is single: the device"
                " plugin refuses MPS over MIG devices (\"sharing using MPS is not supported for MIG devices\")"
                % (mps_n, ", ".join(str(g.get("index", "?")) for g in mig_gpus)),
                "disable MIG on this host's GPUs, leave it out of MPS sharing, or nvidia_device_plugin_mps_replicas: 0"))
        strategy = settings.get("nvidia_device_plugin_device_list_strategy")
        strategies = strategy if isinstance(strategy, (list, tuple)) else [strategy]
        cdi_wanted = [s for s in strategies if s in CDI_STRATEGIES]
        if cdi_wanted and not cdi_enabled(settings, boolean):
            records.append(problem(
                "nvidia_device_plugin_device_list_strategy",
                "%s needs CDI, which is off (kubegpu_cdi / container_runtime_nvidia_cdi false): containerd would not"
                " read the device plugin's CDI spec" % cdi_wanted[0],
                "kubegpu_cdi: true, or nvidia_device_plugin_device_list_strategy: envvar"))
    return records
