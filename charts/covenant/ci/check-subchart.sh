#!/usr/bin/env bash
# The chart works as a subchart: a parent chart that depends on it, with global values of its own (Helm
# passes `global` to every subchart, so a schema without it rejects them), renders; and values under
# the dependency's key reach the operator. Fails (exit 1) otherwise.
#
#   charts/covenant/ci/check-subchart.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
# shellcheck source=../../../e2e/cluster/versions.env
source "$root/e2e/cluster/versions.env"
helm="$(bash "$root/e2e/cluster/build.sh")/helm"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/platform/charts"
cat >"$tmp/platform/Chart.yaml" <<'YAML'
apiVersion: v2
name: platform
version: 1.0.0
dependencies:
  - name: covenant
    version: ">=0.0.0-0"
YAML
cat >"$tmp/platform/values.yaml" <<'YAML'
global:
  imageRegistry: registry.example.com
  labels: {team: platform}
covenant:
  logLevel: debug
YAML
cp -r "$root/charts/covenant" "$tmp/platform/charts/covenant"
out=$("$helm" template platform "$tmp/platform" --namespace covenant-system --kube-version "$KUBE_VERSION" 2>&1) || {
  echo "the chart does not render as a subchart with global values:" >&2
  echo "$out" | tail -5 >&2
  exit 1
}
grep -q -- '--log-level=debug' <<<"$out" || {
  echo "the parent's covenant.logLevel did not reach the operator's arguments" >&2
  exit 1
}
echo "the chart renders as a subchart with global values; the parent's values reach it"
