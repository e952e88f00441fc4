#!/usr/bin/env bash
# The S1 scenario of docs/scenarios.md, end to end, on an emulated 3-node cluster:
# a web Deployment and two busybox clients; both fetch the page; then a NetworkPolicy lets only
# client1 in on TCP 80, and podnet explains why client2 is refused.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export PODNET_STATE_DIR="${PODNET_STATE_DIR:-/var/lib/podnet-demo}"
BACKEND="${BACKEND:-bgp}"

bold=$'\e[1m'; green=$'\e[32m'; red=$'\e[31m'; off=$'\e[0m'
[ -t 1 ] || { bold=""; green=""; red=""; off=""; }
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
run() { printf '%s$ %s%s\n' "$bold" "$*" "$off"; "$@"; }
failures=0
expect() {  # expect ok|fail DESCRIPTION -- COMMAND…
  local want=$1 what=$2; shift 3
  printf '%s$ %s%s\n' "$bold" "$*" "$off"
  if "$@"; then got=ok; else got=fail; fi
  if [ "$got" = "$want" ]; then
    printf '%s✔ %s (as expected)%s\n' "$green" "$what" "$off"
  else
    printf '%s✘ %s: expected %s, got %s%s\n' "$red" "$what" "$want" "$got" "$off"; failures=$((failures + 1))
  fi
}

cleanup() { step "Tear down"; run podnet down; }
trap cleanup EXIT

step "Build a 3-node emulated cluster (backend: $BACKEND)"
podnet down >/dev/null 2>&1 || true
run podnet up --nodes 3 --backend "$BACKEND" || exit 1
run podnet get nodes -o wide
run podnet node status k8s-master01

step "Deploy web (nginx) and two busybox clients, as in seeds/002 §6.9.1"
run podnet apply -f examples/s1/web.yaml -f examples/s1/clients.yaml || exit 1
run podnet wait --for=condition=Ready pod --all --timeout=90s || exit 1
run podnet get pods -o wide
WEB_IP=$(podnet get pods -l app=web -o 'jsonpath={.items[0].status.podIP}')
WEB_POD=$(podnet get pods -l app=web -o 'jsonpath={.items[0].metadata.name}')
echo "web pod $WEB_POD has IP $WEB_IP"

step "Before any policy: both clients fetch the page"
expect ok "client1 fetches http://$WEB_IP/" -- podnet exec client1 -- timeout 3 wget -qO- "http://$WEB_IP/"
expect ok "client2 fetches http://$WEB_IP/" -- podnet exec client2 -- timeout 3 wget -qO- "http://$WEB_IP/"

step "Apply the seed's NetworkPolicy (only client1, only TCP 80)"
run cat examples/s1/pod_policy.yaml
run podnet apply -f examples/s1/pod_policy.yaml || exit 1
run podnet get netpol
sleep 1

step "After the policy: client1 in, client2 out, nobody pings"
expect ok   "client1 fetches the page"      -- podnet exec client1 -- timeout 3 wget -qO- "http://$WEB_IP/"
expect fail "client2 times out"             -- podnet exec client2 -- timeout 3 wget -qO- "http://$WEB_IP/"
expect fail "client1 cannot ping web"       -- podnet exec client1 -- ping -c 1 -W 1 "$WEB_IP"

step "Why is client2 refused?"
run podnet explain --from default/client2 --to "default/$WEB_POD:80"
run podnet lint
run podnet matrix -n default --ports 80

step "Does the kernel agree with the engine? (real probes vs the computed matrix)"
expect ok "probes match the engine's matrix" -- podnet verify -n default --ports 80

if [ "$failures" -eq 0 ]; then
  printf '\n%sS1 reproduced: every expectation held.%s\n' "$green" "$off"
else
  printf '\n%s%d expectation(s) failed.%s\n' "$red" "$failures" "$off"
fi
exit "$failures"
