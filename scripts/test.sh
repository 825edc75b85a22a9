#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit, property, CLI, dataset and
# real-broker tests, then the profile-guided build against the test build. Needs the Rust
# toolchain; scripts/deps.sh (run first) installs the rest when missing: Tansu, promtool, and
# the libraries rdkafka builds against (the public datasets are read from ../shared/datasets,
# or $SPIRAL_DATASETS); scripts/pgo.sh adds rustup's llvm-tools.
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

# The profile-guided build (scripts/pgo.sh) must compute what the test build computes: the
# same summary and rejected lines on traffic it was not trained on.
echo "== scripts/pgo.sh, checked against the test build"
./scripts/pgo.sh
check=target/pgo/check
mkdir -p "$check"
./target/debug/spiral generate --seed 11 --accounts 20000 --events 200000 > "$check/in.jsonl"
for build in debug pgo; do # target/debug/spiral, target/pgo/spiral
  "target/$build/spiral" replay -q --config config/spiral.toml --summary "$check/$build.json" \
    --rejected "$check/$build.rejected.jsonl" "$check/in.jsonl"
done
cmp "$check/debug.json" "$check/pgo.json"
cmp "$check/debug.rejected.jsonl" "$check/pgo.rejected.jsonl"
echo "pgo: summary and rejected lines identical to the test build's"
