#!/usr/bin/env bash
# The main job on an embedded default: the live service on generated traffic, with nothing to
# set up. `spiral demo` starts an in-process Kafka cluster (librdkafka's mock), produces
# realistic B2B traffic into it (online touches, offline imports days late, CRM identify
# events, retries and broken messages), runs `spiral run` with config/spiral.toml on it, serves
# http://127.0.0.1:9464/metrics and /api/v1/summary, and prints a funnel table every 5 seconds.
# It drains and stops by itself after DEMO_SECONDS (default 180); Ctrl-C stops it earlier.
# The BI files (Parquet) it publishes with every checkpoint land in target/demo-bi, replaced at
# each run: `python3 deploy/bi/query.py target/demo-bi` shows the stage table from them.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
rm -rf target/demo-bi
exec ./target/release/spiral demo --seconds "${DEMO_SECONDS:-180}" --export target/demo-bi "$@"
