#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fetch Debian's containerd builds (bookworm 1.6, trixie 1.7, sid 2.1) into
# .cache/containerd-bins/<upstream version>/containerd, so that
# tests/unit/plugins/module_utils/test_containerd_real.py can check the merged
# configs with the real `containerd --config F config dump`.
#
# Uses a private apt sources list and state directory (the machine's own apt
# configuration is not touched) and `dpkg -x` (nothing is installed). Idempotent:
# a suite whose binary is already there is skipped without touching the network.
#
#   scripts/fetch-containerd.sh            # all three suites
#   KUBEGPU_CONTAINERD_SUITES="sid" scripts/fetch-containerd.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
dest=${KUBEGPU_CONTAINERD_BINS:-$root/.cache/containerd-bins}
mirror=${KUBEGPU_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suites=${KUBEGPU_CONTAINERD_SUITES:-bookworm trixie sid}
mkdir -p "$dest"

present() {  # a SOURCE file naming the suite, next to a runnable binary
  local suite=$1 source
  for source in "$dest"/*/SOURCE; do
    [ -f "$source" ] || continue
    if grep -qx "suite=$suite" "$source" && [ -x "$(dirname "$source")/containerd" ]; then
      echo "$(dirname "$source")"
      return 0
    fi
  done
  return 1
}

missing=()
for suite in $suites; do
  if dir=$(present "$suite"); then
    echo "containerd from $suite: present in $dir, skipped"
  else
    missing+=("$suite")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

work=$(mktemp -d /var/tmp/kubegpu-containerd.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
chmod 755 "$work" "$work/debs"
: >"$work/sources.list"
for suite in "${missing[@]}"; do
  echo "deb $mirror $suite main" >>"$work/sources.list"
done
apt_opts=(
  -o "Dir::Etc::SourceList=$work/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache=$work/cache"
  -o "APT::Sandbox::User=root"
)
apt-get "${apt_opts[@]}" update >"$work/update.log" 2>&1 || { cat "$work/update.log"; exit 1; }

for suite in "${missing[@]}"; do
  (cd "$work/debs" && apt-get "${apt_opts[@]}" download "containerd/$suite" >"$work/download-$suite.log" 2>&1) ||
    { cat "$work/download-$suite.log"; exit 1; }
  deb=$(ls -t "$work"/debs/containerd_*.deb | head -1)
  deb_version=$(dpkg-deb -f "$deb" Version)
  upstream=${deb_version%%[~+-]*}
  extract="$work/x-$suite"
  dpkg -x "$deb" "$extract"
  mkdir -p "$dest/$upstream"
  install -m 0755 "$extract/usr/bin/containerd" "$dest/$upstream/containerd"
  {
    echo "suite=$suite"
    echo "package=containerd_${deb_version}_$(dpkg-deb -f "$deb" Architecture).deb"
    echo "sha256=$(sha256sum "$deb" | cut -d' ' -f1)"
    echo "mirror=$mirror"
  } >"$dest/$upstream/SOURCE"
  rm -f "$deb"
  echo "containerd from $suite: $deb_version -> $dest/$upstream/containerd ($("$dest/$upstream/containerd" --version))"
done
