#!/usr/bin/env bash
# Everything the test suite needs beyond the Rust toolchain, on a fresh Debian machine:
#   - the Debian packages that build rdkafka with TLS and zlib (libssl-dev, pkg-config,
#     zlib1g-dev; their static archives and glibc's, libc6-dev, link scripts/pgo.sh's static
#     binary), `promtool` and `prometheus` for the metrics and the rules (prometheus),
#     headless `chromium` for the live page's test, and `kubectl kustomize` for the Kubernetes
#     manifests (kubernetes-client);
#   - DuckDB for Python, in a virtual environment under ~/.cache/spiral/duckdb (the BI tests
#     run the shipped views of deploy/bi over the Parquet files), and python3-venv for it;
#   - Tansu 0.6.0, the Kafka-API broker of the integration tests (scripts/install-tansu.sh;
#     about 20 minutes to build the first time, then kept in ~/.cargo/bin).
# Idempotent: what is already there is left alone, and apt runs only when a package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

packages=(libc6-dev libssl-dev pkg-config zlib1g-dev prometheus chromium kubernetes-client python3-venv)
missing=()
for p in "${packages[@]}"; do
  # Any promtool and prometheus on PATH will do (for instance from a release tarball).
  if [ "$p" = prometheus ] && command -v promtool >/dev/null 2>&1 \
    && command -v prometheus >/dev/null 2>&1; then continue; fi
  if [ "$p" = chromium ] && command -v chromium >/dev/null 2>&1; then continue; fi
  # Any kubectl will do too (it carries kustomize).
  if [ "$p" = kubernetes-client ] && command -v kubectl >/dev/null 2>&1; then continue; fi
  # Any Python 3 that can make a virtual environment will do.
  if [ "$p" = python3-venv ] && python3 -c "import ensurepip, venv" >/dev/null 2>&1; then continue; fi
  installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  echo "deps: installing ${missing[*]}"
  "${sudo[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "deps: Debian packages present (${packages[*]})"
fi

# Debian's prometheus package puts promtool in /usr/bin; make sure it is reachable.
command -v promtool >/dev/null 2>&1 || { echo "deps: promtool not found after install" >&2; exit 1; }

# DuckDB from PyPI, pinned, in its own virtual environment (kept between runs).
duckdb_env="$HOME/.cache/spiral/duckdb"
duckdb_version=2.0.1
if "$duckdb_env/bin/python" -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$duckdb_version')" \
  >/dev/null 2>&1; then
  echo "deps: DuckDB $duckdb_version present in $duckdb_env"
else
  echo "deps: installing DuckDB $duckdb_version into $duckdb_env"
  python3 -m venv "$duckdb_env"
  "$duckdb_env/bin/pip" install --quiet --disable-pip-version-check "duckdb==$duckdb_version"
fi

./scripts/install-tansu.sh
