#!/usr/bin/env python3
"""QRS detection accuracy of `biofeedd beats` against PhysioNet reference annotations, with
NeuroKit2's detectors scored by the same scorer in the same run.

    python3 benches/validation/qrs.py --db ../shared/data/mitdb [--nk] [--out benches/validation/results-mitdb.md]

Scoring (standard practice, as in EC57/bxb without the learning period): reference beats are the
annotations whose code WFDB counts as a beat (non-beat marks such as rhythm changes and noise are
excluded); ventricular flutter/fibrillation episodes (`[` … `]`, record 207 in mitdb) are left out
of scoring as EC57 prescribes; a detection matches a reference beat when within 150 ms,
one-to-one. Se = TP/(TP+FN),
+P = TP/(TP+FP), gross over all beats of all records. Channel 0 of every record.

The script creates benches/validation/.venv with the pinned reference tools on first use.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"


def ensure_venv():
    if sys.prefix == str(VENV):
        return
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(HERE / "requirements.txt")], check=True)
    os.execv(str(py), [str(py), *sys.argv])


ensure_venv()
import numpy as np  # noqa: E402
import wfdb  # noqa: E402

BEATS = set("NLRBAaJSVrFejnE/fQ?")


def score(ref, det, tol):
    """One-to-one matching of sorted sample indices within `tol` samples: (TP, FN, FP)."""
    ref, det = np.asarray(sorted(ref)), np.asarray(sorted(det))
    i = j = tp = 0
    while i < len(ref) and j < len(det):
        d = det[j] - ref[i]
        if abs(d) <= tol:
            # Prefer the closer of this detection and the next for this reference beat.
            if j + 1 < len(det) and abs(det[j + 1] - ref[i]) < abs(d):
                j += 1
                continue
            tp += 1
            i += 1
            j += 1
        elif d < 0:
            j += 1
        else:
            i += 1
    return tp, len(ref) - tp, len(det) - tp


def vf_spans(ann):
    """Ventricular flutter/fibrillation episodes, `[` to `]` (to the end if unclosed), in samples.

    ANSI/AAMI EC57 leaves these out of beat-by-beat QRS scoring: the reference annotates no beats
    inside them (only `!` flutter waves), so any detector would be charged false positives for
    every flutter wave it sees."""
    spans, start = [], None
    for s, sym in zip(ann.sample, ann.symbol):
        if sym == "[":
            start = s
        elif sym == "]" and start is not None:
            spans.append((start, s))
            start = None
    if start is not None:
        spans.append((start, float("inf")))
    return spans


def outside(indices, spans):
    return [i for i in indices if not any(a <= i <= b for a, b in spans)]


def ours(binary, record):
    out = subprocess.run([binary, "beats", "--wfdb", str(record), "--channel", "0"], capture_output=True, text=True, check=True)
    return [int(x) for x in out.stdout.split()]


def neurokit(signal, fs, method):
    """NeuroKit2 as its users run it: the method's own cleaning, then its peak detector."""
    import neurokit2 as nk

    cleaned = nk.ecg_clean(signal, sampling_rate=fs, method=method)
    _, info = nk.ecg_peaks(cleaned, sampling_rate=fs, method=method)
    return list(info["ECG_R_Peaks"])


def score_records(db, records, methods, binary, progress=True):
    """Score every detector in `methods` on `records` of `db`: per-record rows, totals (TP, FN, FP)
    and seconds spent per detector."""
    totals = {m: [0, 0, 0] for m in methods}
    seconds = {m: 0.0 for m in methods}
    rows = []
    for rec in records:
        path = Path(db) / rec
        ann = wfdb.rdann(str(path), "atr")
        vf = vf_spans(ann)
        ref = outside([s for s, sym in zip(ann.sample, ann.symbol) if sym in BEATS], vf)
        sig, fields = wfdb.rdsamp(str(path), channels=[0])
        fs = fields["fs"]
        tol = int(round(0.150 * fs))
        row = [rec, len(ref)]
        for m in methods:
            t0 = time.perf_counter()
            det = ours(binary, path) if m == "biofeedd" else neurokit(sig[:, 0], fs, m.split(":")[1])
            det = outside(det, vf)
            seconds[m] += time.perf_counter() - t0
            tp, fn, fp = score(ref, det, tol)
            for k, v in enumerate((tp, fn, fp)):
                totals[m][k] += v
            row += [fn, fp, 100 * tp / max(1, tp + fn), 100 * tp / max(1, tp + fp)]
        rows.append(row)
        if progress:
            print(" ".join(str(round(x, 2)) if isinstance(x, float) else str(x) for x in row), file=sys.stderr)
    return rows, totals, seconds


def record_table(rows, methods):
    head = "| record | beats | " + " | ".join(f"{m} FN | {m} FP | {m} Se % | {m} +P % " for m in methods) + "|"
    lines = [head, "|" + "---|" * (2 + 4 * len(methods))]
    for r in rows:
        cells = [str(r[0]), str(r[1])]
        for k in range(len(methods)):
            fn, fp, se, pp = r[2 + 4 * k : 6 + 4 * k]
            cells += [str(fn), str(fp), f"{se:.2f}", f"{pp:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def gross(tp, fn, fp):
    return 100 * tp / max(1, tp + fn), 100 * tp / max(1, tp + fp)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--bin", default="target/release/biofeedd")
    ap.add_argument("--records", nargs="*", help="default: every record with an .atr")
    ap.add_argument("--nk", action="store_true", help="also score NeuroKit2 (pantompkins1985 and its default)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    records = args.records or sorted(p.stem for p in args.db.glob("*.atr"))
    methods = ["biofeedd"] + (["nk:pantompkins1985", "nk:neurokit"] if args.nk else [])
    rows, totals, seconds = score_records(args.db, records, methods, args.bin)
    lines = record_table(rows, methods)
    lines.append("")
    lines.append("| detector | TP | FN | FP | gross Se % | gross +P % | time (s) |")
    lines.append("|---|---|---|---|---|---|---|")
    for m in methods:
        tp, fn, fp = totals[m]
        se, pp = gross(tp, fn, fp)
        lines.append(f"| {m} | {tp} | {fn} | {fp} | {se:.2f} | {pp:.2f} | {seconds[m]:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(f"# QRS detection on {args.db.name}\n\nGenerated by `python3 benches/validation/qrs.py "
                            f"--db {args.db}{' --nk' if args.nk else ''}`.\n\n" + text)


if __name__ == "__main__":
    main()
