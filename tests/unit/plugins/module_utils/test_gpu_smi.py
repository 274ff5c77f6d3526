# SPDX-License-Identifier: Apache-2.0
"""The nvidia-smi layer: running the tool (real process trees, real timing) and the
compute capability it is asked for when our table does not know a GPU."""

import importlib.util
import os
import signal
import time
from pathlib import Path

import pytest

from ansible_collections.kubegpu.cluster.plugins.module_utils import _gpu, _gpu_data, _gpu_smi
from ansible_collections.kubegpu.cluster.plugins.module_utils._gpu_nvml import NvmlError
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_labels

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "gpu"
H100 = FIXTURES / "h100-80gb-hbm3-ubuntu2404"
H100_DEVICE = 0x2330

_spec = importlib.util.spec_from_file_location("kubegpu_fakehost", FIXTURES / "fakehost.py")
fakehost = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakehost)

# The wrapped processes sleep this long. Far past the 1 s timeout the tests give, so a
# runner that waits for them is caught; short enough that such a regression fails the
# test in half a minute instead of hanging the suite.
HANG_S = 30
TIMEOUT_S = 1
# Slack for a loaded 2-core CI machine on top of what the runner may spend.
SLACK_S = 1.5


def _no_nvml():
    raise NvmlError("dlopen(libnvidia-ml.so.1)", 12, "libnvidia-ml.so.1: cannot open shared object file")


