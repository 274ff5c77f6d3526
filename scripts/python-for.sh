#!/usr/bin/env bash
# The Python A.B interpreter the test venvs are built with; prints its path.
#   scripts/python-for.sh 3.11
#
# Order: $KUBEGPU_PYTHON (when it is A.B), the distribution's /usr/bin/pythonA.B, pythonA.B
# on PATH, then pyenv's newest A.B.*; the first that can make a venv wins. The
# distribution's comes before pyenv's on purpose: measured on the 2-core CI machine, Debian
# 12's /usr/bin/python3.11 ran ansible-playbook (preflight on localhost) in 30 % less time
# and a pure-Python loop in half the time of pyenv's 3.11.7 (built from source without
# profile-guided optimisation, with a shared libpython), and the whole suite runs on the
# controller's Python.
set -euo pipefail
want=${1:?usage: python-for.sh A.B}

candidates=()
[ -n "${KUBEGPU_PYTHON:-}" ] && candidates+=("$KUBEGPU_PYTHON")
candidates+=("/usr/bin/python$want" "python$want")
while IFS= read -r found; do
  candidates+=("$found")
done < <(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*/bin/python"$want" 2>/dev/null | sort -V -r)

for cand in "${candidates[@]}"; do
  path=$(command -v "$cand" 2>/dev/null) || continue
  # A pyenv shim answers for any version pyenv knows; ask the interpreter itself.
  version=$("$path" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
  [ "$version" = "$want" ] || continue
  "$path" -c 'import venv, ensurepip' 2>/dev/null || continue
  # The real file behind a shim, so that a venv records the interpreter it was made with.
  real=$("$path" -c 'import sys; print(sys.executable)' 2>/dev/null) || continue
  echo "$real"
  exit 0
done
echo "python-for: no Python $want that can make a venv: tried ${candidates[*]}" >&2
exit 1
