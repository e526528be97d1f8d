#!/usr/bin/env bash
# Run every fuzz target for a bounded time, seeded from the repository's real files.
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 60 s, every target)
# Environment: FUZZ_RUNS=N stops a target after N executions if that comes first (the issue's
# target is 10 M per reader); FUZZ_MAX_LEN=BYTES caps input size (default 64 KiB; smaller inputs
# run faster on the slow text readers).
# Needs the nightly toolchain and cargo-fuzz (installed here if missing). Prints each target's
# executions and exits non-zero on the first crash, leak, timeout or out-of-memory (libFuzzer
# keeps the input under fuzz/artifacts/TARGET/).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^biofeedd-fuzz$')
fi

# Seeds: real inputs of each kind, copied (corpora are working state, not committed).
seed() {
  local target=$1; shift
  mkdir -p "corpus/$target"
  for f in "$@"; do [ -f "$f" ] && cp "$f" "corpus/$target/seed-$(basename "$f")"; done
  return 0
}
repo=..
seed config_toml "$repo"/config/*.toml "$repo"/models/train/features.toml
seed manifest_toml "$repo"/models/*.toml
seed wfdb_header "$repo"/tests/data/mitdb-100-5min/*.hea
seed wfdb_annotations "$repo"/tests/data/mitdb-100-5min/*.atr
seed wfdb_signals
if [ ! -f corpus/wfdb_signals/seed-100 ]; then
  # A frame layout prefix (format, three layout bytes) before the first kilobyte of a real record.
  { printf '\x00\x01\x00\x00'; head -c 1024 "$repo"/tests/data/mitdb-100-5min/100.dat; } > corpus/wfdb_signals/seed-100
fi
seed csv_recording "$repo"/data/demo/bio_eventrelated_100hz.csv
seed e4_file "$repo"/tests/data/e4-S05-excerpt/EDA.csv "$repo"/tests/data/e4-S05-excerpt/ACC.csv "$repo"/tests/data/e4-S05-excerpt/TEMP.csv
seed labels_csv "$repo"/tests/data/stress-eval/labels.csv
seed hrv_peaks
# Offload: the request of docs/offload.md byte for byte (the unit test's sample request).
seed offload_wire "$repo"/fuzz/seeds/offload_wire/*
# Serial decoders: the real Cyton packets (hex → bytes), and committed encoder output (seeds/).
seed cyton_decoder "$repo"/fuzz/seeds/cyton_decoder/*
seed line_decoder "$repo"/fuzz/seeds/line_decoder/*
seed framed_decoder "$repo"/fuzz/seeds/framed_decoder/*
# BLE decoders: real notification bytes of VECTORS.md (named in the tests that use them); the
# outbox: segment files a demo run wrote with no broker (one whole, one cut short).
for t in hrs_decoder pmd_control pmd_frame ble_assembler ble_capture outbox_record outbox_segment; do
  seed "$t" "$repo"/fuzz/seeds/$t/*
done
hex=$(grep -v '^#' "$repo"/tests/data/serial/cyton-packets.txt | tr -d ' \n' | sed 's/\(..\)/\\x\1/g')
printf '%b' "$hex" > corpus/cyton_decoder/seed-real-packets

for t in "${targets[@]}"; do
  # Big real files make slow seeds: libFuzzer's -max_len keeps inputs to 64 KiB.
  log=$(mktemp)
  if ! cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" -runs="${FUZZ_RUNS:--1}" \
      -max_len="${FUZZ_MAX_LEN:-65536}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    grep -m1 -A8 "panicked" "$log" || true   # the assertion that failed, before libFuzzer's report
    tail -40 "$log"
    echo "fuzz target $t FAILED (input kept under fuzz/artifacts/$t/)"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  echo "$t: ${runs:-?} executions in ${took:-$seconds} s, no crash"
  rm -f "$log"
done
