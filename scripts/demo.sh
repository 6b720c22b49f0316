#!/usr/bin/env bash
# make demo: starts a Weft controller (embedded etcd) in the background and
# walks through the API with weftctl. The controller keeps running; the last
# line says how to stop it.
set -euo pipefail
dir=${1:-/tmp/weft-demo}
bin=$(cd "$(dirname "$0")/.." && pwd)/bin
port=${WEFT_DEMO_PORT:-8082}
export WEFT_SERVER=http://127.0.0.1:$port
mkdir -p "$dir"
export PATH="$bin:$PATH"

if [ -f "$dir/controller.pid" ] && kill -0 "$(cat "$dir/controller.pid")" 2>/dev/null; then
  echo "== a demo controller is already running (pid $(cat "$dir/controller.pid")); reusing it"
else
  rm -rf "$dir/data"
  weft controller --listen "127.0.0.1:$port" --data-dir "$dir/data" \
    --etcd-listen http://127.0.0.1:0 --quarantine 10s >"$dir/controller.log" 2>&1 &
  echo $! >"$dir/controller.pid"
  for _ in $(seq 1 100); do
    curl -fsS "$WEFT_SERVER/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fsS "$WEFT_SERVER/readyz" >/dev/null || { echo "controller did not start; see $dir/controller.log"; exit 1; }
fi

step() { printf '\n== %s\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }
w=weftctl
step "the controller and its defaults" "$w" version
step "networks created at start" "$w" network list
"$w" network delete blue >/dev/null 2>&1 || true
"$w" network delete red >/dev/null 2>&1 || true
step "an isolated dual-stack network" "$w" network create blue --subnet 10.0.0.0/24 --subnet fd00:b::/64 --block-prefix 28
step "another network may reuse the same subnet" "$w" network create red --subnet 10.0.0.0/24
step "an address on demand" "$w" ip allocate blue --owner task-web-1
step "an explicit (static) address" "$w" ip allocate blue --owner task-db-1 --ip 10.0.0.100
step "a taken address is refused, naming the owner" "$w" ip allocate blue --owner task-x --ip 10.0.0.100 || true
step "dual-stack" "$w" ip allocate blue --owner task-web-2 --family dual
step "reservations" "$w" ip list --network blue
step "release (the address rests in quarantine before reuse)" "$w" ip release 10.0.0.100 --network blue
step "bad input names the field" "$w" network create bad --subnet 10.1.0.5/24 || true
echo
echo "Controller API: $WEFT_SERVER (logs: $dir/controller.log)"
echo "Stop it with: kill \$(cat $dir/controller.pid)"
