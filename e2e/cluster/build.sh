#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) and helm from
# their official Go modules at the pinned versions, into a cache outside the repository:
#   ${COVENANT_CACHE:-~/.cache/covenant}/bin/<kube>-<etcd>-<helm>/
# A second run finds the binaries there and does nothing. Prints the bin directory on stdout.
#
#   build.sh [NAME...]   only these (default: all five); `make run` asks for the control plane and
#                        kubectl only, so a first `make run` builds neither helm nor the tests' judges
#                        (e2e/tools/build.sh, which `make test` and `make checks` run).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${COVENANT_CACHE:-$HOME/.cache/covenant}
bin="$cache/bin/kube-$KUBE_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
all=(etcd kube-apiserver kube-controller-manager kubectl helm)
want=("$@")
[ ${#want[@]} -gt 0 ] || want=("${all[@]}")
for b in "${want[@]}"; do
  [[ " ${all[*]} " == *" $b "* ]] || { echo "[build] unknown binary $b (one of: ${all[*]})" >&2; exit 2; }
done
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

# etcd (a module of its own) builds in the background beside Kubernetes: their downloads and links
# overlap (measured in BENCHMARKS.md).
etcd_pid=
if need etcd; then
  log "building etcd $ETCD_VERSION"
  mkdir -p "$work/etcd"
  cp "$here/etcd/go.mod" "$here/etcd/go.sum" "$work/etcd/"
  (cd "$work/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3 &&
    mv "$bin/etcd.tmp" "$bin/etcd") &
  etcd_pid=$!
fi
kube=()
for b in kube-apiserver kube-controller-manager kubectl; do need "$b" && kube+=("$b"); done
if [ ${#kube[@]} -gt 0 ]; then
  mkdir -p "$work/kube/out"
  cp "$here/kube/go.mod" "$here/kube/go.sum" "$work/kube/" 2>/dev/null || cp "$here/kube/go.mod" "$work/kube/"
  major=${KUBE_VERSION#v}; major=${major%%.*}
  minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
    -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor \
    -X k8s.io/component-base/version.gitTreeState=clean \
    -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION \
    -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  log "building ${kube[*]} $KUBE_VERSION (first run on this machine only)"
  # One invocation for every command: their common packages are compiled once and the links run in
  # parallel.
  pkgs=()
  for b in "${kube[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  (cd "$work/kube" && go build -trimpath -ldflags "$ldflags" -o "$work/kube/out/" "${pkgs[@]}")
  for b in "${kube[@]}"; do mv "$work/kube/out/$b" "$bin/$b"; done
fi
if need helm; then
  log "building helm $HELM_VERSION"
  GOBIN="$work/gobin" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$work/gobin/helm" "$bin/helm"
fi
if [ -n "$etcd_pid" ] && ! wait "$etcd_pid"; then
  log "building etcd failed"
  exit 1
fi
log "built ${missing[*]} in $(( $(date +%s) - start ))s"
echo "$bin"
