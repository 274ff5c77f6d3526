# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Filters of the offline bundle (playbooks/bundle.yml), over plugins/plugin_utils/_bundle.py."""

from __future__ import annotations

DOCUMENTATION = r"""
name: bundle
short_description: The offline bundle's apt source lines, dnf repositories and mirrors.yml
version_added: "0.4.0"
description:
  - C(bundle_source_lines(third_party, key_dir)) gives the apt source lines of the third-party repositories
    a target's packages come from, each signed by its key downloaded into C(key_dir).
  - C(bundle_mirrors_document(mirrors, public_key, images)) gives C(mirrors.yml), the variables that point
    every stage at the bundle, with the bundle's public key.
  - C(bundle_dnf_repos(repos, key_dir)) gives dnf_bundle's C(repos) of a dnf target's repositories, each with its
    key downloaded into C(key_dir).
  - >-
    C(bundle_package_versions(results, more_results...)) gives, from apt_bundle's and dnf_bundle's looped results,
    each repository's packages and versions, C({target: {package: version}}).
  - >-
    C(bundle_release_id(facts)) gives the name of a host's repository in the bundle from its Ansible facts
    (C(debian-bookworm), C(rocky-9)), as preflight and bundle_plan name it; C(bundle_dnf_repo_file(url)) the
    C(kubegpu-bundle.repo) a dnf host of an offline cluster uses for the bundle's repository at C(url).
  - C(bundle_with_manifest_images(images, texts, extra, charts_images)) adds the images the downloaded
    manifests name (C(image:) fields) and those the charts run to the bundle's images.
  - >-
    C(bundle_gpu_operator_images(archive_b64, values, gpu_nodes_os)) lists the images the GPU Operator's chart
    (its archive, base64 as slurp reads it) runs with the values the gpu_operator stage gives helm: the operator,
    every enabled operand, the driver container tagged for each GPU node's OS, NFD.
  - >-
    C(bundle_chart_entries(index_results)) finds each chart of the uri results that read the chart repositories'
    C(index.yaml) in its index, and gives the chart with its C(entry) (the absolute URL of its archive included);
    C(bundle_chart_index(entry)) writes the bundle's C(index.yaml) of that one chart.
positional: _input
options:
  _input:
    description: The third-party repositories (bundle_plan's C(targets[].third_party)), or its C(mirrors).
    type: raw
    required: true
"""

EXAMPLES = r"""
sources: "{{ target.third_party | kubegpu.cluster.bundle_source_lines('/var/lib/kubegpu-bundle/build/.work/keys') }}"
"""

RETURN = r"""
_value:
  description: A list of apt source lines, or the text of mirrors.yml.
  type: raw
"""

import base64
import binascii
import json

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _lazy

_bundle = _lazy.Module("plugin_utils._bundle")
_offline = _lazy.Module("plugin_utils._offline")


def bundle_source_lines(third_party, key_dir):
    if not isinstance(third_party, list):
        raise AnsibleFilterError("bundle_source_lines expects a list of repositories")
    return _bundle.source_lines(third_party, str(key_dir))


def _plain(value):
    """Plain dicts, lists and strings (ansible-core's lazy containers and tagged strings are
    not YAML a safe dumper writes)."""
    return json.loads(json.dumps(value))


def bundle_mirrors_document(mirrors, public_key="", images=None):
    if not isinstance(mirrors, dict):
        raise AnsibleFilterError("bundle_mirrors_document expects the mirrors mapping of bundle_plan")
    return _bundle.mirrors_document(_plain(mirrors), str(public_key or ""), _plain(list(images or [])))


def bundle_with_manifest_images(images, texts, extra=None, charts_images=None):
    try:
        return _bundle.with_manifest_images(_plain(list(images or [])), [str(t) for t in texts or []],
                                            _plain(list(extra or [])), _plain(list(charts_images or [])))
    except _bundle.BundleError as exc:
        raise AnsibleFilterError("bundle_with_manifest_images: %s" % exc) from exc


def bundle_gpu_operator_images(archive_b64, values=None, gpu_nodes_os=None):
    try:
        return _bundle.gpu_operator_images(base64.b64decode(str(archive_b64 or "")), _plain(values or {}),
                                           _plain(list(gpu_nodes_os or [])))
    except (_bundle.BundleError, binascii.Error, ValueError) as exc:
        raise AnsibleFilterError("bundle_gpu_operator_images: %s" % exc) from exc


def bundle_package_versions(results, *more):
    found = list(results or [])
    for other in more:
        found += list(other or [])
    return _bundle.package_versions(_plain(found))


def bundle_dnf_repos(repos, key_dir):
    if not isinstance(repos, list):
        raise AnsibleFilterError("bundle_dnf_repos expects a list of repositories (a dnf target's repos)")
    return _bundle.dnf_repos_for_builder(_plain(repos), str(key_dir))


def bundle_release_id(facts):
    return _offline.release_id(_plain(dict(facts or {})))


def bundle_dnf_repo_file(url):
    try:
        return _offline.dnf_repo_file(str(url or ""))
    except ValueError as exc:
        raise AnsibleFilterError("bundle_dnf_repo_file: %s" % exc) from exc


def bundle_chart_entries(index_results):
    try:
        return [dict(_plain(result["item"]), entry=_bundle.chart_entry(
            str(result["content"]), str(result["item"]["name"]), str(result["item"]["version"]),
            str(result["item"]["repo"]))) for result in index_results or []]
    except _bundle.BundleError as exc:
        raise AnsibleFilterError("bundle_chart_entries: %s" % exc) from exc


def bundle_chart_index(entry):
    return _bundle.chart_index(_plain(entry))


class FilterModule:
    def filters(self):
        return {"bundle_source_lines": bundle_source_lines, "bundle_mirrors_document": bundle_mirrors_document,
                "bundle_chart_entries": bundle_chart_entries,
                "bundle_chart_index": bundle_chart_index,
                "bundle_with_manifest_images": bundle_with_manifest_images,
                "bundle_gpu_operator_images": bundle_gpu_operator_images,
                "bundle_package_versions": bundle_package_versions,
                "bundle_dnf_repos": bundle_dnf_repos,
                "bundle_release_id": bundle_release_id,
                "bundle_dnf_repo_file": bundle_dnf_repo_file}
