# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: read the collection's own YAML files (argument specs, role defaults).

Preflight reads every role's ``meta/argument_specs.yml`` and ``defaults/main.yml`` in each
worker process that evaluates its filters (a fork per task and host). PyYAML's C loader
(libyaml, in PyYAML's wheels) parses them about seven times faster than the pure-Python
one; the pure-Python loader is the fallback where PyYAML was built without libyaml. Both
are safe loaders and give the same data for these files.
"""

from __future__ import annotations

import yaml  # PyYAML: an ansible-core requirement, on every controller

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(path):
    """The data of the YAML file at ``path`` (a pathlib.Path), or None when it is empty."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)  # nosec B506 - a safe loader
