#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: bundle_plan
short_description: Decide what an air-gapped fleet's offline bundle holds
version_added: "0.4.0"
description:
  - An action plugin on the controller; it changes nothing anywhere. From this run's facts of O(hosts) (or the
    declared OS/release/architecture/GPU combinations of O(targets)) and each host's settings as the stages
    will see them, it returns the package repositories to build (an apt repository per Debian or Ubuntu release, a
    dnf repository per RHEL, Rocky or AlmaLinux major release, with the packages each stage installs there), the
    files and container images the stages download, and the variables that
    point every stage at the bundle (C(mirrors.yml)).
  - The packages come from the stages' own data and decisions (the roles' OS vars files, the driver stage's
    plan and package selection, the pinned Kubernetes packages); see C(plugins/plugin_utils/_bundle.py).
  - A RHEL-family target is resolved from the distribution's own repositories (Rocky's and AlmaLinux's BaseOS,
    AppStream and CRB at V(bundle_rocky_mirror) / V(bundle_almalinux_mirror); RHEL's from V(bundle_rhel_repos),
    which a subscription provides, and refused without, naming the host), EPEL (V(bundle_epel_mirror)) and the
    third-party repositories the stages add on RedHat, each key pinned by fingerprint.
author:
  - kubegpu maintainers (@kubegpu)
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Nothing to show a diff of.
  idempotent:
    support: full
    description: Reads only.
options:
  hosts:
    description: The fleet's hosts whose facts this run gathered (C(ansible_facts), C(kubegpu_gpu_node)).
    type: list
    elements: str
    default: []
  cluster_hosts:
    description: Which of O(hosts) are Kubernetes nodes (default all of them); the others only serve the bundle.
    type: list
    elements: str
  control_plane_hosts:
    description: Which of O(hosts) are control planes.
    type: list
    elements: str
    default: []
  server_hosts:
    description: Which of O(hosts) serve the bundle on the site (they get its HTTP and registry packages).
    type: list
    elements: str
    default: []
  targets:
    description:
      - Declared combinations, used instead of the facts of O(hosts) when those cannot be reached.
      - Each C({distribution, version, codename, architecture, kernel, gpus, roles}), C(gpus) the GPU
        architectures (V(hopper), V(ampere), ...), C(roles) e.g. V([bundle_server]).
    type: list
    elements: dict
    default: []
  stages:
    description: What to bundle.
    type: list
    elements: str
    default: [os_prereqs, nvidia_driver, container_runtime, kubernetes, nfs_client, bundle_server, images, files]
"""

EXAMPLES = r"""
- name: Decide the bundle
  kubegpu.cluster.bundle_plan:
    hosts: "{{ groups['k8s_cluster'] }}"
    control_plane_hosts: "{{ groups['kube_control_plane'] }}"
  register: _bundle
"""

RETURN = r"""
targets:
  description: One per distribution release - C(id), C(kind) (V(apt) or V(dnf)), C(architectures), C(hosts),
    C(packages) by stage, C(package_list), C(third_party) repositories, C(keys) (the repositories whose key the
    builder downloads and checks); apt C(sources); dnf C(releasever) and C(repos) (every repository resolved from,
    with C(baseurl), C(key_url), C(fingerprint), C(gpgcheck), C(module_hotfixes)).
  returned: success
  type: list
  elements: dict
images:
  description: The images - C(ref), C(registry), C(path), C(version), C(source), C(archive) (path in the bundle),
    C(target) (path in the bundle's registry).
  returned: success
  type: list
  elements: dict
files:
  description: The downloaded files - C(variable), C(url), C(path) in the bundle.
  returned: success
  type: list
  elements: dict
gpu_operator:
  description: >-
    Where the GPU Operator's chart is bundled: C(chart_values), the chart values the gpu_operator stage gives helm
    (null when they cannot be decided on the controller), and C(gpu_nodes_os), the OS facts of every GPU node
    (the driver container's tag); the operand images are read from the downloaded chart with them
    (filter C(bundle_gpu_operator_images)). Empty otherwise.
  returned: success
  type: dict
charts:
  description: The Helm chart repositories to bundle (the GPU Operator's) - C(variable), C(repo), C(name), C(version),
    C(path) in the bundle (a chart repository of the one chart).
  returned: success
  type: list
  elements: dict
mirrors:
  description: The variables of C(mirrors.yml), as templates of C(kubegpu_bundle_url) and C(kubegpu_bundle_registry).
  returned: success
  type: dict
unresolved:
  description: Settings whose default could not be templated here (built from what only their stage knows), with
    the reason; they count as unset.
  returned: success
  type: dict
"""

ARGUMENT_SPEC = dict(
    hosts=dict(type="list", elements="str", default=[]),
    cluster_hosts=dict(type="list", elements="str"),
    control_plane_hosts=dict(type="list", elements="str", default=[]),
    server_hosts=dict(type="list", elements="str", default=[]),
    targets=dict(type="list", elements="dict", default=[]),
    stages=dict(type="list", elements="str",
                default=["os_prereqs", "nvidia_driver", "container_runtime", "kubernetes", "nfs_client", "bundle_server",
                         "images", "files"]),
)


def main():  # pragma: no cover - the action plugin does the work
    from ansible.module_utils.basic import AnsibleModule
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="kubegpu.cluster.bundle_plan runs on the controller as an action plugin")


if __name__ == "__main__":
    main()
