#!/usr/bin/env bash
# make demo: a 3-node Weft lab on this machine, networks blue and red (the
# same subnet, isolated from each other), tasks as Mesos would launch them,
# the status table and a connectivity matrix. The lab keeps running; the
# last line says how to take it down.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state=${WEFT_LAB_STATE_DIR:-/var/lib/weft/lab}
listen=${WEFT_DEMO_LISTEN:-127.0.0.1:8082}
export PATH="$root/bin:$PATH" WEFT_LAB_STATE_DIR="$state" WEFT_SERVER="http://$listen"

if [ "$(id -u)" != 0 ]; then
  echo "make demo needs root (it creates network namespaces): sudo make demo" >&2
  exit 1
fi
# System packages the lab uses.
missing=()
for cmd in ip:iproute2 ping:iputils-ping nsenter:util-linux; do
  command -v "${cmd%%:*}" >/dev/null 2>&1 || missing+=("${cmd##*:}")
done
# Debian's bridge and host-local, which the overlays' bridge mode runs.
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
if ((${#missing[@]})); then
  echo "== installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

step() { printf '\n== %s\n' "$1"; }
run() { printf '$ %s\n' "$*"; "$@"; }

if [ -f "$state/lab.json" ]; then
  step "an earlier demo lab is still up: taking it down first"
  run weft lab down
fi
step "a 3-node lab: node namespaces on a 198.18.0.0/24 underlay, a controller, a Weft agent and a Mesos agent emulator per node, Marathon and the mesos-manager"
run weft lab up --nodes 3 --controller-listen "$listen"

step "two virtual networks with the same subnet"
run weftctl network create blue --subnet 10.10.0.0/24 >/dev/null
run weftctl network create red --subnet 10.10.0.0/24 >/dev/null
weftctl network list

step "tasks, launched through each node's Mesos agent emulator and weft-cni"
# Explicit addresses before automatic ones on the same network: an explicit
# request for an address in the dynamic range loses to an earlier automatic
# allocation of it.
run weft lab task run db --node node3 --network blue --ip 10.10.0.50           # a static address
run weft lab task run blue1 --node node2 --network blue                        # networks=blue label
run weft lab task run red1 --node node2 --network red --ip "$(weft lab task list | awk '$1=="blue1"{print $4}')"  # blue1's address, in red
run weft lab task run multi --node node1 --network blue --network red          # two interfaces
run weft lab task run web --node node1                                         # no label: mesos-default-pod-task

step "status"
run weft lab status

step "connectivity: blue reaches blue across nodes, red reaches red, blue and red never meet"
run weft lab matrix

echo
rel=$(realpath --relative-to="$PWD" "$root/bin" 2>/dev/null || echo "$root/bin")
echo "The lab keeps running. Try: $rel/weft lab exec blue1 -- ping -c3 10.10.0.50 ; $rel/weftctl port list ; curl $WEFT_SERVER/v1/networks"
echo "Marathon: http://${WEFT_DEMO_MARATHON:-127.0.0.1:8080}  mesos-manager: http://127.0.0.1:8109"
echo "Take it down with: sudo $rel/weft lab down"
