#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine, and nothing
# twice: a venv with the pinned dev dependencies, docker.io + debootstrap from
# Debian, dockerd running, the collection linked for FQCN resolution, and the
# test-host images. Safe to run again; each step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

step() { printf '\n== bootstrap: %s\n' "$*"; }

# The interpreter: requirements-dev.txt's "# python: A.B", the distribution's first
# (scripts/python-for.sh says why); a venv made with another one is made again.
want=$(sed -n 's/^# python: *\([0-9.]*\).*/\1/p' requirements-dev.txt)
PY=$(bash scripts/python-for.sh "${want:-3.11}")
if [ ! -x .venv/bin/ansible-playbook ] || ! cmp -s requirements-dev.txt .venv/.requirements-dev.txt ||
   [ "$(cat .venv/.python 2>/dev/null)" != "$PY" ]; then
  step "venv (.venv) with requirements-dev.txt, on $PY"
  rm -rf .venv
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements-dev.txt
  cp requirements-dev.txt .venv/.requirements-dev.txt
  echo "$PY" >.venv/.python
else
  step "venv (.venv): up to date"
fi

# The checkout is the collection kubegpu.cluster: link it where Ansible and pytest
# look for ansible_collections/<namespace>/<name>.
mkdir -p .collections/ansible_collections/kubegpu
ln -sfn ../../.. .collections/ansible_collections/kubegpu/cluster

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
# apt-ftparchive and gpgv: tests/integration/test_apt_bundle_real.py builds a signed apt repository here.
command -v apt-ftparchive >/dev/null 2>&1 || need_pkgs+=(apt-utils)
command -v gpgv >/dev/null 2>&1 || need_pkgs+=(gpgv)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  step "apt-get install ${need_pkgs[*]}"
  [ "$(id -u)" = 0 ] || { echo "bootstrap: root is needed to install ${need_pkgs[*]}" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  step "start dockerd"
  mkdir -p .cache
  nohup dockerd >.cache/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "bootstrap: dockerd did not start:" >&2; tail -20 .cache/dockerd.log >&2; exit 1; }
fi

step "test-host images"
bash scripts/images.sh bookworm trixie

# Real containerd 1.6 / 1.7 / 2.1 binaries from Debian's packages, for the unit tests
# that run `containerd config dump` on every merged config (.cache/containerd-bins).
step "containerd binaries for config validation"
bash scripts/fetch-containerd.sh

# A real helm and kubectl (.cache/helm/): the chart tests and the simulated cluster.
step "helm and kubectl"
bash scripts/fetch-helm.sh

# The simulated control plane's packages (tests/sim/README.md): kubelet and kubeadm
# (simulations) and the real kubectl, as .debs the kubernetes role installs through
# its local-package path (.cache/sim-debs).
step "simulated control plane packages"
bash tests/sim/build-debs.sh
# The simulated GPUs' PCI trees (tests/sim/gpu/*.json), bind-mounted into GPU test hosts.
for tree in tests/sim/gpu/*.json; do
  case $tree in *.mig.json) continue ;; esac
  name=$(basename "$tree" .json)
  PYTHONPATH=tests/sim python3 -m kubegpu_sim.pci_tree "$tree" ".cache/sim-gpu/$name"
done

# One apt archive shared by every test host: a package is downloaded once per machine.
mkdir -p /var/cache/kubegpu-apt/partial
echo "bootstrap: done in $root"
