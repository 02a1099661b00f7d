#!/usr/bin/env bash
# Runs a 3-member gavel cluster on loopback, in the foreground, until Ctrl-C.
#
#   deploy/local-cluster.sh            # node dist/server/main.js (built first if dist/ is missing)
#   deploy/local-cluster.sh --clean    # wipe ./local-cluster/ first (a fresh cluster)
#   GAVEL_BIN=/usr/bin/etcd deploy/local-cluster.sh   # the same cluster with another binary, e.g. etcd
#
#   member  client           peer
#   n1      127.0.0.1:2379   127.0.0.1:2380
#   n2      127.0.0.1:22379  127.0.0.1:22380
#   n3      127.0.0.1:32379  127.0.0.1:32380
#
# Each client port serves gRPC and HTTP, as etcd's: curl -s 127.0.0.1:2379/health, /metrics,
# /version. No --listen-metrics-urls is needed (it is empty by default, as in etcd).
#
# Data dirs and logs go under ./local-cluster/ (relative to the repository root). A restart on
# existing data dirs rejoins the same cluster: the --initial-cluster* flags only matter for a
# member's first start. Ctrl-C (or SIGTERM) stops all three with SIGTERM and waits for them.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

base_dir="$repo_root/local-cluster"
token="gavel-local-cluster"
names=(n1 n2 n3)
client_ports=(2379 22379 32379)
peer_ports=(2380 22380 32380)

usage() {
  sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

clean=0
for arg in "$@"; do
  case "$arg" in
    --clean) clean=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

if [[ -n "${GAVEL_BIN:-}" ]]; then
  command=("$GAVEL_BIN")
  [[ -x "$GAVEL_BIN" ]] || { echo "GAVEL_BIN=$GAVEL_BIN is not an executable" >&2; exit 1; }
else
  if [[ ! -f dist/server/main.js ]]; then
    echo "dist/server/main.js is missing; building: npx tsc -p tsconfig.json"
    npx tsc -p tsconfig.json
  fi
  command=(node dist/server/main.js)
fi

# Fail early and clearly when a port is taken (e.g. a cluster from an earlier run still going).
port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
for port in "${client_ports[@]}" "${peer_ports[@]}"; do
  if port_busy "$port"; then
    echo "127.0.0.1:$port is in use; is another cluster (or etcd) running?" >&2
    exit 1
  fi
done

if [[ "$clean" == 1 ]]; then rm -rf "$base_dir"; fi
mkdir -p "$base_dir"

initial_cluster=""
for i in "${!names[@]}"; do
  initial_cluster+="${initial_cluster:+,}${names[$i]}=http://127.0.0.1:${peer_ports[$i]}"
done

pids=()
stopping=0

stop_all() {
  [[ "$stopping" == 1 ]] && return
  stopping=1
  echo
  echo "stopping ${names[*]} with SIGTERM, one at a time ..."
  # One at a time: a leader stopped together with its followers tries to hand leadership to a
  # member that is going away and can wait seconds for it (etcd waits 7 s).
  for i in "${!pids[@]}"; do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    # wait returns the member's status; a member ended by TERM is not an error here.
    wait "${pids[$i]}" 2>/dev/null || true
    echo "${names[$i]} stopped"
  done
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

# Each member in a session of its own, so that Ctrl-C reaches only this script, which then
# stops the members in order (a terminal's SIGINT would otherwise hit all three at once).
detach=()
if command -v setsid >/dev/null 2>&1; then detach=(setsid); fi

for i in "${!names[@]}"; do
  name="${names[$i]}"
  client_url="http://127.0.0.1:${client_ports[$i]}"
  peer_url="http://127.0.0.1:${peer_ports[$i]}"
  "${detach[@]}" "${command[@]}" \
    --name "$name" \
    --data-dir "$base_dir/$name" \
    --listen-client-urls "$client_url" \
    --advertise-client-urls "$client_url" \
    --listen-peer-urls "$peer_url" \
    --initial-advertise-peer-urls "$peer_url" \
    --initial-cluster "$initial_cluster" \
    --initial-cluster-state new \
    --initial-cluster-token "$token" \
    --heartbeat-interval 100 \
    --election-timeout 1000 \
    >>"$base_dir/$name.log" 2>&1 &
  pids+=("$!")
  echo "started $name (pid $!): client $client_url (gRPC, /health, /metrics), peer $peer_url, log $base_dir/$name.log"
done

endpoints="127.0.0.1:${client_ports[0]},127.0.0.1:${client_ports[1]},127.0.0.1:${client_ports[2]}"
cat <<EOF

Use it with:
  ETCDCTL_API=3 etcdctl --endpoints=$endpoints endpoint status -w table
  ETCDCTL_API=3 etcdctl --endpoints=$endpoints put hello world
  ETCDCTL_API=3 etcdctl --endpoints=$endpoints member list -w table
  curl -s 127.0.0.1:${client_ports[0]}/version
  curl -s 127.0.0.1:${client_ports[0]}/health

Logs: tail -f $base_dir/*.log    Ctrl-C stops all three.
EOF

# Wait until Ctrl-C. A member that exits on its own is reported; the others keep running.
alive=("${!pids[@]}")
while (( ${#alive[@]} > 0 )); do
  live_pids=()
  for i in "${alive[@]}"; do live_pids+=("${pids[$i]}"); done
  wait -n "${live_pids[@]}" 2>/dev/null || true
  # wait -n also returns when a trapped signal arrives; the trap has then stopped everything.
  [[ "$stopping" == 1 ]] && break
  still=()
  for i in "${alive[@]}"; do
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      still+=("$i")
    else
      echo "${names[$i]} (pid ${pids[$i]}) exited on its own; last log lines:" >&2
      tail -n 5 "$base_dir/${names[$i]}.log" >&2 || true
    fi
  done
  alive=("${still[@]}")
done
if [[ "$stopping" != 1 ]]; then
  stopping=1
  echo "all members have exited" >&2
  exit 1
fi
