#!/usr/bin/env bash
# Build the biofeedd Debian package with cargo-deb, check it, and install it in a scratch
# Debian 12 root: contents and conffiles, lintian, then apt-get install / the service user /
# `biofeedd check` / the demo / purge inside a chroot. Ends with a PASS line, or a FAIL line
# saying what is wrong. Idempotent; run as root (the chroot needs it). packaging/README.md
# explains the package.
#
# Usage: packaging/build-deb.sh [--no-build] [--no-chroot] [--mirror URL]
#   --no-build   package the existing target/release/biofeedd (`cargo deb --no-build`)
#                instead of building it (a release build: fat LTO, slow on a small machine)
#   --no-chroot  stop after the contents and lintian checks
#   --mirror URL the Debian mirror for the scratch root; default: this machine's apt source
#
# The scratch root is debootstrapped once (--variant=minbase bookworm) and cached as
# target/deb-root-cache/bookworm-minbase.tar.gz; delete that file to make a fresh one.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

build=1
chroot_test=1
mirror=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --no-chroot) chroot_test=0 ;;
    --mirror) mirror=${2:?--mirror needs a URL}; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo; echo "== $*"; }
ok() { echo "  ok: $*"; }
export DEBIAN_FRONTEND=noninteractive
started=$SECONDS

apt_install() {
  apt-get update -qq
  apt-get install -y -qq "$@" >/dev/null
}

# ---------------------------------------------------------------------------------------------
step "tools"
if ! cargo deb --version >/dev/null 2>&1; then
  echo "cargo-deb missing: cargo install cargo-deb --locked"
  cargo install cargo-deb --locked
fi
need=()
command -v lintian >/dev/null 2>&1 || need+=(lintian)
command -v dpkg-deb >/dev/null 2>&1 || need+=(dpkg)
command -v strip >/dev/null 2>&1 || need+=(binutils)
if [ "$chroot_test" = 1 ]; then
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
fi
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "missing ${need[*]}; install them (apt-get install ${need[*]}) or run as root"
  echo "installing ${need[*]}"
  apt_install "${need[@]}"
fi
echo "$(cargo deb --version), $(lintian --version), dpkg-deb $(dpkg-deb --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')"

# ---------------------------------------------------------------------------------------------
step "cargo deb"
# The release profile keeps line tables (backtraces); cargo-deb keeps them unless told to strip.
deb_args=(--strip)
if [ "$build" = 0 ]; then
  [ -x target/release/biofeedd ] ||
    fail "--no-build: target/release/biofeedd does not exist; build it (cargo build --release) or drop --no-build"
  deb_args+=(--no-build)
fi
mkdir -p target/debian
rm -f target/debian/biofeedd_*.deb
cargo deb "${deb_args[@]}" | tee target/debian/cargo-deb.out
deb=$(ls target/debian/biofeedd_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] && [ -f "$deb" ] || fail "cargo deb made no target/debian/biofeedd_*.deb"
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
echo "package: $deb ($(du -k "$deb" | cut -f1) KiB)"

# ---------------------------------------------------------------------------------------------
step "contents (dpkg-deb -c)"
scratch=$(mktemp -d)
mounted=""
root=""
cleanup() {
  if [ -n "$mounted" ] && mountpoint -q "$mounted"; then umount "$mounted" || umount -l "$mounted" || true; fi
  rm -rf "$scratch"
}
trap cleanup EXIT

