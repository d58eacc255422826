#!/usr/bin/env bash
# Runs the whole test suite from a fresh clone, installing what the tests need first.
# Used by the README's quick start and by CI (.ci/run). Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust from https://rustup.rs (1.85 or newer)" >&2
  exit 1
fi

# cargo-nextest runs the suite faster and reports clearly; fall back to cargo test.
if cargo nextest --version >/dev/null 2>&1; then
  say "running the test suite (cargo nextest)"
  cargo nextest run --locked --no-fail-fast "$@"
  say "running doc tests"
  cargo test --locked --doc
else
  say "running the test suite (cargo test)"
  cargo test --locked --no-fail-fast "$@"
fi
