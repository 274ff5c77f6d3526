# Device check for issue #15 (session 15): gpu_facts, the nvidia_driver stage in check mode,
# preflight, and the kubegpu role's once-per-run include, on the lent H200 (localhost).
# Run from the checkout's .devcoll/ (wheels in .whl/, community.general and ansible.posix in
# .devcoll/ansible_collections/): `bash .devcoll/run.sh`, then `bash .devcoll/run.sh stages`.
set -u
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
PY=$(command -v python3)
mkdir -p /tmp/coll/ansible_collections/kubegpu
cp -r .devcoll/ansible_collections/* /tmp/coll/ansible_collections/
ln -sfn "$PWD" /tmp/coll/ansible_collections/kubegpu/cluster
export ANSIBLE_CONFIG=$PWD/ansible.cfg ANSIBLE_COLLECTIONS_PATH=/tmp/coll ANSIBLE_NOCOLOR=1 ANSIBLE_CACHE_PLUGIN=memory
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_HOST_KEY_CHECKING=false
{ uname -a; head -3 /etc/os-release; nvidia-smi --query-gpu=name,driver_version,mig.mode.current --format=csv
  $PY --version; ansible --version | head -1; ls /lib/modules 2>&1 | head; } > $OUT/env.txt 2>&1
cat > /tmp/hosts.yml <<EOF
all:
  children:
    k8s_cluster:
      children:
        kube_control_plane: {hosts: {h200: {}}}
        kube_node: {hosts: {h200: {}}}
    gpu: {hosts: {h200: {}}}
  vars: {ansible_connection: local, ansible_python_interpreter: $PY, ansible_become: false}
EOF
cat > /tmp/once.yml <<'EOF'
- hosts: k8s_cluster
  gather_facts: false
  roles: [kubegpu.cluster.kubegpu]
- hosts: k8s_cluster
  gather_facts: false
  roles: [kubegpu.cluster.kubegpu]
  tasks:
    - ansible.builtin.debug:
        msg: "{{ kubegpu_gpu_node }} {{ ansible_facts.kubegpu_gpu.count }} {{ ansible_facts.kubegpu_gpu.driver }} {{ ansible_facts.os_family }} {{ ansible_facts.virtualization_type }}"
EOF
if [ "${1:-}" = stages ]; then
  # Second call: stages 1-4 in check mode, one run.
  ( time ansible-playbook -i /tmp/hosts.yml playbooks/preflight.yml playbooks/os_prereqs.yml playbooks/nvidia_driver.yml playbooks/container_runtime.yml --check --diff ) > $OUT/stages_1_4_check.txt 2>&1
  echo "rc=$?" >> $OUT/stages_1_4_check.txt
else
  ( time ansible h200 -i /tmp/hosts.yml -m kubegpu.cluster.gpu_facts ) > $OUT/gpu_facts.txt 2>&1
  ( time ansible-playbook -i /tmp/hosts.yml /tmp/once.yml ) > $OUT/once.txt 2>&1
  ( time ansible-playbook -i /tmp/hosts.yml playbooks/nvidia_driver.yml --check --diff ) > $OUT/nvidia_driver_check.txt 2>&1
  ( time ansible-playbook -i /tmp/hosts.yml playbooks/preflight.yml ) > $OUT/preflight.txt 2>&1
  ( time ansible-playbook -i /tmp/hosts.yml playbooks/preflight.yml playbooks/nvidia_driver.yml --check ) > $OUT/preflight_then_driver_check.txt 2>&1
fi
echo done; tail -n 6 $OUT/*.txt
