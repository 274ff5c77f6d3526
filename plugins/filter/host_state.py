# SPDX-License-Identifier: Apache-2.0
"""Filter comparing a path as kubegpu.cluster.host_state read it with what a task writes."""

from __future__ import annotations

DOCUMENTATION = r"""
name: host_state
short_description: Compare a file host_state read with the content a task would write
description:
  - C(host_file_differs(have, content, mode='0644', uid=0, gid=0)) is true when the path
    C(have) (one entry of host_state's C(paths)) is absent, or its SHA-1, mode or owner
    differs from C(content) (the rendered template) and the wanted mode and owner.
author: kubegpu maintainers
"""

import hashlib

from ansible.module_utils.common.text.converters import to_bytes


def host_file_differs(have, content, mode="0644", uid=0, gid=0):
    """True when the task that writes `content` with `mode`/`uid`/`gid` has work to do."""
    have = have or {}
    if not have.get("exists"):
        return True
    return (have.get("checksum") != hashlib.sha1(to_bytes(content)).hexdigest()
            or have.get("mode") != mode or have.get("uid") != uid or have.get("gid") != gid)


class FilterModule:
    """kubegpu host_state filters."""

    def filters(self):
        return {"host_file_differs": host_file_differs}
