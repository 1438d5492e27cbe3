#!/usr/bin/env bash
# Runs every test: unit tests and the end-to-end tests on the local stack (moto on loopback,
# started by the tests themselves), then the load tests one at a time (they assert answers within
# a function's timeout, which a machine busy with the rest of the suite would not measure).
# Works on a fresh machine: installs moto into .venv when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/moto_server ]; then
  echo "Installing moto into .venv (about a minute)..." >&2
  python3 -m venv .venv
  .venv/bin/pip install -q "moto[server]==5.2.5"
fi
# The operator page test drives Debian's headless Chromium.
if ! command -v chromium >/dev/null && [ -z "${CHROMIUM:-}" ]; then
  echo "Installing chromium (the operator page test's browser)..." >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
export AWS_EC2_METADATA_DISABLED=true
cargo test --workspace "$@"
echo "== load tests, one at a time =="
# They answer within a function's timeout against moto, which serves one call at a time: on a
# machine slower than usual that margin shrinks (BENCHMARKS.md, enqueueing at depth), so a failed
# run is repeated once, alone, before it counts.
if ! cargo test --workspace --test e2e -- --ignored --test-threads=1; then
  echo "== a load test failed; once more, alone ==" >&2
  cargo test --workspace --test e2e -- --ignored --test-threads=1
fi
