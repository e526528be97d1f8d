#!/usr/bin/env python3
"""Feature extraction speed: biofeedd vs NeuroKit2 on the same 60 s window, same machine, same run.

    python3 benches/validation/features_speed.py

Runs `cargo bench --bench features` (biofeedd's FeatureExtractor on seconds 30-90 of
data/demo/bio_eventrelated_100hz.csv: ECG, EDA, RSP at 100 Hz), then times NeuroKit2 on the same
samples doing the equivalent work: ecg_process + rsp_process + eda_process + hrv_time +
hrv_frequency. Prints both medians and the ratio.
"""
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
from qrs import ensure_venv  # noqa: E402  (re-executes inside the pinned venv)

ensure_venv()
import numpy as np  # noqa: E402
import neurokit2 as nk  # noqa: E402
import warnings  # noqa: E402

warnings.filterwarnings("ignore")


def neurokit_once(ecg, rsp, eda, fs):
    signals, info = nk.ecg_process(ecg, sampling_rate=fs)
    nk.rsp_process(rsp, sampling_rate=fs)
    nk.eda_process(eda, sampling_rate=fs)
    nk.hrv_time(info["ECG_R_Peaks"], sampling_rate=fs)
    nk.hrv_frequency(info["ECG_R_Peaks"], sampling_rate=fs)


def main():
    subprocess.run(["cargo", "bench", "--bench", "features", "--", "--warm-up-time", "1", "--measurement-time", "5",
                    "ecg_eda_rsp_100hz"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)

    def estimate(bench_id):
        est = json.loads((ROOT / f"target/criterion/{bench_id}/new/estimates.json").read_text())
        m = est["median"]
        return m["point_estimate"] / 1e6, m["confidence_interval"]["lower_bound"] / 1e6, m["confidence_interval"]["upper_bound"] / 1e6

    # A fresh extractor on the whole window: the same work NeuroKit2 does below.
    ours_ms, lo, hi = estimate("features_cold_window_60s_ecg_eda_rsp_100hz")
    # What a running hub pays per window: one 5 s hop through the streaming extractor.
    hop_ms, hop_lo, hop_hi = estimate("features_hop_5s_ecg_eda_rsp_100hz")

    data = np.genfromtxt(ROOT / "data/demo/bio_eventrelated_100hz.csv", delimiter=",", names=True)
    sl = slice(3000, 9000)
    ecg, rsp, eda = data["ECG"][sl], data["RSP"][sl], data["EDA"][sl]
    neurokit_once(ecg, rsp, eda, 100)  # warm-up (imports, caches)
    runs = []
    for _ in range(int(os.environ.get("NK_RUNS", "30"))):
        t0 = time.perf_counter()
        neurokit_once(ecg, rsp, eda, 100)
        runs.append((time.perf_counter() - t0) * 1000)
    nk_ms = statistics.median(runs)
    q = statistics.quantiles(runs, n=4)
    print("| implementation | median per 60 s window | spread |")
    print("|---|---|---|")
    print(f"| biofeedd, fresh extractor on the 60 s window | {ours_ms:.3f} ms | 95 % CI {lo:.3f}-{hi:.3f} ms |")
    print(f"| biofeedd, streaming: one 5 s hop of a 60 s window | {hop_ms:.4f} ms | 95 % CI {hop_lo:.4f}-{hop_hi:.4f} ms |")
    print(f"| NeuroKit2 {nk.__version__} | {nk_ms:.1f} ms | IQR {q[0]:.1f}-{q[2]:.1f} ms ({len(runs)} runs) |")
    print(f"\nratio: a fresh biofeedd window is {nk_ms / ours_ms:.0f}x faster than NeuroKit2; "
          f"a streaming hop {nk_ms / hop_ms:.0f}x")


if __name__ == "__main__":
    main()
