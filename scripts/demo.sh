#!/usr/bin/env bash
# The main job on an embedded default: generate realistic B2B traffic (200 000 messages over
# 20 000 accounts, with late offline imports, retries and broken lines) and replay it with
# the example configuration. Writes out/summary.json and out/summary.rejected.jsonl, and
# prints the funnel table.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out
cargo build --release --quiet
./target/release/spiral generate --seed 1 --accounts "${ACCOUNTS:-20000}" --events "${EVENTS:-200000}" --out out/traffic.jsonl
./target/release/spiral replay --config config/spiral.toml --summary out/summary.json out/traffic.jsonl
echo
echo "summary: out/summary.json · rejected lines: out/summary.rejected.jsonl"
