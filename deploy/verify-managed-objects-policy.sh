#!/usr/bin/env bash
# Proves deploy/managed-objects-policy.yaml (or the chart's copy) on a real control plane.
#
#   deploy/verify-managed-objects-policy.sh KUBECONFIG BIN_DIR [deploy|chart]
#
# KUBECONFIG: an admin kubeconfig (a member of system:masters, allowed to impersonate). BIN_DIR: the
# directory holding kubectl (and helm, for `chart`). With `chart` the two admission policies are
# rendered from charts/covenant with `helm template` instead of taken from deploy/.
#
# It installs the tenant roles, operator RBAC and both admission policies, creates a tenant namespace
# stamped as Covenant stamps it (label covenant.dev/account, the annotations of deploy/README.md) with
# the objects Covenant manages in it, then, as `alice` (bound to covenant-tenant-admin there), checks
# that the managed objects cannot be deleted, edited or forged while her own RoleBindings still work;
# that the operator's ServiceAccount and an admin still can; and that deleting the namespace
# completes (the namespace controller removes the managed objects). No operator needs to run.
# Exits non-zero on any unexpected result; the last line is "N passed, N failed".
#
# Example, on the local control plane:
#   e2e/cluster/cluster.sh up /tmp/c && . /tmp/c/env
#   deploy/verify-managed-objects-policy.sh /tmp/c/kubeconfig "$BIN"
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 KUBECONFIG BIN_DIR [deploy|chart]" >&2
  exit 2
fi
kubeconfig=$1
bin=$2
source_=${3:-deploy}
root=$(cd "$(dirname "$0")/.." && pwd)
suffix=$(tr -dc a-z0-9 </dev/urandom | head -c 5 || true)
account=verify-$suffix
ns=verify-$suffix
plain=verify-plain-$suffix
operator_sa=system:serviceaccount:covenant-system:covenant

k() { "$bin/kubectl" --kubeconfig "$kubeconfig" --request-timeout=20s "$@"; }
as_alice() { k --as=alice "$@"; }
as_operator() {
  k --as="$operator_sa" --as-group=system:serviceaccounts \
    --as-group=system:serviceaccounts:covenant-system --as-group=system:authenticated "$@"
}

passed=0
failed=0
out=$(mktemp)
cleanup() {
  rm -f "$out"
  k delete namespace "$ns" "$plain" --ignore-not-found --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

pass() {
  passed=$((passed + 1))
  echo "PASS  $1"
}
fail() {
  failed=$((failed + 1))
  echo "FAIL  $1"
  sed 's/^/      /' "$out"
}

# expect_ok DESCRIPTION CMD...: CMD must succeed.
expect_ok() {
  local desc=$1
  shift
  if "$@" >"$out" 2>&1; then pass "$desc"; else fail "$desc (expected success)"; fi
}

# expect_denied DESCRIPTION PATTERN CMD...: CMD must fail with a message matching PATTERN (grep -E).
expect_denied() {
  local desc=$1 pattern=$2
  shift 2
  if "$@" >"$out" 2>&1; then
    fail "$desc (expected a denial, but it succeeded)"
  elif grep -Eq -- "$pattern" "$out"; then
    pass "$desc: $(grep -Eo -- "$pattern.*" "$out" | head -n 1 | cut -c1-160)"
  else
    fail "$desc (denied, but not with /$pattern/)"
  fi
}

echo "== installing the tenant roles, operator RBAC and admission policies ($source_)"
k apply --server-side --force-conflicts --field-manager=covenant-verify \
  -f "$root/deploy/namespace.yaml" -f "$root/deploy/tenant-roles.yaml" \
  -f "$root/deploy/operator-rbac.yaml" >/dev/null
case $source_ in
  deploy)
    k apply --server-side --force-conflicts --field-manager=covenant-verify \
      -f "$root/deploy/admission-policy.yaml" -f "$root/deploy/managed-objects-policy.yaml" >/dev/null
    ;;
  chart)
    # The live API server's version: the chart's kubeVersion needs one (helm template has no cluster).
    server=$(k version -o json | python3 -c 'import json, sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')
    "$bin/helm" template covenant "$root/charts/covenant" --namespace covenant-system \
      --kube-version "$server" \
      -s templates/admission-policy.yaml -s templates/managed-objects-policy.yaml |
      k apply --server-side --force-conflicts --field-manager=covenant-verify -f - >/dev/null
    ;;
  *)
    echo "unknown source $source_ (deploy or chart)" >&2
    exit 2
    ;;
