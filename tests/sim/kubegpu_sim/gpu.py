# SPDX-License-Identifier: Apache-2.0
"""Simulated GPUs and NVIDIA k8s-device-plugin's resource rules (test-only).

Upstream read for these rules: github.com/NVIDIA/k8s-device-plugin at commit
1b826acc6af3079d8923bac395c3124b8861a9a6 (2026-08, tag v0.20.0; kubegpu pins v0.20.1, whose
changes do not touch these rules):
  cmd/nvidia-device-plugin/main.go          validateFlags, startPlugins, main
  internal/plugin/factory.go                getResourceManagers (NVML init, failOnInitError)
  internal/plugin/server.go                 getAllocateResponse, uniqueDeviceIDsFromAnnotatedDeviceIDs,
                                            updateResponseForDeviceListEnvVar
  internal/plugin/mps.go                    getMPSOptions, waitForDaemon
  internal/rm/device_map.go                 buildGPUDeviceMap, buildMigDeviceMap,
                                            assertAllMigDevicesAreValid, updateDeviceMapWithReplicas
  internal/rm/rm.go                         ValidateRequest, AddDefaultResourcesToConfig
  api/config/v1/{config,replicas,sharing,consts}.go

Where the GPUs come from: the PCI functions under /sys/bus/pci/devices (a fixture tree
from tests/sim/gpu/ bind-mounted there on GPU test hosts). This reader is our own and
independent of plugins/module_utils (the code under test). The NVIDIA kernel module
cannot be loaded in a test container, so "driver loaded" is simulated as "the driver's
user space is installed": libnvidia-ml.so.1 is in the linker cache (`ldconfig -p`), which
is also what the real plugin needs to dlopen NVML (main.go startPlugins,
nvml.WithLibraryPath(...libnvidia-ml.so.1)). See tests/sim/gpu/README.md.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import uuid

NVIDIA_VENDOR = 0x10DE
# PCI class 0x03xxxx = display controller (0x0300 VGA, 0x0302 3D): what NVML enumerates
# as GPUs. NVSwitch functions are class 0x0680 (bridge/other) and are not GPUs.
DISPLAY_CLASS = 0x03

# Model table keyed by PCI device id. Names and framebuffer sizes are what nvidia-smi
# reports for the device: 0x2330 from the real capture
# shared/fixtures/gpu/h100-80gb-hbm3-ubuntu2404/nvidia-smi.txt ("NVIDIA H100 80GB HBM3",
# 81559MiB); 0x20b2 from tests/fixtures/gpu/a100-mig-enabled/nvidia-smi-q-x.xml
# (81920 MiB); the others from NVIDIA's product pages / pci.ids names (sizes as nvidia-smi
# shows them for the board's memory). Compute capability per NVIDIA's CUDA GPUs list.
MODELS = {
    0x2330: ("NVIDIA H100 80GB HBM3", 81559, "9.0", 700),
    0x2331: ("NVIDIA H100 PCIe", 81559, "9.0", 350),
    0x20B2: ("NVIDIA A100-SXM4-80GB", 81920, "8.0", 400),
    0x20B5: ("NVIDIA A100 80GB PCIe", 81920, "8.0", 300),
    0x20B0: ("NVIDIA A100-SXM4-40GB", 40960, "8.0", 400),
    0x1DB6: ("Tesla V100-PCIE-32GB", 32768, "7.0", 250),
    0x1EB8: ("Tesla T4", 15360, "7.5", 70),
    0x26B9: ("NVIDIA L40S", 46068, "8.9", 350),
    0x27B8: ("NVIDIA L4", 23034, "8.9", 72),
}

# MIG profiles (NVIDIA MIG user guide, "Supported MIG Profiles"): GPU-instance profile
# name -> memory in MiB is not needed by the plugin rules; only the name matters.
MIG_CAPABLE = {0x2330, 0x2331, 0x20B2, 0x20B5, 0x20B0}

MIG_LAYOUT_FILE = "/etc/kubegpu-sim/mig.json"
_UUID_NS = uuid.UUID("5e1f4a32-1c0b-4f5e-9d4e-6b7e0c1a2b3c")


def _read(path):
    try:
        with open(path) as stream:
            return stream.read().strip()
    except OSError:
        return None


def _hex(path):
    text = _read(path)
    try:
        return int(text, 16) if text else None
    except ValueError:
        return None


def read_gpus(sysfs_devices="/sys/bus/pci/devices", host="", mig_layout=None):
    """GPUs of the PCI tree, in NVML's order (PCI bus id order, as NVML enumerates).

    Each: {index, bus_id, device_id, name, memory_mib, compute_cap, max_power_w, uuid,
    numa_node, mig_enabled, mig_devices: [{index, profile, uuid}]}.
    """
    mig_layout = mig_layout or {}
    found = []
    try:
        entries = sorted(os.listdir(sysfs_devices))
    except OSError:
        return []
    for bus_id in entries:
        path = os.path.join(sysfs_devices, bus_id)
        if _hex(os.path.join(path, "vendor")) != NVIDIA_VENDOR:
            continue
        klass = _hex(os.path.join(path, "class"))
        if klass is None or (klass >> 16) != DISPLAY_CLASS:
            continue
        device = _hex(os.path.join(path, "device")) or 0
        name, memory, cap, power = MODELS.get(device, ("NVIDIA Device %04X" % device, 0, "", 0))
        numa = _read(os.path.join(path, "numa_node"))
        found.append({"bus_id": bus_id, "device_id": device, "name": name, "memory_mib": memory,
                      "compute_cap": cap, "max_power_w": power,
                      "numa_node": int(numa) if numa and numa.lstrip("-").isdigit() else -1})
    for index, gpu in enumerate(found):
        gpu["index"] = index
        gpu["uuid"] = "GPU-%s" % uuid.uuid5(_UUID_NS, "%s/%s" % (host, gpu["bus_id"]))
        profiles = mig_layout.get(str(index))
        gpu["mig_enabled"] = profiles is not None and gpu["device_id"] in MIG_CAPABLE
        gpu["mig_devices"] = []
        if gpu["mig_enabled"]:
            for j, profile in enumerate(profiles):
                gpu["mig_devices"].append({
                    "index": "%d:%d" % (index, j), "profile": profile, "parent": index,
                    "uuid": "MIG-%s" % uuid.uuid5(_UUID_NS, "%s/%s/%d" % (host, gpu["bus_id"], j))})
    return found


def load_mig_layout(path=MIG_LAYOUT_FILE):
    """{"<gpu index>": ["<profile>", ...]} (tests/sim/gpu/README.md), {} when absent."""
    text = _read(path)
    if not text:
        return {}
    data = json.loads(text)
    return {str(k): list(v or []) for k, v in data.items()}


def nvml_library_present(ldconfig_output):
    """True when libnvidia-ml.so.1 is in the linker cache (`ldconfig -p` output)."""
    return any(line.strip().startswith("libnvidia-ml.so.1 ") or line.strip().startswith("libnvidia-ml.so.1\t")
               for line in ldconfig_output.splitlines())


def host_nvml_present():
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return nvml_library_present(out)


DRIVER_PACKAGES = ("libnvidia-ml1", "nvidia-driver", "nvidia-driver-libs", "libnvidia-compute-580",
                   "nvidia-utils-580-server", "nvidia-utils-535-server", "libnvidia-compute-535")


def host_driver_version():
    """Upstream version of the installed NVIDIA driver package (dpkg), or None."""
    for package in DRIVER_PACKAGES:
        try:
            out = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Version}", package],
                                 capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        text = out.stdout.strip()
        if out.returncode == 0 and text.startswith("ii"):
            return driver_version_from_package(text.split()[-1])
    return None


def driver_version_from_package(version):
    """'535.247.01-1~deb12u1' -> '535.247.01' (Debian version minus epoch and revision)."""
    version = version.split(":", 1)[-1]
    return re.split(r"[-~+]", version, maxsplit=1)[0]


# CUDA driver API version by driver branch (NVIDIA CUDA toolkit release notes, table 3
# "CUDA Toolkit and Corresponding Driver Versions"; shared/UPSTREAM.md).
def cuda_version_for_driver(driver):
    try:
        major = int(driver.split(".")[0])
    except (AttributeError, ValueError):
        return "N/A"
    for floor, cuda in ((580, "13.0"), (575, "12.9"), (570, "12.8"), (560, "12.6"), (555, "12.5"),
                        (550, "12.4"), (545, "12.3"), (535, "12.2"), (530, "12.1"), (525, "12.0"),
                        (520, "11.8"), (450, "11.0")):
        if major >= floor:
            return cuda
    return "N/A"


# --------------------------------------------------------------------------- config
class PluginError(Exception):
    """A fatal error: the plugin logs it and exits 1 (cmd/nvidia-device-plugin/main.go main)."""

    def __init__(self, message, logs=None):
        super().__init__(message)
        self.logs = list(logs or [])


DEFAULT_FLAGS = {
    # Defaults of the CLI flags (cmd/nvidia-device-plugin/main.go, c.Flags).
    "migStrategy": "none",
    "failOnInitError": True,
    "mpsRoot": "",
    "plugin": {"deviceListStrategy": ["envvar"], "deviceIDStrategy": "uuid"},
}


def parse_config(text, env=None, args=None):
    """The plugin's effective config: the file (YAML/JSON), then env/CLI overrides.

    api/config/v1/config.go parseConfigFrom (version must be v1) and flags.go
    UpdateFromCLIFlags (a flag set on the command line / env wins over the file).
    """
    from . import yamlish

    env = env or {}
    args = args or []
    config = {}
    if text:
        config = yamlish.load(text) or {}
        if config.get("version") not in (None, "v1"):
            raise PluginError("unable to load config: unable to finalize config: unable to parse config file: "
                              "unknown version: %s" % config.get("version"))
    flags = dict(DEFAULT_FLAGS)
    flags["plugin"] = dict(DEFAULT_FLAGS["plugin"])
    file_flags = config.get("flags") or {}
    for key, value in file_flags.items():
        if key == "plugin":
            flags["plugin"].update(value or {})
        else:
            flags[key] = value
    overrides = {"MIG_STRATEGY": ("migStrategy", str), "FAIL_ON_INIT_ERROR": ("failOnInitError", _bool),
                 "MPS_ROOT": ("mpsRoot", str)}
    for name, (key, conv) in overrides.items():
        if name in env:
            flags[key] = conv(env[name])
    if "DEVICE_LIST_STRATEGY" in env:
        flags["plugin"]["deviceListStrategy"] = env["DEVICE_LIST_STRATEGY"]
    if "DEVICE_ID_STRATEGY" in env:
        flags["plugin"]["deviceIDStrategy"] = env["DEVICE_ID_STRATEGY"]
    for arg in args:
        if arg.startswith("--mig-strategy="):
            flags["migStrategy"] = arg.split("=", 1)[1]
        elif arg.startswith("--fail-on-init-error="):
            flags["failOnInitError"] = _bool(arg.split("=", 1)[1])
        elif arg.startswith("--mps-root="):
            flags["mpsRoot"] = arg.split("=", 1)[1]
    dls = flags["plugin"].get("deviceListStrategy") or ["envvar"]
    flags["plugin"]["deviceListStrategy"] = [dls] if isinstance(dls, str) else list(dls)
    sharing = config.get("sharing") or {}
    return {"version": "v1", "flags": flags, "sharing": sharing}


def _bool(value):
    return str(value).lower() in ("1", "true", "yes", "on")


def _replicated(sharing, key):
    """A validated sharing.<key> block, or None. api/config/v1/replicas.go UnmarshalJSON."""
    block = sharing.get(key)
    if not block:
        return None
    resources = block.get("resources") or []
    if not resources:
        raise PluginError("unable to load config: error parsing config file: no resources specified")
    out = []
    rename_default = bool(block.get("renameByDefault"))
    for r in resources:
        if not r.get("name"):
            raise PluginError("unable to load config: error parsing config file: no resource name specified")
        if "replicas" not in r:
            raise PluginError("unable to load config: error parsing config file: no replicas specified")
        if int(r["replicas"]) < 2:
            raise PluginError("unable to load config: error parsing config file: number of replicas must be >= 2")
        name = r["name"] if "/" in r["name"] else "nvidia.com/" + r["name"]
        # DisableResourceNamingInConfig (config.go) -> disableResoureRenaming (replicas.go):
        # custom renames and device subsets are ignored; renameByDefault gives
        # <name>.shared (consts.go DefaultSharedResourceNameSuffix).
        rename = name + ".shared" if rename_default else ""
        out.append({"name": name, "replicas": int(r["replicas"]), "rename": rename})
    return {"resources": out, "failRequestsGreaterThanOne": fail_requests_greater_than_one(sharing, key),
            "renameByDefault": rename_default}


def fail_requests_greater_than_one(sharing, key):
    """sharing.<key>.failRequestsGreaterThanOne as the plugin reads it: unset means false
    for timeSlicing and true for mps (api/config/v1/config.go parseConfig: "Preserve the
    historical MPS behavior unless the config explicitly relaxes it")."""
    block = sharing.get(key) or {}
    if "failRequestsGreaterThanOne" not in block or block.get("failRequestsGreaterThanOne") is None:
        return key == "mps"
    return _bool(block.get("failRequestsGreaterThanOne"))


def sharing_strategy(sharing):
    """api/config/v1/sharing.go SharingStrategy: mps before timeSlicing, else none."""
    mps = sharing.get("mps") or {}
    if any(int(r.get("replicas", 0)) > 1 for r in mps.get("resources") or []):
        return "mps"
    ts = sharing.get("timeSlicing") or {}
    if any(int(r.get("replicas", 0)) > 1 for r in ts.get("resources") or []):
        return "time-slicing"
    return "none"


# --------------------------------------------------------------------------- plugin
# cmd/nvidia-device-plugin/main.go start(): restartTimeout = time.After(30 * time.Second).
RESTART_SECONDS = 30


class PluginState:
    """What a started device plugin serves: {resource: [device]} plus its allocation rules."""

    def __init__(self, config, resources, logs, restart=False):
        self.config = config
        self.resources = resources   # {"nvidia.com/gpu": [{"id", "gpu", "uuid", "index", "replica"}]}
        self.logs = logs
        # A plugin failed to start: the process stays up and starts its plugins again after
        # RESTART_SECONDS (cmd/nvidia-device-plugin/main.go: startPlugins returns
        # restartPlugins=true, start() sets restartTimeout = time.After(30 * time.Second)).
        self.restart = restart
        strategy = sharing_strategy(config["sharing"])
        self.strategy = strategy
        key = "mps" if strategy == "mps" else "timeSlicing"
        self.fail_gt_one = strategy != "none" and fail_requests_greater_than_one(config["sharing"], key)

    def capacity(self):
        return {name: len(devs) for name, devs in self.resources.items()}

    def allocate(self, resource, count, in_use):
        """Pick `count` free device ids of `resource`; returns (ids, envs) or raises PluginError.

        The kubelet's devicemanager picks from the healthy free ids
        (kubernetes pkg/kubelet/cm/devicemanager/manager.go devicesToAllocate, asking
        GetPreferredAllocation: internal/rm/allocate.go, distributed policy for replicas),
        then calls Allocate, which validates (internal/rm/rm.go ValidateRequest) and answers
        (internal/plugin/server.go getAllocateResponse).
        """
        devices = self.resources.get(resource) or []
        free = [d for d in devices if d["id"] not in in_use]
        if len(free) < count:
            raise PluginError("requested number of devices unavailable for %s. Requested: %d, Available: %d"
                              % (resource, count, len(free)))
        if any(d.get("replica") is not None for d in free):
            # distributed: least-used underlying GPU first (allocate.go greedyAlloc).
            usage = {}
            for d in devices:
                if d["id"] in in_use:
                    usage[d["uuid"]] = usage.get(d["uuid"], 0) + 1
            free.sort(key=lambda d: (usage.get(d["uuid"], 0), d["index"], d["replica"]))
        chosen = free[:count]
        includes_replicas = any(d.get("replica") is not None for d in chosen)
        if includes_replicas and count > 1 and self.fail_gt_one:
            raise PluginError("invalid allocation request for %r: invalid request: maximum request size for "
                              "shared resources is 1; found %d" % (resource, count))
        return [d["id"] for d in chosen], self.allocate_envs(chosen)

    def allocate_envs(self, chosen):
        flags = self.config["flags"]
        # uniqueDeviceIDsFromAnnotatedDeviceIDs: replicas "<id>::<n>" collapse to the id;
        # deviceIDStrategy index gives the device indices instead of UUIDs.
        ids = []
        for d in chosen:
            ident = d["index"] if flags["plugin"].get("deviceIDStrategy") == "index" else d["uuid"]
            if ident not in ids:
                ids.append(ident)
        envs = {}
        strategies = flags["plugin"]["deviceListStrategy"]
        if "envvar" in strategies:
            envs["NVIDIA_VISIBLE_DEVICES"] = ",".join(ids)
        elif "volume-mounts" in strategies:
            # updateResponseForDeviceMounts: the list goes to mounts under
            # /var/run/nvidia-container-devices, and the envvar points there.
            envs["NVIDIA_VISIBLE_DEVICES"] = "/var/run/nvidia-container-devices"
            envs["_KUBEGPU_SIM_DEVICE_MOUNTS"] = ",".join(ids)
        if self.strategy == "mps":
            # mps.go updateReponse: CUDA_MPS_PIPE_DIRECTORY for the client.
            envs["CUDA_MPS_PIPE_DIRECTORY"] = "/mps/pipe"
        return envs


def start_plugin(config, gpus, nvml_loadable, mps_daemon_ready=False):
    """Run the plugin's start-up; returns PluginState, or raises PluginError (exit 1).

    nvml_loadable: the container can dlopen libnvidia-ml.so.1 (the host has it AND the
    container runs under the NVIDIA runtime, which injects it).
    """
    flags = config["flags"]
    logs = ["Loading configuration."]
    # The config file is unmarshalled (and its sharing blocks validated) before anything else.
    for key in ("timeSlicing", "mps"):
        _replicated(config["sharing"], key)
    mig = flags.get("migStrategy")
    strategy = sharing_strategy(config["sharing"])
    # main.go validateFlags.
    for s in flags["plugin"]["deviceListStrategy"]:
        if s not in ("envvar", "volume-mounts", "cdi-annotations", "cdi-cri"):
            raise PluginError("unable to validate flags: invalid --device-list-strategy option: invalid strategy: %s" % s)
    if flags["plugin"].get("deviceIDStrategy") not in ("uuid", "index"):
        raise PluginError("unable to validate flags: invalid --device-id-strategy option: %s"
                          % flags["plugin"].get("deviceIDStrategy"))
    policy = flags["plugin"].get("sharedDevicesAllocationPolicy")
    if policy is not None and policy not in ("distributed", "packed"):
        raise PluginError("unable to validate flags: invalid --shared-devices-allocation-policy option: %s" % policy)
    if strategy == "mps":
        if mig == "mixed":
            raise PluginError("unable to validate flags: using --mig-strategy=mixed is not supported with MPS")
        if not flags.get("mpsRoot"):
            raise PluginError("unable to validate flags: using MPS requires --mps-root to be specified")
    if mig not in ("none", "single", "mixed"):
        raise PluginError("unable to validate flags: unknown MIG strategy: %s" % mig)
    ts = _replicated(config["sharing"], "mps" if strategy == "mps" else "timeSlicing") if strategy != "none" else None

    # rm.go AddDefaultResourcesToConfig: mixed needs NVML already here.
    if mig == "mixed" and not nvml_loadable and flags.get("failOnInitError"):
        raise PluginError("unable to add default resources to config: failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND")

    # factory.go getResourceManagers: NVML init.
    if not nvml_loadable:
        logs += ["Failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND.",
                 "If this is a GPU node, did you set the docker default runtime to `nvidia`?",
                 "You can check the prerequisites at: https://github.com/NVIDIA/k8s-device-plugin#prerequisites",
                 "You can learn how to set the runtime at: https://github.com/NVIDIA/k8s-device-plugin#quick-start",
                 "If this is not a GPU node, you should set up a toleration or nodeSelector to only deploy "
                 "this plugin on GPU nodes"]
        if flags.get("failOnInitError"):
            raise PluginError("error getting plugins: unable to create plugins: failed to construct resource "
                              "managers: nvml init failed: ERROR_LIBRARY_NOT_FOUND", logs)
        logs += ["nvml init failed: ERROR_LIBRARY_NOT_FOUND", "No devices found. Waiting indefinitely."]
        return PluginState(config, {}, logs)

    resources = build_device_map(gpus, mig)
    if ts:
        resources = replicate(resources, ts)
    if strategy == "mps":
        # mps.go getMPSOptions / waitForDaemon (plugin Start): the MPS control daemon
        # (a separate DaemonSet of the same image) must be healthy.
        for devs in resources.values():
            if any(d.get("mig") for d in devs):
                raise PluginError("error getting plugins: unable to create plugins: failed to create plugin: "
                                  "sharing using MPS is not supported for MIG devices")
        if not mps_daemon_ready:
            logs.append("Failed to start plugin: error waiting for MPS daemon: error checking MPS daemon "
                        "health: failed to check daemon health: MPS daemon is not running")
            logs.append("Failed to start one or more plugins. Retrying in %ds..." % RESTART_SECONDS)
            return PluginState(config, {}, logs, restart=True)
    if not any(resources.values()):
        logs.append("No devices found. Waiting indefinitely.")
    for name, devs in sorted(resources.items()):
        logs.append("Registered device plugin for '%s' with Kubelet" % name)
    return PluginState(config, resources, logs)


def build_device_map(gpus, mig_strategy):
    """internal/rm/device_map.go buildDeviceMapFromConfigResources with the default
    resources of rm.go AddDefaultResourcesToConfig ("*" -> gpu; single: MIG "*" -> gpu;
    mixed: each MIG profile p with C == G -> mig-<p>, '+' replaced by '.')."""
    full = {}
    for gpu in gpus:
        # buildGPUDeviceMap: MIG-enabled GPUs are skipped unless the strategy is none.
        if gpu["mig_enabled"] and mig_strategy != "none":
            continue
        full.setdefault("nvidia.com/gpu", []).append(
            {"id": gpu["uuid"], "uuid": gpu["uuid"], "index": str(gpu["index"]), "gpu": gpu["index"],
             "replica": None})
    if mig_strategy == "none":
        return full
    migs = {}
    for gpu in gpus:
        if not gpu["mig_enabled"]:
            continue
        if not gpu["mig_devices"]:
            # assertAllMigDevicesAreValid: fatal for single (uniform), a warning for mixed.
            if mig_strategy == "single":
                raise PluginError("error getting plugins: unable to create plugins: failed to construct resource "
                                  "managers: error building device map: error building device map from "
                                  "config.resources: invalid MIG configuration: at least one device with "
                                  "migEnabled=true was not configured correctly: device %d has no MIG devices "
                                  "configured" % gpu["index"])
            continue
        for m in gpu["mig_devices"]:
            profile = m["profile"]
            # buildMigDeviceMap: a profile with compute instances smaller than the GPU
            # instance ("1c.3g.40gb", C != G) matches no default pattern.
            if mig_strategy == "mixed" and re.match(r"^\d+c\.", profile):
                raise PluginError("error getting plugins: unable to create plugins: failed to construct resource "
                                  "managers: error building device map: error building device map from "
                                  "config.resources: error building MIG device map: MIG profile '%s' does not "
                                  "match any resource patterns" % profile)
            name = "nvidia.com/gpu" if mig_strategy == "single" else "nvidia.com/mig-" + profile.replace("+", ".")
            migs.setdefault(name, []).append({"id": m["uuid"], "uuid": m["uuid"], "index": m["index"],
                                              "gpu": gpu["index"], "replica": None, "mig": profile})
    if mig_strategy == "single":
        profiles = {d["mig"] for devs in migs.values() for d in devs}
        if len(profiles) > 1:
            # assertAllMigDevicesAreValid(uniform) -> "more than one MIG device type".
            raise PluginError("error getting plugins: unable to create plugins: failed to construct resource "
                              "managers: error building device map: error building device map from "
                              "config.resources: invalid MIG configuration: at least one device with "
                              "migEnabled=true was not configured correctly: more than one MIG device type "
                              "present on node")
        if full and migs:
            raise PluginError("error getting plugins: unable to create plugins: failed to construct resource "
                              "managers: error building device map: error building device map from "
                              "config.resources: all devices on the node must be configured with the same "
                              "migEnabled value")
    out = dict(full)
    for name, devs in migs.items():
        out.setdefault(name, []).extend(devs)
    return out


def replicate(resources, replicated):
    """device_map.go updateDeviceMapWithReplicas: each device of a shared resource becomes
    `replicas` devices "<id>::<n>" (rm/device_id.go NewAnnotatedID), under the renamed
    resource when rename is set."""
    out = {name: devs for name, devs in resources.items()
           if name not in {r["name"] for r in replicated["resources"]}}
    for r in replicated["resources"]:
        devs = resources.get(r["name"]) or []
        if not devs:
            continue
        target = r["rename"] or r["name"]
        for d in devs:
            for i in range(r["replicas"]):
                copy = dict(d)
                copy["id"] = "%s::%d" % (d["id"], i)
                copy["replica"] = i
                out.setdefault(target, []).append(copy)
    return out


def visible_gpus(gpus, visible):
    """The GPUs (and MIG devices) a container sees for NVIDIA_VISIBLE_DEVICES under the
    NVIDIA runtime (nvidia-container-toolkit: "all", "none"/"void"/"" = none, else a
    comma list of indices, GPU-/MIG- UUIDs, or <gpu>:<mig> indices)."""
    if visible is None:
        return []
    visible = visible.strip()
    if visible in ("", "none", "void"):
        return []
    if visible == "all":
        return [dict(g, mig_shown=g["mig_devices"]) for g in gpus]
    shown = []
    for token in [t.strip() for t in visible.split(",") if t.strip()]:
        for g in gpus:
            if token in (g["uuid"], str(g["index"])):
                shown.append(dict(g, mig_shown=g["mig_devices"]))
            for m in g["mig_devices"]:
                if token in (m["uuid"], m["index"]):
                    shown.append(dict(g, mig_shown=[m]))
    return shown
