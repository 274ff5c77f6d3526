#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: bundle_manifest
short_description: Write or verify the manifest of an offline bundle (sizes and sha256 of every file)
version_added: "0.4.0"
description:
  - With O(state=present), lists every file of the bundle directory O(path) with its size and sha256 in
    C(manifest.json), with the bundle's total and the O(metadata) given; writes it only when it differs.
  - With O(state=verified), reads the bundle directory against its C(manifest.json) and fails, naming each
    file, when one is missing, differs in size or sha256 (tampered or damaged in transit), or is not listed.
    Nothing is changed; run it on the receiving side before anything of the bundle is used.
  - The manifest itself, its signature C(manifest.json.asc) and the builder's working directories
    (C(.apt-work), C(.gnupg), C(.work)) are not listed.
author:
  - kubegpu maintainers (@kubegpu)
attributes:
  check_mode:
    support: full
    description: O(state=present) reports whether the manifest would change; O(state=verified) reads only.
  diff_mode:
    support: none
    description: Nothing to show a diff of.
  idempotent:
    support: full
    description: The manifest has no date; a second run over the same files reports C(changed=false).
options:
  path:
    description: The bundle directory.
    type: path
    required: true
  state:
    description: Write the manifest (V(present)) or verify the directory against it (V(verified)).
    type: str
    choices: [present, verified]
    default: present
  metadata:
    description: What the bundle was built for (targets, versions, images), stored under C(metadata).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Write the bundle's manifest
  kubegpu.cluster.bundle_manifest:
    path: /srv/kubegpu-bundle
    metadata: {targets: [debian-bookworm]}

- name: Verify the bundle before it is served
  kubegpu.cluster.bundle_manifest:
    path: /srv/kubegpu-bundle
    state: verified
"""

RETURN = r"""
count:
  description: Files in the bundle (listed in, or read against, the manifest).
  returned: always
  type: int
total_bytes:
  description: The bundle's size in bytes.
  returned: always
  type: int
by_kind:
  description: Files and bytes per kind (package, image, file, other).
  returned: always
  type: dict
problems:
  description: With O(state=verified), each file that is missing, differs or is not listed, by name.
  returned: always
  type: list
  elements: str
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubegpu.cluster.plugins.module_utils import _bundle_manifest as _manifest

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    state=dict(type="str", choices=["present", "verified"], default="present"),
    metadata=dict(type="dict", default={}),
)


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        return {"unreadable": str(exc)}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    root = module.params["path"]
    target = os.path.join(root, _manifest.MANIFEST)
    if not os.path.isdir(root):
        module.fail_json(msg="bundle directory %s does not exist" % root)
    if module.params["state"] == "verified":
        manifest = _read(target)
        if manifest is None:
            module.fail_json(msg="%s: no %s: the bundle cannot be verified, so it is not used" % (root, _manifest.MANIFEST),
                             problems=["%s: missing" % _manifest.MANIFEST])
        problems = _manifest.verify(root, manifest)
        result = dict(changed=False, problems=problems, count=len(manifest.get("files") or []),
                      total_bytes=int(manifest.get("total_bytes") or 0), by_kind=manifest.get("by_kind") or {})
        if problems:
            module.fail_json(msg="bundle %s refused, %d file(s) do not match its manifest: %s" % (
                root, len(problems), "; ".join(problems[:20]) + ("; ..." if len(problems) > 20 else "")), **result)
        module.exit_json(**result)
    manifest = _manifest.build(root, module.params["metadata"])
    text = _manifest.dumps(manifest)
    try:
        with open(target, encoding="utf-8") as handle:
            changed = handle.read() != text
    except FileNotFoundError:
        changed = True
    if changed and not module.check_mode:
        tmp = target + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    module.exit_json(changed=changed, problems=[], count=manifest["count"], total_bytes=manifest["total_bytes"],
                     by_kind=manifest["by_kind"])


if __name__ == "__main__":
    main()
