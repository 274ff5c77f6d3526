#!/usr/bin/env bash
# The execution environment (docs/awx.md), checked without building an image:
#  1. the collection tarball (ansible-galaxy collection build) carries its EE metadata:
#     meta/execution-environment.yml, requirements.txt and bindep.txt;
#  2. `ansible-builder create` on examples/execution-environment/ writes the build
#     context: a Containerfile from the definition's base image with the galaxy,
#     introspect and bindep steps, and _build/ with requirements.yml, the tarball and
#     ansible-builder's scripts;
#  3. the image's galaxy stage, replayed offline in _build/: `ansible-galaxy collection
#     install -r requirements.yml` installs kubegpu.cluster from the tarball it names
#     (so the name matches galaxy.yml's version), and the ranges given for ansible.posix
#     and community.general accept the versions kubegpu is tested with (those of the
#     `ansible` package in .venv, which satisfy them as already installed);
#  4. the image's builder stage, replayed: the context's own introspect.py, run as the
#     Containerfile runs it on the installed collections, must merge kubegpu.cluster's
#     Python and system requirements exactly as requirements.txt and bindep.txt give
#     them; so must `ansible-builder introspect --sanitize`; bindep must parse the merged
#     file and select the OpenSSH client but not the opt-in sshpass; the tested tomlkit
#     must be inside the range; the EE's ansible-core range must be meta/runtime.yml's.
# No network: `create` only writes files. `ansible-builder build` (base image, dnf, pip,
# Galaxy) is not run here: no image registry is reachable from CI.
#   scripts/ee-check.sh        (run by the build step of scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PATH=$root/.venv/bin:$PATH
t0=$(date +%s)

