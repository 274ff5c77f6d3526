# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Time kubegpu.cluster.gpu_facts' own work, per source, in-process.

Times module_utils._gpu.collect() (what the module does minus Ansible's
module start-up) N times per source and prints a table and JSON.
No ansible needed on the host:

    PYTHONPATH=.collections python3 bench/gpu_facts_bench.py                # this host
    PYTHONPATH=.collections python3 bench/gpu_facts_bench.py --repeat 50 --json out.json
    PYTHONPATH=.collections python3 bench/gpu_facts_bench.py \\
        --fixture tests/fixtures/gpu/hgx-h100-8gpu-nvswitch                 # fake host tree

With --fixture the case is materialised in a temporary directory (see
tests/fixtures/gpu/fakehost.py) and nvidia-smi is replaced by a function that
returns the case's nvidia-smi-q-x.xml, so the nvidia_smi figure is the parse
cost only; nvml is skipped there (no fake library).
"""

from __future__ import print_function

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _import_gpu():
    """Import module_utils._gpu via .collections, or via a temporary
    ansible_collections/kubegpu/cluster link when .collections is absent
    (e.g. a bare checkout copied to a GPU host)."""
    sys.path.insert(0, os.path.join(REPO, ".collections"))
    try:
        from ansible_collections.kubegpu.cluster.plugins.module_utils import _gpu as module
        return module
    except ImportError:
        sys.path.pop(0)
    link_root = tempfile.mkdtemp(prefix="kubegpu-bench-path-")
    os.makedirs(os.path.join(link_root, "ansible_collections", "kubegpu"))
    os.symlink(REPO, os.path.join(link_root, "ansible_collections", "kubegpu", "cluster"))
    sys.path.insert(0, link_root)
    from ansible_collections.kubegpu.cluster.plugins.module_utils import _gpu as module
    return module


_gpu = _import_gpu()


def _load_fakehost():
    import importlib.util

    path = os.path.join(REPO, "tests", "fixtures", "gpu", "fakehost.py")
    spec = importlib.util.spec_from_file_location("kubegpu_fakehost", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _percentile(values, pct):
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(0, min(len(ordered) - 1, int(round(pct / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def measure(kwargs, repeat):
    start = time.perf_counter()
    facts = _gpu.collect(**kwargs)
    cold = (time.perf_counter() - start) * 1000.0
    samples = []
    for _repeat in range(repeat):
        start = time.perf_counter()
        _gpu.collect(**kwargs)
        samples.append((time.perf_counter() - start) * 1000.0)
    return {
        "answered_by": facts["source"],
        "count": facts["count"],
        "errors": facts["errors"],
        "cold_ms": round(cold, 3),
        "median_ms": round(statistics.median(samples), 3) if samples else None,
        "p95_ms": round(_percentile(samples, 95), 3) if samples else None,
        "min_ms": round(min(samples), 3) if samples else None,
        "repeat": repeat,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per source after one cold run")
    parser.add_argument("--sources", default="nvml,nvidia_smi,sysfs,default", help="comma list; 'default' = all layers in order")
    parser.add_argument("--fixture", help="a tests/fixtures/gpu/<case> directory to run against")
    parser.add_argument("--json", help="also write the JSON result to this file")
    parser.add_argument("--dump-facts", help="also write each source's facts to <prefix>-<source>.json")
    args = parser.parse_args(argv)

    kwargs = {}
    tmp = None
    if args.fixture:
        fakehost = _load_fakehost()
        tmp = tempfile.mkdtemp(prefix="kubegpu-bench-")
        root = fakehost.build(os.path.abspath(args.fixture), tmp)
        xml = fakehost.smi_xml(os.path.abspath(args.fixture))
        kwargs.update(sysfs_root=root, proc_root=root)
        if xml is not None:
            kwargs.update(smi_finder=lambda path: "/fake/nvidia-smi", smi_runner=lambda argv, timeout: (0, xml, ""))
        else:
            kwargs.update(smi_finder=lambda path: None)

    results = []
    try:
        for source in [s.strip() for s in args.sources.split(",") if s.strip()]:
            if args.fixture and source == "nvml":
                continue
            sources = list(_gpu.SOURCES) if source == "default" else [source]
            row = measure(dict(kwargs, sources=sources), args.repeat)
            row["source"] = source
            if args.dump_facts:
                with open("%s-%s.json" % (args.dump_facts, source), "w") as handle:
                    json.dump(_gpu.collect(**dict(kwargs, sources=sources)), handle, indent=1)
            results.append(row)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    header = "%-11s %-11s %5s %9s %9s %9s  %s" % ("source", "answered", "gpus", "cold ms", "median", "p95", "errors")
    print(header)
    print("-" * len(header))
    for row in results:
        print(
            "%-11s %-11s %5d %9.2f %9.2f %9.2f  %s"
            % (row["source"], row["answered_by"], row["count"], row["cold_ms"], row["median_ms"] or 0, row["p95_ms"] or 0, "; ".join(row["errors"]) or "-")
        )
    report = {
        "host": platform.node(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "fixture": args.fixture,
        "results": results,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
