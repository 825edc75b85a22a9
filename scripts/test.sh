#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit, property, CLI, dataset and
# real-broker tests. Needs the Rust toolchain; scripts/deps.sh (run first) installs the rest
# when missing: Tansu, promtool, and the libraries rdkafka builds against (the public datasets
# are read from ../shared/datasets, or $SPIRAL_DATASETS).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== scripts/deps.sh"
./scripts/deps.sh

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --all-features
