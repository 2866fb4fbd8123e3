#!/usr/bin/env bash
# Covenant's benchmarks on a real control plane (e2e/cluster/cluster.sh): for each N, the raw-client
# baseline on a fresh cluster, then the operator's figures on another fresh cluster; prints the markdown
# table for BENCHMARKS.md. Benchmarks report; they assert no timings.
#
#   bash e2e/bench.sh                 N = 100 and 1000, 120 s at rest (`make bench`)
#   bash e2e/bench.sh --smoke         N = 20, 20 s at rest, then the account-quota scenario at N = 6
#                                     (5 s at rest, no notices) (`make bench-smoke`)
#   bash e2e/bench.sh --n 5000 ...    other sizes (repeatable); --rest SECS; --concurrency C;
#                                     --notices K; --out DIR
#   --account-quota                   the account-quota scenario at every N: the package has an
#                                     accountQuota, each account 2 or 3 namespaces, and a fixed workload
#                                     of pods over --quota-accounts K accounts (default 20) measures
#                                     what moving room between namespaces costs (figures 8)
#   COVENANT_BENCH_OPERATOR=PATH      measure this operator binary instead of the workspace's (e.g. the
#                                     image's static musl build, target/image/x86_64-unknown-linux-musl/
#                                     release/covenant from hack/build-image.sh)
#   COVENANT_BENCH_BIN=PATH           run this covenant-bench binary and build nothing (with
#                                     COVENANT_BENCH_OPERATOR: binaries built before, e.g. a release
#                                     build of a commit the worktree has since moved on from)
#
# Output (kept): DIR (default target/bench/<UTC time>) with results.jsonl (one figure a line), report.md
# (the table), machine.txt and the operator's logs. Every cluster is stopped on exit, also on failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

ns=()
rest=120
concurrency=8
notices=20
out=
smoke=false
account_quota=false
quota_accounts=20
while [ $# -gt 0 ]; do
  case $1 in
  --smoke) smoke=true ;;
  --n) ns+=("$2") && shift ;;
  --rest) rest=$2 && shift ;;
  --concurrency) concurrency=$2 && shift ;;
  --notices) notices=$2 && shift ;;
  --out) out=$2 && shift ;;
  --account-quota) account_quota=true ;;
  --quota-accounts) quota_accounts=$2 && shift ;;
  -h | --help) sed -n '2,21p' "$0" && exit 0 ;;
  *) echo "bench.sh: unknown argument $1 (see --help)" >&2 && exit 2 ;;
  esac
  shift
