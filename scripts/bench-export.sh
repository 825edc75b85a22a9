#!/usr/bin/env bash
# BI export cost (issue #5): interleaved pairs of `spiral replay` without and with `--export`
# over the same generated input, reporting each run's wall time, CPU and peak memory, the
# median cost, and the files written. A ratio within one run is what counts: absolute times
# on a shared VM drift by 20 % from one hour to the next.
#   ./scripts/bench-export.sh                   # 1 M lines over 115 000 accounts, 5 pairs
#   PAIRS=3 EVENTS=200000 ACCOUNTS=20000 ./scripts/bench-export.sh
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${PAIRS:-5}
events=${EVENTS:-1000000}
accounts=${ACCOUNTS:-115000}
work=${WORK:-target/bench-export}

cargo build --release --quiet --bin spiral
spiral=./target/release/spiral
mkdir -p "$work"
input="$work/input-$events-$accounts.jsonl"
if [ ! -s "$input" ]; then
    "$spiral" generate --seed 7 --accounts "$accounts" --events "$events" --out "$input"
fi

run() { # label, extra args...
    local label=$1
    shift
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" \
        "$spiral" replay -q --config config/spiral.toml --summary "$work/summary.json" "$@" "$input"
    read -r wall user sys rss <"$work/time"
    printf '%-4s wall %5.2f s  cpu %5.2f s  peak rss %4d MB\n' \
        "$label" "$wall" "$(awk "BEGIN {print $user + $sys}")" $((rss / 1024))
    echo "$wall" >>"$work/$label.times"
}

rm -f "$work"/off.times "$work"/on.times
for i in $(seq "$pairs"); do
    # A fresh directory each time, and the previous one removed well before: ext4 is slow to
    # hand out inodes freed a moment ago, which would charge the export for the benchmark's
    # own clean-up.
    run off
    out="$work/out-$i"
    rm -rf "$out"
    run on --export "$out"
done

median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
off=$(median "$work/off.times")
on=$(median "$work/on.times")
echo "median wall: off $off s, on $on s; throughput with export = $(awk "BEGIN {printf \"%.3f\", $off / $on}") of without"
echo "files of the last run:"
for table in touches journeys stage_entries; do
    printf '  %-14s %4d files %8.1f MB\n' "$table" \
        "$(find "$out/$table" -name '*.parquet' | wc -l)" \
        "$(du -sb "$out/$table" | awk '{print $1 / 1e6}')"
done
rm -rf "$work"/out-*
