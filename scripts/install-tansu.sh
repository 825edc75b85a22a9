#!/usr/bin/env bash
# Installs Tansu 0.6.0, the Kafka-API broker the integration tests of the live service run
# against (issue #3), into ~/.cargo/bin unless that exact version is already there.
# Building it takes about 20 minutes on two cores; the result survives between sessions on
# the same machine. Without the dynostore and libsql features it has no storage engine.
set -euo pipefail
want="0.6.0"
if command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q "$want"; then
  echo "tansu $want already installed: $(command -v tansu)"
  exit 0
fi
cargo install tansu --version "$want" --locked --features dynostore,libsql
