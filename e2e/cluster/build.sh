#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) and helm from
# their official Go modules at the pinned versions, into a cache outside the repository:
#   ${COVENANT_CACHE:-~/.cache/covenant}/bin/<kube>-<etcd>-<helm>/
# A second run finds the binaries there and does nothing. Prints the bin directory on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# The tests' judges (netpol-oracle, kstatus: e2e/tools/) go to a directory of their own, keyed by their
# sources; e2e/tools/build.sh prints it. Built here too, so one cold run builds everything the tests use.
bash "$here/../tools/build.sh" >/dev/null
cache=${COVENANT_CACHE:-$HOME/.cache/covenant}
bin="$cache/bin/kube-$KUBE_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
want=(etcd kube-apiserver kube-controller-manager kubectl helm)
missing=()
for b in "${want[@]}"; do [ -x "$bin/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$bin"; exit 0; fi

log() { echo "[build] $*" >&2; }
export GOFLAGS=-buildvcs=false CGO_ENABLED=0
# The module files below are committed (go.mod + go.sum pin every dependency); `gen-kube-mod.sh`
# regenerates the Kubernetes one for a new version.
work=$(mktemp -d "${TMPDIR:-/tmp}/covenant-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$bin"
start=$(date +%s)

need() { for b in "$@"; do [[ " ${missing[*]} " == *" $b "* ]] && return 0; done; return 1; }

if need kube-apiserver kube-controller-manager kubectl; then
  cp "$here/kube/go.mod" "$here/kube/go.sum" "$work/" 2>/dev/null || cp "$here/kube/go.mod" "$work/"
  major=${KUBE_VERSION#v}; major=${major%%.*}
  minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
    -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor \
    -X k8s.io/component-base/version.gitTreeState=clean \
    -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION \
    -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  for b in kube-apiserver kube-controller-manager kubectl; do
    need "$b" || continue
    log "building $b $KUBE_VERSION (first run on this machine only)"
    (cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$bin/$b.tmp" "k8s.io/kubernetes/cmd/$b")
    mv "$bin/$b.tmp" "$bin/$b"
  done
fi
if need etcd; then
  log "building etcd $ETCD_VERSION"
  rm -f "$work"/go.*; cp "$here/etcd/go.mod" "$here/etcd/go.sum" "$work/"
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$bin/etcd.tmp" "$bin/etcd"
fi
if need helm; then
  log "building helm $HELM_VERSION"
  GOBIN="$work/gobin" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$work/gobin/helm" "$bin/helm"
fi
log "built ${missing[*]} in $(( $(date +%s) - start ))s"
echo "$bin"
