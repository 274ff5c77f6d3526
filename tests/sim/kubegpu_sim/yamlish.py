# SPDX-License-Identifier: Apache-2.0
"""YAML for the simulated components: PyYAML (vendored as /usr/lib/kubegpu-sim/pylib
on the hosts, the venv's on the controller); JSON, a subset of YAML, without it."""
from __future__ import annotations

import json
import os
import sys

_PYLIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pylib")
if os.path.isdir(_PYLIB) and _PYLIB not in sys.path:
    sys.path.insert(0, _PYLIB)

try:
    import yaml as _yaml
except ImportError:  # pragma: no cover - hosts always have the vendored copy
    _yaml = None


def load(text):
    """One document."""
    if _yaml is None:
        return json.loads(text)
    return _yaml.safe_load(text)


def load_all(text):
    """Every non-empty document of a multi-document stream."""
    if _yaml is None:
        return [json.loads(text)]
    return [doc for doc in _yaml.safe_load_all(text) if doc is not None]


def dump(data):
    if _yaml is None:
        return json.dumps(data, indent=2)
    return _yaml.safe_dump(data, default_flow_style=False, sort_keys=False)