def _alive(pid):
    """Whether pid is a live process (a zombie is dead: it only waits to be reaped)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            stat = handle.read()
    except (IOError, OSError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _survivors(pids, wait_s=2.0):
    """The pids still alive after up to wait_s (SIGKILL delivery is not instantaneous)."""
    end = time.monotonic() + wait_s
    while True:
        left = [pid for pid in pids if _alive(pid)]
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.05)


def _read_pids(path):
    return [int(line) for line in path.read_text().split()] if path.exists() else []


@pytest.fixture
def pidfile(tmp_path):
    """A file the scripts append their pids to; whatever the test left alive is
    killed afterwards, by pid, so a failing test leaks nothing."""
    path = tmp_path / "pids"
    yield path
    for pid in _read_pids(path):
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _script(path, body):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def _capture_compute_caps():
    """`--query-gpu=pci.bus_id,compute_cap --format=csv,noheader` as the H100 host answers
    it, taken from the real query-gpu.csv capture (a header row, one row per GPU, then
    the `nvidia-smi -L` listing, which is not CSV)."""
    lines = (H100 / "query-gpu.csv").read_text().splitlines()
    header = [c.strip() for c in lines[0].split(",")]
    bus, cap = header.index("pci.bus_id"), header.index("compute_cap")
    rows = [[c.strip() for c in line.split(",")] for line in lines[1:]]
    rows = [row for row in rows if len(row) == len(header)]
    assert rows
    return "".join("%s, %s\n" % (row[bus], row[cap]) for row in rows), rows[0][cap]


# --- running nvidia-smi: timeouts kill the whole process tree --------------------------

HANGS = {
    # The wrapper waits for a child it started; killing only the wrapper leaves the
    # child holding stdout, and reading stdout to the end blocks until it exits.
    "wrapper waits for its child": "sleep %d &\necho $! >> '{pids}'\necho $$ >> '{pids}'\nwait\n" % HANG_S,
    # The wrapper answers and exits at once, but a child it left behind keeps stdout.
    "wrapper exits, its child keeps stdout": (
        "echo $$ >> '{pids}'\nsleep %d &\necho $! >> '{pids}'\necho '<nvidia_smi_log/>'\nexit 0\n" % HANG_S
    ),
    # A wrapper running the (hanging) tool as a child, three levels deep.
    "wrapper runs a hanging tool": "echo $$ >> '{pids}'\n'{inner}' \"$@\"\n",
}


@pytest.mark.parametrize("kind", sorted(HANGS))
def test_timeout_kills_the_whole_process_tree(tmp_path, pidfile, kind):
    inner = _script(tmp_path / "real-nvidia-smi", "echo $$ >> '%s'\nsleep %d &\necho $! >> '%s'\nwait\n"
                    % (pidfile, HANG_S, pidfile))
    smi = _script(tmp_path / "nvidia-smi", HANGS[kind].format(pids=pidfile, inner=inner))
    start = time.monotonic()
    with pytest.raises(_gpu_smi.SmiError) as info:
        _gpu_smi.run_command([smi, "-q", "-x"], TIMEOUT_S)
    elapsed = time.monotonic() - start
    assert TIMEOUT_S <= elapsed < TIMEOUT_S + SLACK_S, elapsed
    assert str(info.value).startswith("%s -q -x timed out after %ds" % (smi, TIMEOUT_S))
    pids = _read_pids(pidfile)
    assert len(pids) >= 2  # the scripts did start their children: the check below is not vacuous
    assert _survivors(pids) == []


def test_timeout_message_says_when_the_tool_exited_but_left_a_child_on_its_output(tmp_path, pidfile):
    smi = _script(tmp_path / "nvidia-smi", HANGS["wrapper exits, its child keeps stdout"].format(pids=pidfile))
    with pytest.raises(_gpu_smi.SmiError) as info:
        _gpu_smi.run_command([smi, "-q", "-x"], TIMEOUT_S)
    assert str(info.value) == (
        "%s -q -x timed out after %ds: it exited, but a process it started kept its output open; "
        "its process group was killed" % (smi, TIMEOUT_S)
    )
    assert _survivors(_read_pids(pidfile)) == []


def test_timeout_returns_even_when_a_child_left_the_process_group(tmp_path, pidfile):
    """A child that starts a session of its own cannot be killed with the group; the
    runner still returns (it stops reading) instead of waiting for it."""
    smi = _script(tmp_path / "nvidia-smi", "setsid sleep %d &\necho $! >> '%s'\nwait\n" % (HANG_S, pidfile))
    start = time.monotonic()
    with pytest.raises(_gpu_smi.SmiError) as info:
        _gpu_smi.run_command([smi, "-q", "-x"], TIMEOUT_S)
    elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT_S + 2 * _gpu_smi.KILL_GRACE_S + SLACK_S, elapsed
    assert str(info.value) == (
        "%s -q -x timed out after %ds; its process group was killed, but a process that left the group "
        "still holds its output" % (smi, TIMEOUT_S)
    )
    # That process is outside our reach by design; the fixture kills it by pid.
    assert len(_survivors(_read_pids(pidfile), wait_s=0)) == 1


def test_timeout_returns_when_the_tool_does_not_die(tmp_path, pidfile, monkeypatch):
    """nvidia-smi stuck in the driver (uninterruptible sleep) does not die on SIGKILL
    until the kernel lets go; simulated by dropping the kill. The runner gives up after
    its grace period instead of waiting for it."""
    monkeypatch.setattr(_gpu_smi, "_kill_group", lambda proc: None)
    smi = _script(tmp_path / "nvidia-smi", "echo $$ >> '%s'\nexec sleep %d\n" % (pidfile, HANG_S))
    start = time.monotonic()
    with pytest.raises(_gpu_smi.SmiError) as info:
        _gpu_smi.run_command([smi, "-q", "-x"], TIMEOUT_S)
    elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT_S + 2 * _gpu_smi.KILL_GRACE_S + SLACK_S, elapsed
    assert str(info.value) == (
        "%s -q -x timed out after %ds and did not die when killed (stuck in the driver?)" % (smi, TIMEOUT_S)
    )


def test_wrapper_that_runs_the_tool_works(tmp_path):
    """A wrapper around the real tool (not exec'd: a real parent/child tree) is read in full."""
    xml = (H100 / "nvidia-smi-q-x.xml").read_text()
    inner = _script(tmp_path / "real-nvidia-smi", "[ \"$1 $2\" = \"-q -x\" ] || exit 2\ncat '%s'\n"
                    % (H100 / "nvidia-smi-q-x.xml"))
    smi = _script(tmp_path / "nvidia-smi", "'%s' \"$@\"\nrc=$?\necho done >&2\nexit $rc\n" % inner)
    assert _gpu_smi.run_command([smi, "-q", "-x"], 5) == (0, xml, "done\n")


def test_collect_falls_back_when_nvidia_smi_hangs(tmp_path, pidfile):
    root = fakehost.build(str(H100), str(tmp_path / "root"))
    smi = _script(tmp_path / "nvidia-smi", HANGS["wrapper waits for its child"].format(pids=pidfile))
    start = time.monotonic()
    facts = _gpu.collect(sysfs_root=root, proc_root=root, timeout=TIMEOUT_S, nvml_loader=_no_nvml,
                         smi_finder=lambda path: smi)
    elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT_S + SLACK_S, elapsed
    message = "%s -q -x timed out after %ds; its process group was killed" % (smi, TIMEOUT_S)
    assert facts["layers"][1] == {"source": "nvidia_smi", "status": "failed", "message": message}
    assert facts["errors"][-1] == "nvidia_smi: " + message
    assert facts["source"] == "sysfs" and facts["count"] == 1
    assert _survivors(_read_pids(pidfile)) == []


# --- compute capability from nvidia-smi when the table lacks the GPU -------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("00000000:00:06.0, 9.0\n", {"0000:00:06.0": (9, 0)}),
        ("00000000:18:00.0, 9.0\n00000000:2A:00.0, 12.0\n", {"0000:18:00.0": (9, 0), "0000:2a:00.0": (12, 0)}),
        ("0000:3b:00.0,10.3\r\n", {"0000:3b:00.0": (10, 3)}),
        ("00000000:00:06.0, [N/A]\n", {}),
        ("00000000:00:06.0, [Not Supported]\n00000000:00:07.0, 8.6\n", {"0000:00:07.0": (8, 6)}),
        ("pci.bus_id, compute_cap\n00000000:00:06.0, 9.0\n", {"0000:00:06.0": (9, 0)}),  # a header anyway
        ('Field "compute_cap" is not a valid field to query.\n', {}),
        ("00000000:00:06.0, 9\n00000000:00:07.0, 9.0.1\n00000000:00:08.0, x.y\n", {}),
        ("garbage, 9.0\n00000000:00:06.0\n, 9.0\n", {}),
        ("<nvidia_smi_log/>\n", {}),
        ("", {}),
    ],
)
def test_parse_compute_caps(text, expected):
    assert _gpu_smi.parse_compute_caps(text) == expected