fail() { echo "ee-check: FAILED: $*" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ee=$tmp/ee                              # a copy of the example definition
ctx=$tmp/context                        # what ansible-builder create writes
coll=$tmp/usr/share/ansible/collections # the image's collections path, here
out=$tmp/merged                         # what the builder stage's introspect writes
# Only the collections installed here (and the `ansible` package's, found on sys.path):
# not the checkout linked in .collections, which would count as installed already.
export ANSIBLE_COLLECTIONS_PATH=$coll ANSIBLE_GALAXY_DISABLE_GPG_VERIFY=1

# 1. The collection tarball, where the example's additional_build_files look for it.
cp -r examples/execution-environment "$ee"
rm -rf "$ee/collections" "$ee/context"
ansible-galaxy collection build --force --output-path "$ee/collections" . >/dev/null
tarball=$(ls "$ee"/collections/kubegpu-cluster-*.tar.gz)
for f in meta/execution-environment.yml requirements.txt bindep.txt; do
  tar -tzf "$tarball" "$f" >/dev/null 2>&1 || fail "$f is not in $(basename "$tarball") (galaxy.yml build_ignore?)"
done
echo "ee-check: $(basename "$tarball") carries meta/execution-environment.yml, requirements.txt, bindep.txt"

# 2. The build context.
ansible-builder create --file "$ee/execution-environment.yml" --context "$ctx" \
  --output-filename Containerfile >/dev/null
for f in Containerfile _build/requirements.yml _build/scripts/introspect.py \
         _build/scripts/assemble _build/scripts/install-from-bindep "_build/collections/$(basename "$tarball")"; do
  [ -f "$ctx/$f" ] || fail "ansible-builder create wrote no $f"
done
cmp -s "$ee/requirements.yml" "$ctx/_build/requirements.yml" || fail "_build/requirements.yml differs from the example's"

# 3. The galaxy stage (the Containerfile runs it in /build, a copy of _build/).
(cd "$ctx/_build" && ansible-galaxy collection install --offline -r requirements.yml \
   --collections-path "$coll" >"$tmp/galaxy.log" 2>&1) || {
  cat "$tmp/galaxy.log" >&2
  fail "galaxy stage (examples/execution-environment/requirements.yml must name $(basename "$tarball"))"
}
[ -f "$coll/ansible_collections/kubegpu/cluster/MANIFEST.json" ] || fail "kubegpu.cluster was not installed"
# The image gets ansible.posix and community.general from Galaxy into the same path;
# here the tested versions stand in for them, so introspection sees every collection.
python - "$coll" <<'PY'
import json, os, subprocess, sys
coll = sys.argv[1]
for name in ("ansible.posix", "community.general"):
    found = json.loads(subprocess.run(
        ["ansible-galaxy", "collection", "list", name, "--format", "json"],
        check=True, capture_output=True, text=True).stdout)
    src = next(os.path.join(path, *name.split(".")) for path, cols in found.items() if name in cols)
    dst = os.path.join(coll, "ansible_collections", *name.split("."))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if not os.path.exists(dst):
        os.symlink(src, dst)
PY
echo "ee-check: galaxy stage installs kubegpu.cluster from _build/; ansible.posix, community.general ranges accept the tested versions"

# 4. The builder stage: the Containerfile's introspect step, with the EE's own
#    requirement files when the definition has any (as ansible-builder adds them).
user_args=()
[ -f "$ctx/_build/requirements.txt" ] && user_args+=(--user-pip=requirements.txt)
[ -f "$ctx/_build/bindep.txt" ] && user_args+=(--user-bindep=bindep.txt)
(cd "$ctx/_build" && python scripts/introspect.py introspect "$coll" "${user_args[@]}" \
   --write-bindep="$out/bindep.txt" --write-pip="$out/requirements.txt" >"$tmp/introspect.log" 2>&1) \
  || { cat "$tmp/introspect.log" >&2; fail "introspect"; }
ansible-builder introspect --sanitize "$coll" >"$tmp/sanitize.log" 2>&1 \
  || { cat "$tmp/sanitize.log" >&2; fail "ansible-builder introspect"; }
bindep -f "$out/bindep.txt" -l newline >"$tmp/bindep.default" \
  || fail "bindep cannot parse the merged bindep.txt (assemble would stop)"

python - "$root" "$ee" "$ctx" "$out" "$tmp" <<'PY'
import re, sys
from importlib.metadata import version
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

root, ee, ctx, out, tmp = map(Path, sys.argv[1:])
problems = []
TAG = "  # from collection kubegpu.cluster"


def entries(path):
    """Requirement lines of a pip or bindep file, comments stripped (as introspect does)."""
    lines = []
    for line in path.read_text().splitlines():
        line = re.sub(r"(?:^|\s+)#.*$", "", line.strip())
        if line:
            lines.append(line)
    return lines


def ours(lines):
    return [line[:-len(TAG)] for line in lines if line.endswith(TAG)]


want = {"python": entries(root / "requirements.txt"), "system": entries(root / "bindep.txt")}
merged = {"python": (out / "requirements.txt").read_text().splitlines(),
          "system": (out / "bindep.txt").read_text().splitlines()}
sanitized = yaml.safe_load((tmp / "sanitize.log").read_text().split("---", 1)[1])
for kind in ("python", "system"):
    if ours(merged[kind]) != want[kind]:
        problems.append("builder stage (introspect.py) merged %s %r, want %r" % (kind, ours(merged[kind]), want[kind]))
    if ours(sanitized[kind]) != want[kind]:
        problems.append("ansible-builder introspect --sanitize: %s %r, want %r" % (kind, ours(sanitized[kind]), want[kind]))

selected = (tmp / "bindep.default").read_text().split()
if not {"openssh-client", "openssh-clients"} & set(selected):
    problems.append("bindep selects no OpenSSH client from the merged file: %r" % selected)
if "sshpass" in selected:
    problems.append("bindep selects sshpass without the `password` profile: %r" % selected)

for line in want["python"]:
    req = Requirement(line)
    if not req.specifier.contains(version(req.name)):
        problems.append("%s: the tested %s %s is outside the range" % (line, req.name, version(req.name)))

definition = yaml.safe_load((ee / "execution-environment.yml").read_text())
requires = yaml.safe_load((root / "meta/runtime.yml").read_text())["requires_ansible"]
core = definition["dependencies"]["ansible_core"]["package_pip"]
if Requirement(core).specifier != Requirement("ansible-core" + requires).specifier:
    problems.append("ansible_core %r is not meta/runtime.yml's range %r" % (core, requires))
if not Requirement(core).specifier.contains(Version(version("ansible-core"))):
    problems.append("ansible_core %r excludes the tested ansible-core %s" % (core, version("ansible-core")))

containerfile = (ctx / "Containerfile").read_text()
base = definition["images"]["base_image"]["name"]
for needle in ('ARG EE_BASE_IMAGE="%s"' % base, "FROM $EE_BASE_IMAGE AS base",
               "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml",
               "/output/scripts/introspect.py introspect", "/output/scripts/install-from-bindep"):
    if needle not in containerfile:
        problems.append("Containerfile has no %r" % needle)

if problems:
    print("\n".join("ee-check: FAILED: " + p for p in problems), file=sys.stderr)
    sys.exit(1)
print("ee-check: Containerfile from %s with the galaxy, introspect and bindep steps" % base)
print("ee-check: merged at build time from kubegpu.cluster: python %s; system %s"
      % (", ".join(want["python"]), ", ".join(want["system"])))
print("ee-check: bindep selects %s here (sshpass only with profile `password`)" % ", ".join(selected))
PY
echo "ee-check: ok ($(( $(date +%s) - t0 )) s)"
