#!/usr/bin/env python3
"""How long after the true R peak the streaming ECG detector confirms each beat, per sampling rate.

    python3 benches/validation/beat_delay.py [--bin target/release/biofeedd] [--out benches/validation/results-beat-delay.md]

`biofeedd beats --confirmation` feeds a record to the detector one sample at a time and prints,
per beat, its R sample and how many samples it had been fed when it reported the beat. The delay
of a beat is that count over the rate minus the time of the matched reference annotation (the
cardiologists' R mark, within 150 ms): the algorithmic confirmation delay, independent of the
machine. Packetisation by a device and transport come on top (docs/beats.md).

- mitdb, all 40 records, at their native 360 Hz and resampled (wfdb.processing.resample_sig,
  annotations with resample_ann) to 130, 250, 500 and 1000 Hz;
- svdb at its native 128 Hz;
- the generated electrode-motion set at 6 dB (`nst.py --out target/nst`; skipped if absent),
  where the detector waits out rivals while its noise level is high.

Beats in a record's first 5 s are left out (the detector learns its levels from the first 2 s).
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qrs import ensure_venv  # noqa: E402  (re-executes under the pinned venv)

ensure_venv()
import numpy as np  # noqa: E402
import wfdb  # noqa: E402
import wfdb.processing  # noqa: E402
from qrs import BEATS, outside, vf_spans  # noqa: E402

RATES = [130, 250, 360, 500, 1000]
SETTLE_S = 5.0


def confirmed(binary, record):
    out = subprocess.run([binary, "beats", "--wfdb", str(record), "--channel", "0", "--confirmation"],
                         capture_output=True, text=True, check=True)
    return np.array([[int(v) for v in line.split(",")] for line in out.stdout.split()]).reshape(-1, 2)


def delays(ref, found, fs):
    """Confirmation delay (s) of every reference beat matched by a detection within 150 ms."""
    out = []
    r_found = found[:, 0] if len(found) else np.array([])
    for r in ref:
        if r / fs < SETTLE_S or not len(r_found):
            continue
        k = int(np.argmin(np.abs(r_found - r)))
        if abs(r_found[k] - r) <= 0.15 * fs:
            out.append((found[k, 1] - r) / fs)
    return out


def reference(path):
    ann = wfdb.rdann(str(path), "atr")
    vf = vf_spans(ann)
    return ann, vf, np.array(outside([s for s, sym in zip(ann.sample, ann.symbol) if sym in BEATS], vf))


def resampled(db, rec, fs, work):
    """mitdb record `rec` at `fs` Hz, written once under `work`; (path, reference beats)."""
    path = work / f"{fs}" / rec
    sig, fields = wfdb.rdsamp(str(db / rec), channels=[0])
    ann, vf, ref = reference(db / rec)
    if fs == fields["fs"]:
        return db / rec, ref
    x, _ = wfdb.processing.resample_sig(sig[:, 0], fields["fs"], fs)
    ref_ann = wfdb.processing.resample_ann(ref, fields["fs"], fs)
    if not path.with_suffix(".hea").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        wfdb.wrsamp(rec, fs=fs, units=["mV"], sig_name=["ecg"], p_signal=x[:, None], fmt=["16"],
                    write_dir=str(path.parent))
    return path, np.asarray(ref_ann)


def summary(name, d, records):
    d = np.array(d) * 1000
    late = np.mean(d > 250) * 100
    return (f"| {name} | {records} | {len(d)} | {np.median(d):.0f} | {np.percentile(d, 5):.0f}–{np.percentile(d, 95):.0f} | "
            f"{np.percentile(d, 99):.0f} | {d.max():.0f} | {late:.2f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/biofeedd")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--nst", type=Path, default=Path("target/nst"))
    ap.add_argument("--work", type=Path, default=Path("target/beat-delay"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    t0 = time.time()
    mitdb = args.data / "mitdb"
    recs = sorted(p.stem for p in mitdb.glob("*.hea"))
    rows = []
    for fs in RATES:
        d = []
        for rec in recs:
            path, ref = resampled(mitdb, rec, fs, args.work)
            d += delays(ref, confirmed(args.bin, path), fs)
        rows.append(summary(f"mitdb at {fs} Hz" + (" (native)" if fs == 360 else ""), d, len(recs)))
        print(rows[-1], file=sys.stderr)
    svdb = args.data / "svdb"
    d = []
    srecs = sorted(p.stem for p in svdb.glob("*.hea"))
    for rec in srecs:
        _, _, ref = reference(svdb / rec)
        d += delays(ref, confirmed(args.bin, svdb / rec), 128.0)
    rows.append(summary("svdb at 128 Hz (native)", d, len(srecs)))
    if (args.nst / "100e06.hea").exists():
        d = []
        for rec in recs:
            path = args.nst / f"{rec}e06"
            _, _, ref = reference(path)
            d += delays(ref, confirmed(args.bin, path), 360.0)
        rows.append(summary("generated em noise, 6 dB, 360 Hz", d, len(recs)))
    text = "\n".join([
        "# Beat confirmation delay", "",
        "Generated by `python3 benches/validation/beat_delay.py` (method in its docstring): time from the "
        "reference R peak to the streaming ECG detector's report of the beat, in ms, fed one sample at a "
        "time; beats in each record's first 5 s left out.", "",
        "| set | records | beats matched | median | 5–95 % | p99 | max | > 250 ms (%) |",
        "|---|---|---|---|---|---|---|---|", *rows, "", f"({time.time() - t0:.0f} s)", ""])
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
