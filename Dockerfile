# syntax=docker/dockerfile:1
# Spiral's container image: the same `cargo build --release` as the README, in a Rust builder
# stage, then a slim Debian runtime with only the shared libraries the binary links (OpenSSL
# for Kafka TLS/SASL, zlib) and CA certificates, running as a non-root user.
#
#   docker build -t spiral:0.1.0 .
#   docker run --rm -p 9464:9464 -e SPIRAL_KAFKA_BROKERS=kafka:9092 \
#     -e SPIRAL_HTTP_LISTEN=0.0.0.0:9464 spiral:0.1.0
#
# See deploy/README.md (it was not built in the project's CI machine: no Docker engine there).

FROM rust:1-bookworm AS builder
# What rdkafka's build needs (as scripts/deps.sh installs for the tests).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libssl-dev pkg-config zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
COPY config ./config
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
 && install -D target/release/spiral /out/spiral

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 spiral \
 && useradd --system --uid 10001 --gid spiral --no-create-home --shell /usr/sbin/nologin spiral
COPY --from=builder /out/spiral /usr/local/bin/spiral
COPY config/spiral.toml /etc/spiral/spiral.toml
USER 10001:10001
EXPOSE 9464
# SPIRAL_HTTP_LISTEN=0.0.0.0:9464 makes the metrics reachable from outside the container;
# Kubernetes sets it (deploy/kubernetes/base/deployment.yaml).
ENV SPIRAL_HTTP_LISTEN=0.0.0.0:9464
ENTRYPOINT ["/usr/local/bin/spiral"]
CMD ["run", "--config", "/etc/spiral/spiral.toml"]
