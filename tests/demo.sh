#!/usr/bin/env bash
# The demo: starts a local ESXi simulator (TLS on 127.0.0.1:8989 with the demo certificate that
# examples/inventory/hosts.yaml pins, user root), then validates, plans and applies
# examples/inventory, plans again (no changes) and shows the audit log.
set -euo pipefail
cd "$(dirname "$0")/.."
esxsim=$(bash tests/setup.sh | tail -n 1)
cargo build --locked --quiet
ceso=${CARGO_TARGET_DIR:-target}/debug/ceso

export ESXI_PASSWORD=${ESXI_PASSWORD:-demo-password}
export CESO_STATE=${CESO_STATE:-.ceso/demo-state.redb}
run_dir=$(mktemp -d)
"$esxsim" -listen 127.0.0.1:8989 -tls-cert tests/esxsim/demo/demo-cert.pem -tls-key tests/esxsim/demo/demo-key.pem \
  -user root -pass "$ESXI_PASSWORD" -datastore-dir "$run_dir/datastore" \
  >"$run_dir/esxsim.out" 2>"$run_dir/esxsim.err" </dev/null &
sim=$!
trap 'kill $sim 2>/dev/null; wait $sim 2>/dev/null; rm -rf "$run_dir"' EXIT
for _ in $(seq 100); do
  grep -q ESXSIM_READY=1 "$run_dir/esxsim.out" 2>/dev/null && break
  kill -0 $sim 2>/dev/null || { cat "$run_dir/esxsim.err" >&2; echo "demo: the simulator did not start (is port 8989 free?)" >&2; exit 1; }
  sleep 0.1
done
grep -q ESXSIM_READY=1 "$run_dir/esxsim.out" || { echo "demo: the simulator did not become ready" >&2; exit 1; }

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }
step ceso validate examples/inventory
"$ceso" validate examples/inventory
step ceso plan examples/inventory
status=0; "$ceso" plan examples/inventory || status=$?
[ "$status" -eq 2 ] || { echo "demo: expected exit code 2 (changes pending), got $status" >&2; exit 1; }
step ceso apply examples/inventory --auto-approve
"$ceso" apply examples/inventory --auto-approve
step ceso plan examples/inventory
"$ceso" plan examples/inventory
step ceso audit list
"$ceso" audit list
echo
echo "demo: done. The simulator is stopped now; the audit log stays in $CESO_STATE."
