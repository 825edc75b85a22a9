#!/usr/bin/env bash
# Kafka consumption baseline (issue #3): builds the release binaries and runs
# examples/kafka_bench.rs — a bare librdkafka consumer reading 1 M generated lines from Tansu and
# from librdkafka's mock cluster. Arguments go to the bench, for instance:
#   ./scripts/bench-kafka.sh --events 2000000 --partitions 8
#   ./scripts/bench-kafka.sh --with-spiral        # also time `spiral run` on the same topic
# Needs tansu (./scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin spiral --example kafka_bench
exec ./target/release/examples/kafka_bench "$@"
