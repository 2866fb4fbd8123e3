#!/usr/bin/env bash
# Builds the e2e tests' independent judges from their own Go modules (each tool's go.mod + go.sum pin
# every dependency; main.go, where there is one, is ours):
#   netpol-oracle  NetworkPolicy verdicts by cyclonus' matcher (CYCLONUS_VERSION)
#   kstatus        kstatus of objects by cli-utils (CLI_UTILS_VERSION)
#   kube-score     the chart's linter in `make checks` (KUBE_SCORE_VERSION): upstream's own command,
#                  the `tool` of its go.mod (no main.go)
#   promtool       the judge of the chart's alerting rules and dashboard (PROMETHEUS_VERSION)
#   crane          the OCI registry of the e2e tests (`crane registry serve`) and the image pusher of
#                  the tests and the release workflow (CRANE_VERSION), upstream's command
#   actionlint     the judge of .github/workflows/ in `make checks` (ACTIONLINT_VERSION), upstream's command
# into a cache outside the repository, keyed by the content of those files:
#   ${COVENANT_CACHE:-~/.cache/covenant}/bin/tools-<hash of */go.mod, */go.sum, */main.go, */tags>/
# so changing a tool's version or its main.go builds it again. A second run finds the binaries there
# and does nothing. Prints the tools directory on stdout.
# A tool's `tags` file, where there is one, holds its Go build tags: promtool's `remove_all_sd` leaves
# out Prometheus' service discoveries (cloud SDKs that `promtool check rules` and `test rules` never
# use: a fifth of its packages and a third of its modules, to download and compile).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../cluster/versions.env
source "$here/../cluster/versions.env"
tools=(netpol-oracle kstatus kube-score promtool crane actionlint)
log() { echo "[build] $*" >&2; }

# versions.env is where the pins are read by humans; the go.mod files are what Go builds. They agree.
pinned() { awk -v m="$2" '$1 == m { print $2 }' "$here/$1/go.mod"; }
check() {
  local got
  got=$(pinned "$1" "$2")
  if [ "$got" != "$3" ]; then
    log "e2e/tools/$1/go.mod pins $2 ${got:-(nothing)}, versions.env says $3;" \
      "run: (cd e2e/tools/$1 && go get $2@$3 && go mod tidy)"
    exit 1
  fi
}
check netpol-oracle github.com/mattfenwick/cyclonus "$CYCLONUS_VERSION"
check kstatus sigs.k8s.io/cli-utils "$CLI_UTILS_VERSION"
check kube-score github.com/zegl/kube-score "$KUBE_SCORE_VERSION"
check promtool github.com/prometheus/prometheus "$PROMETHEUS_VERSION"
check crane github.com/google/go-containerregistry "$CRANE_VERSION"
check actionlint github.com/rhysd/actionlint "$ACTIONLINT_VERSION"

files=()
for t in "${tools[@]}"; do
  files+=("$t/go.mod" "$t/go.sum")
  [ ! -f "$here/$t/main.go" ] || files+=("$t/main.go")
  [ ! -f "$here/$t/tags" ] || files+=("$t/tags")
done
hash=$(cd "$here" && sha256sum "${files[@]}" | sha256sum | cut -c1-16)
cache=${COVENANT_CACHE:-$HOME/.cache/covenant}
bin="$cache/bin/tools-$hash"
missing=()
for t in "${tools[@]}"; do [ -x "$bin/$t" ] || missing+=("$t"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$bin"; exit 0; fi

export GOFLAGS="-buildvcs=false -mod=readonly" CGO_ENABLED=0
mkdir -p "$bin"
tmp=
trap 'rm -f "$tmp"' EXIT
start=$(date +%s)
for t in "${missing[@]}"; do
  log "building $t (e2e/tools/$t)"
  # A temporary name in the same directory, then a rename: a concurrent build never sees half a file.
  tmp=$(mktemp "$bin/.$t.XXXXXX")
  # Ours (main.go), or the module's one `tool` (an upstream command, built as its module pins it).
  pkg=.
  [ -f "$here/$t/main.go" ] || pkg=$(awk '$1 == "tool" { print $2 }' "$here/$t/go.mod")
  tags=
  [ ! -f "$here/$t/tags" ] || tags=$(tr -s ' \n' ',' <"$here/$t/tags" | sed 's/^,//; s/,$//')
  (cd "$here/$t" && go build -trimpath -tags "$tags" -ldflags "-s -w" -o "$tmp" "$pkg")
  mv "$tmp" "$bin/$t"
done
log "built ${missing[*]} in $(( $(date +%s) - start ))s"
echo "$bin"
