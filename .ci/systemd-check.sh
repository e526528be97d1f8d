#!/usr/bin/env bash
# The shipped systemd units and D-Bus policy: `systemd-analyze verify` must have nothing to say
# about either unit, each unit's `systemd-analyze security` exposure must stay at or below 1.5
# (the worker's at or below the hub's), and systemd/biofeedd-bluez.conf must be a policy the
# D-Bus daemon accepts. Needs systemd >= 252 (systemd-analyze); runs without systemd as PID 1.
#
# Usage: .ci/systemd-check.sh [path/to/biofeedd]   (default: target/debug/biofeedd)
#
# verify checks that ExecStart=/ExecReload= binaries exist, so the units are checked inside a
# throwaway root: the host's own unit directory (the targets and modprobe@.service the units
# order against), the host's kill (ExecReload=/bin/kill), the given biofeedd as /usr/bin/biofeedd
# and our units where the package puts them; `--root=` makes systemd-analyze look there only.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
binary=${1:-$repo/target/debug/biofeedd}
# systemd-analyze's --threshold is in tenths: 15 means an exposure of 1.5.
max_tenths=15
units=(biofeedd.service biofeedd-worker.service)
policy=$repo/systemd/biofeedd-bluez.conf

fail() { echo "FAIL: $*" >&2; exit 1; }
tenths() { echo "$(($1 / 10)).$(($1 % 10))"; }

[ -x "$binary" ] || fail "$binary is not an executable file (build it, or pass one as the first argument)"
# systemd-analyze and the host's unit directory come with systemd; /bin/kill with procps.
need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ -x /usr/bin/kill ] || [ -x /bin/kill ] || need+=(procps)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
version=$(systemd-analyze --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')
[ -n "$version" ] && [ "$version" -ge 252 ] || fail "systemd-analyze $version: need 252 or later (--offline, --root, --threshold)"
host_units=/usr/lib/systemd/system
[ -f "$host_units/multi-user.target" ] || fail "$host_units has no multi-user.target: no systemd unit directory to verify against"
kill_bin=/usr/bin/kill
[ -x "$kill_bin" ] || kill_bin=/bin/kill
[ -x "$kill_bin" ] || fail "no kill binary (procps) for ExecReload=/bin/kill"

root=$(mktemp -d)
dbus_pid=""
cleanup() {
  [ -n "$dbus_pid" ] && kill "$dbus_pid" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT

# A merged-/usr root, as on Debian 12: /bin, /sbin and /lib are links into /usr.
mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib/systemd" "$root/etc/systemd/system"
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
cp -a "$host_units" "$root/usr/lib/systemd/system"
install -m 0755 "$binary" "$root/usr/bin/biofeedd"
install -m 0755 "$kill_bin" "$root/usr/bin/kill"
for unit in "${units[@]}"; do
  install -m 0644 "$repo/systemd/$unit" "$root/usr/lib/systemd/system/$unit"
done

echo "== systemd-analyze verify ($(systemd-analyze --version | head -1))"
# --recursive-errors=no: exit non-zero on any warning about our units (without the option,
# verify exits 0 after warnings such as an unknown key). Any line naming our units fails too.
set +e
verify_out=$(systemd-analyze verify --root="$root" --recursive-errors=no --man=no "${units[@]}" 2>&1)
verify_rc=$?
set -e
[ -n "$verify_out" ] && echo "$verify_out"
[ "$verify_rc" -eq 0 ] || fail "systemd-analyze verify exited $verify_rc"
if grep -q biofeedd <<<"$verify_out"; then
  fail "systemd-analyze verify has warnings about our units"
fi
echo "verify: ${units[*]}: no warnings"

echo "== systemd-analyze security --offline=true --threshold=$max_tenths"
declare -A score
for unit in "${units[@]}"; do
  set +e
  security_out=$(systemd-analyze security --offline=true --root="$root" --threshold="$max_tenths" --no-pager "$unit" 2>&1)
  security_rc=$?
  set -e
  line=$(grep "Overall exposure level for $unit:" <<<"$security_out" || true)
  if [ -z "$line" ]; then
    echo "$security_out"
    fail "$unit: no exposure level in systemd-analyze security's output"
  fi
  # What still counts against the unit, then its score.
  grep '^✗' <<<"$security_out" | sed 's/  \+/  /g' || true
  echo "$line"
  value=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9]*\)\.\([0-9]\).*/\1\2/p' <<<"$line")
  [ -n "$value" ] || fail "$unit: cannot read the score in: $line"
  score[$unit]=$((10#$value))
  [ "${score[$unit]}" -le "$max_tenths" ] ||
    fail "$unit: exposure $(tenths "${score[$unit]}") is above $(tenths "$max_tenths")"
  [ "$security_rc" -eq 0 ] || fail "$unit: systemd-analyze security exited $security_rc (threshold $max_tenths)"
done
if [ "${score[biofeedd-worker.service]}" -gt "${score[biofeedd.service]}" ]; then
  fail "biofeedd-worker.service is exposed more than biofeedd.service; it has less to do"
fi

echo "== D-Bus policy $(basename "$policy")"
python3 - "$policy" <<'PY'
import sys
import xml.etree.ElementTree as ET
path = sys.argv[1]
root = ET.parse(path).getroot()
assert root.tag == "busconfig", f"{path}: root element is <{root.tag}>, not <busconfig>"
policies = root.findall("policy[@user='biofeedd']")
assert policies, f"{path}: no <policy user=\"biofeedd\">"
allows = [a for p in policies for a in p.findall("allow")]
assert allows and all(a.get("send_destination") == "org.bluez" for a in allows), \
    f"{path}: every <allow> must be limited to send_destination=\"org.bluez\""
assert not root.findall(".//allow[@own]"), f"{path}: biofeedd must not own a bus name"
print(f"well-formed: {len(allows)} interfaces on org.bluez for user biofeedd")
PY
# The bus daemon's own parser is stricter (unknown attributes, misplaced elements): a private
# bus that includes the policy must start. (It warns that user biofeedd is unknown on a machine
# without the package's user; that is expected here.)
if command -v dbus-daemon >/dev/null 2>&1; then
  cat > "$root/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:dir=$root</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><allow user="*"/></policy>
  <include>$policy</include>
</busconfig>
CONF
  dbus-daemon --config-file="$root/bus.conf" --nofork --nopidfile --print-address=1 \
    >"$root/bus.address" 2>"$root/bus.log" &
  dbus_pid=$!
  for _ in $(seq 50); do
    [ -s "$root/bus.address" ] && break
    kill -0 "$dbus_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -s "$root/bus.address" ]; then
    cat "$root/bus.log" >&2
    fail "dbus-daemon refuses $(basename "$policy")"
  fi
  kill "$dbus_pid" 2>/dev/null || true
  wait "$dbus_pid" 2>/dev/null || true
  dbus_pid=""
  echo "dbus-daemon $(dbus-daemon --version | sed -n '1s/.* //p') accepts it"
else
  echo "dbus-daemon not installed: XML checked only"
fi

echo "OK: exposure biofeedd.service $(tenths "${score[biofeedd.service]}"), biofeedd-worker.service $(tenths "${score[biofeedd-worker.service]}") (limit $(tenths "$max_tenths"))"
