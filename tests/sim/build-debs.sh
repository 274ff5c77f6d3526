#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Build the test-only kubelet, kubeadm and kubectl .debs (version 1.35.4-1.1) that the
# simulated control plane's tests install with kubernetes_package_source: local
# (tests/sim/README.md). kubelet and kubeadm are the SIMULATION (python3 -m
# kubegpu_sim.*); kubectl is the REAL binary (.cache/helm/kubectl, scripts/fetch-helm.sh).
#
#   tests/sim/build-debs.sh [outdir]      # default: .cache/sim-debs
#
# Environment: KUBECTL (the kubectl binary), PYTHON (the controller venv's python, for its
# PyYAML and kubernetes-validate). Idempotent: rebuilds only when an input changed
# (hash stamp <outdir>/.inputs.sha256).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/.cache/sim-debs}
mkdir -p "$out"
out=$(cd "$out" && pwd)

VERSION=1.35.4-1.1
PYTHON=${PYTHON:-$root/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
KUBECTL=${KUBECTL:-$root/.cache/helm/kubectl}
if [ ! -x "$KUBECTL" ]; then
  echo "build-debs: no kubectl binary at $KUBECTL (run scripts/fetch-helm.sh or set KUBECTL)" >&2
  exit 1
fi
command -v dpkg-deb >/dev/null || { echo "build-debs: dpkg-deb not found" >&2; exit 1; }

yaml_dir=$("$PYTHON" -c 'import os, yaml; print(os.path.dirname(yaml.__file__))')
schema_dir=$("$PYTHON" -c 'import os, kubernetes_validate as k; print(os.path.join(os.path.dirname(k.__file__), "kubernetes-json-schema", "v1.35.0-local-strict"))')
[ -d "$schema_dir" ] || { echo "build-debs: no schemas at $schema_dir" >&2; exit 1; }

# --- inputs hash ------------------------------------------------------------------------
inputs_hash() {
  {
    echo "$VERSION"
    sha256sum "$0" "$KUBECTL" | awk '{print $1}'
    (cd "$here" && find kubegpu_sim units -type f ! -path '*__pycache__*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum)
    (cd "$yaml_dir" && find . -maxdepth 1 -type f -name '*.py' -print0 | sort -z | xargs -0 sha256sum)
    (cd "$schema_dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
  } | sha256sum | awk '{print $1}'
}
hash=$(inputs_hash)
debs=("kubeadm_${VERSION}_all.deb" "kubelet_${VERSION}_all.deb" "kubectl_${VERSION}_amd64.deb")
if [ -f "$out/.inputs.sha256" ] && [ "$(cat "$out/.inputs.sha256")" = "$hash" ]; then
  ok=1
  for deb in "${debs[@]}"; do [ -f "$out/$deb" ] || ok=0; done
  if [ "$ok" = 1 ]; then
    echo "build-debs: up to date in $out"
    exit 0
  fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# copy_pkg <dest>: the kubegpu_sim package + pylib/yaml (pure-Python PyYAML only)
copy_pkg() {
  local dest=$1
  mkdir -p "$dest/kubegpu_sim" "$dest/pylib/yaml"
  (cd "$here/kubegpu_sim" && find . -type f ! -path '*__pycache__*' ! -name '*.pyc' -print0 |
     while IFS= read -r -d '' f; do install -D -m 0644 "$f" "$dest/kubegpu_sim/$f"; done)
  find "$yaml_dir" -maxdepth 1 -type f -name '*.py' -exec install -m 0644 {} "$dest/pylib/yaml/" \;
}

# control <dir> <package> <arch> <depends> <description...>
control() {
  local dir=$1 pkg=$2 arch=$3 depends=$4; shift 4
  mkdir -p "$dir/DEBIAN"
  {
    echo "Package: $pkg"
    echo "Version: $VERSION"
    echo "Architecture: $arch"
    echo "Maintainer: kubegpu tests"
    [ -n "$depends" ] && echo "Depends: $depends"
    echo "Section: admin"
    echo "Priority: optional"
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "$dir" | awk '{print $1}')"
    printf 'Description: %s\n' "$1"
    shift
    for line in "$@"; do printf ' %s\n' "$line"; done
  } >"$dir/DEBIAN/control"
}

wrapper() {  # wrapper <path> <pythonpath> <module>
  install -d "$(dirname "$1")"
  cat >"$1" <<EOF
#!/bin/sh
# kubegpu SIMULATION (test-only): see /usr/share/doc/$(basename "$1")/README.sim
PYTHONPATH=$2
export PYTHONPATH
exec python3 -m $3 "\$@"
EOF
  chmod 0755 "$1"
}

readme() {  # readme <pkgroot> <package>
  install -d "$1/usr/share/doc/$2"
  cat >"$1/usr/share/doc/$2/README.sim" <<EOF
This $2 package is a SIMULATION for kubegpu's tests (tests/sim/README.md in the kubegpu
repository). It is not Kubernetes and must never be installed on a real machine.
EOF
}

# --- kubeadm ---------------------------------------------------------------------------
d=$work/kubeadm
copy_pkg "$d/usr/lib/kubegpu-sim/kubeadm"
wrapper "$d/usr/bin/kubeadm" /usr/lib/kubegpu-sim/kubeadm kubegpu_sim.kubeadm
install -d "$d/usr/share/kubegpu-sim/schemas" "$d/usr/share/kubegpu-sim/units"
cp -r "$schema_dir"/. "$d/usr/share/kubegpu-sim/schemas/"
find "$d/usr/share/kubegpu-sim/schemas" -type f -exec chmod 0644 {} \;
install -m 0644 "$here/units/kube-apiserver-sim.service" "$here/units/kube-controller-manager-sim.service" \
  "$d/usr/share/kubegpu-sim/units/"
readme "$d" kubeadm
control "$d" kubeadm all "python3 (>= 3.11), openssl, systemd" \
  "SIMULATION (test-only) of kubeadm $VERSION for kubegpu's tests" \
  "Simulated kubeadm: init, join, reset, token, upload-certs, config. It starts" \
  "the simulated kube-apiserver and kube-controller-manager (Python) as systemd" \
  "units. Never install on a real machine."

# --- kubelet ---------------------------------------------------------------------------
d=$work/kubelet
copy_pkg "$d/usr/lib/kubegpu-sim/kubelet"
wrapper "$d/usr/bin/kubelet" /usr/lib/kubegpu-sim/kubelet kubegpu_sim.kubelet
install -D -m 0644 "$here/units/kubelet.service" "$d/usr/lib/systemd/system/kubelet.service"
install -D -m 0644 "$here/units/10-kubeadm.conf" "$d/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"
install -d "$d/etc/kubernetes/manifests"
readme "$d" kubelet
control "$d" kubelet all "python3 (>= 3.11), openssl, systemd" \
  "SIMULATION (test-only) of the kubelet $VERSION for kubegpu's tests" \
  "Simulated kubelet (Python): registers the node, reports containerd/CNI" \
  "status and simulates pods. Never install on a real machine."
cat >"$d/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
EOF
chmod 0755 "$d/DEBIAN/postinst"

# --- kubectl (real binary) -------------------------------------------------------------
d=$work/kubectl
install -D -m 0755 "$KUBECTL" "$d/usr/bin/kubectl"
control "$d" kubectl amd64 "" \
  "Command-line utility for interacting with a Kubernetes cluster" \
  "kubectl $VERSION (the upstream binary, v1.35), repackaged for kubegpu's tests."

for pkg in kubeadm kubelet kubectl; do
  arch=all; [ "$pkg" = kubectl ] && arch=amd64
  dpkg-deb --build --root-owner-group -Zgzip "$work/$pkg" "$out/${pkg}_${VERSION}_${arch}.deb" >/dev/null
done
echo "$hash" >"$out/.inputs.sha256"
echo "build-debs: built ${debs[*]} in $out"
