#!/usr/bin/env bash
# The whole test suite, in order: lint, sanity, collection build, unit, integration,
# Molecule. `scripts/test.sh all` (= `make test`) first sets everything up on a fresh
# machine (scripts/bootstrap.sh). Each step prints its time; every step runs even
# when an earlier one failed, and the exit status is non-zero if any failed.
#   scripts/test.sh [all|lint|sanity|build|unit|integration|molecule ...]
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(all)
[ "${steps[0]}" = all ] && steps=(lint sanity build unit integration molecule)

suite_start=$(date +%s)
bash scripts/bootstrap.sh || { echo "test: bootstrap failed" >&2; exit 1; }
export PATH=$root/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$root/.collections:$root/.venv/lib/python3.11/site-packages/ansible_collections
export PY_COLORS=0 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
# The example chart is rendered by a real helm (scripts/fetch-helm.sh).
[ -x "$root/.cache/helm/helm" ] && export KUBEGPU_HELM=$root/.cache/helm/helm
# The real kubectl 1.35 the simulated control plane's tests drive (same npm package).
[ -x "$root/.cache/helm/kubectl" ] && export KUBEGPU_KUBECTL=$root/.cache/helm/kubectl
bootstrap_s=$(( $(date +%s) - suite_start ))

# pytest exits 5 when it collected no test: that is a failure of the suite here
# (every directory we run has tests), reported as such rather than passed.
# The ids of failed tests are kept (-rfE lines) and repeated in the summary at the end,
# where a reader of a long log's tail sees them.
failures_file=$(mktemp)
trap 'rm -f "$failures_file"' EXIT
run_pytest() {
  local out rc
  out=$(mktemp)
  pytest -rfE "$@" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  grep -E '^(FAILED|ERROR) ' "$out" >>"$failures_file"
  rm -f "$out"
  if [ $rc -eq 5 ]; then echo "test: pytest collected no tests in $*" >&2; fi
  return $rc
}

step_lint() {
  yamllint -s . && ansible-lint --offline && antsibull-changelog lint
}

step_sanity() {
  bash scripts/sanity.sh
}

step_build() {
  local tmp
  tmp=$(mktemp -d)
  ansible-galaxy collection build --force --output-path "$tmp/dist" . &&
  ANSIBLE_COLLECTIONS_PATH=$tmp/collections \
    ansible-galaxy collection install --offline --no-deps --force -p "$tmp/collections" "$tmp"/dist/kubegpu-cluster-*.tar.gz &&
  (
    # From an unrelated directory, with only the installed tarball and the
    # collections of the `ansible` package on the path: FQCNs must resolve.
    cd "$tmp" &&
    export ANSIBLE_COLLECTIONS_PATH=$tmp/collections:$root/.venv/lib/python3.11/site-packages/ansible_collections &&
    ansible-doc -t module kubegpu.cluster.gpu_facts >/dev/null &&
    ansible-doc -t role kubegpu.cluster.preflight >/dev/null &&
    printf 'all:\n  hosts:\n    localhost:\n      ansible_connection: local\n' >hosts.yml &&
    ansible-playbook -i hosts.yml --syntax-check kubegpu.cluster.site &&
    echo "build: kubegpu.cluster installed from the tarball resolves by FQCN"
  )
  local rc=$?
  rm -rf "$tmp"
  bash scripts/ee-check.sh || rc=1   # the execution environment's build context (docs/awx.md)
  return $rc
}

step_unit() {
  run_pytest -q tests/unit
}

step_integration() {
  run_pytest -q -m integration tests/integration
}

step_drills() {
  run_pytest -q -s -m drill tests/integration/test_fault_drills.py
}

step_molecule() {
  local rc=0 s
  for s in default debian13 day2; do
    local t0=$(date +%s)
    molecule test -s "$s" || rc=1
    echo "molecule scenario $s: $(( $(date +%s) - t0 )) s"
  done
  return $rc
}

declare -a summary
failed=0
for step in "${steps[@]}"; do
  printf '\n======== %s ========\n' "$step"
  t0=$(date +%s)
  if "step_$step"; then result=ok; else result=FAILED; failed=1; fi
  summary+=("$(printf '%-12s %-7s %5d s' "$step" "$result" $(( $(date +%s) - t0 )))")
done

printf '\n======== summary ========\n'
printf '%-12s %-7s %5d s\n' bootstrap ok "$bootstrap_s"
printf '%s\n' "${summary[@]}"
if [ -s "$failures_file" ]; then
  printf '\nfailed tests:\n'
  cut -c1-300 "$failures_file"
fi
printf '%-12s %-7s %5d s\n' total "$([ $failed = 0 ] && echo ok || echo FAILED)" $(( $(date +%s) - suite_start ))
exit $failed
