#!/usr/bin/env bash
# The whole test suite, in order: lint, sanity, collection build, unit, integration,
# Molecule, and the ansible-core matrix. `scripts/test.sh all` (= `make test`) first sets
# everything up on a fresh machine (scripts/bootstrap.sh). Each step prints its time;
# every step runs even when an earlier one failed, and the exit status is non-zero if
# any failed.
#   scripts/test.sh [all|lint|sanity|build|unit|integration|integration_preflight|molecule|matrix ...]
#
# ansible-core: .venv has the pinned 2.19 (requirements-dev.txt), which lint, sanity,
# build, unit and integration use. meta/runtime.yml admits 2.17 to 2.20; the matrix
# step runs sanity and the unit tests again on the lowest and the highest of that
# range (tests/matrix/ansible-core-*.txt, venvs by scripts/matrix-venv.sh), and the
# Molecule scenarios are spread over the three: default on 2.19, debian13 on 2.20,
# day2 on 2.17.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(all)
# A step "a,b+c" runs two lanes side by side: a then b in one, c in the other.
# The integration tests wait on their test hosts about half of the time (measured: 47 % of
# the CPU idle during them on 2 cores); the matrix and Molecule fill that time in the
# other lane. lint, sanity and build (mostly single-process) run before the integration
# tests, beside the unit tests. Measured on the 2-core CI machine at ec82c6e: unit 530 s
# beside lint, sanity and build; then integration 3741 s beside the matrix 1461 s and
# Molecule 1681 s (4328 s in all). To even the two lanes out, preflight's table on test
# hosts (about 350 s of the integration tests) runs in the second lane, and the matrix
# leaves out the simulation's tests that do not involve Ansible (about 170 s on two cores)
# and the unit tests marked flow (pytest.ini): about half of the unit tests' time (the
# preflight table's 41 ansible-playbook runs alone 196 s of 653 s), on cores whose whole
# playbooks Molecule runs. The two lanes run from the start, with no wait for the unit
# tests before the integration tests: at 121ba38 (2026-12-05) a first phase of lint, sanity
# and build beside the unit tests took 14 minutes (the unit tests 814 s of it), and the
# integration tests, started after it, were then the longer lane.
[ "${steps[0]}" = all ] && steps=(lint,sanity,build,integration+unit,matrix,integration_preflight,molecule)

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
# cpu_ticks: "busy total" jiffies of all cores so far (/proc/stat; idle and iowait are not busy).
# The summary prints how busy the CPU was over the steps: with the two lanes side by side a
# third lane gains only where this is well below 100 %.
cpu_ticks() {
  awk '/^cpu /{t=0; for (i=2; i<=NF; i++) t+=$i; print t-$5-$6, t}' /proc/stat 2>/dev/null
}
read -r cpu_busy0 cpu_total0 <<<"$(cpu_ticks)"

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

# The integration tests in two steps, for the two lanes: preflight's acceptance table on
# plain test hosts (no simulated cluster, container names of its own) runs in the lane of
# the matrix and Molecule, the rest in the other.
INTEGRATION_OTHER_LANE=tests/integration/test_preflight_matrix.py
step_integration() {
  run_pytest -q -rfEs --durations=30 -m integration --ignore="$INTEGRATION_OTHER_LANE" tests/integration
}

step_integration_preflight() {
  run_pytest -q -rfEs --durations=10 -m integration "$INTEGRATION_OTHER_LANE"
}

step_drills() {
  run_pytest -q -s -m drill tests/integration/test_fault_drills.py
}

# with_core X.Y cmd...: cmd with ansible-core X.Y's venv first on PATH and the
# collections of its `ansible` release; with_core "" cmd...: cmd as it is (.venv).
with_core() {
  local core=$1 venv site
  shift
  if [ -z "$core" ]; then "$@"; return; fi
  venv=$(bash scripts/matrix-venv.sh "$core") || return 1
  site=$(echo "$venv"/lib/python3*/site-packages)
  PATH=$venv/bin:$PATH ANSIBLE_COLLECTIONS_PATH=$root/.collections:$site/ansible_collections \
    KUBEGPU_VENV=$venv KUBEGPU_SANITY_DIR=${TMPDIR:-/tmp}/kubegpu-sanity-$core "$@"
}

