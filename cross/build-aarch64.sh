#!/usr/bin/env bash
# Build biofeedd for a 64-bit Raspberry Pi or a Jetson (aarch64-unknown-linux-gnu) on an x86_64
# Debian/Ubuntu machine without a container engine, then run it under qemu-aarch64-static: the
# bundled demo end to end, and the pure decoder and feature tests.
#
#   cross/build-aarch64.sh           # zig route: cargo-zigbuild, glibc floor 2.31 (default)
#   cross/build-aarch64.sh --gcc     # Debian's gcc-aarch64-linux-gnu: glibc floor of the build host
#   SKIP_TESTS=1 cross/build-aarch64.sh   # only the binary and the demo
#
# Installs what it needs: the Rust target (rustup), ziglang and cargo-zigbuild (pip) or the cross
# gcc (apt), qemu-user-static and the aarch64 C library for qemu's loader (apt).
set -euo pipefail
cd "$(dirname "$0")/.."
route=zig
[ "${1:-}" = "--gcc" ] && route=gcc
target=aarch64-unknown-linux-gnu
# Pi OS bullseye and JetPack 5 (Ubuntu 20.04) ship glibc 2.31: the oldest we promise.
glibc_floor=2.31
export CARGO_TERM_COLOR=never

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

rustup target add "$target" >/dev/null
# qemu's loader needs the target's libc; libc6-arm64-cross puts it in /usr/aarch64-linux-gnu.
apt_install qemu-user-static libc6-arm64-cross
sysroot=/usr/aarch64-linux-gnu
runner="qemu-aarch64-static -L $sysroot"

start=$(date +%s)
case $route in
  zig)
    if ! command -v cargo-zigbuild >/dev/null 2>&1; then
      # A venv of its own: Debian 12's system pip refuses installs (PEP 668).
      venv=$PWD/target/zigbuild-venv
      python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
      "$venv/bin/pip" install -q ziglang cargo-zigbuild
      export PATH=$venv/bin:$PATH
    fi
    # `target.2.31` asks zig for glibc 2.31's symbol versions.
    build=(cargo zigbuild --release --locked --target "$target.$glibc_floor")
    ;;
  gcc)
    apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    build=(cargo build --release --locked --target "$target")
    ;;
esac
"${build[@]}" --bin biofeedd
bin=target/$target/release/biofeedd
echo "== built $bin with the $route route in $(( $(date +%s) - start )) s"
file "$bin" 2>/dev/null || true

# The newest glibc symbol version the binary needs is its floor.
needs=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
echo "== glibc floor: ${needs#GLIBC_} (needed symbol versions up to $needs)"
if [ $route = zig ] && [ "$(printf '%s\n' "${needs#GLIBC_}" "$glibc_floor" | sort -V | tail -1)" != "$glibc_floor" ]; then
  echo "FAIL: the zig route must not need more than glibc $glibc_floor" >&2
  exit 1
fi
stripped=$(mktemp)
aarch64-linux-gnu-strip -o "$stripped" "$bin" 2>/dev/null || llvm-strip -o "$stripped" "$bin" 2>/dev/null \
  || python3 -m ziglang objcopy --strip-all "$bin" "$stripped"
echo "== stripped size: $(stat -c %s "$stripped") bytes"
rm -f "$stripped"

echo "== the demo under qemu-aarch64 (150 s of recording, flat out)"
demo_out=$(mktemp)
$runner "$bin" --version
$runner "$bin" run --config config/demo.toml --speed max --output jsonl > "$demo_out"
lines=$(wc -l < "$demo_out")
labelled=$(grep -c '"label":"\(rest\|stress\)"' "$demo_out" || true)
echo "   $lines feedback lines, $labelled with a rest/stress answer"
rm -f "$demo_out"
[ "$lines" -ge 15 ] && [ "$labelled" -ge 10 ] || { echo "FAIL: the demo under qemu gave too little" >&2; exit 1; }

if [ -z "${SKIP_TESTS:-}" ]; then
  echo "== decoder and feature tests under qemu-aarch64"
  # cargo runs each test binary through qemu. The library's unit tests (decoders, features,
  # windows, fusion with the real models) and the property tests (decoders and windows against
  # arbitrary input); the same profile as the binary, so its dependencies are reused. The
  # fixtures are found through CARGO_MANIFEST_DIR, compiled in: this checkout.
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$runner"
  case $route in
    zig) tests=(cargo-zigbuild test --release --locked --target "$target.$glibc_floor") ;;
    gcc) tests=(cargo test --release --locked --target "$target") ;;
  esac
  log=$(mktemp)
  status=0
  "${tests[@]}" --lib --test properties -- --test-threads 2 > "$log" 2>&1 || status=$?
  grep -E '^ *Running|^test result|panicked|FAILED' "$log" || true
  [ $status -eq 0 ] || { tail -40 "$log"; echo "FAIL: tests under qemu (exit $status)" >&2; exit 1; }
  rm -f "$log"
fi
echo "PASS aarch64 ($route route) in $(( $(date +%s) - start )) s"
