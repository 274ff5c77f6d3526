#!/usr/bin/env bash
# The lab: see the whole site.yml run without servers.
#   scripts/lab.sh up     start the 3-host fleet (cp1, gpu1, cpu1) and run site.yml
#   scripts/lab.sh down   remove the fleet
#   scripts/lab.sh run    run site.yml again on the running fleet (add ansible args)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
IMAGE=${KUBEGPU_LAB_IMAGE:-kubegpu-test:bookworm-r4}
HOSTS=(cp1 gpu1 cpu1)
# Every stage of PRODUCT.md, in site.yml order. All run; what each one runs against
# here is said at the end (stages 5-9: the simulated control plane of tests/sim).
STAGES=(preflight os_prereqs nvidia_driver container_runtime kubernetes calico nvidia_device_plugin gpu_operator gpu_node_labels validate)
SIMULATED=(kubernetes calico nvidia_device_plugin gpu_operator gpu_node_labels validate)

start_fleet() {
  mkdir -p /var/cache/kubegpu-apt/partial
  for h in "${HOSTS[@]}"; do
    local name=kubegpu-lab-$h
    if docker inspect "$name" >/dev/null 2>&1; then
      docker start "$name" >/dev/null
      echo "lab: $name running (reused)"
      continue
    fi
    local gpu=()
    # gpu1 carries a simulated H100: its PCI functions where gpu_facts and the
    # simulated device plugin look (tests/sim/gpu/README.md).
    [ "$h" = gpu1 ] && gpu=(-v "$root/.cache/sim-gpu/h100-1gpu:/sys/bus/pci/devices:ro")
    docker run -d --name "$name" --hostname "$h" "${gpu[@]}" \
      --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add SYS_MODULE --cap-add SYS_PTRACE \
      --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
      --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
      -v /var/cache/kubegpu-apt:/var/cache/apt/archives:rw \
      --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
      "$IMAGE" /lib/systemd/systemd >/dev/null
    echo "lab: $name started from $IMAGE"
  done
  for h in "${HOSTS[@]}"; do
    # "degraded" (a unit failed) still lets the run start; the stages report what they need.
    state=$(docker exec "kubegpu-lab-$h" systemctl is-system-running --wait 2>/dev/null) || true
    echo "lab: kubegpu-lab-$h systemd: $state"
  done
  # What the simulation stands in for (tests/sim/README.md): Calico's manifests on the
  # control plane, the NVIDIA Container Toolkit's runtime program on the GPU host.
  docker exec kubegpu-lab-cp1 mkdir -p /etc/kubegpu-sim
  for f in tests/sim/manifests/*.yaml; do docker cp "$f" kubegpu-lab-cp1:/etc/kubegpu-sim/; done
  docker cp tests/sim/toolkit/nvidia-container-runtime kubegpu-lab-gpu1:/usr/bin/nvidia-container-runtime
}

run_site() {
  export PATH=$root/.venv/bin:$PATH
  export ANSIBLE_COLLECTIONS_PATH=$root/.collections:$root/.venv/lib/python3.11/site-packages/ansible_collections
  export ANSIBLE_CACHE_PLUGIN_CONNECTION=$root/.cache/lab-facts
  export ANSIBLE_CALLBACKS_ENABLED=kubegpu.cluster.kubegpu,ansible.posix.profile_tasks
  local rc=0
  ansible-playbook -i inventory/lab playbooks/site.yml \
    -e kubernetes_local_package_dir="$root/.cache/sim-debs" "$@" || rc=$?
  echo
  echo "lab: stages of site.yml on this machine (exit status of the run: $rc)"
  for s in "${STAGES[@]}"; do
    if [[ " ${SIMULATED[*]} " == *" $s "* ]]; then
      printf '  %-22s ran against the SIMULATED control plane (tests/sim: API server, controllers, kubelet, kubeadm simulated; kubectl and helm real)\n' "$s"
    else
      printf '  %-22s ran for real on the test hosts\n' "$s"
    fi
  done
  echo "lab: the simulated GPU is an H100's PCI functions; nothing ran on a GPU. The cluster:"
  docker exec kubegpu-lab-cp1 kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o wide || true
  echo "lab: tear down with 'make lab-down'"
  return $rc
}

case "${1:-up}" in
  up)
    bash scripts/bootstrap.sh
    start_fleet
    shift || true
    run_site "$@"
    ;;
  run)
    shift
    run_site "$@"
    ;;
  down)
    for h in "${HOSTS[@]}"; do docker rm -f "kubegpu-lab-$h" >/dev/null 2>&1 && echo "lab: kubegpu-lab-$h removed"; done
    rm -rf .cache/lab-facts
    ;;
  *) echo "usage: $0 up|run|down" >&2; exit 2 ;;
esac
