# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""The nvidia-smi layer: run `nvidia-smi -q -x` and parse its XML.

Standard library only, no ansible import. nvidia-smi output is not
guaranteed stable (NVML is), so every element is optional and "N/A" reads
as unknown.

The XML has no compute capability. For a GPU our table (_gpu_data) does not
know, one more call asks for it: `--query-gpu=pci.bus_id,compute_cap
--format=csv,noheader`. Both calls together stay within the timeout.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import signal
import subprocess
import time
import xml.etree.ElementTree as ET

from ansible_collections.kubegpu.cluster.plugins.module_utils._gpu_data import family_from_smi, lookup_model
from ansible_collections.kubegpu.cluster.plugins.module_utils._gpu_health import smi_gpu_health, xml_text as _text
from ansible_collections.kubegpu.cluster.plugins.module_utils._gpu_sysfs import normalise_bus_id

DEFAULT_SMI_PATHS = ("/usr/bin/nvidia-smi",)

# After a timeout the process group is killed; this long is given, twice at most,
# for the pipes to close and the child to be reaped before the runner gives up.
KILL_GRACE_S = 1.0

# The CSV query for compute capabilities. nvidia-smi 570.133.07 answers it
# (canonical/inference-snaps#128), and so does 580.159.04 (the H100 capture,
# tests/fixtures/gpu/h100-80gb-hbm3-ubuntu2404/query-gpu.csv). R470's
# nvidia-smi refuses it: 'Field "compute_cap" is not a valid field to query.'
# (huggingface/candle#733 on 470.182.03, NVIDIA/TensorRT-LLM#735 on 470.82.01,
# inference-snaps#89 on 470.256.02), exit status 2 (inference-snaps#128). The
# branch that introduced it is not documented where we looked, so a refusal is
# an expected answer, not an error.
COMPUTE_CAP_ARGS = ("--query-gpu=pci.bus_id,compute_cap", "--format=csv,noheader")

_BUS_ID = re.compile(r"^(?:[0-9a-fA-F]{4,8}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_CAPABILITY = re.compile(r"^(\d{1,2})\.(\d{1,2})$")

_now = time.monotonic


class SmiError(Exception):
    pass


def find_nvidia_smi(path=None):
    """The nvidia-smi to use: the given path, else PATH, else /usr/bin."""
    if path:
        return path if os.access(path, os.X_OK) else None
    for directory in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin", "/usr/local/bin"]:
        if not directory:
            continue
        candidate = os.path.join(directory, "nvidia-smi")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _seconds(value):
    return "%g" % round(value, 2)


def _kill_group(proc):
    """SIGKILL the child's process group (it leads one: start_new_session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        # The group is gone (every member exited) or not ours to signal:
        # fall back to the direct child, which we have not reaped yet.
        try:
            proc.kill()
        except OSError:
            pass


def run_command(argv, timeout):
    """Default runner: (rc, stdout, stderr) as text; SmiError on timeout.

    The child runs in a session, hence a process group, of its own. On
    timeout the whole group is killed: a wrapper script's children (a
    backgrounded process, the real tool behind the wrapper) would otherwise
    keep the output pipes open, and reading them to the end would block long
    after the direct child is gone. The runner then returns within about
    2 x KILL_GRACE_S even if a process that left the group still holds the
    pipes, or the child does not die (stuck in the kernel driver).
    """
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        close_fds=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    else:
        return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    command = " ".join(argv)
    message = "%s timed out after %ss" % (command, _seconds(timeout))
    _kill_group(proc)
    try:
        proc.communicate(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        # Someone still holds the pipes: stop reading, reap the child if it died.
        for stream in (proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            raise SmiError("%s and did not die when killed (stuck in the driver?)" % message)
        raise SmiError("%s; its process group was killed, but a process that left the group still holds its output"
                       % message)
    if proc.returncode != -signal.SIGKILL:
        raise SmiError("%s: it exited, but a process it started kept its output open; its process group was killed"
                       % message)
    raise SmiError("%s; its process group was killed" % message)


def _mib(text):
    """'81559 MiB' -> 81559."""
    if not text:
        return None
    parts = text.split()
    try:
        value = int(parts[0])
    except (ValueError, IndexError):
        return None
    unit = parts[1] if len(parts) > 1 else "MiB"
    if unit == "GiB":
        value *= 1024
    elif unit == "KiB":
        value //= 1024
    return value


def _mode(text):
    if text is None:
        return None
    low = text.lower()
    if low == "enabled":
        return "enabled"
    if low == "disabled":
        return "disabled"
    return low


def _int(text):
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _split_id(text):
    """'233010DE' -> (0x10de, 0x2330): NVIDIA writes device then vendor."""
    if not text:
        return None, None
    value = text.lower()
    if value.startswith("0x"):
        value = value[2:]
    try:
        number = int(value, 16)
    except ValueError:
        return None, None
    return number & 0xFFFF, number >> 16


def parse_smi_xml(text):
    """Parse `nvidia-smi -q -x` output into a host dict and a GPU list."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise SmiError("cannot parse nvidia-smi XML: %s" % exc)
    if root.tag != "nvidia_smi_log":
        raise SmiError("unexpected nvidia-smi XML root <%s>" % root.tag)
    host = {
        "driver_version": _text(root, "driver_version"),
        "cuda_driver_version": _text(root, "cuda_version"),
        "attached_gpus": _int(_text(root, "attached_gpus")),
    }
    gpus = []
    for index, gpu in enumerate(root.findall("gpu")):
        pci = gpu.find("pci")
        bus_id = _text(pci, "pci_bus_id") or gpu.get("id")
        vendor, device = _split_id(_text(pci, "pci_device_id"))
        sub_vendor, sub_device = _split_id(_text(pci, "pci_sub_system_id"))
        current = _mode(_text(gpu, "mig_mode/current_mig"))
        pending = _mode(_text(gpu, "mig_mode/pending_mig"))
        persistence = _mode(_text(gpu, "persistence_mode"))
        gpus.append(
            {
                "index": index,
                "uuid": _text(gpu, "uuid"),
                "name": _text(gpu, "product_name"),
                "pci_bus_id": normalise_bus_id(bus_id),
                "vendor": vendor,
                "device": device,
                "subsystem_vendor": sub_vendor,
                "subsystem_device": sub_device,
                "memory_mib": _mib(_text(gpu, "fb_memory_usage/total")),
                "architecture": family_from_smi(_text(gpu, "product_architecture")),
                "mig_capable": current is not None,
                "mig_mode_current": current,
                "mig_mode_pending": pending,
                "minor_number": _int(_text(gpu, "minor_number")),
                "persistence_mode": None if persistence is None else persistence == "enabled",
                "health": smi_gpu_health(gpu),
            }
        )
    return host, gpus


