#!/usr/bin/env bash
# Runs the local demo of the whole bundle on the embedded local stack (moto + the real handlers).
# Works on a fresh machine: installs moto into .venv when missing, builds the workspace, runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/moto_server ]; then
  echo "Installing moto into .venv (about a minute)..." >&2
  python3 -m venv .venv
  .venv/bin/pip install -q "moto[server]==5.2.5"
fi
export AWS_EC2_METADATA_DISABLED=true RUST_LOG="${RUST_LOG:-warn}"
# Same package selection as the tests, so nothing is compiled twice.
cargo build --workspace --bins --quiet
exec target/debug/demo "$@"
