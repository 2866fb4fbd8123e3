#!/usr/bin/env bash
# Runs the end-to-end tests on one local control plane shared by every test binary:
#   1. builds the operator, the test binaries and the judges of e2e/tools/ (before starting anything),
#   2. starts the cluster (e2e/cluster/cluster.sh) into a temporary directory,
#   3. runs `cargo test -p covenant-e2e` in stages against it (COVENANT_E2E_KUBECONFIG):
#        every test binary in e2e/tests/ (cluster, accounts, ...; tests in parallel), then rest (at rest
#        / restarts: serial), then uninstall (deletes the CRDs),
#   3a. faults and chaos (fault injection: API server and etcd stopped, operators killed), and gateway
#       (installs the Gateway API's CRDs, e2e/tools/gateway-api.sh), each on a cluster of its own,
#   3b. runs the chart binary (helm install/uninstall) on a cluster of its own, which it starts and stops
#       itself (without COVENANT_E2E_KUBECONFIG): the shared cluster has deploy/ applied, whose objects
#       Helm refuses to adopt. After the other stages, not alongside them (2 cores). Then the dist binary
#       (kubectl apply of `make dist`'s covenant.yaml; the chart's values combinations dry-run) likewise.
#   3c. image: builds the container image (hack/build-image.sh: release musl binary, buildah, OCI
#       archive; begun in the background at the lowest CPU priority before the stages, waited for
#       here) and runs the image binary on it (COVENANT_IMAGE_ARCHIVE), which reads the archive, runs
#       its /covenant with buildah, and as the operator of a cluster of its own.
#   3d. oci and oci_upgrade: push that archive and `make dist`'s chart to an OCI registry on loopback
#       (`crane registry serve`) and install from it with Helm (oci_upgrade: from the previous chart
#       version, keeping every tenant), each on a cluster of its own.
#   4. always stops the cluster and any operator the tests started (trap), and on failure prints the
#      component logs and the operator log tails.
# Every stage runs even if an earlier one failed; the exit status is non-zero if any failed.
# Logs are kept in target/e2e-logs/ (operator logs, and on failure the component logs).
#
#   e2e/run.sh [-- extra args for the test binaries, e.g. a test name filter]
# Environment: E2E_TEST_THREADS (default 8), CARGO (default cargo).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo=${CARGO:-cargo}
threads=${E2E_TEST_THREADS:-8}
extra=()
if [ "${1:-}" = "--" ]; then
  shift
  extra=("$@")
fi

say() { echo "[e2e] $*" >&2; }

logs=$root/target/e2e-logs
rm -rf "$logs"
mkdir -p "$logs"
state=$(mktemp -d "${TMPDIR:-/tmp}/covenant-e2e.XXXXXX")
failed=()

# Kills the operators the tests started (recorded by the harness), each only if it is still a
# `covenant run` process.
kill_operators() {
  local pid
  [ -f "$logs/operator.pids" ] || return 0
  while read -r pid; do
    [ -n "$pid" ] || continue
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'covenant run'; then
      kill -9 "$pid" 2>/dev/null || true
    fi
  done <"$logs/operator.pids"
}

