#!/usr/bin/env python3
"""Stress-Predict sessions with their labelled segments re-ordered, as E4 export folders.

    python3 models/train/reorder.py --data ../shared/data/stress-predict --out target/stress-reordered

The time-in-session control (`time_control.py`) shows how much the protocol's fixed order gives
away. This script makes the recordings that test whether a model reads it: for every subject the
signals before and during the first (resting, calibration) segment stay first, untouched, so the
`z_` features keep their baseline; the six segments after it follow in reverse order (the long
final rest, hyperventilation, rest, interview, rest, Stroop), each cut from the original at its
labelled start and end and joined end to end, every sample kept. The joined files keep the
original start time and rate; `labels.csv` gives the segments' new times in the
`labels_segments.csv` format, so a window straddling a join belongs to no segment and is not
scored. Only the four files `biofeedd` reads are written (BVP, ACC, EDA, TEMP).

Skin temperature and tonic EDA step at each join instead of drifting: that is the point (a model
that reads drift loses its cue), and the steps are short against 60 s windows.
"""
import argparse
import csv
import gzip
from pathlib import Path

FILES = ["BVP", "ACC", "EDA", "TEMP"]


def read_e4(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        lines = f.read().splitlines()
    start = float(lines[0].split(",")[0])
    rate = float(lines[1].split(",")[0])
    return start, rate, lines[:2], lines[2:]


def find(folder: Path, stem: str):
    for name in (f"{stem}.csv", f"{stem}.csv.gz"):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"{folder}: no {stem}.csv(.gz)")


def new_order(n):
    """Segment 0 first (the baseline), then the rest reversed."""
    return [0] + list(range(n - 1, 0, -1))


def reorder_subject(folder: Path, segs, out: Path):
    """Write the re-ordered folder; return the segments' new (start, end) by original index."""
    order = new_order(len(segs))
    out.mkdir(parents=True, exist_ok=True)
    placed = {}
    for stem in FILES:
        start, rate, header, rows = read_e4(find(folder, stem))

        def index(t):
            return max(0, min(len(rows), round((t - start) * rate)))

        first = index(segs[0][0])
        kept = rows[:first]  # before the first labelled segment: unlabelled, stays in place
        for k in order:
            a, b = index(segs[k][0]), index(segs[k][1])
            if stem == "EDA":  # one file defines the new timeline (all share the segment times)
                t0 = start + len(kept) / rate
                placed[k] = (t0, t0 + (b - a) / rate)
            kept += rows[a:b]
        with open(out / f"{stem}.csv", "w") as f:
            f.write("\n".join(header + kept) + "\n")
    return placed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/stress-predict"))
    ap.add_argument("--out", type=Path, default=Path("target/stress-reordered"))
    args = ap.parse_args()
    segs = {}
    with open(args.data / "labels_segments.csv") as f:
        for r in csv.DictReader(f):
            segs.setdefault(r["subject"], []).append(r)
    labels = []
    for subject, rs in sorted(segs.items()):
        folder = args.data / "Raw_data" / subject
        if not folder.is_dir():
            continue
        rs.sort(key=lambda r: int(r["segment"]))
        times = [(float(r["start_unix"]), float(r["end_unix"])) for r in rs]
        placed = reorder_subject(folder, times, args.out / subject)
        for position, k in enumerate(new_order(len(rs))):
            a, b = placed[k]
            r = rs[k]
            labels.append({"subject": subject, "segment": position, "label": r["label"], "task": r["task"],
                           "start_unix": f"{a:.3f}", "end_unix": f"{b:.3f}", "n_seconds": f"{b - a:.0f}"})
        print(subject, " ".join(rs[k]["task"] for k in new_order(len(rs))))
    with open(args.out / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(labels[0]))
        w.writeheader()
        w.writerows(labels)


if __name__ == "__main__":
    main()