def _xml():
    return (H100 / "nvidia-smi-q-x.xml").read_text()


def _runner(answers, calls):
    def runner(argv, timeout):
        calls.append((argv, timeout))
        return answers[tuple(argv[1:])]

    return runner


XML_ARGS = ("-q", "-x")
CAP_ARGS = ("--query-gpu=pci.bus_id,compute_cap", "--format=csv,noheader")


def test_table_known_gpu_needs_no_extra_call():
    calls = []
    _unused, gpus = _gpu_smi.query("/usr/bin/nvidia-smi", timeout=10, runner=_runner({XML_ARGS: (0, _xml(), "")}, calls))
    assert calls == [(["/usr/bin/nvidia-smi", "-q", "-x"], 10)]
    assert "compute_capability_major" not in gpus[0]  # the table gives it later


def test_gpu_missing_from_table_asks_nvidia_smi(monkeypatch):
    monkeypatch.delitem(_gpu_data.GPU_MODELS, H100_DEVICE)
    csv, cap = _capture_compute_caps()
    calls = []
    runner = _runner({XML_ARGS: (0, _xml(), ""), CAP_ARGS: (0, csv, "")}, calls)
    host, gpus = _gpu_smi.query("/usr/bin/nvidia-smi", timeout=10, runner=runner)
    assert [argv for argv, _unused in calls] == [["/usr/bin/nvidia-smi"] + list(XML_ARGS),
                                                 ["/usr/bin/nvidia-smi"] + list(CAP_ARGS)]
    assert "%d.%d" % (gpus[0]["compute_capability_major"], gpus[0]["compute_capability_minor"]) == cap
    assert host["warnings"] == []


@pytest.mark.parametrize(
    "answer, reason",
    [
        # R470's nvidia-smi does not know the field (nvidia-smi 470.182.03 in huggingface/candle#733;
        # exit status 2 in canonical/inference-snaps#128).
        ((2, "", 'Field "compute_cap" is not a valid field to query.\n'),
         '/usr/bin/nvidia-smi --query-gpu=pci.bus_id,compute_cap --format=csv,noheader exited 2: '
         'Field "compute_cap" is not a valid field to query.'),
        ((0, "00000000:00:06.0, [N/A]\n", ""), "nvidia-smi reported none"),
        ((0, "00000000:00:07.0, 9.0\n", ""), "nvidia-smi reported none"),
    ],
)
def test_compute_cap_unavailable_is_a_warning_not_a_failure(monkeypatch, answer, reason):
    monkeypatch.delitem(_gpu_data.GPU_MODELS, H100_DEVICE)
    host, gpus = _gpu_smi.query("/usr/bin/nvidia-smi", runner=_runner({XML_ARGS: (0, _xml(), ""), CAP_ARGS: answer}, []))
    assert gpus[0].get("compute_capability_major") is None
    assert host["warnings"] == ["compute capability unknown for 0000:00:06.0 (device 2330): %s" % reason]


