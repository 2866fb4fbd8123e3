#!/usr/bin/env bash
# The chart ships copies of the generated CRDs (Helm installs a chart's crds/ before its templates).
# Fails (exit 1) when charts/covenant/crds/ differs from crds/ at the repository root, which `make crds`
# regenerates from the Rust types; fix with:  cp crds/*.yaml charts/covenant/crds/
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
if diff -ru "$root/crds" "$here/../crds"; then
  echo "charts/covenant/crds/ is in sync with crds/"
else
  echo "charts/covenant/crds/ has drifted from crds/: run  cp crds/*.yaml charts/covenant/crds/" >&2
  exit 1
fi