# Scenario and the ansible-core it runs on ("" = .venv's 2.19).
MOLECULE_SCENARIOS=(default: debian13:2.20 day2:2.17)
step_molecule() {
  local rc=0 entry s core t0 out
  for entry in "${MOLECULE_SCENARIOS[@]}"; do
    s=${entry%%:*} core=${entry#*:}
    t0=$(date +%s)
    out=$(mktemp)
    with_core "$core" molecule test -s "$s" 2>&1 | tee "$out"
    if [ "${PIPESTATUS[0]}" -ne 0 ]; then
      rc=1
      # What failed, for the summary at the end (a long log's tail shows the destroy
      # step, not the failure): each fatal result with the lines that follow it,
      # nested runs' (prepare's site.yml) included.
      { echo "molecule $s:"; grep -E -A12 '(fatal|^failed): \[' "$out" | cut -c1-300 | head -80; } >>"$failures_file"
    fi
    rm -f "$out"
    echo "molecule scenario $s (ansible-core $(with_core "$core" ansible --version 2>/dev/null | sed -n '1s/.*core \([0-9.]*\).*/\1/p')): $(( $(date +%s) - t0 )) s"
  done
  return $rc
}

MATRIX_CORES=(2.17 2.20)
step_matrix() {
  local rc=0 core t0 skip
  for core in "${MATRIX_CORES[@]}"; do
    t0=$(date +%s)
    printf -- '--- ansible-core %s: sanity\n' "$core"
    # pylint on the lowest core only repeats .venv's and 2.20's (newer pylint, same code).
    skip=()
    [ "$core" = "${MATRIX_CORES[0]}" ] && skip=(--skip-test pylint)
    with_core "$core" bash scripts/sanity.sh "${skip[@]}" || rc=1
    printf -- '--- ansible-core %s: unit\n' "$core"
    KUBEGPU_MATRIX_CORE=$core with_core "$core" run_pytest -q -m "not flow" tests/unit || rc=1
    echo "matrix ansible-core $core: $(( $(date +%s) - t0 )) s"
  done
  return $rc
}

declare -a summary
failed=0
# timed_step NAME: runs step_NAME, then prints its summary line (name, ok/FAILED,
# seconds) after the mark "@@summary ".
timed_step() {
  local t0 result
  t0=$(date +%s)
  if "step_$1"; then result=ok; else result=FAILED; fi
  printf '\n@@summary %-12s %-7s %5d s\n' "$1" "$result" $(( $(date +%s) - t0 ))
}
# run_lane "a,b": steps a then b, one after the other.
run_lane() {
  local part
  IFS=, read -ra lane_steps <<<"$1"
  for part in "${lane_steps[@]}"; do
    printf '\n======== %s ========\n' "$part"
    timed_step "$part"
  done
}
for step in "${steps[@]}"; do
  # Lanes joined by + run at the same time; each one's output is kept in its own file and
  # printed whole when all of them have ended.
  IFS=+ read -ra parts <<<"$step"
  [ ${#parts[@]} -gt 1 ] && printf '\n======== %s (side by side; output follows when all have ended) ========\n' "$step"
  t0=$(date +%s)
  declare -a pids=() logs=()
  for part in "${parts[@]}"; do
    log=$(mktemp)
    logs+=("$log")
    if [ ${#parts[@]} -gt 1 ]; then run_lane "$part" >"$log" 2>&1 & pids+=($!); else run_lane "$part" 2>&1 | tee "$log"; fi
  done
  [ ${#pids[@]} -gt 0 ] && wait "${pids[@]}"
  for i in "${!parts[@]}"; do
    [ ${#parts[@]} -gt 1 ] && grep -v '^@@summary ' "${logs[$i]}"
    while IFS= read -r line; do
      summary+=("$line")
      [[ $line == *FAILED* ]] && failed=1
    done < <(sed -n 's/^@@summary //p' "${logs[$i]}")
    rm -f "${logs[$i]}"
  done
  [ ${#parts[@]} -gt 1 ] && summary+=("$(printf '%-12s %-7s %5d s' "  together" "" $(( $(date +%s) - t0 )))")
done

printf '\n======== summary ========\n'
printf '%-12s %-7s %5d s\n' bootstrap ok "$bootstrap_s"
printf '%s\n' "${summary[@]}"
if [ -s "$failures_file" ]; then
  printf '\nfailed tests:\n'
  cut -c1-300 "$failures_file"
fi
read -r cpu_busy1 cpu_total1 <<<"$(cpu_ticks)"
if [ -n "$cpu_total0" ] && [ -n "$cpu_total1" ] && [ "$cpu_total1" -gt "$cpu_total0" ]; then
  printf 'cpu busy over the steps: %d %% of %d cores\n' \
    $(( 100 * (cpu_busy1 - cpu_busy0) / (cpu_total1 - cpu_total0) )) "$(nproc)"
fi
printf '%-12s %-7s %5d s\n' total "$([ $failed = 0 ] && echo ok || echo FAILED)" $(( $(date +%s) - suite_start ))
exit $failed