done
# Passes: "N scenario rest notices" (scenario "standard" or "quota").
passes=()
if $smoke; then
  [ ${#ns[@]} -gt 0 ] || ns=(20)
  rest=20
fi
[ ${#ns[@]} -gt 0 ] || ns=(100 1000)
for n in "${ns[@]}"; do
  if $account_quota; then passes+=("$n quota $rest $notices"); else passes+=("$n standard $rest $notices"); fi
done
# The smoke run keeps the account-quota scenario's code alive at a small N, quickly.
if $smoke && ! $account_quota; then
  passes+=("6 quota 5 0")
  quota_accounts=3
fi
out=${out:-$root/target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
results=$out/results.jsonl
work=$(mktemp -d /tmp/covenant-bench.XXXXXX)

say() { echo "[bench.sh] $*" >&2; }

clusters=()
cleanup() {
  local rc=$? state pidfile pid
  # An operator the benchmark started and could not stop itself (interrupted): by its recorded id.
  for pidfile in "$out"/*/operator.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'covenant run'; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
  for state in "${clusters[@]}"; do
    bash e2e/cluster/cluster.sh down "$state" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Figures come from release builds; the smoke run (CI, so the benchmark code never rots) uses the
# debug build `make test` already has, unless BENCH_PROFILE says otherwise.
target=${CARGO_TARGET_DIR:-$root/target}
if $smoke; then profile=${BENCH_PROFILE:-dev}; else profile=${BENCH_PROFILE:-release}; fi
if [ "$profile" = dev ]; then outdir=debug; else outdir=$profile; fi
operator_bin=${COVENANT_BENCH_OPERATOR:-$target/$outdir/covenant}
# The commit measured (taken now: the worktree may change while a long run goes on).
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- operator terms bench 2>/dev/null || echo ' + uncommitted changes under operator/, terms/ or bench/')"
if [ -n "${COVENANT_BENCH_BIN:-}" ]; then
  bench=$COVENANT_BENCH_BIN
  commit="binaries given: $bench; $("$operator_bin" --version 2>/dev/null || echo "$operator_bin")"
  say "building nothing: $commit"
else
  say "building ($profile): covenant, covenant-bench"
  cargo build --profile "$profile" -q -p covenant -p covenant-bench
  bench=$target/$outdir/covenant-bench
fi
BIN=$(bash e2e/cluster/build.sh)

# up STATE: a fresh cluster with the CRDs, the tenant roles, the admission policies and the operator's
# RBAC (the operator and the raw baseline both act as its ServiceAccount). No default package: the
# benchmark brings its own.
up() {
  local state=$1
  bash e2e/cluster/cluster.sh up "$state" >&2
  local files=(-f crds/ -f deploy/namespace.yaml -f deploy/tenant-roles.yaml
    -f deploy/admission-policy.yaml -f deploy/operator-rbac.yaml)
  [ ! -f deploy/managed-objects-policy.yaml ] || files+=(-f deploy/managed-objects-policy.yaml)
  [ ! -f deploy/account-finalizer-policy.yaml ] || files+=(-f deploy/account-finalizer-policy.yaml)
  # The tier's policies (the benchmark's package has some) and hostname uniqueness: in force, so what
  # they cost the API server is in the figures.
  local f
  for f in workload-policies-policy.yaml account-policies-policy.yaml hostnames-policy.yaml; do
    [ ! -f "deploy/$f" ] || files+=(-f "deploy/$f")
  done
  "$BIN/kubectl" --kubeconfig "$state/kubeconfig" apply --server-side "${files[@]}" >/dev/null
  "$BIN/kubectl" --kubeconfig "$state/kubeconfig" wait --for=condition=Established --timeout=60s \
    crd/accounts.covenant.dev crd/supportpackages.covenant.dev crd/suspensions.covenant.dev \
    crd/deprecationnotices.covenant.dev >/dev/null
}

down() {
  bash e2e/cluster/cluster.sh down "$1" >/dev/null 2>&1 || true
}

for pass in "${passes[@]}"; do
  read -r n scenario prest pnotices <<<"$pass"
  extra=()
  tag=$n
  if [ "$scenario" = quota ]; then
    extra=(--account-quota)
    tag=$n-quota
  fi
  say "N=$n ($scenario): raw baseline (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  state=$work/raw-$tag
  clusters+=("$state")
  up "$state"
  "$bench" raw --kubeconfig "$state/kubeconfig" --n "$n" --concurrency "$concurrency" \
    --sequential "$((n < 50 ? n : 50))" --out "$results" "${extra[@]}"
  down "$state"

  say "N=$n ($scenario): operator (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  state=$work/op-$tag
  clusters+=("$state")
  up "$state"
  [ "$scenario" != quota ] || extra+=(--quota-accounts "$quota_accounts")
  "$bench" operator --kubeconfig "$state/kubeconfig" --operator-bin "$operator_bin" \
    --n "$n" --concurrency "$concurrency" --rest-secs "$prest" --notices "$pnotices" \
    --log-dir "$out/operator-$tag" --out "$results" "${extra[@]}"
  down "$state"
done

{
  "$bench" machine
  echo "- Commit: $commit"
  echo "- Operator: ${operator_bin#"$root/"}, --concurrency $concurrency; passes (N, scenario, rest window s, notices): $(printf '%s; ' "${passes[@]}")"
} >"$out/machine.txt"
"$bench" report "$results" >"$out/report.md"
say "results in $out"
echo
cat "$out/machine.txt"
echo
cat "$out/report.md"
