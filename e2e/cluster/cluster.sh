#!/usr/bin/env bash
# Local Kubernetes control plane for the end-to-end tests: etcd + kube-apiserver + kube-controller-manager
# (no scheduler, no kubelet: pods stay Pending), all on 127.0.0.1 at free ports, so several can run side
# by side. No container runtime is needed; the binaries come from build.sh.
#
#   cluster.sh up STATE_DIR      start (idempotent: returns at once if STATE_DIR's cluster is up), wait
#                                until ready, return; the processes keep running in the background
#   cluster.sh down STATE_DIR    stop them and remove STATE_DIR (safe when nothing runs)
#   cluster.sh status STATE_DIR  print whether it is up; exit 0 if up, 3 if not
#   cluster.sh stop STATE_DIR COMPONENT   stop one component (etcd, kube-apiserver or
#                                kube-controller-manager) of a running cluster: fault injection
#   cluster.sh start STATE_DIR COMPONENT  start it again with the same command line (ports, data)
#
# STATE_DIR afterwards holds: kubeconfig (admin, self-contained), kcm.kubeconfig, env (APISERVER_URL,
# KUBECONFIG, BIN, ...: source it), pids ("name pid" lines), pki/, etcd/, logs/<component>.log.
# Environment: CLUSTER_READY_TIMEOUT (seconds, default 90).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
marker=.covenant-cluster # a STATE_DIR we made; `down` removes only such a directory
components=(etcd kube-apiserver kube-controller-manager)
service_cidr=10.96.0.0/16
service_ip=10.96.0.1 # first IP of service_cidr: ClusterIP of the `kubernetes` Service

