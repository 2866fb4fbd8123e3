#!/usr/bin/env bash
# The Gateway API's standard-channel CRDs for the e2e suite `gateway`: config/crd/standard/ of the Go
# module sigs.k8s.io/gateway-api at GATEWAY_API_VERSION (e2e/cluster/versions.env), fetched with
# `go mod download` (the Go module proxy, checked against the checksum database like any module) and
# copied into a cache outside the repository:
#   ${COVENANT_CACHE:-~/.cache/covenant}/gateway-api-<version>/
# A second run finds them there and does nothing. Prints that directory on stdout. Fails loudly (exit
# 1, saying why) when the module cannot be fetched: the suite never runs without them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../cluster/versions.env
source "$here/../cluster/versions.env"
log() { echo "[gateway-api] $*" >&2; }

cache=${COVENANT_CACHE:-$HOME/.cache/covenant}
dir="$cache/gateway-api-$GATEWAY_API_VERSION"
if [ -f "$dir/.complete" ]; then
  echo "$dir"
  exit 0
fi
module="sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION"
log "fetching $module through the Go module proxy"
command -v go >/dev/null || { log "go is not installed: it fetches $module"; exit 1; }
# Outside any module (a go.mod around would make this a dependency change).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! json=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$module" 2>&1); then
  log "cannot fetch $module:"
  echo "$json" >&2
  exit 1
fi
src=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
if [ -z "$src" ] || [ ! -d "$src/config/crd/standard" ]; then
  log "$module has no config/crd/standard/ (go mod download said: $json)"
  exit 1
fi
mkdir -p "$cache"
# A temporary directory beside it, then a rename: a concurrent run never sees half the files.
tmp=$(mktemp -d "$cache/.gateway-api.XXXXXX")
cp "$src"/config/crd/standard/*.yaml "$tmp/"
chmod -R u+w "$tmp"
touch "$tmp/.complete"
if ! mv -T "$tmp" "$dir" 2>/dev/null; then
  rm -rf "$tmp"
  [ -f "$dir/.complete" ] || { log "cannot write $dir"; exit 1; }
fi
log "$(ls "$dir"/*.yaml | wc -l) CRD files of $module in $dir"
echo "$dir"
