#!/usr/bin/env bash
# Fuzzes each parser that faces the internet for a bounded time and prints its executions:
#   ./local/fuzz.sh [seconds-per-target] [fuzz options...]   e.g. ./local/fuzz.sh 60 --seed 0x2a
# Builds tools/fuzz under the `fuzz` profile (optimised, panics unwind) unless FUZZ_PROFILE=dev
# (CI's smoke, reusing the test build). Exits 1 on the first crash of any target; the input is
# saved under target/fuzz-crashes/ and the line printed says how to replay it (docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
shift || true
profile="${FUZZ_PROFILE:-fuzz}"
cargo build --workspace --bin fuzz --profile "$profile"
dir="$profile"
[ "$profile" = dev ] && dir=debug
bin="${CARGO_TARGET_DIR:-target}/$dir/fuzz"
# Low priority: the campaign should not slow down whoever else builds on this machine.
exec nice -n 19 "$bin" --seconds "$seconds" "$@"
