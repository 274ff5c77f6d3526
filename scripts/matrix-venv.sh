#!/usr/bin/env bash
# The venv of one ansible-core of the tested range (tests/matrix/ansible-core-X.Y.txt):
# .venv-core-X.Y, built with the Python its requirements file names on its
# "# python: A.B" line (scripts/python-for.sh: the distribution's first). Prints the venv's
# path; nothing is rebuilt when the requirements have not changed.
#   scripts/matrix-venv.sh 2.17
set -euo pipefail
cd "$(dirname "$0")/.."
core=$1
req=tests/matrix/ansible-core-$core.txt
[ -f "$req" ] || { echo "matrix-venv: no $req" >&2; exit 2; }
venv=$PWD/.venv-core-$core
want=$(sed -n 's/^# python: *\([0-9.]*\).*/\1/p' "$req")
[ -n "$want" ] || { echo "matrix-venv: $req names no '# python: A.B' line" >&2; exit 2; }

py=$(bash scripts/python-for.sh "$want") || exit 1
if [ -x "$venv/bin/ansible-playbook" ] && cmp -s "$req" "$venv/.requirements.txt" &&
   [ "$(cat "$venv/.python" 2>/dev/null)" = "$py" ]; then
  echo "$venv"
  exit 0
fi
echo "matrix-venv: $venv with $py and $req" >&2
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip >&2
"$venv/bin/pip" install -q -r "$req" >&2
cp "$req" "$venv/.requirements.txt"
echo "$py" >"$venv/.python"
echo "$venv"