esac

# The API server type-checks the policy's CEL against the matched kinds; any warning is a bug.
for _ in $(seq 1 50); do
  gen=$(k get validatingadmissionpolicy covenant-managed-objects -o jsonpath='{.status.observedGeneration}')
  [ -n "$gen" ] && break
  sleep 0.2
done
warnings=$(k get validatingadmissionpolicy covenant-managed-objects \
  -o jsonpath='{.status.typeChecking.expressionWarnings}')
if [ -z "$warnings" ] || [ "$warnings" = "[]" ]; then
  : >"$out"
  pass "the API server type-checks the policy without warnings (observedGeneration ${gen:-?})"
else
  echo "$warnings" >"$out"
  fail "the API server reports type-checking warnings"
fi

echo "== tenant namespace $ns (Account $account), stamped and provisioned as Covenant does, as admin"
k apply --server-side --field-manager=covenant-verify -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
  labels: {covenant.dev/account: $account}
  annotations:
    covenant.dev/allowed-subjects: "User:alice"
    covenant.dev/namespaces: "$ns"
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: covenant-tenant-admin, namespace: $ns, labels: {covenant.dev/account: $account}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: covenant-tenant-admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: covenant-quota, namespace: $ns, labels: {covenant.dev/account: $account}}
spec: {hard: {pods: "20"}}
---
apiVersion: v1
kind: LimitRange
metadata: {name: covenant-limits, namespace: $ns, labels: {covenant.dev/account: $account}}
spec: {limits: [{type: Container, default: {cpu: 500m}, defaultRequest: {cpu: 100m}}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: covenant-isolation, namespace: $ns, labels: {covenant.dev/account: $account}}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress: [{from: [{namespaceSelector: {matchLabels: {covenant.dev/account: $account}}}]}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder, namespace: $ns}
EOF

# A policy takes effect once the API server has loaded it (about a second): wait for a denial.
effective=false
for _ in $(seq 1 100); do
  if ! as_alice -n "$ns" delete rolebinding covenant-tenant-admin --dry-run=server >"$out" 2>&1 &&
    grep -q 'is managed by Covenant' "$out"; then
    effective=true
    break
  fi
  sleep 0.2
done
if $effective; then pass "the policy is in effect"; else fail "the policy did not take effect within 20s"; fi

echo "== as alice (covenant-tenant-admin in $ns)"
managed="is managed by Covenant for Account $account and cannot be changed by alice; change the Account instead"
forged="cannot be given the label covenant.dev/account by alice"
expect_ok "alice can list RoleBindings (she holds covenant-tenant-admin)" \
  as_alice -n "$ns" get rolebindings
expect_denied "delete the managed RoleBinding covenant-tenant-admin" \
  "RoleBinding covenant-tenant-admin in namespace $ns $managed" \
  as_alice -n "$ns" delete rolebinding covenant-tenant-admin
expect_denied "edit the managed RoleBinding (add a subject)" "$managed" \
  as_alice -n "$ns" patch rolebinding covenant-tenant-admin --type=json \
  -p='[{"op":"add","path":"/subjects/-","value":{"kind":"ServiceAccount","name":"builder","namespace":"'"$ns"'"}}]'
expect_denied "edit the managed RoleBinding (add a label)" "$managed" \
  as_alice -n "$ns" label rolebinding covenant-tenant-admin team=x
expect_denied "remove the covenant.dev/account label from the managed RoleBinding" "$managed" \
  as_alice -n "$ns" label rolebinding covenant-tenant-admin covenant.dev/account-
expect_denied "deletecollection of the namespace's RoleBindings (the managed one is among them)" "$managed" \
  as_alice delete --raw "/apis/rbac.authorization.k8s.io/v1/namespaces/$ns/rolebindings"
expect_denied "create a RoleBinding carrying covenant.dev/account (forged ownership)" \
  "RoleBinding forged in namespace $ns $forged" \
  as_alice -n "$ns" create -f - <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: forged, namespace: $ns, labels: {covenant.dev/account: $account}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: covenant-tenant-admin}
