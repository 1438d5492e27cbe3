#!/usr/bin/env bash
# Starts the local stack and keeps it running: moto on 127.0.0.1:4566, every resource of template.yaml,
# the HTTP front (API Gateway stand-in) on 127.0.0.1:3000 and the queue runner. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/moto_server ]; then
  echo "Installing moto into .venv (about a minute)..." >&2
  python3 -m venv .venv
  .venv/bin/pip install -q "moto[server]==5.2.5"
fi
export AWS_EC2_METADATA_DISABLED=true
cargo build --workspace --bins --quiet
exec target/debug/local-stack "$@"
