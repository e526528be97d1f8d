#!/usr/bin/env bash
# Two hours of a real Polar H10 (../shared/data/ble-captures/h10-ecg-cycling-2023-01-13.bin, 12,355
# ECG notifications; not in the repository, its licence does not allow it) replayed flat out
# through the PMD decoders and the whole pipeline: windows, decode errors, mean heart rate
# (the ride's Polar Flow export says 145 bpm), and peak memory for the whole file against its
# first 15 and 60 minutes (RSS should not grow with the length).
#   benches/ble_h10_capture.sh [path/to/biofeedd]        (default: target/release/biofeedd)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/biofeedd}
capture=../shared/data/ble-captures/h10-ecg-cycling-2023-01-13.bin
[ -f "$capture" ] || { echo "no $capture here"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The first N records (24-byte magic, then 4 + 229 bytes per record).
cut() { head -c $((24 + $1 * 233)) "$capture" > "$work/$2.bin"; }
cut 1605 h10-15min
cut 6420 h10-60min
cp "$capture" "$work/h10-116min.bin"
for f in h10-15min h10-60min h10-116min; do
  /usr/bin/time -f "%M" -o "$work/$f.rss" "$bin" replay --format pmd --input "$work/$f.bin" --output jsonl \
    > "$work/$f.jsonl" 2> "$work/$f.log"
  python3 - "$work/$f.jsonl" "$work/$f.log" "$work/$f.rss" "$f" <<'PY'
import json, re, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
log = open(sys.argv[2]).read()
hr = [r["features"]["hr_mean_bpm"] for r in rows if r["features"]["hr_mean_bpm"] is not None]
bad = re.search(r"(\d+) bad rows skipped", log)
print(f"{sys.argv[4]}: {len(rows)} windows, decode errors {bad.group(1) if bad else '?'}, "
      f"heart rate mean {statistics.mean(hr):.1f} bpm (windows with one: {len(hr)}), "
      f"max RSS {int(open(sys.argv[3]).read().split()[-1]) / 1024:.1f} MB")
PY
done