print_logs() {
  local f
  echo "===== component logs (last 80 lines each) =====" >&2
  for f in "$state"/logs/*.log; do
    [ -f "$f" ] || continue
    cp "$f" "$logs/" 2>/dev/null || true
    echo "----- $f -----" >&2
    tail -n 80 "$f" >&2
  done
  for f in "$logs"/operator-*.log; do
    [ -f "$f" ] || continue
    echo "----- $f (last 80 lines) -----" >&2
    tail -n 80 "$f" >&2
  done
  echo "===== logs kept in $logs =====" >&2
}

# After the logs (which are long), what failed: each failed test's name and its panic, from the output
# of every stage, so that the end of a CI log names the failure. (Runs in the EXIT trap under set -e:
# nothing in it may fail.)
print_failures() {
  local f
  for f in "$logs"/stage-*.log; do
    [ -f "$f" ] || continue
    grep -qE '^test .* FAILED$|^error: test failed' "$f" || continue
    echo "===== failures in $(basename "$f" .log) =====" >&2
    { grep -E '^test .* FAILED$|panicked at|^error: test failed' "$f" || true; } | head -n 60 >&2
    { grep -A1 -E 'panicked at' "$f" || true; } | { grep -vE 'panicked at|^--$' || true; } |
      head -n 30 | cut -c1-600 | sed 's/^/    /' >&2
  done
  return 0
}

finish() {
  local rc=$?
  trap - EXIT INT TERM
  kill_operators
  # An image build still running (the run was interrupted or failed before the image stage) stops too.
  if [ -n "${image_build:-}" ] && kill -0 "$image_build" 2>/dev/null; then
    kill -- -"$image_build" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] || [ ${#failed[@]} -ne 0 ]; then
    [ "$rc" -ne 0 ] || rc=1
    print_logs
    print_failures
    [ ${#failed[@]} -eq 0 ] || say "FAILED stages: ${failed[*]}"
  fi
  bash e2e/cluster/cluster.sh down "$state" >/dev/null 2>&1 || say "could not stop the cluster in $state"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

say "building the operator, the tests and their judges (e2e/tools: netpol-oracle, kstatus, kube-score, promtool, crane, actionlint)"
"$cargo" build -p covenant
"$cargo" test -p covenant-e2e --no-run
bash e2e/cluster/build.sh >/dev/null
COVENANT_E2E_TOOLS=$(bash e2e/tools/build.sh)
export COVENANT_E2E_TOOLS
# The Gateway API's CRDs for the gateway stage (fetched through the Go module proxy, cached).
COVENANT_E2E_GATEWAY_API=$(bash e2e/tools/gateway-api.sh)
export COVENANT_E2E_GATEWAY_API

# The image's static release build (cold: about 6 minutes of both cores) starts now, beside the
# stages, at the lowest CPU priority: the tests, mostly waiting on the API server, leave cores idle that
# it takes, and they keep the cores whenever they want them. The image stage waits for it. (Its release
# and musl build directories are not the tests' debug one: neither waits for the other's cargo lock.)
archive=$root/target/covenant-image.tar
rm -f "$archive"
say "building the image in the background (hack/build-image.sh, nice 19; log: $logs/image-build.log)"
# Its own process group (setsid), so that the exit trap can stop cargo and every rustc with it.
setsid nice -n 19 bash hack/build-image.sh "$archive" >"$logs/image-build.log" 2>&1 &
image_build=$!

say "starting the cluster in $state"
bash e2e/cluster/cluster.sh up "$state"
# shellcheck source=/dev/null
. "$state/env"
export COVENANT_E2E_KUBECONFIG=$state/kubeconfig COVENANT_E2E_STATE_DIR=$state \
  COVENANT_E2E_BIN=$BIN COVENANT_E2E_LOG_DIR=$logs

stage() {
  local name=$1
  shift
  say "stage $name: cargo test -p covenant-e2e $*"
  if ! "$cargo" test -p covenant-e2e --no-fail-fast "$@" 2>&1 | tee "$logs/stage-$name.log"; then
    failed+=("$name")
  fi
}
# Every test binary but the two that need the cluster to themselves (rest: global write counters and
# operator restarts; uninstall: deletes the CRDs), and faults, chaos, chart and image (a cluster of
# their own each), whose tests run in parallel.
parallel=()
for f in e2e/tests/*.rs; do
  name=$(basename "$f" .rs)
  case $name in rest | uninstall | faults | chaos | gateway | chart | dist | image | oci | oci_upgrade) ;; *) parallel+=(--test "$name") ;; esac
done
stage parallel "${parallel[@]}" -- --test-threads="$threads" ${extra[@]+"${extra[@]}"}
stage serial --test rest -- --test-threads=1 ${extra[@]+"${extra[@]}"}
stage uninstall --test uninstall -- ${extra[@]+"${extra[@]}"}
# faults stops the API server and etcd and loosens a CRD; chaos kills operators at random: each on a
# cluster of its own (COVENANT_E2E_KUBECONFIG unset), one after the other (2 cores). chaos runs its
# short version here (CHAOS_ACCOUNTS unset); `make chaos` runs the long one.
own_cluster_stage() {
  local name=$1
  shift
  say "stage $name (own cluster): cargo test -p covenant-e2e --test $name"
  if ! env -u COVENANT_E2E_KUBECONFIG -u COVENANT_E2E_STATE_DIR \
    "$cargo" test -p covenant-e2e --test "$name" -- --show-output "$@" ${extra[@]+"${extra[@]}"} 2>&1 |
    tee "$logs/stage-$name.log"; then
    failed+=("$name")
  fi
}
own_cluster_stage faults --test-threads=4
own_cluster_stage chaos --test-threads=1
# gateway installs the Gateway API's CRDs after its operator started (which must pick them up): a
# cluster of its own, so every other suite runs, as most clusters do, without them.
own_cluster_stage gateway --test-threads=4
# The chart binary starts (and stops) a cluster of its own when COVENANT_E2E_KUBECONFIG is unset; its
# tests take turns anyway (one release), and --show-output prints the measured leader takeover.
say "stage chart (own cluster): cargo test -p covenant-e2e --test chart"
if ! env -u COVENANT_E2E_KUBECONFIG -u COVENANT_E2E_STATE_DIR \
  "$cargo" test -p covenant-e2e --test chart -- --test-threads=1 --show-output ${extra[@]+"${extra[@]}"} 2>&1 |
  tee "$logs/stage-chart.log"; then
  failed+=(chart)
fi
# dist applies `make dist`'s covenant.yaml (objects Helm would refuse to adopt) and dry-runs every values
# combination of the chart: a cluster of its own too.
say "stage dist (own cluster): cargo test -p covenant-e2e --test dist"
if ! env -u COVENANT_E2E_KUBECONFIG -u COVENANT_E2E_STATE_DIR \
  "$cargo" test -p covenant-e2e --test dist -- --show-output ${extra[@]+"${extra[@]}"} 2>&1 | tee "$logs/stage-dist.log"; then
  failed+=(dist)
fi
# The image binary checks the archive built here (never one left by an earlier run: it is removed
# first) and starts a cluster of its own, like chart.
say "stage image (own cluster): hack/build-image.sh $archive (begun before the stages); cargo test -p covenant-e2e --test image"
if ! wait "$image_build"; then
  image_build=
  cat "$logs/image-build.log" >&2
  say "building the image failed (output above)"
  failed+=(image)
elif ! env -u COVENANT_E2E_KUBECONFIG -u COVENANT_E2E_STATE_DIR COVENANT_IMAGE_ARCHIVE="$archive" \
  "$cargo" test -p covenant-e2e --test image -- --show-output ${extra[@]+"${extra[@]}"} 2>&1 | tee "$logs/stage-image.log"; then
  failed+=(image)
fi
# The registry suites publish the archive just built (none when its build failed: they fail too).
for name in oci oci_upgrade; do
  say "stage $name (own cluster): cargo test -p covenant-e2e --test $name"
  if [ ! -f "$archive" ]; then
    say "no image archive to publish ($archive)"
    failed+=("$name")
  elif ! env -u COVENANT_E2E_KUBECONFIG -u COVENANT_E2E_STATE_DIR COVENANT_IMAGE_ARCHIVE="$archive" \
    "$cargo" test -p covenant-e2e --test "$name" -- --show-output ${extra[@]+"${extra[@]}"} 2>&1 |
    tee "$logs/stage-$name.log"; then
    failed+=("$name")
  fi
done

if [ ${#failed[@]} -ne 0 ]; then
  exit 1
fi
say "all stages passed"
