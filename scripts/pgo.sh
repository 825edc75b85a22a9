#!/usr/bin/env bash
# The deployment build of spiral, into target/pgo/spiral: profile-guided (PGO) and statically
# linked.
#
# Same code as `cargo build --release`, compiled twice: once instrumented, which then runs a
# training workload (a replay of 600 000 generated events, and the live service on generated
# traffic through the in-process Kafka cluster, checkpoints and BI export included), and once
# more with the counts it wrote. LLVM then lays out branches and inlines by what really runs,
# and groups the hot functions together, so fewer pages of code are touched. The training
# traffic has a seed and size of its own: figures measured on other generated files are not
# measured on what it trained on. What it gains on issue #2's replay: docs/performance.md,
# "Profile-guided build".
#
# Statically linked (a static PIE, so address-space randomisation stays): the C libraries
# (glibc, OpenSSL, zlib) are linked in as the parts the binary calls, instead of mapped whole
# with their symbol tables read and relocated at start, which was 2.2 MB of the replay's
# peak RSS (docs/performance.md, "Statically linked"). It needs the static archives, which
# Debian's libc6-dev, libssl-dev and zlib1g-dev ship (scripts/deps.sh). `--target` keeps
# the static flag off the build scripts and proc-macros, which must stay dynamic.
#
# Needs rustup's `llvm-tools` component (the llvm-profdata of rustc's own LLVM), added here if
# missing. Two release builds: about 11 minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

out="$PWD/target/pgo"
profiles="$out/profiles"
host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
  echo "pgo: adding rustup's llvm-tools component (for llvm-profdata)"
  rustup component add llvm-tools
fi
[ -x "$profdata" ] || { echo "pgo: $profdata: not found after adding llvm-tools" >&2; exit 1; }

static="-Ctarget-feature=+crt-static"
export OPENSSL_STATIC=1 # openssl-sys links libssl.a and libcrypto.a

echo "pgo: 1/4 instrumented build"
RUSTFLAGS="${RUSTFLAGS:-} $static -Cprofile-generate=$profiles" \
  cargo build --release --locked --quiet --bin spiral --target "$host" --target-dir "$out/generate"
trained="$out/generate/$host/release/spiral"

echo "pgo: 2/4 training"
# The generator is not what a deployment runs: only the replay's and the service's counts are
# kept.
"$trained" generate --seed 3 --accounts 70000 --events 600000 > "$out/train.jsonl"
rm -rf "$profiles" "$out/train-bi"
"$trained" replay -q --config config/spiral.toml --summary "$out/train-summary.json" \
  "$out/train.jsonl"
SPIRAL_HTTP_LISTEN=127.0.0.1:0 RUST_LOG=warn "$trained" demo --events 400000 --rate 40000 \
  --seconds 15 --table-every 60 --export "$out/train-bi" > /dev/null

echo "pgo: 3/4 merging the profiles"
"$profdata" merge -o "$out/spiral.profdata" "$profiles"

echo "pgo: 4/4 optimized build"
# From scratch: cargo does not see a new profile under the same name, and every crate,
# dependencies included, is compiled with its counts.
rm -rf "$out/use"
RUSTFLAGS="${RUSTFLAGS:-} $static -Cprofile-use=$out/spiral.profdata" \
  cargo build --release --locked --quiet --bin spiral --target "$host" --target-dir "$out/use"
install -m 755 "$out/use/$host/release/spiral" "$out/spiral"
rm -f "$out/train.jsonl"
echo "pgo: built $out/spiral"