def parse_compute_caps(text):
    """`--query-gpu=pci.bus_id,compute_cap --format=csv,noheader` -> {bus id: (major, minor)}.

    Lines that are not `<bus id>, <major>.<minor>` ("[N/A]", a header, an
    error message) are left out.
    """
    caps = {}
    for line in (text or "").splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 2 or not _BUS_ID.match(fields[0]):
            continue
        match = _CAPABILITY.match(fields[1])
        if match:
            caps[normalise_bus_id(fields[0])] = (int(match.group(1)), int(match.group(2)))
    return caps


def _run(runner, argv, timeout):
    try:
        return runner(argv, timeout)
    except SmiError:
        raise
    except (OSError, ValueError) as exc:
        raise SmiError("cannot run %s: %s" % (argv[0], exc))


def _first_line(out, err):
    message = (err or out or "").strip().splitlines()
    return message[0] if message else "no output"


def _needs_compute_cap(gpu):
    device = gpu.get("device")
    return device is None or lookup_model(device, gpu.get("subsystem_vendor"), gpu.get("subsystem_device")) is None


def _ask_compute_caps(smi_path, gpus, runner, timeout, left):
    """Fill compute_capability_major/minor of the GPUs our table lacks.

    Returns warnings; a failure here never fails the layer.
    """
    missing = [gpu for gpu in gpus if _needs_compute_cap(gpu)]
    if not missing:
        return []
    if left <= 0:
        reason = "no time left of the %ss timeout to ask nvidia-smi" % _seconds(timeout)
        caps = {}
    else:
        argv = [smi_path] + list(COMPUTE_CAP_ARGS)
        try:
            rc, out, err = _run(runner, argv, left)
        except Exception as exc:  # noqa: BLE001 - the XML answered; a broken extra call must not undo that
            rc, out, reason = None, "", str(exc)
        else:
            reason = "nvidia-smi reported none"
            if rc != 0:
                reason = "%s exited %s: %s" % (" ".join(argv), rc, _first_line(out, err))
        caps = parse_compute_caps(out) if rc == 0 else {}
    unknown = []
    for gpu in missing:
        cap = caps.get(gpu.get("pci_bus_id"))
        if cap is None:
            unknown.append(gpu)
        else:
            gpu["compute_capability_major"], gpu["compute_capability_minor"] = cap
    if not unknown:
        return []
    names = ", ".join(
        "%s (device %s)" % (gpu.get("pci_bus_id"), "%04x" % gpu["device"] if gpu.get("device") is not None else "unknown")
        for gpu in unknown
    )
    return ["compute capability unknown for %s: %s" % (names, reason)]


def query(smi_path, timeout=10, runner=None):
    """Run nvidia-smi -q -x and parse it. Raises SmiError on any failure.

    For GPUs missing from our table, also asks nvidia-smi for the compute
    capability (see COMPUTE_CAP_ARGS) within what is left of `timeout`; what
    it could not learn is listed in the returned host dict's "warnings".
    """
    runner = runner or run_command
    deadline = _now() + timeout
    rc, out, err = _run(runner, [smi_path, "-q", "-x"], timeout)
    if rc != 0:
        raise SmiError("%s -q -x exited %s: %s" % (smi_path, rc, _first_line(out, err)))
    host, gpus = parse_smi_xml(out)
    host["warnings"] = _ask_compute_caps(smi_path, gpus, runner, timeout, deadline - _now())
    return host, gpus
