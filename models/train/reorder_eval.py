#!/usr/bin/env python3
"""Does the cascade read the clock? The same cross-validation, scored on re-ordered sessions too.

    python3 models/train/reorder.py                     # writes target/stress-reordered
    models/train/.venv/bin/python models/train/reorder_eval.py --bin target/release/biofeedd

For each of `cascade.py`'s 9 subject folds, stages 0, 1 and 2 are trained exactly as there, on the
training subjects' sessions in their original order; the held-out subjects are then scored twice:
on their original sessions and on the re-ordered ones (`reorder.py`: baseline first, the other six
segments reversed). Temperatures and exit thresholds for a fold come from the other folds'
original-order predictions only (cascade.py's cross-fitting), and are applied unchanged to both
versions. A model that scores by "how long since the start" loses on the re-ordered sessions; the
issue allows at most 0.03 balanced accuracy.

Distillation and int8 variants are left out here: the question is about what the stages read,
and they read the same inputs.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cascade import (  # noqa: E402
    OUTER_FOLDS, SEED, STAGE0, SUBJECTS, cascade_prob, choose_thresholds, dataset, exits_of, fit_feature_stages,
    fit_stage2, fit_temperature, stage2_logits, stage_macs)
from common import (  # noqa: E402
    balanced_accuracy, bootstrap_ci, dump_features, grouped_folds, load_segments, logits_of, stress_prob)


def load(bin_path, folder, subjects, cache, labels, here, stage1=None):
    rows, raws = dump_features(bin_path, folder, subjects, cache, here / "features.toml", here / "raw.toml")
    names = [k for k in rows[subjects[0]][0] if k not in ("subject", "seq", "window_start", "window_end")]
    feats = stage1 or [k for k in names if not k.startswith("quality") and k != "motion"]
    X1, y, g, R = dataset(rows, raws, load_segments(labels), feats)
    return feats, X1, y, g, R


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/stress-predict"))
    ap.add_argument("--reordered", type=Path, default=Path("target/stress-reordered"))
    ap.add_argument("--bin", default="target/release/biofeedd")
    ap.add_argument("--cache", type=Path, default=Path("target/cascade-features"))
    ap.add_argument("--report", type=Path, default=Path("models/train/reorder-report.md"))
    ap.add_argument("--budget", type=float, default=0.35)
    args = ap.parse_args()
    here = Path(__file__).resolve().parent

    stage1, X1, y, g, R = load(args.bin, args.data / "Raw_data", SUBJECTS, args.cache,
                               args.data / "labels_segments.csv", here)
    present = np.mean(np.isfinite(X1), 0) >= 0.5  # as cascade.py: inputs the wrist never gives go
    stage1 = [f for f, ok in zip(stage1, present) if ok]
    X1 = X1[:, present]
    _, X1r, yr, gr, Rr = load(args.bin, args.reordered, SUBJECTS, args.cache / "reordered",
                              args.reordered / "labels.csv", here, stage1)
    col0 = [stage1.index(f) for f in STAGE0]
    X0, X0r = X1[:, col0], X1r[:, col0]
    print(f"{len(y)} original and {len(yr)} re-ordered windows", file=sys.stderr)

    keys = ["s0", "s1", "s2"]
    L = {k: np.full((len(y), 2), np.nan) for k in keys}
    Lr = {k: np.full((len(yr), 2), np.nan) for k in keys}
    folds = grouped_folds(g, OUTER_FOLDS, SEED)
    held = [np.isin(gr, np.unique(g[test])) for test in folds]
    for k, (test, test_r) in enumerate(zip(folds, held)):
        train = ~test
        st = fit_feature_stages(X0[train], X1[train], y[train], SEED)
        imp1 = st["s1"][0]
        s2 = fit_stage2(X1[train], R[train], y[train], SEED, imp1)
        for key, (A, B) in {"s0": (X0, X0r), "s1": (X1, X1r)}.items():
            imp, model = st[key]
            L[key][test] = logits_of(model, imp(A[test]))
            Lr[key][test_r] = logits_of(model, imp(B[test_r]))
        L["s2"][test] = stage2_logits(s2, imp1, X1[test], R[test])
        Lr["s2"][test_r] = stage2_logits(s2, imp1, X1r[test_r], Rr[test_r])
        print(f"fold {k}: trained", file=sys.stderr)

    macs = stage_macs(len(stage1), R.shape[1:])
    P = {k: np.full(len(y), np.nan) for k in keys + ["cascade"]}
    Pr = {k: np.full(len(yr), np.nan) for k in keys + ["cascade"]}
    for test, test_r in zip(folds, held):
        rest = ~test & np.isfinite(L["s1"][:, 0])
        other = {}
        for key in keys:
            fit_on = rest & np.isfinite(L[key][:, 0])
            t = fit_temperature(L[key][fit_on], y[fit_on])
            P[key][test] = stress_prob(L[key][test], t)
            Pr[key][test_r] = stress_prob(Lr[key][test_r], t)
            other[key] = stress_prob(L[key][rest], t)
        t0, t1 = choose_thresholds(other["s0"], other["s1"], other["s2"], y[rest], macs, args.budget)
        for probs, sel in ((P, test), (Pr, test_r)):
            stop = exits_of(probs["s0"][sel], probs["s1"][sel], probs["s2"][sel], t0, t1)
            probs["cascade"][sel] = cascade_prob(probs["s0"][sel], probs["s1"][sel], probs["s2"][sel], stop)

    def ba(yy, p, gg):
        ok = np.isfinite(p)
        lo, hi = bootstrap_ci(yy[ok], p[ok], gg[ok])
        return balanced_accuracy(yy[ok], p[ok]), lo, hi

    lines = ["# Re-ordered sessions: does the cascade read the clock?", "",
             "Generated by `models/train/reorder_eval.py` (method in its docstring): the same models, trained on "
             "original-order sessions of the other subjects, score each held-out subject's original and re-ordered "
             "session (baseline first, the other segments reversed).", "",
             f"{len(y)} original windows, {len(yr)} re-ordered (windows straddling a join are not scored).", "",
             "| model | original order | re-ordered | loss |", "|---|---|---|---|"]
    for key, label in [("s0", "stage 0"), ("s1", "stage 1"), ("s2", "stage 2 (stage 1 inputs + raw)"),
                       ("cascade", "**cascade 0 → 1 → 2**")]:
        a, b = ba(y, P[key], g), ba(yr, Pr[key], gr)
        lines.append(f"| {label} | {a[0]:.3f} ({a[1]:.3f}–{a[2]:.3f}) | {b[0]:.3f} ({b[1]:.3f}–{b[2]:.3f}) | "
                     f"{a[0] - b[0]:+.3f} |")
    lines += ["", "Intervals: subject bootstrap, 95 %. Target: loss ≤ 0.03 for the cascade."]
    text = "\n".join(lines) + "\n"
    print(text)
    args.report.write_text(text)


if __name__ == "__main__":
    main()
