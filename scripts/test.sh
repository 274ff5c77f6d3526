#!/usr/bin/env bash
# The whole test suite, in order: lint, sanity, collection build, unit, integration,
# Molecule, and the ansible-core matrix. `scripts/test.sh all` (= `make test`) first sets
# everything up on a fresh machine (scripts/bootstrap.sh). Each step prints its time;
# every step runs even when an earlier one failed, and the exit status is non-zero if
# any failed.
#   scripts/test.sh [all|lint|sanity|build|unit|integration|integration_part2|molecule|molecule_default|molecule_day2|matrix ...]
#
# ansible-core: .venv has the pinned 2.19 (requirements-dev.txt), which lint, sanity,
# build, unit and integration use. meta/runtime.yml admits 2.17 to 2.20; the matrix
# step runs sanity and the unit tests again on the lowest and the highest of that
# range (tests/matrix/ansible-core-*.txt, venvs by scripts/matrix-venv.sh), and the
# Molecule scenarios run on the other two: default (the whole fleet, Debian 12 and 13) on
# 2.20, day2 on 2.17; the integration tests run whole playbooks on 2.19.
# pylint: in the whole suite once, on the highest core (the matrix's 2.20, the newest
# pylint); `scripts/test.sh sanity` alone runs it on .venv's core.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(all)
# A step "a,b+c" runs two lanes side by side: a then b in one, c in the other.
# On the 2-core CI machine the two lanes keep both cores busy (a third lane was tried on
# 2026-12-05: every step slowed, nothing gained), so the suite's time is the CPU work it
# does, split evenly. Lane 1: lint, sanity and build, the integration tests, then
# Molecule's day2 scenario. Lane 2:
# the unit tests, the matrix (sanity and the unit tests on 2.17 and 2.20, less the unit
# tests marked flow and the simulation's tests that do not involve Ansible), the second
# part of the integration tests (INTEGRATION_PART2), then Molecule's default. Measured at 7ef0bb6
# on this project's own 2-core machine (2026-12-05, ci-run22): lane 1 5047 s (integration
# 4587 s), lane 2 5093 s (unit 692 s, matrix 1213 s, preflight's table 544 s, Molecule
# 2644 s); then Molecule's two 3-host fleets became one 4-host fleet of both Debian
# releases (about 1000 s less), pylint ran once instead of twice (about 180 s), and the
# air gap and DKMS modules moved to lane 2. A full run of that (e98875c, same machine, a
# slower day: unit 833 s, sanity 429 s) had lane 1 end at 4734 s and lane 2 at about
# 5355 s (the second integration part 1643 s, Molecule default 1208 s, day2 about
# 350 s), so Molecule's day2 scenario runs last in lane 1 instead.
SANITY_ARGS=()      # extra arguments of the sanity step
TABLE_ON_HOSTS=     # set: the unit step leaves the preflight table's plain-host cases to integration_part2
if [ "${steps[0]}" = all ]; then
  steps=(lint,sanity,build,integration,molecule_day2+unit,matrix,integration_part2,molecule_default)
  SANITY_ARGS=(--skip-test pylint)   # the matrix runs it on 2.20
  TABLE_ON_HOSTS=1                   # integration_part2 runs the table's plain-host cases
fi

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
  bash scripts/sanity.sh "${SANITY_ARGS[@]}"
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

# In the whole suite the preflight table's plain-host cases run for real in
# integration_part2; the unit runner then takes only the cases that need fixtures
# (tests/unit/roles/test_preflight_cases.py).
step_unit() {
  KUBEGPU_PREFLIGHT_TABLE_ON_HOSTS=$TABLE_ON_HOSTS run_pytest -q tests/unit
}

# The integration tests in two steps, for the two lanes: the modules below (test hosts and
# container names of their own, no simulated cluster shared with another module) run in the
# lane of the unit tests, the matrix and Molecule; the rest in the other. Chosen to even the
# lanes out: preflight's acceptance table (544 s in ci-run22, 7ef0bb6), the air gap (about
# 320 s there) and the kernels' DKMS modules (about 150 s).
INTEGRATION_PART2=(tests/integration/test_preflight_matrix.py tests/integration/test_airgap.py
                   tests/integration/test_kernel_modules.py)
step_integration() {
  local ignore=() module
  for module in "${INTEGRATION_PART2[@]}"; do ignore+=(--ignore="$module"); done
  run_pytest -q -rfEs --durations=30 -m integration "${ignore[@]}" tests/integration
}

step_integration_part2() {
  run_pytest -q -rfEs --durations=15 -m integration "${INTEGRATION_PART2[@]}"
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
# molecule_default and molecule_day2 run one each (the whole suite puts them in different
# lanes); molecule runs every one.
MOLECULE_SCENARIOS=(default:2.20 day2:2.17)
step_molecule_default() { molecule_scenarios default:2.20; }
step_molecule_day2() { molecule_scenarios day2:2.17; }
step_molecule() { molecule_scenarios "${MOLECULE_SCENARIOS[@]}"; }
molecule_scenarios() {
  local rc=0 entry s core t0 out
  for entry in "$@"; do
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
    # pylint runs on the highest core only (the newest pylint; same code on every core).
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
# With lanes side by side, it also prints that line at once where the suite's own output
# goes (fd 3), so a run stopped from outside (CI's time limit) still shows which steps ended.
timed_step() {
  local t0 result line
  t0=$(date +%s)
  if "step_$1"; then result=ok; else result=FAILED; fi
  line=$(printf '%-12s %-7s %5d s' "$1" "$result" $(( $(date +%s) - t0 )))
  printf '\n@@summary %s\n' "$line"
  [ -n "${LANES_LIVE:-}" ] && printf 'ended at +%d s: %s\n' $(( $(date +%s) - suite_start )) "$line" >&3
  return 0
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
  LANES_LIVE=
  if [ ${#parts[@]} -gt 1 ]; then
    printf '\n======== %s (side by side; each step'"'"'s end is shown as it comes, the output when all have ended) ========\n' "$step"
    LANES_LIVE=1
    exec 3>&1
    # Stopped from outside (CI's time limit sends TERM): the end of each lane's output so far.
    trap 'for l in "${logs[@]}"; do printf "\n---- last lines of a lane ----\n"; grep -v "^@@summary " "$l" | tail -40; done; kill "${pids[@]}" 2>/dev/null; exit 143' TERM INT
  fi
  t0=$(date +%s)
  declare -a pids=() logs=()
  for part in "${parts[@]}"; do
    log=$(mktemp)
    logs+=("$log")
    if [ ${#parts[@]} -gt 1 ]; then run_lane "$part" >"$log" 2>&1 & pids+=($!); else run_lane "$part" 2>&1 | tee "$log"; fi
  done
  [ ${#pids[@]} -gt 0 ] && wait "${pids[@]}"
  trap - TERM INT
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
