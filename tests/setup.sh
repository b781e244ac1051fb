#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian machine (Go and govmomi from
# Debian's packages, curl, qemu-img to build test OVAs, and cloud-init, whose own VMware
# datasource checks the guestinfo ceso writes), builds the project's ESXi simulator launcher and
# sets up the Python MCP client in $target/mcp-venv. Prints the launcher's path as its last line.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

need=()
for pkg in golang-go golang-github-vmware-govmomi-dev curl openssl qemu-utils cloud-init groff-base \
  openssh-server python3-venv gnome-keyring dbus-daemon; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
command -v cargo >/dev/null || {
  echo "setup: cargo (Rust 1.90 or newer) is required: https://rustup.rs" >&2
  exit 1
}

target=${CARGO_TARGET_DIR:-$top/target}
out=$target/esxsim/esxsim
if [ ! -x "$out" ] || [ "$top/tests/esxsim/main.go" -nt "$out" ]; then
  echo "setup: building the ESXi simulator launcher" >&2
  mkdir -p "$target/esxsim"
  GOPATH=/usr/share/gocode GO111MODULE=off CGO_ENABLED=0 GOCACHE=${GOCACHE:-$target/esxsim/gocache} \
    go build -o "$out.tmp" "$top/tests/esxsim/main.go" >&2
  mv "$out.tmp" "$out"
fi

# The MCP client the tests of `ceso mcp` drive it with: the official Python SDK (PyPI `mcp`), at a
# pinned version, in a virtual environment of its own.
mcp_version=2.3.0
venv=$target/mcp-venv
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$mcp_version')" 2>/dev/null; then
  echo "setup: installing the Python MCP client (mcp==$mcp_version) into $venv" >&2
  python=/usr/bin/python3
  [ -x "$python" ] || python=$(command -v python3)
  rm -rf "$venv"
  "$python" -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "mcp==$mcp_version" >&2
fi
echo "$out"
