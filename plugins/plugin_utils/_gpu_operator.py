# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: the GPU Operator's Helm release (roles/gpu_operator/tasks/operator.yml).

``release`` is the role's ``_gpu_operator_release_spec``: ``name``, ``chart``, ``version``
(the pinned chart version), ``namespace``, ``values_file`` (the rendered values on the
host), ``values`` (the values kubegpu renders there), ``timeout`` (seconds helm waits)
and ``repo_url`` ("" when ``chart`` is a local path or an OCI reference). Pure functions.

The chart's ``driver`` values (``driver_values``) follow ``nvidia_driver_mode``: the host
driver kept, or the Operator's driver containers (_driver_container); ``driver_rollout``
reads how far the Operator's rolling driver upgrade has come (playbooks/upgrade_driver.yml).
"""

from __future__ import annotations

import json

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _driver_container as _dc


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


# --- the driver: host driver kept, or the Operator's driver containers -------------------------

def gpu_nodes_os(hostvars, hosts):
    """The ansible_facts of this run of every GPU node among ``hosts`` (``kubegpu_gpu_node``
    as the kubegpu role published it); a GPU node whose OS facts this run did not gather
    gives {} (precompiled driver containers are then not chosen by ``auto``)."""
    found = []
    for host in hosts or []:
        variables = (hostvars or {}).get(host) or {}
        gpu_node = variables.get("kubegpu_gpu_node")
        if gpu_node is True or str(gpu_node).strip().lower() in ("true", "yes", "on", "1"):
            facts = variables.get("ansible_facts") or {}
            found.append(dict((key, facts.get(key)) for key in
                              ("distribution", "distribution_version", "kernel", "architecture") if key in facts))
    return found


def driver_values(settings, gpu_nodes, boolean):
    """The chart's ``driver`` values kubegpu sets (NVIDIA/gpu-operator
    deployments/gpu-operator/values.yaml at v25.10.1):

    - host mode (``nvidia_driver_mode: host``): ``{"enabled": False}`` - the nvidia_driver
      stage's driver is kept;
    - container mode: ``enabled``, ``usePrecompiled`` (_driver_container.use_precompiled over
      ``gpu_nodes``, the OS facts of every GPU node of this run), ``version`` (the pinned
      ``gpu_operator_driver_version``; its branch with precompiled containers, which are
      tagged ``<branch>-<kernel>-<os>``) and ``upgradePolicy`` (``autoUpgrade``,
      ``maxParallelUpgrades``, ``maxUnavailable``, ``drain.enable``/``timeoutSeconds``) from the
      ``gpu_operator_driver_upgrade_*`` settings; the chart's defaults fill in the rest.

    ``settings``: _driver_container.SETTINGS; ``boolean``: how the argument specs read a boolean."""
    settings = settings or {}
    if not _dc.is_container(settings):
        return {"enabled": False}
    precompiled = _dc.use_precompiled(settings, gpu_nodes, boolean)
    version = str(settings.get(_dc.VERSION) if settings.get(_dc.VERSION) is not None else "").strip()
    branch = _dc.branch_of(version, precompiled=True)

    def flag(name, default):
        return _dc.flag(settings.get(name), boolean, default)

    return {
        "enabled": True,
        "usePrecompiled": precompiled,
        "version": branch if precompiled and branch else version,
        "upgradePolicy": {
            "autoUpgrade": flag("gpu_operator_driver_upgrade_auto", True),
            "maxParallelUpgrades": _dc.integer(settings.get(_dc.MAX_PARALLEL), 1),
            "maxUnavailable": _dc.max_unavailable(settings.get(_dc.MAX_UNAVAILABLE)),
            "drain": {
                "enable": flag("gpu_operator_driver_upgrade_drain", False),
                "timeoutSeconds": _dc.integer(settings.get("gpu_operator_driver_upgrade_drain_timeout"), 300),
            },
        },
    }


# The Operator's driver DaemonSets (one, or one per kernel with precompiled containers) and
# the node label its upgrade controller keeps (NVIDIA/gpu-operator v25.10.1
# assets/state-driver/0500_daemonset.yaml: label app.kubernetes.io/component=nvidia-driver,
# container nvidia-driver-ctr, updateStrategy OnDelete; the image tag <version>-<os tag>, or
# <branch>-<kernel>-<os tag> precompiled, controllers/object_controls.go resolveDriverTag;
# k8s-operator-libs pkg/upgrade: nvidia.com/gpu-driver-upgrade-state, upgrade-done / upgrade-failed).
DRIVER_SELECTOR = "app.kubernetes.io/component=nvidia-driver"
DRIVER_CONTAINER = "nvidia-driver-ctr"
UPGRADE_STATE_LABEL = "nvidia.com/gpu-driver-upgrade-state"


def _items(answer):
    if isinstance(answer, str):
        answer = json.loads(answer or '{"items": []}')
    return list((answer or {}).get("items") or [])


def _is_driver_daemonset(item, namespace):
    metadata = item.get("metadata") or {}
    return (item.get("kind") == "DaemonSet" and metadata.get("namespace") == namespace
            and (metadata.get("labels") or {}).get(DRIVER_SELECTOR.split("=", 1)[0]) == DRIVER_SELECTOR.split("=", 1)[1])


def driver_rollout(objects, version, namespace):
    """How far the Operator has rolled driver ``version`` (the chart's ``driver.version``) out:
    ``{"done": bool, "failed": [node names], "summary": str}``.

    Done when every driver DaemonSet of ``namespace`` runs an image of that version, its
    controller has seen its latest spec, every node it wants has an updated, available
    pod (the DaemonSets are OnDelete: only the upgrade controller replaces pods, node by
    node), and no node is still in an upgrade state before upgrade-done (validated and
    uncordoned). ``failed``: nodes the upgrade controller labelled ``upgrade-failed``.
    ``objects``: ``kubectl get nodes,daemonsets --all-namespaces -o json`` (text or parsed).
    Output that is not JSON raises ValueError."""
    wanted = "%s-" % str(version).strip()
    items = _items(objects)
    found = [item for item in items if _is_driver_daemonset(item, namespace)]
    waiting = []
    for ds in found:
        name = (ds.get("metadata") or {}).get("name") or "?"
        containers = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        images = [c.get("image") or "" for c in containers if c.get("name") == DRIVER_CONTAINER]
        tag = images[0].rsplit(":", 1)[-1] if images and ":" in images[0] else ""
        status = ds.get("status") or {}
        desired = int(status.get("desiredNumberScheduled") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
        available = int(status.get("numberAvailable") or 0)
        if not tag.startswith(wanted):
            waiting.append("%s runs %s" % (name, tag or "no driver image"))
        elif int(status.get("observedGeneration") or 0) < int((ds.get("metadata") or {}).get("generation") or 0):
            waiting.append("%s: spec not yet seen by its controller" % name)
        elif updated < desired or available < desired:
            waiting.append("%s: %d/%d nodes updated, %d available" % (name, updated, desired, available))
    failed = sorted((n.get("metadata") or {}).get("name") or "?" for n in items if n.get("kind") == "Node"
                    and ((n.get("metadata") or {}).get("labels") or {}).get(UPGRADE_STATE_LABEL) == "upgrade-failed")
    # The upgrade controller's last steps (validation, uncordon) come after the new pod is
    # available: a node in any state but upgrade-done (or none) is still on its way
    # (NVIDIA/k8s-operator-libs pkg/upgrade: upgrade-required ... uncordon-required, upgrade-done).
    for node in items:
        labels = (node.get("metadata") or {}).get("labels") or {}
        state = labels.get(UPGRADE_STATE_LABEL)
        if node.get("kind") == "Node" and state not in (None, "", "upgrade-done", "upgrade-failed"):
            waiting.append("node %s: %s" % ((node.get("metadata") or {}).get("name") or "?", state))
    if not found:
        waiting.append("no driver DaemonSet (%s) in namespace %s yet" % (DRIVER_SELECTOR, namespace))
    done = not waiting and not failed
    summary = ("driver %s on every GPU node" % version if done
               else "; ".join(waiting + (["upgrade-failed on %s" % ", ".join(failed)] if failed else [])))
    return {"done": done, "failed": failed, "summary": summary}