subjects: [{kind: ServiceAccount, name: builder, namespace: $ns}]
EOF
expect_ok "create an unlabelled RoleBinding naming her own ServiceAccount" \
  as_alice -n "$ns" create rolebinding builder-admin --clusterrole=covenant-tenant-admin \
  --serviceaccount="$ns:builder"
expect_ok "edit her own RoleBinding" \
  as_alice -n "$ns" label rolebinding builder-admin team=build
expect_denied "add covenant.dev/account to her own RoleBinding" "RoleBinding builder-admin in namespace $ns $forged" \
  as_alice -n "$ns" label rolebinding builder-admin covenant.dev/account="$account"
expect_denied "delete the managed ResourceQuota (RBAC: read-only for tenants)" "forbidden" \
  as_alice -n "$ns" delete resourcequota covenant-quota
expect_ok "delete her own RoleBinding" \
  as_alice -n "$ns" delete rolebinding builder-admin
expect_ok "re-create it (it stays for the namespace deletion below)" \
  as_alice -n "$ns" create rolebinding builder-admin --clusterrole=covenant-tenant-admin \
  --serviceaccount="$ns:builder"

echo "== outside tenant namespaces the policy does not apply ($plain, no covenant.dev/account label)"
k create namespace "$plain" >/dev/null
k -n "$plain" create rolebinding alice-admin --clusterrole=covenant-tenant-admin --user=alice >/dev/null
expect_ok "alice labels a RoleBinding covenant.dev/account in an unlabelled namespace" \
  as_alice -n "$plain" label rolebinding alice-admin covenant.dev/account="$account"

echo "== as the operator's ServiceAccount ($operator_sa)"
expect_ok "the operator edits the managed RoleBinding" \
  as_operator -n "$ns" label rolebinding covenant-tenant-admin verify=operator
expect_ok "the operator deletes the managed LimitRange" \
  as_operator -n "$ns" delete limitrange covenant-limits
expect_ok "the operator creates a labelled LimitRange" \
  as_operator -n "$ns" create -f - <<EOF
apiVersion: v1
kind: LimitRange
metadata: {name: covenant-limits, namespace: $ns, labels: {covenant.dev/account: $account}}
spec: {limits: [{type: Container, default: {cpu: 500m}}]}
EOF

echo "== as admin (system:masters)"
expect_ok "admin edits the managed RoleBinding" \
  k -n "$ns" label rolebinding covenant-tenant-admin verify=admin --overwrite
expect_ok "admin deletes the managed NetworkPolicy" \
  k -n "$ns" delete networkpolicy covenant-isolation
expect_ok "admin edits the managed ResourceQuota" \
  k -n "$ns" patch resourcequota covenant-quota --type=merge -p '{"spec":{"hard":{"pods":"21"}}}'

echo "== deleting the namespace (the namespace controller removes the labelled objects)"
k delete namespace "$plain" --wait=false >/dev/null
expect_ok "namespace $ns is deleted completely (managed RoleBinding, quota, LimitRange inside)" \
  k delete namespace "$ns" --timeout=90s
if k get namespace "$ns" >"$out" 2>&1; then
  fail "namespace $ns still exists"
else
  : >"$out"
  pass "namespace $ns is gone"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
