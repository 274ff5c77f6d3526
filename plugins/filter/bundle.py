# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Filters of the offline bundle (playbooks/bundle.yml), over plugins/plugin_utils/_bundle.py."""

from __future__ import annotations

DOCUMENTATION = r"""
name: bundle
short_description: The offline bundle's apt source lines and mirrors.yml
version_added: "0.4.0"
description:
  - C(bundle_source_lines(third_party, key_dir)) gives the apt source lines of the third-party repositories
    a target's packages come from, each signed by its key downloaded into C(key_dir).
  - C(bundle_mirrors_document(mirrors, public_key, images)) gives C(mirrors.yml), the variables that point
    every stage at the bundle, with the bundle's public key.
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

import json

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _lazy

_bundle = _lazy.Module("plugin_utils._bundle")


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


class FilterModule:
    def filters(self):
        return {"bundle_source_lines": bundle_source_lines, "bundle_mirrors_document": bundle_mirrors_document}
