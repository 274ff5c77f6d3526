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
# Every stage of PRODUCT.md, in site.yml order, and those this machine cannot run:
# they need Kubernetes binaries and images that cannot be fetched here.
STAGES=(preflight os_prereqs nvidia_driver container_runtime kubernetes calico nvidia_device_plugin gpu_operator gpu_node_labels validate)
CANNOT_RUN_HERE=(kubernetes calico nvidia_device_plugin gpu_operator gpu_node_labels validate)

start_fleet() {
  mkdir -p /var/cache/kubegpu-apt/partial
  for h in "${HOSTS[@]}"; do
    local name=kubegpu-lab-$h
    if docker inspect "$name" >/dev/null 2>&1; then
      docker start "$name" >/dev/null
      echo "lab: $name running (reused)"
      continue
    fi
    docker run -d --name "$name" --hostname "$h" \
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
}

run_site() {
  export PATH=$root/.venv/bin:$PATH
  export ANSIBLE_COLLECTIONS_PATH=$root/.collections:$root/.venv/lib/python3.11/site-packages/ansible_collections
  export ANSIBLE_CACHE_PLUGIN_CONNECTION=$root/.cache/lab-facts
  export ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks
  local rc=0 skip
  skip=$(IFS=,; echo "${CANNOT_RUN_HERE[*]}")
  ansible-playbook -i inventory/lab playbooks/site.yml --skip-tags "$skip" "$@" || rc=$?
  echo
  echo "lab: stages of site.yml on this machine"
  for s in "${STAGES[@]}"; do
    if [[ " ${CANNOT_RUN_HERE[*]} " == *" $s "* ]]; then
      printf '  %-22s not run: needs Kubernetes binaries and images this machine cannot fetch (see README "What is verified where")\n' "$s"
    else
      printf '  %-22s ran (exit status of the run: %s)\n' "$s" "$rc"
    fi
  done
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
