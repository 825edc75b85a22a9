#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit, property, CLI and dataset
# tests. Needs only the Rust toolchain (the public datasets are read from ../shared/datasets,
# or $SPIRAL_DATASETS).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --all-features
