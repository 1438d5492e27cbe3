#!/usr/bin/env bash
# Runs every test: unit tests and the end-to-end tests on the local stack (moto on loopback,
# started by the tests themselves). Works on a fresh machine: installs moto into .venv when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/moto_server ]; then
  echo "Installing moto into .venv (about a minute)..." >&2
  python3 -m venv .venv
  .venv/bin/pip install -q "moto[server]==5.2.5"
fi
export AWS_EC2_METADATA_DISABLED=true
exec cargo test --workspace "$@"
