#!/usr/bin/env bash
# Scores the rendered chart with kube-score (KUBE_SCORE_VERSION, built from its Go module by
# e2e/tools/build.sh) in every values combination of ci/values/ (the defaults among them: the same
# files the chart e2e test dry-runs on the API server). Fails (exit 1) on any CRITICAL, and prints the
# verdicts that are not OK.
#
# Checks are disabled only per combination, each with its reason, by a comment in the values file:
#   # kube-score-ignore: <check id>: <why>
# kube-score's optional checks stay off (its defaults); --kubernetes-version is the oldest Kubernetes
# the chart supports (Chart.yaml kubeVersion). First, the judge itself: a render known to be wrong (the
# pre-fix pull policy) must get a CRITICAL, or a kube-score that scores nothing would pass everything.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
# shellcheck source=../../../e2e/cluster/versions.env
source "$root/e2e/cluster/versions.env"
helm="$(bash "$root/e2e/cluster/build.sh")/helm"
kube_score="$(bash "$root/e2e/tools/build.sh")/kube-score"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

render() {
  "$helm" template covenant "$root/charts/covenant" --namespace covenant-system \
    --kube-version "$KUBE_VERSION" "$@"
}
render --set image.pullPolicy=IfNotPresent >"$tmp/known-bad.yaml"
if "$kube_score" score --kubernetes-version v1.30 --output-format ci "$tmp/known-bad.yaml" \
  >"$tmp/known-bad.score" || ! grep -q '^\[CRITICAL\].*Pull Policy\|^\[CRITICAL\].*ImagePullPolicy' "$tmp/known-bad.score"; then
  echo "kube-score did not flag image.pullPolicy=IfNotPresent as CRITICAL; its verdicts:" >&2
  cat "$tmp/known-bad.score" >&2
  exit 1
fi

failed=()
for values in "$here"/values/*.yaml; do
  combo=$(basename "$values" .yaml)
  render -f "$values" >"$tmp/$combo.yaml"
  ignore=()
  while read -r check; do
    ignore+=(--ignore-test "$check")
  done < <(sed -n 's/^# kube-score-ignore: \([a-z0-9-]*\):.*/\1/p' "$values")
  # kube-score exits 1 on a CRITICAL; the verdicts are counted below.
  "$kube_score" score --kubernetes-version v1.30 --output-format ci ${ignore[@]+"${ignore[@]}"} \
    "$tmp/$combo.yaml" >"$tmp/$combo.score" || true
  ok=$(grep -c '^\[OK\]' "$tmp/$combo.score" || true)
  warning=$(grep -c '^\[WARNING\]' "$tmp/$combo.score" || true)
  critical=$(grep -c '^\[CRITICAL\]' "$tmp/$combo.score" || true)
  echo "kube-score $KUBE_SCORE_VERSION, $combo: $ok OK, $warning WARNING, $critical CRITICAL${ignore[*]:+ (${ignore[*]})}"
  grep -E '^\[(WARNING|CRITICAL)\]' "$tmp/$combo.score" | sed 's/^/  /' || true
  if [ "$ok" -eq 0 ]; then
    echo "  kube-score scored nothing: is the Deployment still rendered?" >&2
    failed+=("$combo")
  elif [ "$critical" -ne 0 ]; then
    failed+=("$combo")
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "kube-score finds CRITICAL in: ${failed[*]} (fix the chart, or disable the check in that values file with the reason)" >&2
  exit 1
fi
