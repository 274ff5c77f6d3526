# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Filters for the Kubernetes stages: kubeadm output, CA hash, kubectl JSON, report, and the
decisions of the kubernetes, validate and node roles (plugin_utils/_kubeadm.py, _validate.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: kubeadm
short_description: kubeadm and kubectl output, and the decisions of the Kubernetes, validate and node roles
description:
  - C(kubeadm_token) returns the bootstrap token printed by C(kubeadm token create) (fails on anything else).
  - C(kubeadm_certificate_key) returns the key printed by C(kubeadm init phase upload-certs).
  - C(kubeadm_join_commands) parses the C(kubeadm join ...) commands printed by C(kubeadm init).
  - C(kubeadm_ca_cert_hash) turns the CA certificate (PEM text) into C(sha256:<hex of the SPKI>).
  - C(k8s_node_names), C(k8s_node_info), C(k8s_job_state) parse C(kubectl get ... -o json).
  - C(kubectl_diff_failed(stderr, check_mode)) - input the exit status of C(kubectl diff); whether it is a failure
    (above 1 and not a namespace, kind or, in check mode, manifest file that the run creates).
  - C(kubegpu_report_table) renders the validate report (a list of node rows) as a text table;
    C(kubegpu_validate_report) as the JSON document of docs/validate.schema.json and C(kubegpu_report_markdown)
    (input that document) as a Markdown table.
  - >-
    roles/validate's judgement of a node (plugins/plugin_utils/_validate.py):
    C(validate_node_problems(node_name, expected, wait_gpus)) what the node (input its C(k8s_node_info)) lacks:
    registered, Ready, the expected resources when C(wait_gpus);
    C(validate_node_checks(gpu_node, runtime_class_name, runtime_class_read, reboot_marker, reboot_reasons)) the
    checks that failed before the test Jobs (input what the wait found missing);
    C(validate_job_result(log_read, kind, passed_before, check_mode)) C(ok) or why the test Job failed (input the
    registered C(kubectl get job));
    C(validate_job_id) the ten hex digits that name a test (input the role's C(_validate_job_inputs));
    C(reboot_reasons) the reasons the reboot marker records, one a line (input its text; doctor reads it the same way);
    C(validate_fabric_wait_needed) whether the host's GPUs wait for an NVLink fabric (input its GPU facts:
    NVSwitches or NVLink5 switch trays beside GPUs);
    C(validate_fabric_problems(host, timeout)) what keeps that fabric from being ready, with the fix - every GPU
    that reports a fabric state must read Completed / Success (input a registered C(kubegpu.cluster.gpu_facts) run).
  - >-
    C(kubernetes_api_endpoint(first_control_plane, control_plane_vars, port)) gives the C(host:port) joins use
    (input C(kubernetes_control_plane_endpoint)): that endpoint, else the address the first control plane's API
    server advertises (C(kubernetes_apiserver_advertise_address), else its default route's address), else its
    C(ansible_host) or name; the port added where the host has none.
  - >-
    C(kubernetes_join_report(pending_control_planes)) says which nodes join (input the pending hosts);
    C(kubeadm_join_error(token, certificate_key)) is why kubeadm join failed with the secrets redacted (input its
    registered result); C(kubernetes_local_debs(directory)) orders local .deb files as dpkg installs them one by
    one (input their names).
  - >-
    C(kubeadm_reset_refusal(first_control_plane, play_hosts, cluster, confirmed, group)) is empty, or why this run
    may not reset the host (input the host): it would reset the first control plane of a cluster with other nodes.
author: kubegpu maintainers
options:
  _input:
    description: The text or object to parse, or the input each filter's line above names.
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
  description: The parsed value, a decision or a message, as each filter's line above says.
  type: raw
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _lazy

_k8s_parse = _lazy.Module("plugin_utils._k8s_parse")
_kubeadm = _lazy.Module("plugin_utils._kubeadm")
_reports = _lazy.Module("plugin_utils._reports")
_validate = _lazy.Module("plugin_utils._validate")


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
            "kubectl_diff_failed": _k8s_parse.diff_failed,
            "kubegpu_validate_report": kubegpu_validate_report,
            "kubegpu_report_markdown": kubegpu_report_markdown,
            "kubegpu_report_table": _k8s_parse.report_table,
            "validate_node_problems": _validate.node_problems,
            "validate_node_checks": _validate.node_checks,
            "validate_fabric_wait_needed": _validate.fabric_wait_needed,
            "validate_fabric_problems": _validate.fabric_read_problems,
            "reboot_reasons": _validate.reboot_reasons,
            "validate_job_result": _validate.job_result,
            "validate_job_id": _validate.job_id,
            "kubernetes_api_endpoint": _kubeadm.api_endpoint,
            "kubernetes_join_report": _kubeadm.join_report,
            "kubeadm_join_error": _kubeadm.join_error,
            "kubernetes_local_debs": _kubeadm.local_debs,
            "kubeadm_reset_refusal": _kubeadm.reset_refusal,
        }
        return {name: _wrap(name, func) for name, func in table.items()}
