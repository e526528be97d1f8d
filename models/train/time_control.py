#!/usr/bin/env python3
"""Time-in-session control: how well does *elapsed time alone* tell stress from rest on Stress-Predict?

    models/train/.venv/bin/python models/train/time_control.py \\
        --data ../shared/data/stress-predict --bin target/release/biofeedd

Every subject runs the same protocol in the same order (rest, Stroop, rest, interview, rest,
hyperventilation, rest), so "how long since the start" predicts the label without reading any
physiology. A stress model that scores no better than this control may be reading the clock
(through drifting skin temperature or tonic EDA) rather than the person.

The control sees exactly the cascade's windows (the same `biofeedd features` dump, the same labels,
calibration phase and hyperventilation left out, the same 9 subject folds and seed) and one input:
the window's centre in seconds since the subject's first labelled segment began. Its classifier is
a class-balanced Gaussian-kernel estimate of P(stress | elapsed time) over the training subjects'
windows; the bandwidth is chosen per outer fold by an inner grouped cross-validation on the
training subjects only (nested), from 5 s to 320 s.

Balanced accuracy is pooled over all out-of-fold windows, as `cascade.py` reports it; the 95 %
interval comes from resampling subjects (2000 bootstrap draws).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import balanced_accuracy, dump_features, grouped_folds, load_segments, window_label  # noqa: E402

SEED = 20261124  # cascade.py's, so the folds are its folds
SUBJECTS = [f"S{i:02d}" for i in range(2, 29)]
OUTER_FOLDS = 9
BANDWIDTHS_S = [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0]


def windows(rows, segs):
    """(elapsed seconds, label, subject) of the cascade's labelled windows past calibration."""
    t, y, g = [], [], []
    for s, rs in rows.items():
        start = min(seg[0] for seg in segs[s])
        for r in rs:
            a, b = float(r["window_start"]), float(r["window_end"])
            label = window_label(a, b, segs.get(s, []))
            if label is None:
                continue
            if all(r[k] == "" for k in r if k.startswith("z_")):
                continue  # calibration phase: the cascade has no input there either
            t.append((a + b) / 2 - start)
            y.append(label)
            g.append(s)
    return np.array(t), np.array(y), np.array(g)


def kernel_prob(t_train, y_train, t_query, h):
    """Class-balanced P(stress | t): each class's windows weigh 1/(2·its count)."""
    w = np.where(y_train == 1, 0.5 / max(1, (y_train == 1).sum()), 0.5 / max(1, (y_train == 0).sum()))
    d = (t_query[:, None] - t_train[None, :]) / h
    k = np.exp(-0.5 * d * d) * w[None, :]
    num, den = (k * (y_train == 1)).sum(1), k.sum(1)
    return np.where(den > 0, num / np.maximum(den, 1e-300), 0.5)


def choose_bandwidth(t, y, g, seed):
    """Inner grouped CV on the training subjects only."""
    folds = grouped_folds(g, min(5, len(set(g))), seed)
    best = (-1.0, BANDWIDTHS_S[0])
    for h in BANDWIDTHS_S:
        p = np.full(len(y), np.nan)
        for test in folds:
            p[test] = kernel_prob(t[~test], y[~test], t[test], h)
        best = max(best, (balanced_accuracy(y, p), -h))  # ties go to the smoother
    return -best[1]


def bootstrap_ci(y, p, g, draws=2000, seed=SEED):
    rng = np.random.default_rng(seed)
    subjects = np.array(sorted(set(g)))
    idx = {s: np.flatnonzero(g == s) for s in subjects}
    stats = []
    for _ in range(draws):
        pick = np.concatenate([idx[s] for s in rng.choice(subjects, len(subjects))])
        stats.append(balanced_accuracy(y[pick], p[pick]))
    return np.percentile(stats, [2.5, 97.5])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/stress-predict"))
    ap.add_argument("--bin", default="target/release/biofeedd")
    ap.add_argument("--cache", type=Path, default=Path("target/cascade-features"))
    ap.add_argument("--report", type=Path, default=Path("models/train/time-control-report.md"))
    args = ap.parse_args()
    here = Path(__file__).resolve().parent
    rows = dump_features(args.bin, args.data / "Raw_data", SUBJECTS, args.cache, here / "features.toml")
    segs = load_segments(args.data / "labels_segments.csv")
    t, y, g = windows(rows, segs)
    p = np.full(len(y), np.nan)
    chosen = []
    for k, test in enumerate(grouped_folds(g, OUTER_FOLDS, SEED)):
        h = choose_bandwidth(t[~test], y[~test], g[~test], SEED + k)
        chosen.append(h)
        p[test] = kernel_prob(t[~test], y[~test], t[test], h)
    ba = balanced_accuracy(y, p)
    lo, hi = bootstrap_ci(y, p, g)
    per_subject = {s: balanced_accuracy(y[g == s], p[g == s]) for s in sorted(set(g))}

    lines = [
        "# Time-in-session control",
        "",
        "Generated by `models/train/time_control.py`: a classifier that sees only the elapsed time since "
        "the session began, on the cascade's own windows, labels and subject folds (method in the script's docstring).",
        "",
        f"{len(y)} windows, {len(set(g))} subjects, stress share {y.mean():.3f}.",
        "",
        "| classifier | balanced accuracy (pooled, out of fold) | subject-bootstrap 95 % interval |",
        "|---|---|---|",
        f"| elapsed time only | **{ba:.3f}** | {lo:.3f}–{hi:.3f} |",
        "",
        f"Bandwidths chosen per outer fold (s): {', '.join(f'{h:g}' for h in chosen)}.",
        "",
        "| subject | balanced accuracy, elapsed time only |",
        "|---|---|",
    ] + [f"| {s} | {v:.3f} |" for s, v in per_subject.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    args.report.write_text(text)


if __name__ == "__main__":
    main()
