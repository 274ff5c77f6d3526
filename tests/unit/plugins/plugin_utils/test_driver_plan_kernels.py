# SPDX-License-Identifier: Apache-2.0
"""The reboot guard: _driver_plan.boot_kernel_problem on kernel_modules readings."""
from __future__ import annotations

from ansible_collections.kubegpu.cluster.plugins.filter import kernel as kernel_filter
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _driver_packages as dp
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _driver_plan as plan

RULE = dp.kernel_rule("debian", "debian", 535, False, True, "apt")


def _state(boot, rows, rule="GRUB_DEFAULT=0: the newest kernel in /boot"):
    kernels = {k: {"headers": h, "module": m, "module_files": [], "dkms_state": "installed" if m else None}
               for k, (h, m) in rows.items()}
    return {"boot_kernel": boot, "boot_rule": rule, "installed": sorted(rows, reverse=True), "kernels": kernels}


def test_boot_kernel_with_module_passes():
    state = _state("6.1.0-57-amd64", {"6.1.0-57-amd64": (True, True), "6.1.0-50-amd64": (True, False)})
    assert plan.boot_kernel_problem(state, dp.kernel_packages(RULE, state), "gpu1") == ""


def test_boot_kernel_without_module_is_refused_with_the_fix():
    state = _state("6.1.0-57-amd64", {"6.1.0-57-amd64": (False, False), "6.1.0-50-amd64": (True, True)})
    message = plan.boot_kernel_problem(state, dp.kernel_packages(RULE, state), "gpu1")
    assert message.startswith("gpu1: reboot refused: the kernel that boots next, 6.1.0-57-amd64 (GRUB_DEFAULT=0")
    assert "6.1.0-57-amd64: no headers, DKMS has not built it" in message
    assert "install linux-headers-6.1.0-57-amd64" in message
    assert "dkms autoinstall -k 6.1.0-57-amd64" in message and "dkms status -m nvidia-current" in message
    assert "playbooks/nvidia_driver.yml (or playbooks/kernel_update.yml) -l gpu1" in message
    assert "6.1.0-50-amd64" not in message


def test_unknown_boot_kernel_needs_every_kernel():
    rows = {"6.1.0-57-amd64": (True, True), "6.1.0-50-amd64": (True, False)}
    state = _state(None, rows, rule="GRUB_DEFAULT=2 does not name an installed kernel")
    message = kernel_filter.nvidia_driver_boot_kernel_problem(state, None, "gpu1")
    assert "cannot be told (GRUB_DEFAULT=2 does not name an installed kernel)" in message
    assert "6.1.0-50-amd64: headers installed, DKMS has not built it" in message
    assert "6.1.0-57-amd64:" not in message
    # without the stage's package plan the fix still says what to do for either path
    assert "install its headers and build the module (dkms autoinstall -k 6.1.0-50-amd64)" in message
    assert "precompiled NVIDIA module package on gpu1" in message
    rows["6.1.0-50-amd64"] = (True, True)
    assert plan.boot_kernel_problem(_state(None, rows, rule="x"), None, "gpu1") == ""


def test_boot_kernel_without_a_module_tree():
    # grubby names a kernel whose modules are gone
    state = _state("5.14.0-427.el9.x86_64", {"5.14.0-70.el9.x86_64": (True, True)}, rule="grubby --default-kernel")
    message = plan.boot_kernel_problem(state, None, "gpu2")
    assert "5.14.0-427.el9.x86_64: not an installed kernel with a module tree" in message


def test_nothing_to_check_in_a_container_or_a_skipped_reading():
    assert plan.boot_kernel_problem({"boot_kernel": None, "kernels": {}, "installed": []}, None, "c1") == ""
    assert plan.boot_kernel_problem({"skipped": True, "changed": False}, None, "c1") == ""
    assert plan.boot_kernel_problem(None, None, "c1") == ""


def test_reboot_reasons_are_the_marker_lines():
    assert plan.reboot_reasons("nouveau is loaded\n\n  driver 580 installed  \n") == [
        "nouveau is loaded", "driver 580 installed"]
    assert plan.reboot_reasons("") == [] and plan.reboot_reasons(None, {"skipped": True}) == []


def test_reboot_reasons_add_a_new_kernel_only_when_asked():
    state = {"boot_kernel": "6.1.0-57-amd64", "running": "6.1.0-50-amd64"}
    assert plan.reboot_reasons("", state) == []
    assert plan.reboot_reasons("x", state, new_kernel=True) == ["x", "kernel 6.1.0-57-amd64 boots next, 6.1.0-50-amd64 runs"]
    assert plan.reboot_reasons("", dict(state, running="6.1.0-57-amd64"), new_kernel=True) == []
    # the boot kernel cannot be told: no reason from it (the guard checks every kernel)
    assert plan.reboot_reasons("", {"boot_kernel": None, "running": "6.1.0-50-amd64"}, new_kernel=True) == []
    assert kernel_filter.node_reboot_reasons("a", state, True) == [
        "a", "kernel 6.1.0-57-amd64 boots next, 6.1.0-50-amd64 runs"]
