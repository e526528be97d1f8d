#!/usr/bin/env bash
# What biofeedd costs a hub: stripped binary size per feature set, peak RSS with every bundled
# model loaded, idle CPU with the sensors quiet, and the time from start to READY=1.
#
#   benches/footprint.sh            # everything (two release builds, ~25 min from clean on 2 cores)
#   SKIP_BUILD=1 benches/footprint.sh   # measure target/release/biofeedd as it is (full features)
#   IDLE_S=60 RUNS=10 benches/footprint.sh
#
# Targets (issue 23): full ≤ 12 MB, minimal ≤ 6 MB stripped; RSS ≤ 20 MB; idle ≤ 0.2 % of a core;
# READY ≤ 200 ms. Figures go to stdout and target/footprint/report.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE_S=${IDLE_S:-60}
RUNS=${RUNS:-10}
out=target/footprint
mkdir -p "$out"
report="$out/report.txt"
: > "$report"
say() { echo "$*" | tee -a "$report"; }

say "# biofeedd footprint, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -m), $(nproc) cores, rustc $(rustc --version | cut -d' ' -f2)"

# --- Size per feature set ---------------------------------------------------------------------
build() { # name, cargo feature flags...
  local name=$1; shift
  if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release --locked --bin biofeedd "$@" >&2
  fi
  cp target/release/biofeedd "$out/biofeedd-$name"
  strip -o "$out/biofeedd-$name.stripped" "$out/biofeedd-$name"
  local size
  size=$(stat -c %s "$out/biofeedd-$name.stripped")
  say "size $name: $(python3 -c "print(f'{$size/1e6:.2f}')") MB stripped ($size bytes; features: ${*:-default})"
}
if [ -z "${SKIP_BUILD:-}" ]; then
  build minimal --no-default-features
fi
# The full build last, so target/release/biofeedd is the full binary the rest measures.
build full
bin="$PWD/$out/biofeedd-full"

