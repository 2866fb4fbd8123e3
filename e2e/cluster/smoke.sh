#!/usr/bin/env bash
# Checks that a cluster made by `cluster.sh up STATE_DIR` really works: API, RBAC, admission
# (ResourceQuota, ValidatingAdmissionPolicy) and the controllers (resource quota, garbage collector,
# namespace, service account, deployment/replicaset, statefulset). Runs every check, prints each result
# and the failures, exits non-zero if any failed. Re-runnable against the same cluster.
#   smoke.sh STATE_DIR
set -euo pipefail

[ $# -eq 1 ] || {
  echo "usage: $0 STATE_DIR" >&2
  exit 2
}
state=$1
[ -f "$state/env" ] || {
  echo "no cluster at $state (missing $state/env)" >&2
  exit 2
}
# shellcheck source=/dev/null
. "$state/env"
k() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG" --request-timeout=20s "$@"; }

passed=0
failed=()
out=$(mktemp)
trap 'rm -f "$out" "$out.err"' EXIT
trap 'echo "FAIL: unexpected error at line $LINENO: $BASH_COMMAND" >&2' ERR
ok() {
  echo "PASS $1"
  passed=$((passed + 1))
}
bad() {
  echo "FAIL $1: $2"
  failed+=("$1")
}

# wait_for SECONDS CMD...: retries CMD (quietly) every 0.25 s until it succeeds; its last output is in $out.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >"$out" 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.25
  done
}

ns_gone() { ! k get namespace "$1" >/dev/null 2>&1; }
cm_gone() { ! k -n "$1" get configmap "$2" >/dev/null 2>&1; }
# fresh_ns NAME: deletes NAME if a previous run left it, creates it, waits for its default ServiceAccount.
fresh_ns() {
  if k get namespace "$1" >/dev/null 2>&1; then
    k delete namespace "$1" --wait=false >/dev/null
    wait_for 90 ns_gone "$1" || return 1
  fi
  k create namespace "$1" >/dev/null && wait_for 30 k -n "$1" get serviceaccount default
}
jsonpath_is() { # jsonpath_is WANT ARGS...: `kubectl get ARGS -o jsonpath` prints WANT
  local want=$1
  shift
  [ "$(k get "$@" 2>/dev/null)" = "$want" ]
}

# --- API -----------------------------------------------------------------------------------------------
if [ "$(k get --raw /readyz 2>&1)" = ok ]; then ok "readyz"; else bad readyz "$(k get --raw '/readyz?verbose' 2>&1 | tail -n 5)"; fi
if k get namespaces >"$out" 2>&1 && grep -q '^kube-system ' "$out" && grep -q '^default ' "$out"; then
  ok "get namespaces"
else bad "get namespaces" "$(cat "$out")"; fi
if k get serviceaccount default -n default >"$out" 2>&1; then ok "ServiceAccount default/default exists"; else bad "default ServiceAccount" "$(cat "$out")"; fi
if k get configmap kube-root-ca.crt -n default -o 'jsonpath={.data.ca\.crt}' 2>"$out" | grep -q 'BEGIN CERTIFICATE'; then
  ok "root-ca-cert-publisher made ConfigMap default/kube-root-ca.crt"
else bad "kube-root-ca.crt ConfigMap" "$(cat "$out")"; fi
if k create token default -n default --duration=10m >"$out" 2>&1 && [ "$(cut -c1-3 "$out")" = eyJ ]; then
  ok "TokenRequest (service-account signing)"
else bad "TokenRequest" "$(cat "$out")"; fi
if k api-resources >"$out" 2>&1 && grep -Eq '^validatingadmissionpolicies +admissionregistration\.k8s\.io/v1 +false +ValidatingAdmissionPolicy$' "$out"; then
  ok "api-resources: ValidatingAdmissionPolicy admissionregistration.k8s.io/v1"
else bad "api-resources has v1 ValidatingAdmissionPolicy" "$(grep -i validatingadmission "$out" || tail -n 3 "$out")"; fi

# --- RBAC ----------------------------------------------------------------------------------------------
if k --as=alice get pods -n default >"$out" 2>&1; then
  bad "RBAC denies unbound user" "alice was allowed: $(cat "$out")"
elif grep -q Forbidden "$out"; then ok "RBAC: alice (no bindings) is Forbidden"
else bad "RBAC denies unbound user" "$(cat "$out")"; fi

# --- ResourceQuota: quota controller + admission ---------------------------------------------------------
pod() { # pod NAME: a Pod manifest (no kubelet: it stays Pending)
  cat <<EOF
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"$1"},
 "spec":{"containers":[{"name":"pause","image":"registry.k8s.io/pause:3.10"}]}}
EOF
}
if ! fresh_ns q; then
  bad "namespace q" "could not (re)create it, or its default ServiceAccount never appeared: $(cat "$out")"
