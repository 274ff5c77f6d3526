#!/usr/bin/env bash
# ansible-test sanity on a copy of the collection laid out as
# ansible_collections/kubegpu/cluster (ansible-test insists on that path).
# Works offline: ansible-test's pip bootstrap download is answered by a local
# stand-in that uses ensurepip (see ../shared/TESTING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# The ansible-core under test: .venv's (requirements-dev.txt), or the venv KUBEGPU_VENV
# names (scripts/test.sh matrix: .venv-core-2.17, .venv-core-2.20).
venv=${KUBEGPU_VENV:-$root/.venv}
export PATH=$venv/bin:$PATH
py=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')

cache=$HOME/.ansible/test/cache
mkdir -p "$cache"
# The pip version ansible-test bootstraps differs per ansible-core (2.17: 23.1.2, 2.19:
# 24.2, 2.20: 25.2): ask the ansible-test in use, fall back to 2.19's.
pip_version=$(python - 2>/dev/null <<'PY'
import sys
from ansible_test._internal.host_configs import NativePythonConfig
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(NativePythonConfig(version="%d.%d" % sys.version_info[:2], path=sys.executable))["pip"])
PY
) || pip_version=24.2
cat >"$cache/get_pip_${pip_version//./_}.py" <<'PY'
"""Offline stand-in for the get-pip.py download ansible-test makes.

Installs pip with ensurepip (in a child process: in-process it disables pip's
configuration, and with it the machine's TLS settings), then runs pip install
with the arguments ansible-test gave.
"""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
PY

# Outside the checkout: inside it, ansible-test would ask our git (which ignores .cache).
base=${KUBEGPU_SANITY_DIR:-${TMPDIR:-/tmp}/kubegpu-sanity}
tree=$base/ansible_collections/kubegpu/cluster
rm -rf "$tree"
mkdir -p "$tree"
# Exactly what git would ship: tracked files plus untracked ones not ignored.
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] || continue
  mkdir -p "$tree/$(dirname "$f")"
  cp -p "$f" "$tree/$f"
done
cd "$tree"
# The tree is not a git checkout of its own; ansible-test then tests every file in it.
ansible-test sanity --color no --python "$py" --requirements "$@"
