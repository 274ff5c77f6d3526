# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: the GPU Operator's Helm release (roles/gpu_operator/tasks/operator.yml).

``release`` is the role's ``_gpu_operator_release_spec``: ``name``, ``chart``, ``version``
(the pinned chart version), ``namespace``, ``values_file`` (the rendered values on the
host), ``values`` (the values kubegpu renders there), ``timeout`` (seconds helm waits)
and ``repo_url`` ("" when ``chart`` is a local path or an OCI reference). Pure functions.
"""

from __future__ import annotations

import json


def upgrade_argv(helm, release):
    """The ``helm upgrade --install`` command of the release, after ``helm`` (the program
    and its global options), waiting up to the release's timeout; ``--repo`` where a
    chart repository URL is set."""
    release = release or {}
    argv = list(helm or []) + [
        "upgrade", "--install", str(release.get("name")), str(release.get("chart")),
        "--version", str(release.get("version")), "--namespace", str(release.get("namespace")),
        "--create-namespace", "--values", str(release.get("values_file")),
        "--wait", "--timeout", "%ss" % release.get("timeout")]
    repo_url = release.get("repo_url") or ""
    if len(repo_url) > 0:
        argv += ["--repo", str(repo_url)]
    return argv


def installed_release(list_stdout):
    """The release ``helm list --output json`` shows (its first entry), {} when none."""
    releases = json.loads(list_stdout)
    return (releases[0] if releases else None) or {}


def release_differs(list_stdout, current_values, release):
    """Whether helm upgrade must run: ``helm upgrade`` makes a new revision even when
    nothing changed, so it runs only when the release is missing, not deployed, of another
    chart version, or has other values than ``release["values"]``.

    ``list_stdout``: ``helm list --output json`` for the release's name; ``current_values``:
    the registered result of ``helm get values --output json`` (skipped, without stdout,
    where the release is missing). Output that is not JSON raises ValueError."""
    release = release or {}
    installed = installed_release(list_stdout)
    if not installed or (installed.get("status") or "") != "deployed":
        return True
    if not str(installed.get("chart") or "").endswith("-%s" % release.get("version")):
        return True
    stdout = (current_values or {}).get("stdout")
    return json.loads("{}" if stdout is None else stdout) != release.get("values")
