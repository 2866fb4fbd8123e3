#!/usr/bin/env bash
# `make run`: the quick start on the local control plane (started by `make cluster-up`). Installs the
# CRDs and the tenant roles and admission policy, applies examples/, runs the operator and shows the
# tenants' status; the operator then keeps running in the foreground until Ctrl-C.
set -euo pipefail
state=${1:?usage: run-demo.sh STATE_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck disable=SC1091
source "$state/env"
export KUBECONFIG="$state/kubeconfig"
k() { "$BIN/kubectl" "$@"; }

echo "==> installing the CRDs, tenant roles and admission policy"
k apply --server-side -f "$root/crds/" >/dev/null
k wait --for=condition=Established crd --all --timeout=60s >/dev/null
# Every admission policy in deploy/ (each *-policy.yaml holds a policy and its binding).
policies=()
for f in "$root"/deploy/*-policy.yaml; do policies+=(-f "$f"); done
k apply --server-side -f "$root/deploy/namespace.yaml" -f "$root/deploy/tenant-roles.yaml" "${policies[@]}" >/dev/null
# The quota controller discovers a new kind within 30 s, and counts it in a quota made before that
# only at its next full resync (5 minutes): until then the tenants' namespaces would refuse every
# NoticeResponse ("status unknown for quota", docs/security.md). Wait for it, as the e2e install does.
echo "==> waiting for the quota controller to count NoticeResponses (up to 90 s on a new cluster)"
k create namespace covenant-demo-probe >/dev/null 2>&1 || true
probe='{"apiVersion":"v1","kind":"ResourceQuota","metadata":{"name":"answers-probe","namespace":"covenant-demo-probe"},"spec":{"hard":{"count/noticeresponses.covenant.dev":"1"}}}'
counted=false
for _ in $(seq 1 30); do
  echo "$probe" | k create -f - >/dev/null 2>&1 || true
  for _ in $(seq 1 15); do
    if k -n covenant-demo-probe get resourcequota answers-probe -o 'jsonpath={.status.used}' 2>/dev/null |
      grep -q noticeresponses; then counted=true; break 2; fi
    sleep 0.2
  done
  k -n covenant-demo-probe delete resourcequota answers-probe --wait=false >/dev/null 2>&1 || true
done
k delete namespace covenant-demo-probe --wait=false >/dev/null 2>&1 || true
$counted || { echo "the quota controller did not count NoticeResponses within 90 s (is the controller-manager up?)"; exit 1; }
echo "==> applying examples/"
# A CRD just Established may still be missing from the API server's server-side-apply schemas for a
# moment ("There can be a delay between when CustomResourceDefinitions are created and when they are
# available"): retry that answer only.
for i in $(seq 1 30); do
  if out=$(k apply --server-side -f "$root/examples/" 2>&1 >/dev/null); then break; fi
  [[ "$out" == *"There can be a delay"* && $i -lt 30 ]] || { echo "$out"; exit 1; }
  sleep 1
done

log="$state/logs/covenant.log"
mkdir -p "$state/logs"
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
echo "==> starting the operator (log: $log, metrics: http://127.0.0.1:$port/metrics)"
"${CARGO_TARGET_DIR:-$root/target}/debug/covenant" run --metrics-addr "127.0.0.1:$port" >"$log" 2>&1 &
op=$!
trap 'kill $op 2>/dev/null; wait $op 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 $op 2>/dev/null || { echo "the operator exited:"; tail -40 "$log"; exit 1; }
  sleep 0.2
done
k wait --for=condition=Ready account/acme --timeout=60s >/dev/null || true
echo "==> alice@acme.example, an administrator of acme, answers a notice in acme's namespace"
# A namespace's quota admits nothing until the controller-manager has counted its usage ("status
# unknown for quota", in the seconds after the namespace is made): retry, as a client would.
for _ in $(seq 1 30); do
  out=$(k --as alice@acme.example create -f "$root/examples/tenant/" 2>&1 | grep -v AlreadyExists || true)
  [[ "$out" == *"status unknown for quota"* ]] || break
  sleep 1
done
[ -z "$out" ] || echo "$out"
sleep 1
echo
k get covenant
k get noticeresponses -A
echo
echo "==> what alice sees of her own tenancy (kubectl --as alice@acme.example get account acme)"
k --as alice@acme.example get account acme -o go-template='{{range .status.notices}}  {{.name}} ({{.type}}): {{.decision}}{{with .rejectionDeadline}}, reject by {{.}}{{end}}{{with .answeredBy}}, answered by {{.}}{{end}}{{"\n"}}{{end}}'
echo
echo "==> conditions of each account"
k get accounts -o go-template='{{range .items}}{{.metadata.name}}:{{"\n"}}{{range .status.conditions}}  {{printf "%-20s" .type}} {{printf "%-6s" .status}} {{.message}}{{"\n"}}{{end}}{{end}}'
echo
echo "The operator keeps running (Ctrl-C stops it; 'make cluster-down' removes the cluster)."
echo "Try: KUBECONFIG=$KUBECONFIG $BIN/kubectl get covenant"
wait $op