# --- Peak RSS with every bundled model loaded -------------------------------------------------
# The demo's config runs the bundled cascade (s0, s1 with its int8 and pruned variants, s2 with
# int8: all loaded at start) over 150 s of ECG, EDA and respiration, played flat out.
python3 - "$bin" "$RUNS" <<'PY' | tee -a "$report"
import os, subprocess, sys
binary, runs = sys.argv[1], int(sys.argv[2])
peaks = []
for _ in range(max(3, runs // 2)):
    child = subprocess.Popen([binary, "run", "--config", "config/demo.toml", "--speed", "max", "--output", "quiet"],
                             stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    # wait4 gives this child's own peak, where RUSAGE_CHILDREN keeps the largest of all so far.
    _, status, usage = os.wait4(child.pid, 0)
    assert status == 0, f"demo run failed: {status}"
    peaks.append(usage.ru_maxrss)
print(f"rss demo (all models, --speed max): peak {max(peaks)/1024:.1f} MB, min {min(peaks)/1024:.1f} "
      f"({len(peaks)} runs; KiB: {peaks})")
PY

# --- Idle CPU with quiet sensors, and time to READY -------------------------------------------
python3 - "$bin" "$IDLE_S" "$RUNS" <<'PY' | tee -a "$report"
import glob, os, socket, statistics, subprocess, sys, tempfile, time, shutil
binary, idle_s, runs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])

def config(dir, serial, mqtt_port):
    mqtt = f'[mqtt]\nurl = "mqtt://127.0.0.1:{mqtt_port}"\n' if mqtt_port else ""
    text = f'''[hub]
id = "idle-hub"
[window]
length_s = 60.0
hop_s = 5.0
[features]
baseline_s = 75.0
[[sensor]]
id = "chest"
subject = "s01"
[sensor.source]
kind = "serial"
path = "{serial}"
required = false
[sensor.source.protocol]
type = "line"
rate_hz = 100.0
channels = [{{ column = 0, name = "ecg", modality = "ecg", unit = "mV" }}, {{ column = 1, name = "eda", modality = "eda", unit = "uS" }}]
{mqtt}'''
    path = os.path.join(dir, "idle.toml")
    open(path, "w").write(text)
    return path

def cpu_ns(pid):
    """CPU time per thread in nanoseconds (schedstat: exact, where /proc/PID/stat counts 10 ms ticks)."""
    out = {}
    for task in glob.glob(f"/proc/{pid}/task/*"):
        try:
            out[task] = (open(task + "/comm").read().strip(), int(open(task + "/schedstat").read().split()[0]))
        except OSError:
            pass
    return out

def start(cfg, notify=None):
    env = dict(os.environ)
    env.pop("BIOFEEDD_LOG", None)
    if notify:
        env["NOTIFY_SOCKET"] = notify
    return subprocess.Popen([binary, "run", "--config", cfg, "--output", "quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def broker():
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if not exe:
        return None, None
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    conf.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"); conf.close()
    proc = subprocess.Popen([exe, "-c", conf.name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); break
        except OSError:
            time.sleep(0.1)
    return proc, port

with tempfile.TemporaryDirectory() as dir:
    # A serial sensor that is plugged in and says nothing: a pseudo-terminal nobody writes to.
    master, slave = os.openpty()
    serial = os.ttyname(slave)
    mosq, port = broker()
    cases = [("no broker", None)] + ([("with Mosquitto on loopback", port)] if port else [])
    for name, mqtt_port in cases:
        cfg = config(dir, serial, mqtt_port)
        proc = start(cfg)
        time.sleep(5)  # models loaded, broker connected, first governor samples taken
        t0, c0 = time.monotonic(), cpu_ns(proc.pid)
        time.sleep(idle_s)
        t1, c1 = time.monotonic(), cpu_ns(proc.pid)
        proc.terminate(); proc.wait(15)
        per = {}
        for task, (comm, ns) in c1.items():
            per[comm] = per.get(comm, 0) + ns - c0.get(task, (comm, 0))[1]
        total = sum(per.values())
        share = total / 1e9 / (t1 - t0) * 100
        threads = ", ".join(f"{k} {v/1e6:.1f} ms" for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v > 0)
        print(f"idle cpu ({name}, quiet serial sensor, models loaded): {share:.3f} % of a core over {t1-t0:.0f} s ({threads})")

    # READY=1: from spawn to the datagram on NOTIFY_SOCKET (what systemd waits for).
    cfg = config(dir, serial, None)
    times = []
    for _ in range(runs):
        sock_path = os.path.join(dir, "notify.sock")
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sock_path); s.settimeout(10)
        t0 = time.monotonic()
        proc = start(cfg, sock_path)
        while True:
            msg = s.recv(4096).decode()
            if "READY=1" in msg:
                times.append((time.monotonic() - t0) * 1000); break
        proc.terminate(); proc.wait(15); s.close()
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    print(f"ready: median {statistics.median(times):.0f} ms, IQR {q[0]:.0f}–{q[2]:.0f} ms, min {min(times):.0f}, max {max(times):.0f} ({len(times)} starts, bundled models)")
    if mosq:
        mosq.terminate(); mosq.wait(5)
    os.close(master); os.close(slave)
PY
# --- Speed: one labelled E4 session through the whole cascade, flat out ------------------------
# What the release profile trades size against (docs/footprint.md compares opt-levels).
s05=../shared/data/stress-predict/Raw_data/S05
if [ -d "$s05" ]; then
  python3 - "$bin" "$s05" "$RUNS" <<'PY' | tee -a "$report"
import statistics, subprocess, sys, time
binary, s05, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = []
for _ in range(max(3, runs // 2)):
    t0 = time.monotonic()
    subprocess.run([binary, "replay", "--format", "e4", "--input", s05, "--speed", "max", "--output", "quiet"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times.append(time.monotonic() - t0)
print(f"speed: S05 E4 replay (all stages) median {statistics.median(times)*1000:.0f} ms, "
      f"min {min(times)*1000:.0f}, max {max(times)*1000:.0f} ({len(times)} runs)")
PY
fi
say "report: $report"