else
  k -n q create quota pods --hard=pods=1 >/dev/null
  if wait_for 30 jsonpath_is 1 -n q resourcequota pods -o 'jsonpath={.status.hard.pods}'; then
    ok "quota controller filled .status.hard"
    if pod p1 | k -n q create -f - >"$out" 2>&1; then ok "first Pod admitted under quota pods=1"; else bad "first Pod" "$(cat "$out")"; fi
    if pod p2 | k -n q create -f - >"$out" 2>&1; then
      bad "second Pod refused" "it was created"
    elif grep -q 'exceeded quota' "$out"; then ok "second Pod refused: $(grep -o 'exceeded quota.*' "$out")"
    else bad "second Pod refused with 'exceeded quota'" "$(cat "$out")"; fi
  else
    bad "quota controller filled .status.hard" "$(k -n q get resourcequota pods -o yaml 2>&1 | tail -n 8)"
  fi

  # --- garbage collector -------------------------------------------------------------------------------
  k -n q create configmap owner >/dev/null
  uid=$(k -n q get configmap owner -o 'jsonpath={.metadata.uid}')
  k -n q create -f - >/dev/null <<EOF
{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"child",
 "ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"owner","uid":"$uid"}]}}
EOF
  k -n q delete configmap owner >/dev/null
  if wait_for 30 cm_gone q child; then ok "garbage collector deleted the dependent ConfigMap"
  else bad "garbage collector" "ConfigMap q/child still there 30s after its owner was deleted"; fi

  # --- namespace controller --------------------------------------------------------------------------------
  k delete namespace q --wait=false >/dev/null
  if wait_for 90 ns_gone q; then ok "namespace q deleted (finalized by the namespace controller)"
  else bad "namespace deletion" "$(k get namespace q -o jsonpath='{.status}' 2>&1)"; fi
fi

# --- workload controllers ------------------------------------------------------------------------------
if ! fresh_ns smoke-apps; then
  bad "namespace smoke-apps" "$(cat "$out")"
else
  k -n smoke-apps create deployment web --image=registry.k8s.io/pause:3.10 --replicas=1 >/dev/null
  if wait_for 30 jsonpath_is 1 -n smoke-apps replicaset -l app=web -o 'jsonpath={.items[0].status.replicas}'; then
    ok "deployment controller made a ReplicaSet, replicaset controller made its Pod"
  else bad "Deployment -> ReplicaSet -> Pod" "$(k -n smoke-apps get deploy,rs,pods 2>&1)"; fi
  k -n smoke-apps create -f - >/dev/null <<'EOF'
{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db"},
 "spec":{"replicas":1,"serviceName":"db","selector":{"matchLabels":{"app":"db"}},
  "template":{"metadata":{"labels":{"app":"db"}},
   "spec":{"containers":[{"name":"pause","image":"registry.k8s.io/pause:3.10"}]}}}}
EOF
  if wait_for 30 k -n smoke-apps get pod db-0; then ok "statefulset controller made Pod db-0"
  else bad "StatefulSet -> Pod" "$(k -n smoke-apps get sts,pods 2>&1)"; fi

  # --- ValidatingAdmissionPolicy enforcement -----------------------------------------------------------
  k delete validatingadmissionpolicybinding smoke-deny --ignore-not-found >/dev/null
  k delete validatingadmissionpolicy smoke-deny --ignore-not-found >/dev/null
  k create -f - >/dev/null <<'EOF'
{"apiVersion":"admissionregistration.k8s.io/v1","kind":"ValidatingAdmissionPolicy","metadata":{"name":"smoke-deny"},
 "spec":{"failurePolicy":"Fail",
  "matchConstraints":{"resourceRules":[{"apiGroups":[""],"apiVersions":["v1"],"operations":["CREATE"],"resources":["configmaps"]}]},
  "validations":[{"expression":"!has(object.metadata.labels) || !('smoke-deny' in object.metadata.labels)","message":"smoke-deny label is forbidden"}]}}
---
{"apiVersion":"admissionregistration.k8s.io/v1","kind":"ValidatingAdmissionPolicyBinding","metadata":{"name":"smoke-deny"},
 "spec":{"policyName":"smoke-deny","validationActions":["Deny"],
  "matchResources":{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"smoke-apps"}}}}}
EOF
  vap_check() { # succeeds once a labelled ConfigMap is denied by the policy
    ! printf '%s' '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"vap","labels":{"smoke-deny":"x"}}}' |
      k -n smoke-apps create --dry-run=server -f - >/dev/null 2>"$out.err" &&
      grep -q 'smoke-deny label is forbidden' "$out.err"
  }
  if wait_for 30 vap_check; then
    if printf '%s' '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"vap-ok"}}' | k -n smoke-apps create --dry-run=server -f - >"$out" 2>&1; then
      ok "ValidatingAdmissionPolicy denies a matching object, admits others"
    else bad "ValidatingAdmissionPolicy admits non-matching objects" "$(cat "$out")"; fi
  else bad "ValidatingAdmissionPolicy enforcement" "$(cat "$out.err" 2>/dev/null)"; fi
  rm -f "$out.err"
  k delete validatingadmissionpolicybinding smoke-deny --ignore-not-found >/dev/null
  k delete validatingadmissionpolicy smoke-deny --ignore-not-found >/dev/null

  k delete namespace smoke-apps --wait=false >/dev/null
  if wait_for 90 ns_gone smoke-apps; then ok "namespace smoke-apps (Deployment, StatefulSet, Pods) deleted"
  else bad "namespace smoke-apps deletion" "$(k get namespace smoke-apps -o jsonpath='{.status}' 2>&1)"; fi
fi

[ ${#failed[@]} -eq 0 ] || printf 'failed: %s\n' "${failed[@]}"
echo "$passed passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
