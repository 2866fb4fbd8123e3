#!/usr/bin/env bash
# The chart installs the generated CRDs (crds/, which `make crds` regenerates from the Rust types) from
# templates/crds/, generated from crds/ by ci/sync-from-deploy.py (behind crds.install, annotated
# `helm.sh/resource-policy: keep` when crds.keep). Fails (exit 1) when
#   - templates/crds/ is not what the script makes of crds/, or
#   - what Helm renders (helm template, the default values) is not crds/, object for object, apart from
#     the chart's labels and the keep annotation; or the chart renders CRDs with crds.install=false.
# Fix with:  python3 charts/covenant/ci/sync-from-deploy.py
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
# shellcheck source=../../../e2e/cluster/versions.env
source "$root/e2e/cluster/versions.env"
helm="$(bash "$root/e2e/cluster/build.sh")/helm"
python3 "$here/sync-from-deploy.py" --check-crds
render() {
  "$helm" template covenant "$root/charts/covenant" --namespace covenant-system \
    --kube-version "$KUBE_VERSION" "$@"
}
render >"${TMPDIR:-/tmp}/covenant-crds-render.$$.yaml"
render --set crds.install=false >"${TMPDIR:-/tmp}/covenant-crds-render-none.$$.yaml"
trap 'rm -f "${TMPDIR:-/tmp}"/covenant-crds-render*.$$.yaml' EXIT
python3 - "$root/crds" "${TMPDIR:-/tmp}/covenant-crds-render.$$.yaml" \
  "${TMPDIR:-/tmp}/covenant-crds-render-none.$$.yaml" <<'PY'
import pathlib, sys, yaml
crds_dir, rendered, rendered_none = sys.argv[1:]
want = {}
for f in sorted(pathlib.Path(crds_dir).glob("*.yaml")):
    doc = yaml.safe_load(f.read_text())
    want[doc["metadata"]["name"]] = doc
def crds(path):
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(open(path))
            if d and d.get("kind") == "CustomResourceDefinition"}
got = crds(rendered)
bad = []
for name in sorted(set(want) | set(got)):
    if name not in got:
        bad.append(f"{name}: in crds/ but not rendered by the chart")
        continue
    if name not in want:
        bad.append(f"{name}: rendered by the chart but not in crds/")
        continue
    g = got[name]
    meta = g["metadata"]
    if meta.get("annotations", {}).get("helm.sh/resource-policy") != "keep":
        bad.append(f"{name}: rendered without helm.sh/resource-policy: keep (crds.keep defaults to true)")
    g = dict(g, metadata={"name": meta["name"]})
    if g != want[name]:
        bad.append(f"{name}: rendered differently from crds/{name}.yaml")
none = crds(rendered_none)
if none:
    bad.append(f"crds.install=false still renders {sorted(none)}")
if bad:
    print("the chart's CRDs have drifted from crds/:\n  " + "\n  ".join(bad)
          + "\nrun  python3 charts/covenant/ci/sync-from-deploy.py", file=sys.stderr)
    sys.exit(1)
print(f"the chart renders the {len(want)} CRDs of crds/ (keep annotation on; none with crds.install=false)")
PY
