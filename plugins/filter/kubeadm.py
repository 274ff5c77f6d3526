# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Filters for the Kubernetes stages: kubeadm output, CA hash, kubectl JSON, report."""

from __future__ import annotations

DOCUMENTATION = r"""
name: kubeadm
short_description: Parse kubeadm and kubectl output for the kubegpu Kubernetes stages
description:
  - C(kubeadm_token) returns the bootstrap token printed by C(kubeadm token create) (fails on anything else).
  - C(kubeadm_certificate_key) returns the key printed by C(kubeadm init phase upload-certs).
  - C(kubeadm_join_commands) parses the C(kubeadm join ...) commands printed by C(kubeadm init).
  - C(kubeadm_ca_cert_hash) turns the CA certificate (PEM text) into C(sha256:<hex of the SPKI>).
  - C(k8s_node_names), C(k8s_node_info), C(k8s_job_state) parse C(kubectl get ... -o json).
  - C(kubegpu_report_table) renders the validate report (a list of node rows) as a text table;
    C(kubegpu_validate_report) as the JSON document of docs/validate.schema.json and C(kubegpu_report_markdown)
    (input that document) as a Markdown table.
author: kubegpu maintainers
options:
  _input:
    description: The text or object to parse.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: CA hash for joins
  ansible.builtin.set_fact:
    _hash: "{{ _ca.content | b64decode | kubegpu.cluster.kubeadm_ca_cert_hash }}"
"""

RETURN = r"""
_value:
  description: The parsed value.
  type: raw
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _k8s_parse, _kubeadm
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _reports


def _wrap(name, func):
    def inner(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (_kubeadm.KubeadmParseError, _k8s_parse.K8sParseError) as exc:
            raise AnsibleFilterError("%s: %s" % (name, exc)) from None
    inner.__name__ = name
    return inner


def kubegpu_validate_report(rows):
    """validate's report as the JSON document of docs/validate.schema.json."""
    return _reports.validate_report(list(rows or []))


def kubegpu_report_markdown(report):
    """validate's JSON report as a Markdown table."""
    return _reports.validate_markdown(report)


class FilterModule:
    """kubegpu Kubernetes filters."""

    def filters(self):
        table = {
            "kubeadm_token": _kubeadm.parse_token,
            "kubeadm_certificate_key": _kubeadm.parse_certificate_key,
            "kubeadm_join_commands": _kubeadm.parse_join_commands,
            "kubeadm_ca_cert_hash": _kubeadm.ca_cert_hash,
            "k8s_node_names": _k8s_parse.node_names,
            "k8s_node_info": _k8s_parse.node_info,
            "k8s_job_state": _k8s_parse.job_state,
            "kubegpu_validate_report": kubegpu_validate_report,
            "kubegpu_report_markdown": kubegpu_report_markdown,
            "kubegpu_report_table": _k8s_parse.report_table,
        }
        return {name: _wrap(name, func) for name, func in table.items()}
