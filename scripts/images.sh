#!/usr/bin/env bash
# Build the systemd test-host images (Debian 12 and 13) with debootstrap and
# `docker import` them. Images are tagged by suite and the date of this script's
# package list, and reused when already present, so a machine builds each once.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# Bump when the package list below changes: it is part of the tag.
IMAGE_REV=4
MIRROR=${KUBEGPU_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What every test host needs: systemd as PID 1, Python for Ansible, and the tools
# our roles and testinfra call (iproute2, procps, kmod, gnupg for apt keys).
PACKAGES=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,iputils-ping,procps,kmod,ca-certificates,gnupg,curl,udev,cron,less

build() {
  local suite=$1 tag="kubegpu-test:${1}-r${IMAGE_REV}"
  if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "image $tag: present, reused"
    return 0
  fi
  local root
  root=$(mktemp -d "/var/tmp/kubegpu-rootfs-${suite}.XXXXXX")
  echo "image $tag: debootstrap $suite into $root"
  debootstrap --variant=minbase --include="$PACKAGES" "$suite" "$root" "$MIRROR" >"$root.log" 2>&1 || {
    tail -30 "$root.log"; return 1; }
  # A container is not a machine: drop units that cannot work in one, keep the rest.
  chroot "$root" systemctl mask systemd-remount-fs.service systemd-firstboot.service \
    getty.target console-getty.service
  echo "$suite" >"$root/etc/kubegpu-test-image"
  # Every host needs its own machine-id: an empty file makes systemd generate one
  # at boot, as on a freshly installed server.
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'ENV container=docker' - "$tag" >/dev/null
  rm -rf "$root" "$root.log"
  echo "image $tag: built"
}

suites=${*:-bookworm trixie}
for s in $suites; do build "$s"; done
