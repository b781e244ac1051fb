#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit, snapshot, property and end-to-end tests
# (the end-to-end tests start ESXi simulators). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
CESO_ESXSIM=$(bash tests/setup.sh | tail -n 1)
export CESO_ESXSIM
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