say() { echo "[cluster] $*" >&2; }
usage() {
  echo "usage: $0 up|down|status STATE_DIR | stop|start STATE_DIR COMPONENT" >&2
  exit 2
}
now() { echo "${EPOCHREALTIME/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- processes ---------------------------------------------------------------------------------------
# A pid counts as ours only while it runs (not a zombie) and its command line names STATE_DIR, so a
# recycled pid is never signalled.
alive() {
  local pid=$1 stat cmdline
  [ -r "/proc/$pid/stat" ] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$state"* ]]
}

# Prints the recorded pid of component $1 (empty if none).
pid_of() {
  [ -f "$state/pids" ] || return 0
  awk -v n="$1" '$1 == n { print $2 }' "$state/pids"
}

# stop_one NAME PID: TERM, up to 5 s (an apiserver still bootstrapping may ignore it), then KILL.
stop_one() {
  local name=$1 pid=$2 i
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  say "$name (pid $pid) did not stop on TERM within 5s; killing"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
}

# Stops the recorded processes one after the other: controller-manager, apiserver, then etcd (which
# would otherwise wait for the apiserver's watches to close).
stop_all() {
  [ -f "$state/pids" ] || return 0
  local i name pid
  for ((i = ${#components[@]} - 1; i >= 0; i--)); do
    name=${components[i]}
    pid=$(pid_of "$name")
    [ -z "$pid" ] || stop_one "$name" "$pid"
  done
  rm -f "$state/pids"
}

# start NAME CMD...: runs CMD in a new session (it survives this script and the caller's terminal),
# logging to logs/NAME.log, and records its pid and its command line (cmd/NAME, for `start` again).
start() {
  local name=$1 pidfile
  shift
  pidfile="$state/.$name.pid"
  rm -f "$pidfile"
  mkdir -p "$state/cmd"
  printf '%s\0' "$@" >"$state/cmd/$name"
  # setsid may fork; the inner shell records its own pid and execs, so the pid is the component's.
  # shellcheck disable=SC2016
  setsid sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
    >>"$state/logs/$name.log" 2>&1 </dev/null &
  local i
  for ((i = 0; i < 100; i++)); do
    [ -s "$pidfile" ] && break
    sleep 0.02
  done
  [ -s "$pidfile" ] || fail "$name did not start"
  echo "$name $(cat "$pidfile")" >>"$state/pids"
  rm -f "$pidfile"
}

dump_logs() {
  local name
  for name in "${components[@]}"; do
    [ -f "$state/logs/$name.log" ] || continue
    echo "----- last 40 lines of $state/logs/$name.log -----" >&2
    tail -n 40 "$state/logs/$name.log" >&2
  done
}

fail() {
  say "FAILED: $*"
  exit 1
}

# EXIT trap of `up`: unless it got the cluster ready, print the logs to stderr and stop what it started.
up_exit() {
  local rc=$?
  if [ "$up_done" != true ]; then
    [ "$rc" -ne 0 ] || rc=1
    say "up failed (exit $rc)"
    dump_logs
    stop_all
  fi
  exit "$rc"
}

# Prints the name of a recorded component that is no longer running, if any.
dead_component() {
  local name pid
  for name in "${components[@]}"; do
    pid=$(pid_of "$name")
    [ -n "$pid" ] || continue
    alive "$pid" || {
      echo "$name"
      return 0
    }
  done
}

# What /readyz says is failing (or why it does not answer), on one line.
readyz_detail() {
  local out
  out=$(kubectl_ get --raw '/readyz?verbose' 2>&1) || true
  if [[ $out == *'[-]'* ]]; then
    grep -o '\[-\][^\\"]*' <<<"${out//\\n/$'\n'}" | tr '\n' ' '
  else
    head -n 1 <<<"$out"
  fi
}

kubectl_() { "$BIN/kubectl" --kubeconfig "$state/kubeconfig" --request-timeout=5s "$@"; }

is_up() {
  [ -f "$state/pids" ] && [ -f "$state/kubeconfig" ] && [ -f "$state/env" ] || return 1
  local name pid
  for name in "${components[@]}"; do
    pid=$(pid_of "$name")
    [ -n "$pid" ] && alive "$pid" || return 1
  done
  [ "$(kubectl_ get --raw /readyz 2>/dev/null)" = ok ]
}

# --- ports -------------------------------------------------------------------------------------------
# N distinct ports that are free on 127.0.0.1, drawn from 20000-32767: below Linux's ephemeral range
# (32768+), so no outgoing connection (e.g. apiserver -> etcd) can be holding one when it is bound.
free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
n, got = int(sys.argv[1]), []
while len(got) < n:
    p = random.randint(20000, 32767)
    if p in got:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        got.append(p)
    except OSError:
        pass
    finally:
        s.close()
print(*got)
EOF
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- certificates --------------------------------------------------------------------------------------
# EC P-256 keys (fast), 1 year. ca.crt signs the apiserver serving cert and the client certs.
make_pki() {
  local pki=$state/pki
  mkdir -p "$pki"
  (
    set -e
    cd "$pki"
    umask 077
    cat >openssl.cnf <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = covenant-ca
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1,IP:$service_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
EOF
    eckey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    # issue NAME SUBJECT EXTENSIONS
    issue() {
      eckey "$1.key"
      openssl req -new -config openssl.cnf -key "$1.key" -subj "$2" -out "$1.csr"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
        -days 365 -sha256 -extfile openssl.cnf -extensions "$3" -out "$1.crt" 2>/dev/null
      rm -f "$1.csr"
    }
    # Service-account token signing key pair (RSA keygen is the slow part: in parallel with the rest).
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null &
    local rsa=$!
    eckey ca.key
    openssl req -x509 -new -config openssl.cnf -extensions ca -key ca.key -days 365 -sha256 -out ca.crt
    issue apiserver /CN=kube-apiserver server
    issue admin /O=system:masters/CN=covenant-admin client
    issue kcm /CN=system:kube-controller-manager client
    wait "$rsa"
    openssl pkey -in sa.key -pubout -out sa.pub
  )
}

# write_kubeconfig FILE USER CERT_BASENAME: self-contained (CA and client cert/key embedded).
write_kubeconfig() {
  local file=$1 user=$2 cert=$state/pki/$3
  (
    umask 077
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: covenant
  cluster:
    server: $apiserver_url
    certificate-authority-data: $(base64 -w0 <"$state/pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$cert.crt")
    client-key-data: $(base64 -w0 <"$cert.key")
contexts:
- name: covenant
  context:
    cluster: covenant
    user: $user
current-context: covenant
EOF
  )
}

# --- up ----------------------------------------------------------------------------------------------
# One attempt at starting the components. Sets `outcome`: ready, or retry if a port was taken in the
# meantime (by another cluster starting at the same moment); exits through `fail` otherwise.
launch() {
  local etcd_port etcd_peer_port api_port
  read -r etcd_port etcd_peer_port api_port <<<"$(free_ports 3)"
  apiserver_url=https://127.0.0.1:$api_port
  local etcd_url=http://127.0.0.1:$etcd_port peer_url=http://127.0.0.1:$etcd_peer_port pki=$state/pki
  rm -rf "$state/etcd" "$state/logs"
  mkdir -p "$state/logs"
  : >"$state/pids"

  # etcd: one member, client and peer on 127.0.0.1 only; metrics are served on the client port (no
  # --listen-metrics-urls, whose default is empty). No fsync: the data are thrown away anyway.
  start etcd "$BIN/etcd" --name=covenant --data-dir="$state/etcd" \
    --listen-client-urls="$etcd_url" --advertise-client-urls="$etcd_url" \
    --listen-peer-urls="$peer_url" --initial-advertise-peer-urls="$peer_url" \
    --initial-cluster="covenant=$peer_url" --initial-cluster-state=new \
    --unsafe-no-fsync --log-level=warn
  # Certificates while etcd starts (the first attempt only; they do not depend on the ports).
  [ -f "$pki/sa.pub" ] || make_pki
  write_kubeconfig "$state/kubeconfig" covenant-admin admin
  write_kubeconfig "$state/kcm.kubeconfig" system:kube-controller-manager kcm
  local deadline=$((SECONDS + 20))
  until port_open "$etcd_port"; do
    if [ -n "$(dead_component)" ] || ((SECONDS > deadline)); then break; fi
    sleep 0.05
  done

  # kube-apiserver: RBAC, default admission plugins (they include NamespaceLifecycle, LimitRanger,
  # ServiceAccount, ResourceQuota, ValidatingAdmissionPolicy, MutatingAdmissionPolicy, webhooks...).
  # No cloud provider, no kubelet: nothing off-machine is contacted. --endpoint-reconciler-type=none:
  # no Endpoints for the `kubernetes` Service (127.0.0.1 is not a valid endpoint address anyway).
  start kube-apiserver "$BIN/kube-apiserver" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
    --etcd-servers="$etcd_url" \
    --cert-dir="$pki" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range="$service_cidr" \
    --allow-privileged=true --profiling=false --endpoint-reconciler-type=none

  # The controller-manager gives up if the apiserver is not healthy within 10 s of its start, so it is
  # started once /readyz answers.
  local kcm_started=false sa_seen=false out dead
  deadline=$((SECONDS + ready_timeout))
  while true; do
    dead=$(dead_component)
    if [ -n "$dead" ]; then
      if grep -qi 'address already in use' "$state/logs/$dead.log" 2>/dev/null; then
        say "$dead: a port was taken meanwhile; retrying with other ports"
        outcome=retry
        return 0
      fi
      fail "$dead exited"
    fi
    if ((SECONDS > deadline)); then
      if ! $kcm_started; then
        fail "kube-apiserver not ready (/readyz) within ${ready_timeout}s: $(readyz_detail)"
      fi
      fail "ServiceAccount default/default not created within ${ready_timeout}s (controller-manager not working)"
    fi
    if ! $kcm_started; then
      out=$(kubectl_ get --raw /readyz 2>/dev/null) || out=
      if [ "$out" = ok ]; then
        say "kube-apiserver ready after $(since "$t0")s at $apiserver_url"
        # --secure-port=0: no serving (so no port, and no authn/authz delegation lookups). Its clients
        # use per-controller service-account credentials, like a real cluster's. Getting those takes
        # ~150 requests at start, which the default client rate limit (20 QPS, burst 30) stretches to
        # ~6 s: hence the higher limit (also quicker controllers during the tests).
        start kube-controller-manager "$BIN/kube-controller-manager" \
          --kubeconfig="$state/kcm.kubeconfig" --secure-port=0 \
          --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
          --use-service-account-credentials=true --leader-elect=false --controllers='*' \
          --cluster-name=covenant --profiling=false --kube-api-qps=200 --kube-api-burst=400
        kcm_started=true
        continue
      fi
    elif ! $sa_seen && kubectl_ -n default get serviceaccount default >/dev/null 2>&1; then
      sa_seen=true
      outcome=ready
      return 0
    fi
    sleep 0.2
  done
}

cmd_up() {
  # The control plane and kubectl only: helm and the tests' judges are built by what uses them.
  BIN=$(bash "$here/build.sh" etcd kube-apiserver kube-controller-manager kubectl)
  if is_up; then
    say "already up at $(grep '^APISERVER_URL=' "$state/env" | cut -d= -f2-) (KUBECONFIG=$state/kubeconfig)"
    return 0
  fi
  if [ -d "$state" ] && [ ! -f "$state/$marker" ] && [ -n "$(ls -A "$state")" ]; then
    say "$state exists and is not a cluster state directory; refusing to use it"
    exit 1
  fi
  if [ -f "$state/pids" ]; then
    say "stale state in $state (not ready); restarting from scratch"
    stop_all
  fi
  rm -rf "$state"
  mkdir -p "$state"
  touch "$state/$marker"
  up_done=false
  trap up_exit EXIT
  trap 'exit 130' INT TERM
  t0=$(now)
  ready_timeout=${CLUSTER_READY_TIMEOUT:-90}
  local attempt outcome=
  for attempt in 1 2 3; do
    launch
    [ "$outcome" = ready ] && break
    stop_all
    [ "$attempt" -lt 3 ] || fail "no free ports after 3 attempts"
  done
  {
    printf 'APISERVER_URL=%q\n' "$apiserver_url"
    printf 'KUBECONFIG=%q\n' "$state/kubeconfig"
    printf 'BIN=%q\n' "$BIN"
    printf 'STATE_DIR=%q\n' "$state"
  } >"$state/env"
  up_done=true
  say "ready in $(since "$t0")s: $apiserver_url; export KUBECONFIG=$state/kubeconfig"
}

cmd_down() {
  if [ ! -e "$state" ]; then
    say "nothing at $state"
    return 0
  fi
  if [ ! -f "$state/$marker" ] && [ -n "$(ls -A "$state")" ]; then
    say "$state is not a cluster state directory; leaving it alone"
    exit 1
  fi
  stop_all
  rm -rf "$state"
  say "stopped; removed $state"
}

cmd_status() {
  # shellcheck source=/dev/null
  [ ! -f "$state/env" ] || . "$state/env"
  if [ -n "${BIN:-}" ] && is_up; then
    echo "up: $(sed -n 's/^APISERVER_URL=//p' "$state/env") KUBECONFIG=$state/kubeconfig"
    return 0
  fi
  local name pid
  for name in "${components[@]}"; do
    pid=$(pid_of "$name")
    if [ -n "$pid" ] && alive "$pid"; then
      echo "not ready: $name (pid $pid) is running"
      return 3
    fi
  done
  echo "down"
  return 3
}

# The component named by $1, checked.
component_arg() {
  local c
  for c in "${components[@]}"; do
    [ "$c" = "$1" ] && return 0
  done
  say "unknown component '$1' (one of: ${components[*]})"
  exit 2
}

cmd_stop_component() {
  local name=$1 pid
  pid=$(pid_of "$name")
  [ -n "$pid" ] || fail "$name was never started in $state"
  stop_one "$name" "$pid"
  ! alive "$pid" || fail "$name (pid $pid) is still running"
  say "stopped $name (pid $pid)"
}

cmd_start_component() {
  local name=$1 pid args=()
  pid=$(pid_of "$name")
  if [ -n "$pid" ] && alive "$pid"; then
    say "$name is already running (pid $pid)"
    return 0
  fi
  [ -f "$state/cmd/$name" ] || fail "no recorded command line for $name in $state/cmd"
  mapfile -d '' args <"$state/cmd/$name"
  awk -v n="$name" '$1 != n' "$state/pids" >"$state/pids.new" && mv "$state/pids.new" "$state/pids"
  start "$name" "${args[@]}"
  say "started $name again (pid $(pid_of "$name"))"
}

if [ $# -eq 3 ] && { [ "$1" = stop ] || [ "$1" = start ]; }; then
  state=$(realpath -m -- "$2")
  [ -f "$state/$marker" ] || fail "$state is not a cluster state directory"
  component_arg "$3"
  case $1 in
  stop) cmd_stop_component "$3" ;;
  start) cmd_start_component "$3" ;;
  esac
  exit 0
fi
[ $# -eq 2 ] || usage
action=$1
[ -n "$2" ] || usage
state=$(realpath -m -- "$2")
case $state in
/ | "$HOME" | /tmp | /root | /home) say "refusing STATE_DIR=$state" && exit 2 ;;
esac
case $action in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*) usage ;;
esac