dpkg-deb -c "$deb" > "$scratch/contents"
# "-rwxr-xr-x root/root 12345 2026-01-01 00:00 ./usr/bin/biofeedd" -> "./usr/bin/biofeedd -rwxr-xr-x"
awk '{ print $6, $1 }' "$scratch/contents" > "$scratch/paths"
missing=()
have() { # have PATH [MODE]
  local line
  line=$(grep -E "^\./${1#/} " "$scratch/paths" || true)
  if [ -z "$line" ]; then missing+=("/${1#/}"); return; fi
  if [ -n "${2:-}" ] && [ "${line#* }" != "$2" ]; then missing+=("/${1#/} with mode $2 (is ${line#* })"); fi
}
have usr/bin/biofeedd -rwxr-xr-x
have usr/lib/systemd/system/biofeedd.service -rw-r--r--
have usr/lib/systemd/system/biofeedd-worker.service -rw-r--r--
have usr/share/dbus-1/system.d/biofeedd-bluez.conf -rw-r--r--
have etc/biofeedd/biofeedd.toml -rw-r-----
have etc/biofeedd/worker.toml -rw-r-----
for f in models/*.onnx models/*.toml; do have "usr/share/biofeedd/models/$(basename "$f")" -rw-r--r--; done
for f in schemas/*.json; do have "usr/share/biofeedd/schemas/$(basename "$f")" -rw-r--r--; done
have usr/share/biofeedd/demo/demo.toml
have usr/share/biofeedd/demo/bio_eventrelated_100hz.csv
for f in README.md ARCHITECTURE.md README.Debian copyright changelog.Debian.gz systemd/README.md; do
  have "usr/share/doc/biofeedd/$f"
done
for f in docs/*.md; do have "usr/share/doc/biofeedd/docs/$(basename "$f")"; done
for f in config/*.toml; do have "usr/share/doc/biofeedd/examples/$(basename "$f")"; done
have usr/share/lintian/overrides/biofeedd
[ ${#missing[@]} -eq 0 ] || fail "the package lacks: ${missing[*]}"
ok "$(wc -l < "$scratch/contents") entries; binary, both units, the D-Bus policy, both configs, $(ls models/*.onnx models/*.toml | wc -l) model files, $(ls schemas/*.json | wc -l) schemas, the demo, the docs"

dpkg-deb -e "$deb" "$scratch/control"
for conf in /etc/biofeedd/biofeedd.toml /etc/biofeedd/worker.toml; do
  grep -qx "$conf" "$scratch/control/conffiles" 2>/dev/null || fail "$conf is not in DEBIAN/conffiles"
done
ok "DEBIAN/conffiles: $(tr '\n' ' ' < "$scratch/control/conffiles")"
for script in postinst postrm; do
  [ -x "$scratch/control/$script" ] || fail "DEBIAN/$script is missing or not executable"
  ! grep -q '#DEBHELPER#' "$scratch/control/$script" || fail "DEBIAN/$script still has the #DEBHELPER# token"
  sh -n "$scratch/control/$script" || fail "DEBIAN/$script is not valid sh"
done
grep -q 'deb-systemd-helper' "$scratch/control/postinst" || fail "DEBIAN/postinst has no systemd fragment (#DEBHELPER#)"
grep -q 'deb-systemd-helper purge' "$scratch/control/postrm" || fail "DEBIAN/postrm has no systemd fragment"
for unit in biofeedd.service biofeedd-worker.service; do
  grep -q "$unit" "$scratch/control/postinst" || fail "DEBIAN/postinst does not handle $unit"
done
# enable = false: each unit's fragment is "dont-enable" (it re-enables only a unit that was
# enabled, after `debian-installed`); start = false: no `deb-systemd-invoke start`.
[ "$(grep -c 'deb-systemd-helper debian-installed' "$scratch/control/postinst")" -eq 2 ] ||
  fail "DEBIAN/postinst does not use the don't-enable fragment for both units"
! grep -q 'deb-systemd-invoke start' "$scratch/control/postinst" || fail "DEBIAN/postinst starts a unit on install"
ok "maintainer scripts: #DEBHELPER# replaced, both units handled, neither enabled nor started on install"

version=$(dpkg-deb -f "$deb" Version)
changelog_version=$(sed -n '1s/^biofeedd (\([^)]*\)).*/\1/p' packaging/deb/changelog)
[ "$version" = "$changelog_version" ] ||
  fail "package version $version but packaging/deb/changelog starts with $changelog_version: add a changelog entry"
