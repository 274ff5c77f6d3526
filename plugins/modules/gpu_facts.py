#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gpu_facts
short_description: Detect GPUs, the NVIDIA driver and related host state
version_added: "0.1.0"
description:
  - Sets C(ansible_facts.kubegpu_gpu) on any Linux host, with or without GPUs and with or without a driver.
  - Layered. C(nvml) reads C(libnvidia-ml.so.1) through ctypes (no extra Python package) when the driver
    is loaded; C(nvidia_smi) parses C(nvidia-smi -q -x) as a fallback (and asks
    C(nvidia-smi --query-gpu=pci.bus_id,compute_cap) for the compute capability of a GPU missing from the
    collection's table); C(sysfs) scans
    C(/sys/bus/pci/devices) and names the GPUs from the collection's own table of data-center and
    workstation GPUs, then from the system's C(pci.ids). The first layer that answers gives the GPU list.
  - Whatever layer answers, the PCI scan adds NUMA node, bound kernel driver, NVSwitches, NVLink5 switch trays
    (Mellanox InfiniBand functions whose Vital Product Data carries C(SW_MNG); reading it needs root) and
    non-NVIDIA GPUs, and C(/proc/driver/nvidia/version) gives the kernel-module flavour.
  - Never fails because a host has no GPU (C(count=0)) or because NVML or nvidia-smi is broken; the failing
    layer is recorded in C(errors) and the next one is tried.
  - Runs on Python 3.8+ with the standard library only. Can be listed in C(facts_modules) next to
    C(ansible.builtin.setup).
author:
  - kubegpu maintainers (@kubegpu)
options:
  sources:
    description:
      - Layers to try, in order. The first that answers provides the GPU list.
      - C(sysfs) always answers (possibly with no GPUs), so put it last.
    type: list
    elements: str
    choices: [nvml, nvidia_smi, sysfs]
    default: [nvml, nvidia_smi, sysfs]
  nvidia_smi_path:
    description:
      - Path of nvidia-smi. Default is to search C(PATH), then C(/usr/bin/nvidia-smi).
    type: path
  sysfs_root:
    description:
      - Directory that stands for C(/) when reading C(/sys), C(/lib/modules) and C(pci.ids). For tests.
    type: path
    default: /
  proc_root:
    description:
      - Directory that stands for C(/) when reading C(/proc). For tests.
    type: path
    default: /
  gather_subset:
    description:
      - Accepted so the module works under C(facts_modules); ignored, the module always gathers everything
        (it is fast).
    type: list
    elements: str
    default: [all]
  gather_timeout:
    description:
      - Seconds the C(nvidia_smi) layer may take, all its nvidia-smi calls together. On timeout nvidia-smi's
        whole process group is killed (so a wrapper script and the processes it started go too), the layer is
        recorded as failed with the command and the timeout, and the next layer is tried.
      - A process that left nvidia-smi's process group, or an nvidia-smi that does not die when killed (stuck
        in the driver), can add up to 2 seconds before the module gives up on it.
    type: int
    default: 10
attributes:
  check_mode:
    description: Can run in check mode and return the same facts as a normal run.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: full
    details: Changes nothing, so there is never a diff.
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
    support: full
  idempotent:
    description: Running the module twice in a row gives the same result; it changes nothing on the host.
    support: full
