# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: a module imported when a filter first uses it.

ansible-core resolves a collection filter (kubegpu.cluster.NAME) by importing every file
under plugins/filter/, and it does so in each worker process, forked afresh for each task
and host; its collection loader compiles each file from source. A filter file that imports
its rules at the top makes every task that uses any kubegpu filter compile all of them
(about 40 ms per task and host, the doctor's and containerd's rules the most). Bound with
``Module``, a rules module is imported by the first filter call that reads it.
"""

from __future__ import annotations

import importlib

_PREFIX = "ansible_collections.kubegpu.cluster.plugins."


class Module:
    """Stands for ``plugins.<name>`` of this collection (``plugin_utils._doctor``, ...)."""

    def __init__(self, name):
        self._lazy_name = _PREFIX + name
        self._lazy_module = None

    def __getattr__(self, attribute):   # called for what the instance itself does not have
        if self._lazy_module is None:
            self._lazy_module = importlib.import_module(self._lazy_name)
        return getattr(self._lazy_module, attribute)