ok "version $version matches packaging/deb/changelog; Depends: $(dpkg-deb -f "$deb" Depends)"
# cargo-deb takes the synopsis from Cargo.toml's [package] description and wraps it at 79
# characters: a longer one spills into the long description and apt shows it cut.
notes=()
synopsis=$(cargo metadata --no-deps --format-version 1 2>/dev/null |
  python3 -c 'import json,sys; print(next(p["description"] for p in json.load(sys.stdin)["packages"] if p["name"] == "biofeedd"))' || true)
if [ "${#synopsis}" -gt 79 ]; then
  notes+=("synopsis is ${#synopsis} characters: shorten [package] description in Cargo.toml to 79 or fewer")
  echo "  WARN: ${notes[-1]}"
fi

mkdir "$scratch/tree"
dpkg-deb -x "$deb" "$scratch/tree"
# (.debug_gdb_scripts is not debug info: an allocated section naming Rust's gdb helpers.)
if readelf -SW "$scratch/tree/usr/bin/biofeedd" | grep -qE '\.(debug_(info|line|str|abbrev|ranges|loc)|symtab) '; then
  fail "usr/bin/biofeedd still has debug sections or a symbol table: was it packaged with --strip?"
fi
ok "usr/bin/biofeedd is stripped ($(du -k "$scratch/tree/usr/bin/biofeedd" | cut -f1) KiB)"
# Each manifest names its ONNX file and its variants' manifests relative to itself.
models=$scratch/tree/usr/share/biofeedd/models
for manifest in "$models"/*.toml; do
  for ref in $(sed -n 's/^onnx = "\(.*\)"/\1/p; /^\[variants\]/,/^\[/s/^[a-z0-9_]* = "\(.*\.toml\)"/\1/p' "$manifest"); do
    [ -f "$models/$ref" ] || fail "$(basename "$manifest") names $ref, which the package does not ship beside it"
  done
done
ok "every model manifest's ONNX file and variants are shipped beside it"
# The packaged demo is config/demo.toml with the recording's path taken from its own folder.
strip_comments() { grep -v '^[[:space:]]*#' "$1" | grep -v '^[[:space:]]*$' | grep -v '^path = '; }
diff <(strip_comments config/demo.toml) <(strip_comments packaging/demo/demo.toml) >/dev/null ||
  fail "packaging/demo/demo.toml has drifted from config/demo.toml (beyond the path and comments): update it"
grep -qx 'path = "bio_eventrelated_100hz.csv"' packaging/demo/demo.toml || fail "packaging/demo/demo.toml: the path must be the csv beside it"
ok "the packaged demo config matches config/demo.toml"

# ---------------------------------------------------------------------------------------------
step "lintian"
overrides=packaging/deb/lintian-overrides
# An override without a reason is refused: each block of overrides (lines without a blank one
# between them) starts with a comment giving the reason.
awk -v file="$overrides" '
  /^[[:space:]]*$/ { reason = 0; next }
  /^[[:space:]]*#/ { reason = 1; next }
  !reason { printf "%s:%d: override without a reason comment above it: %s\n", file, NR, $0; bad = 1 }
  END { exit bad }' "$overrides" || fail "every lintian override needs a reason"
set +e
# --fail-on error: exit non-zero on E: tags that are not overridden (overridden ones print as O:).
lintian --fail-on error --display-info --show-overrides --tag-display-limit 0 "$deb" 2>&1 | tee "$scratch/lintian.out"
lintian_rc=${PIPESTATUS[0]}
set -e
errors=$(grep -c '^E: ' "$scratch/lintian.out" || true)
warnings=$(grep -c '^W: ' "$scratch/lintian.out" || true)
overridden=$(grep -c '^O: ' "$scratch/lintian.out" || true)
[ "$lintian_rc" -eq 0 ] && [ "$errors" -eq 0 ] ||
  fail "lintian: $errors error(s) (exit $lintian_rc); fix them or override them with a reason in $overrides"
ok "lintian: 0 errors, $warnings warning(s), $overridden overridden"

if [ "$chroot_test" = 0 ]; then
  echo
  [ ${#notes[@]} -eq 0 ] || printf 'WARN: %s\n' "${notes[@]}"
  echo "PASS: $(basename "$deb"): contents and lintian (chroot test skipped) in $((SECONDS - started)) s"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
step "scratch Debian 12 root"
[ "$(id -u)" = 0 ] || fail "the chroot test needs root (or pass --no-chroot)"
if [ -z "$mirror" ]; then
  # This machine's own Debian source: deb822 (.sources) or one-line (sources.list) format.
  # `|| true`: a glob that matches nothing makes cat fail, which pipefail would turn into a
  # silent exit of the whole script.
  mirror=$( { cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
    awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm( |\n|$)/ && !/debian-security/ {
           if (match($0, /URIs:[ \t]*[^ \t\n]+/)) { u = substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", u); print u; exit } }')
  if [ -z "$mirror" ]; then
    mirror=$( { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
      awk '$1 == "deb" && $0 ~ / bookworm / && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }')
  fi
  mirror=${mirror:-http://deb.debian.org/debian}
fi
# Absolute: the mount guard compares it with findmnt's absolute paths.
cache=$repo/target/deb-root-cache
tarball=$cache/bookworm-minbase.tar.gz
root=$repo/target/deb-root
mkdir -p "$cache"

# Never delete a root with something still mounted in it.
safe_rm_root() {
  local dir=$1
  [ -e "$dir" ] || return 0
  if findmnt -rn -o TARGET | grep -q "^$dir\(/\|$\)"; then
    fail "$dir has mounts under it (findmnt | grep $dir): unmount them first"
  fi
  rm -rf "$dir"
}

if [ ! -f "$tarball" ]; then
  echo "debootstrap --variant=minbase bookworm from $mirror (once; cached as $tarball)"
  t0=$SECONDS
  staging=$cache/staging
  safe_rm_root "$staging"
  debootstrap --variant=minbase bookworm "$staging" "$mirror" > "$cache/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/debootstrap.log"; fail "debootstrap failed (log: $cache/debootstrap.log)"; }
  tar -C "$staging" -czf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  safe_rm_root "$staging"
  echo "debootstrap and tar: $((SECONDS - t0)) s ($(du -k "$tarball" | cut -f1) KiB)"
else
  echo "cached root: $tarball"
fi
safe_rm_root "$root"
mkdir -p "$root"
tar -C "$root" -xzf "$tarball"
# No service may start inside the chroot; apt may fetch the package's dependencies.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mounted=$root/proc
cp "$deb" "$root/tmp/"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
# The service user, as systemd would run it (HOME is its state directory).
as_service() {
  chroot --userspec=biofeedd:biofeedd "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/var/lib/biofeedd STATE_DIRECTORY=/var/lib/biofeedd LANG=C.UTF-8 "$@"
}
pkg=/tmp/$(basename "$deb")

step "apt-get install ./$(basename "$deb") (in the chroot)"
in_root apt-get update -qq
# The `bluetooth` group as the bluez package makes it, without bluez's dependencies: postinst
# must NOT add the service user to it (BlueZ grants that group everything it offers).
in_root getent group bluetooth >/dev/null || in_root groupadd --system bluetooth
in_root apt-get install -y -q --no-install-recommends "$pkg" > "$scratch/install.log" 2>&1 ||
  { cat "$scratch/install.log"; fail "apt-get install of the package failed in the chroot"; }
grep -E -A1 '^The following NEW' "$scratch/install.log" | sed 's/^/  /'
grep -E '^Setting up' "$scratch/install.log" | sed 's/^/  /'
ok "installed with its dependencies ($(in_root dpkg-query -W -f='${Version}' biofeedd))"

step "checks in the chroot"
id_line=$(in_root id biofeedd)
echo "  $id_line"
grep -q '(dialout)' <<<"$id_line" || fail "user biofeedd is not in dialout"
grep -q '(bluetooth)' <<<"$id_line" && fail "user biofeedd is in bluetooth: BlueZ would grant it everything"
passwd_line=$(in_root getent passwd biofeedd)
[ "$(cut -d: -f6 <<<"$passwd_line")" = /var/lib/biofeedd ] || fail "biofeedd's home is not /var/lib/biofeedd: $passwd_line"
[ "$(cut -d: -f7 <<<"$passwd_line")" = /usr/sbin/nologin ] || fail "biofeedd has a login shell: $passwd_line"
[ "$(cut -d: -f3 <<<"$passwd_line")" -lt 1000 ] || fail "biofeedd is not a system user: $passwd_line"
ok "system user biofeedd (home /var/lib/biofeedd, nologin), in dialout and not in bluetooth"
for conf in /etc/biofeedd/biofeedd.toml /etc/biofeedd/worker.toml; do
  perms=$(in_root stat -c '%U:%G %a' "$conf")
  [ "$perms" = "root:biofeedd 640" ] || fail "$conf is $perms, not root:biofeedd 640"
  ok "$conf is $perms"
done
perms=$(in_root stat -c '%U:%G %a' /etc/biofeedd/credentials)
[ "$perms" = "root:root 700" ] || fail "/etc/biofeedd/credentials is $perms, not root:root 700"
ok "/etc/biofeedd/credentials is $perms"
perms=$(in_root stat -c '%U:%G %a' /var/lib/biofeedd)
[ "$perms" = "biofeedd:biofeedd 700" ] || fail "/var/lib/biofeedd is $perms, not biofeedd:biofeedd 700"
ok "/var/lib/biofeedd is $perms"
conffiles=$(in_root dpkg-query -W -f='${Conffiles}' biofeedd)
grep -q '/etc/biofeedd/biofeedd.toml' <<<"$conffiles" && grep -q '/etc/biofeedd/worker.toml' <<<"$conffiles" ||
  fail "dpkg does not list both configs as conffiles: $conffiles"
ok "dpkg lists both configs as conffiles"
for unit in biofeedd.service biofeedd-worker.service; do
  [ -f "$root/usr/lib/systemd/system/$unit" ] || fail "$unit is not installed"
  [ ! -e "$root/etc/systemd/system/multi-user.target.wants/$unit" ] || fail "$unit was enabled on install"
done
ok "both units installed in /usr/lib/systemd/system, neither enabled"

version_out=$(in_root biofeedd --version)
ok "biofeedd --version: $version_out"
in_root biofeedd check --config /etc/biofeedd/biofeedd.toml > "$scratch/check.log" 2>&1 ||
  { cat "$scratch/check.log"; fail "biofeedd check --config /etc/biofeedd/biofeedd.toml failed"; }
sed 's/^/  | /' "$scratch/check.log"
ok "biofeedd check --config /etc/biofeedd/biofeedd.toml"
# The installed models load together: the cascade from /usr/share/biofeedd/models (with the
# variants its manifests name) on the demo's sensors.
sed 's|^path = "bio_eventrelated_100hz.csv"|path = "/usr/share/biofeedd/demo/bio_eventrelated_100hz.csv"|' \
  "$root/usr/share/biofeedd/demo/demo.toml" > "$root/tmp/models.toml"
printf '\n[fusion]\nstages = ["/usr/share/biofeedd/models/stress-s0.toml", "/usr/share/biofeedd/models/stress-s1.toml", "/usr/share/biofeedd/models/stress-s2.toml"]\n' \
  >> "$root/tmp/models.toml"
in_root biofeedd check --config /tmp/models.toml > "$scratch/check.log" 2>&1 ||
  { cat "$scratch/check.log"; fail "the installed models do not load (biofeedd check --config /tmp/models.toml)"; }
grep -v ' INFO \| WARN ' "$scratch/check.log" | sed 's/^/  | /'
ok "the installed model files load as a cascade"

# The service user can read its config, and the hub config runs without hardware or broker:
# it waits for /dev/ttyUSB0 and skips MQTT.
set +e
as_service timeout 60 biofeedd run --config /etc/biofeedd/biofeedd.toml --duration 3 --output quiet > "$scratch/hub.log" 2>&1
rc=$?
set -e
sed 's/^/  | /' "$scratch/hub.log" | tail -15
[ "$rc" -eq 0 ] || fail "biofeedd run --config /etc/biofeedd/biofeedd.toml --duration 3, as user biofeedd, exited $rc"
ok "as user biofeedd: biofeedd run --config /etc/biofeedd/biofeedd.toml --duration 3 exits 0"

# The worker config loads and the worker starts serving (it retries the absent broker until
# stopped): still running after 5 s is a pass.
set +e
as_service timeout 5 biofeedd worker --config /etc/biofeedd/worker.toml > "$scratch/worker.log" 2>&1
rc=$?
set -e
sed 's/^/  | /' "$scratch/worker.log" | tail -8
[ "$rc" -eq 124 ] || fail "biofeedd worker --config /etc/biofeedd/worker.toml exited $rc before 5 s"
grep -q 'serving' "$scratch/worker.log" || fail "biofeedd worker did not say it is serving"
ok "as user biofeedd: biofeedd worker --config /etc/biofeedd/worker.toml loads and serves"

set +e
as_service timeout 300 biofeedd run --config /usr/share/biofeedd/demo/demo.toml --speed max --output quiet > "$scratch/demo.log" 2>&1
rc=$?
set -e
grep -E '^(summary|drops|cascade exits)' "$scratch/demo.log" | sed 's/^/  | /'
[ "$rc" -eq 0 ] || fail "biofeedd run --config /usr/share/biofeedd/demo/demo.toml --speed max exited $rc"
ok "biofeedd run --config /usr/share/biofeedd/demo/demo.toml --speed max --output quiet exits 0"

# Reinstalling (postinst configure with a previous version) keeps the admin's edit of a conffile.
sed -i 's/^level = "info"/level = "debug"/' "$root/etc/biofeedd/biofeedd.toml"
in_root dpkg -i "$pkg" > "$scratch/reinstall.log" 2>&1 || { cat "$scratch/reinstall.log"; fail "reinstalling the package failed"; }
grep -q '^level = "debug"' "$root/etc/biofeedd/biofeedd.toml" || fail "a reinstall overwrote the edited /etc/biofeedd/biofeedd.toml"
perms=$(in_root stat -c '%U:%G %a' /etc/biofeedd/biofeedd.toml)
[ "$perms" = "root:biofeedd 640" ] || fail "after a reinstall /etc/biofeedd/biofeedd.toml is $perms"
ok "a reinstall keeps the edited conffile and its root:biofeedd 640"

step "dpkg --purge biofeedd (in the chroot)"
in_root dpkg --purge biofeedd > "$scratch/purge.log" 2>&1 || { cat "$scratch/purge.log"; fail "dpkg --purge failed"; }
sed 's/^/  /' "$scratch/purge.log"
for gone in /var/lib/biofeedd /etc/biofeedd /usr/bin/biofeedd /usr/share/biofeedd /usr/lib/systemd/system/biofeedd.service; do
  [ ! -e "$root$gone" ] || fail "$gone is still there after the purge"
done
ok "state (/var/lib/biofeedd), config (/etc/biofeedd), binary, data and units are gone"
in_root getent passwd biofeedd >/dev/null && ok "the biofeedd user stays (Debian practice: its uid is not reused)"

umount "$root/proc"
mounted=""
safe_rm_root "$root"

echo
[ ${#notes[@]} -eq 0 ] || printf 'WARN: %s\n' "${notes[@]}"
echo "PASS: $(basename "$deb"): contents, lintian ($errors errors, $warnings warnings, $overridden overridden), install, service user, configs, check, hub run, worker, demo, reinstall and purge in a bookworm chroot; $((SECONDS - started)) s"