notes:
  - The full structure, the label sets and the driver plan are described in the collection's
    docs/gpu_facts.md.
  - Only reads files and runs nvidia-smi (C(-q -x), C(--query-gpu=pci.bus_id,compute_cap --format=csv,noheader)
    when a GPU is missing from the collection's table, and C(-L) when a GPU has MIG enabled); changes nothing on
    the host.
seealso:
  - name: NVML API reference
    description: The C API this module calls through ctypes.
    link: https://docs.nvidia.com/deploy/nvml-api/
"""

EXAMPLES = r"""
- name: Gather GPU facts
  kubegpu.cluster.gpu_facts:

- name: Show the GPUs
  ansible.builtin.debug:
    msg: "{{ ansible_facts.kubegpu_gpu.count }} x {{ ansible_facts.kubegpu_gpu.models | join(', ') }}"

- name: Only look at the PCI bus (do not touch the driver)
  kubegpu.cluster.gpu_facts:
    sources: [sysfs]

# ansible.cfg: gather them with every fact gathering
# [defaults]
# facts_modules = ansible.builtin.setup, kubegpu.cluster.gpu_facts
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to ansible_facts.
  returned: always
  type: complex
  contains:
    kubegpu_gpu:
      description: GPU, driver and related host state.
      returned: always
      type: complex
      contains:
        facts_version:
          description: Version of this structure; raised when keys change meaning.
          type: int
          sample: 1
        present:
          description: Whether NVIDIA GPUs were found (C(count > 0)).
          type: bool
          sample: true
        count:
          description: Number of NVIDIA GPUs (physical GPUs; MIG instances are not counted).
          type: int
          sample: 1
        source:
          description: Layer that provided the GPU list, C(nvml), C(nvidia_smi), C(sysfs) or C(none).
          type: str
          sample: nvml
        gpus:
          description: One entry per NVIDIA GPU, ordered by index (driver order, else PCI bus order).
          type: list
          elements: dict
          contains:
            index:
              description: GPU index (NVML / nvidia-smi index; PCI order on the sysfs layer).
              type: int
              sample: 0
            name:
              description:
                - Product name as the driver reports it. On the sysfs layer, from the collection's table
                  (same spelling as the driver), else C(NVIDIA <pci.ids name>), else C(NVIDIA device <id>).
              type: str
              sample: NVIDIA H100 80GB HBM3
            uuid:
              description: GPU UUID; null without a driver.
              type: str
              sample: GPU-e11c404d-6750-e350-11fd-766aebec6e70
            pci_bus_id:
              description: PCI address, C(domain:bus:device.function), lower case, 4-digit domain.
              type: str
              sample: "0000:00:06.0"
            pci_vendor_id:
              description: PCI vendor id, 4 hex digits.
              type: str
              sample: 10de
            pci_device_id:
              description: PCI device id, 4 hex digits.
              type: str
              sample: "2330"
            pci_subsystem_id:
              description: PCI subsystem C(vendor:device), 4 hex digits each.
              type: str
              sample: "10de:16c1"
            memory_mib:
              description:
                - Framebuffer memory in MiB as the driver reports it. On the sysfs layer, the nominal size from
                  the collection's table (GiB x 1024); null when unknown.
              type: int
              sample: 81559
            architecture:
              description:
                - Family as GPU Feature Discovery names it, C(kepler), C(maxwell), C(pascal), C(volta),
                  C(turing), C(ampere), C(ada-lovelace), C(hopper), C(blackwell), C(rubin); null when unknown.
              type: str
              sample: hopper
            compute_capability:
              description:
                - CUDA compute capability C(major.minor); null when unknown.
                - From NVML on the C(nvml) layer. On the C(nvidia_smi) layer from the collection's table, else from
                  C(nvidia-smi --query-gpu=compute_cap) (R470's nvidia-smi does not know that field; then null,
                  with a warning). On the C(sysfs) layer from the table only.
              type: str
              sample: "9.0"
            compute_capability_major:
              description: Major part of the compute capability.
              type: int
              sample: 9
            compute_capability_minor:
              description: Minor part of the compute capability.
              type: int
              sample: 0
            mig_capable:
              description: Whether the GPU supports MIG; null when unknown.
              type: bool
              sample: true
            mig_mode_current:
              description: Current MIG mode, C(enabled) or C(disabled); null without a driver or when not capable.
              type: str
              sample: disabled
            mig_mode_pending:
              description: MIG mode after the next GPU reset, C(enabled) or C(disabled); null as above.
              type: str
              sample: disabled
            mig_devices:
              description:
                - The GPU's MIG devices, from one C(nvidia-smi -L) call made only when a GPU has MIG enabled. Each
                  has C(profile) (C(1g.10gb); C(1c.3g.20gb) for a compute instance smaller than its GPU instance),
                  C(uuid), C(device) (the C(-L) device number), C(gi_id) and C(ci_id) (null, C(-L) does not give
                  them; C(kubegpu.cluster.mig_layout) returns them).
                - Null when MIG is enabled but nvidia-smi could not list them (a warning says why).
              returned: when MIG is enabled on the GPU
              type: list
              elements: dict
              sample: [{profile: 3g.40gb, uuid: MIG-c7384736-a75d-5afc-978f-d2f1294409fd, device: 0, gi_id: null, ci_id: null}]
            numa_node:
              description: NUMA node of the PCI device (sysfs C(numa_node)); null when the platform has none.
              type: int
              sample: 0
            kernel_driver:
              description: Kernel driver bound to the PCI function (C(nvidia), C(nouveau), C(vfio-pci)...); null if none.
              type: str
              sample: nvidia
            minor_number:
              description: Device minor number (C(/dev/nvidiaN)); null without a driver.
              type: int
              sample: 0
            persistence_mode:
              description: Whether persistence mode is on; null when unknown.
              type: bool
              sample: true
            health:
              description:
                - The GPU's error counters and state, from the layer that answered (NVML or nvidia-smi); null on
                  the sysfs layer. Every counter is null where the GPU or driver does not report it (Hopper and
                  newer remap rows instead of retiring pages). Read by C(playbooks/doctor.yml).
              type: dict
              contains:
                ecc_mode:
                  description: C(enabled) or C(disabled); null when unknown.
                  type: str
                ecc:
                  description: C(volatile) (since the driver loaded) and C(aggregate) (lifetime) counts of
                    C(correctable) and C(uncorrectable) ECC errors.
                  type: dict
                retired_pages:
                  description: Pages retired for C(single_bit) and C(double_bit) errors, and C(pending) (a
                    retirement that a reset or reboot activates).
                  type: dict
                remapped_rows:
                  description: Rows remapped for C(correctable) and C(uncorrectable) errors, C(pending) (a reset
                    activates them), C(failure) (the remapper ran out).
                  type: dict
                throttle_reasons:
                  description: Active reasons that hold the clocks down for power or heat (sw_power_cap,
                    hw_slowdown, hw_thermal_slowdown, hw_power_brake_slowdown, sw_thermal_slowdown).
                  type: list
                  elements: str
                persistence_mode:
                  description: As above.
                  type: bool
                fabric:
                  description:
                    - The GPU's registration with the NVLink fabric (HGX/DGX, Hopper and newer) - C(state) (C(Not Started),
                      C(In Progress), C(Completed)) and C(status) (C(Success) once completed, else an error) - from
                      C(nvmlDeviceGetGpuFabricInfoV) (or C(nvmlDeviceGetGpuFabricInfo)) or C(nvidia-smi -q -x).
                    - Both null where the GPU has no fabric state (NVML's NOT_SUPPORTED, nvidia-smi's N/A).
                  type: dict
                source:
                  description: C(nvml) or C(nvidia_smi).
                  type: str
        models:
          description: Distinct GPU names, in index order.
          type: list
          elements: str
          sample: [NVIDIA H100 80GB HBM3]
        heterogeneous:
          description: Whether the host has more than one GPU model.
          type: bool
          sample: false
        architectures:
          description: Distinct architecture families, oldest first.
          type: list
          elements: str
          sample: [hopper]
        mig_capable:
          description: Whether any GPU supports MIG.
          type: bool
          sample: true
        mig_enabled:
          description: Whether any GPU currently has MIG enabled.
          type: bool
          sample: false
        vendors:
          description: Vendors of the display-class PCI devices seen (C(NVIDIA), C(AMD), C(Intel), or a hex id).
          type: list
          elements: str
          sample: [NVIDIA]
        unsupported_gpus:
          description: Non-NVIDIA GPUs seen on the PCI bus (not counted, not managed).
          type: list
          elements: dict
          sample: [{vendor: AMD, pci_bus_id: "0000:03:00.0", pci_vendor_id: "1002", pci_device_id: "74a1", kernel_driver: amdgpu}]
        driver:
          description: The NVIDIA driver.
          type: dict
          contains:
            loaded:
              description: Whether the nvidia kernel module is loaded.
              type: bool
            version:
              description: Driver version (null when not loaded).
              type: str
              sample: 580.159.04
            branch:
              description: Driver branch, the first part of the version.
              type: str
              sample: "580"
            flavour:
              description: Kernel-module flavour, C(open) or C(proprietary), from C(/proc/driver/nvidia/version).
              type: str
              sample: open
            installed:
              description: Whether the driver is loaded or looks installed (see install_hints).
              type: bool
            install_hints:
              description: Why the driver looks installed although not loaded (nvidia-smi found, nvidia.ko
                under C(/lib/modules/<release>)). Empty when loaded.
              type: list
              elements: str
            library_mismatch:
              description: The loaded kernel module and the user-space driver library differ (an upgrade without
                a reboot) - NVML refused to start with a version mismatch, or reported another version than
                C(/proc/driver/nvidia/version).
              type: bool
        cuda_driver_version:
          description: Newest CUDA version the loaded driver supports; null without a driver.
          type: str
          sample: "13.0"
        nouveau_loaded:
          description: Whether the nouveau module is loaded.
          type: bool
          sample: false
        nvswitch_count:
          description: Number of NVSwitch PCI functions (HGX/DGX baseboards).
          type: int
          sample: 0
        nvswitches:
          description: The NVSwitches (pci_bus_id, pci_device_id, name, kernel_driver).
          type: list
          elements: dict
        fabric_manager_needed:
          description: Whether NVIDIA Fabric Manager is needed (NVSwitches or NVLink5 switch trays, and GPUs present).
          type: bool
          sample: false
        nvlink_generation:
          description:
            - NVLink generation of the switched fabric - C(5) with NVLink5 switch trays, C(4) (H100 NVSwitch), C(3)
              (A100 NVSwitch); null without switches or for an NVSwitch the collection's table does not know.
          type: int
          sample: 5
        nvlink5_switch_count:
          description: Number of PCI functions through which the host manages NVLink5 switch trays (HGX B200/B300).
          type: int
          sample: 0
        nvlink5_switches:
          description:
            - Those functions - C(pci_bus_id), C(pci_vendor_id) (C(15b3)), C(pci_device_id), C(kernel_driver),
              C(numa_node), C(infiniband_devices) (RDMA devices such as C(mlx5_0); empty while mlx5_ib is not loaded).
            - A Mellanox InfiniBand physical function counts when its C(vpd) holds C(SW_MNG), the rule of NVIDIA's
              driver container; its device id alone does not tell it from a ConnectX-7 NIC.
          type: list
          elements: dict
        nvlink5_kernel_modules_missing:
          description: On an NVLink5 system, the kernel modules NVLSM needs (C(mlx5_ib), C(ib_umad)) that are not loaded.
          type: list
          elements: str
        nvlsm_needed:
          description: Whether NVLSM (the NVLink Subnet Manager) is needed beside the fabric manager (NVLink5 switch
            trays and GPUs present).
          type: bool
          sample: false
        secure_boot:
          description: UEFI Secure Boot state, C(enabled), C(disabled), C(unsupported) (no EFI) or C(unknown).
          type: str
          sample: disabled
        layers:
          description: Each layer tried, with C(source), C(status) (C(ok), C(failed), C(skipped)) and C(message).
          type: list
          elements: dict
        errors:
          description: "Why layers failed, as C(<layer>: <reason>). Not fatal."
          type: list
          elements: str
        warnings:
          description: Inconsistencies worth a look (GPUs the driver does not see, module/library mismatch,
            nouveau loaded on a GPU host, driver installed but not loaded, a compute capability nvidia-smi could
            not give).
          type: list
          elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubegpu.cluster.plugins.module_utils._gpu import SOURCES, collect


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sources=dict(type="list", elements="str", choices=list(SOURCES), default=list(SOURCES)),
            nvidia_smi_path=dict(type="path"),
            sysfs_root=dict(type="path", default="/"),
            proc_root=dict(type="path", default="/"),
            gather_subset=dict(type="list", elements="str", default=["all"]),
            gather_timeout=dict(type="int", default=10),
        ),
        supports_check_mode=True,
    )
    params = module.params
    facts = collect(
        sources=params["sources"],
        nvidia_smi_path=params["nvidia_smi_path"],
        sysfs_root=params["sysfs_root"],
        proc_root=params["proc_root"],
        timeout=params["gather_timeout"],
    )
    module.exit_json(changed=False, ansible_facts={"kubegpu_gpu": facts})


if __name__ == "__main__":
    main()