def test_compute_cap_query_shares_the_timeout(monkeypatch):
    """Both calls together stay within `timeout`: the second gets what the first left."""
    monkeypatch.delitem(_gpu_data.GPU_MODELS, H100_DEVICE)
    clock = [100.0]
    monkeypatch.setattr(_gpu_smi, "_now", lambda: clock[0])
    csv, _unused = _capture_compute_caps()
    calls = []

    def runner(argv, timeout):
        calls.append(timeout)
        clock[0] += 4.0  # each call takes 4 s
        return (0, _xml(), "") if argv[1] == "-q" else (0, csv, "")

    _gpu_smi.query("/usr/bin/nvidia-smi", timeout=10, runner=runner)
    assert calls == [10, 6.0]


def test_compute_cap_query_skipped_when_no_time_is_left(monkeypatch):
    monkeypatch.delitem(_gpu_data.GPU_MODELS, H100_DEVICE)
    clock = [100.0]
    monkeypatch.setattr(_gpu_smi, "_now", lambda: clock[0])
    calls = []

    def runner(argv, timeout):
        calls.append(argv)
        clock[0] += 10.5
        return (0, _xml(), "")

    host, gpus = _gpu_smi.query("/usr/bin/nvidia-smi", timeout=10, runner=runner)
    assert calls == [["/usr/bin/nvidia-smi", "-q", "-x"]]
    assert gpus[0].get("compute_capability_major") is None
    assert host["warnings"] == [
        "compute capability unknown for 0000:00:06.0 (device 2330): no time left of the 10s timeout to ask nvidia-smi"
    ]


def test_collect_labels_a_gpu_missing_from_the_table(tmp_path, monkeypatch):
    """The real H100 capture with a table that does not know the H100 (as it will not
    know next year's GPU): the compute labels still come, from nvidia-smi."""
    monkeypatch.delitem(_gpu_data.GPU_MODELS, H100_DEVICE)
    root = fakehost.build(str(H100), str(tmp_path / "root"))
    csv, cap = _capture_compute_caps()
    csv_file = tmp_path / "compute-cap.csv"
    csv_file.write_text(csv)
    smi = _script(tmp_path / "nvidia-smi", (
        'case "$*" in\n'
        '  "-q -x") exec cat \'%s\' ;;\n'
        '  "--query-gpu=pci.bus_id,compute_cap --format=csv,noheader") exec cat \'%s\' ;;\n'
        '  *) echo "unexpected arguments: $*" >&2; exit 2 ;;\n'
        'esac\n'
    ) % (H100 / "nvidia-smi-q-x.xml", csv_file))
    facts = _gpu.collect(sysfs_root=root, proc_root=root, nvml_loader=_no_nvml, smi_finder=lambda path: smi)
    assert facts["source"] == "nvidia_smi"
    assert facts["gpus"][0]["compute_capability"] == cap
    major, minor = cap.split(".")
    labels = _gpu_labels.node_labels(facts)
    assert (labels["nvidia.com/gpu.compute.major"], labels["nvidia.com/gpu.compute.minor"]) == (major, minor)
    assert facts["warnings"] == []


def test_collect_reports_why_the_compute_capability_is_missing(tmp_path, monkeypatch):
    monkeypatch.delitem(_gpu_data.GPU_MODELS, H100_DEVICE)
    root = fakehost.build(str(H100), str(tmp_path / "root"))
    runner = _runner({XML_ARGS: (0, _xml(), ""), CAP_ARGS: (2, "", 'Field "compute_cap" is not a valid field to query.\n')}, [])
    facts = _gpu.collect(sysfs_root=root, proc_root=root, nvml_loader=_no_nvml,
                         smi_finder=lambda path: "/usr/bin/nvidia-smi", smi_runner=runner)
    assert facts["source"] == "nvidia_smi"
    assert facts["gpus"][0]["compute_capability"] is None
    assert "nvidia.com/gpu.compute.major" not in _gpu_labels.node_labels(facts)
    assert facts["warnings"] == [
        "nvidia_smi: compute capability unknown for 0000:00:06.0 (device 2330): /usr/bin/nvidia-smi "
        "--query-gpu=pci.bus_id,compute_cap --format=csv,noheader exited 2: Field \"compute_cap\" is not a valid field to query."
    ]
