#!/usr/bin/env bash
# The chart's monitoring, judged by Prometheus' own promtool (built from its Go module by
# e2e/tools/build.sh):
#   1. rules/covenant.rules.yaml is a valid rule file and passes its unit tests (ci/rules.test.yaml:
#      series written by the tests, the alerts each must raise or not);
#   2. the PrometheusRule the chart renders carries exactly that file;
#   3. every query of the Grafana dashboard (dashboards/covenant.json) is valid PromQL, and the
#      dashboard ConfigMap carries exactly that file.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
chart=$(cd "$here/.." && pwd)
root=$(cd "$chart/../.." && pwd)
tools=$(bash "$root/e2e/tools/build.sh")
bin=$(bash "$root/e2e/cluster/build.sh")
# shellcheck source=../../../e2e/cluster/versions.env
source "$root/e2e/cluster/versions.env"
promtool="$tools/promtool"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$promtool" check rules "$chart/rules/covenant.rules.yaml"
(cd "$here" && "$promtool" test rules rules.test.yaml)

render() {
  "$bin/helm" template covenant "$chart" --kube-version "${KUBE_VERSION#v}" \
    --set prometheusRule.enabled=true,grafanaDashboard.enabled=true --show-only "$1"
}
render templates/prometheusrule.yaml >"$tmp/rule.yaml"
render templates/dashboard.yaml >"$tmp/dashboard.yaml"
# Text, not YAML libraries (a fresh machine's Python has none): the templates embed the files verbatim,
# indented, so the rendered blocks, dedented, are the files byte for byte.
python3 - "$tmp" "$chart" <<'PY'
import json, pathlib, sys
tmp, chart = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])

def block(text, header, indent):
    lines = text.split("\n")
    i = next(n for n, l in enumerate(lines) if l.rstrip() == header) + 1
    out = []
    for l in lines[i:]:
        if l.strip() and not l.startswith(" " * indent):
            break
        out.append(l[indent:])
    return "\n".join(out).strip("\n")

rule = block((tmp / "rule.yaml").read_text(), "spec:", 2)
source = (chart / "rules/covenant.rules.yaml").read_text().strip("\n")
assert rule == source, "the PrometheusRule's spec is not rules/covenant.rules.yaml"
(tmp / "rendered.rules.yaml").write_text(rule + "\n")
embedded = block((tmp / "dashboard.yaml").read_text(), "  covenant.json: |-", 4)
dashboard = json.loads((chart / "dashboards/covenant.json").read_text())
assert json.loads(embedded) == dashboard, "the dashboard ConfigMap is not dashboards/covenant.json"
# Every panel query as a recording rule, so that promtool parses it (template variables as values);
# JSON strings are YAML scalars.
exprs = [t["expr"].replace("$job", ".*") for p in dashboard["panels"] for t in p.get("targets", [])]
rules = "groups:\n  - name: dashboard\n    rules:\n" + "".join(
    f"      - record: covenant:dashboard:{i}\n        expr: {json.dumps(e)}\n" for i, e in enumerate(exprs))
(tmp / "dashboard.rules.yaml").write_text(rules)
print(f"chart monitoring: the PrometheusRule is rules/covenant.rules.yaml; {len(exprs)} dashboard queries")
PY
"$promtool" check rules "$tmp/rendered.rules.yaml" "$tmp/dashboard.rules.yaml"
