#!/usr/bin/env python3
"""Personalised calibration: a few labelled minutes of one subject adapt that subject's decision.

    models/train/.venv/bin/python models/train/personalise.py --bin target/release/biofeedd

The generic cascade's errors on a new person are mostly a bias: a subject whose heart rate and
skin react weakly sits below the threshold through a whole stressor, one who reacts strongly
sits above it at rest (smoothing.py shows smoothing across windows gains nothing, so the errors
are not window noise). A clinician can record a few labelled minutes at the start of a session;
this measures what they buy.

Per subject, with the cascade's out-of-fold probabilities (models that never saw the subject,
`oof.py`), evaluated chronologically:

- calibration: the windows lying wholly in the last `--minutes` (2) of the rest before the first
  stressor (after the 300 s baseline, so the models answer there) and in the first minutes of that
  stressor (Stroop);
- the subject's offset: the logit shift that puts the decision boundary half-way between the
  mean logits of those two sets, `b = -(mean_stress + mean_rest) / 2` (no parameter to fit);
  also shrunk, `k·b`, with k from 0 (generic) to 1 chosen on the other folds' subjects only;
- scored: only labelled windows starting at least `--gap` (60) s after the calibration minutes
  end (the rest of Stroop, the interview, the rests; hyperventilation left out as everywhere).
  The calibration minutes and everything before them are never scored.

Result (personalise-report.md): the whole offset *loses* (0.720 → 0.682), and nested selection
shrinks it to nothing. Two minutes of Stroop do not predict how the same person's physiology
answers the interview: the generic model's errors on a person are not a constant bias. A
personalised mode worth shipping needs a different design (more calibration material, or a
per-subject head on the features); that is open.

Generic and personalised balanced accuracy are reported on exactly the same scored windows,
pooled, with subject-bootstrap intervals.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import balanced_accuracy, bootstrap_ci  # noqa: E402
from oof import Windows, cascade_oof  # noqa: E402

WINDOW_S = 60.0
SHRINK = [0.0, 0.25, 0.5, 0.75, 1.0]


def logit(p):
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/stress-predict"))
    ap.add_argument("--bin", default="target/release/biofeedd")
    ap.add_argument("--cache", type=Path, default=Path("target/cascade-features"))
    ap.add_argument("--report", type=Path, default=Path("models/train/personalise-report.md"))
    ap.add_argument("--budget", type=float, default=0.35)
    ap.add_argument("--minutes", type=float, default=2.0, help="labelled minutes of each class per subject")
    ap.add_argument("--gap", type=float, default=60.0, help="seconds between calibration and the first scored window")
    args = ap.parse_args()
    w = Windows(args.data, args.bin, args.cache)
    folds, P = cascade_oof(w, args.budget, args.cache / "oof-all-windows.npz")
    y, g, start = w.y, w.g, w.start

    scored = np.zeros(len(y), bool)
    Q = np.full(len(y), np.nan)
    offset = np.zeros(len(y))
    offsets = {}
    for s in sorted(set(g)):
        segs = sorted(w.segs[s])
        stress = next(seg for seg in segs if seg[3] == "stroop")
        rest = max((seg for seg in segs if seg[1] <= stress[0] and seg[2] == 0), key=lambda seg: seg[1])
        mine = (g == s) & np.isfinite(P)
        span = args.minutes * 60
        # The last minutes of the rest before the stressor, the first minutes of the stressor.
        cal_r = mine & (start >= rest[1] - span) & (start + WINDOW_S <= rest[1])
        cal_s = mine & (start >= stress[0]) & (start + WINDOW_S <= stress[0] + span)
        if cal_s.sum() == 0 or cal_r.sum() == 0:
            print(f"{s}: no calibration windows ({cal_s.sum()} stress, {cal_r.sum()} rest); not scored", file=sys.stderr)
            continue
        b = -(logit(P[cal_s]).mean() + logit(P[cal_r]).mean()) / 2
        offsets[s] = (b, int(cal_s.sum()), int(cal_r.sum()))
        sel = mine & (y >= 0) & (start >= stress[0] + span + args.gap)
        scored |= sel
        offset[sel] = b

    # Shrinkage: the offset times a factor chosen on the other folds' subjects only (0 is generic).
    def personalised(k):
        return 1 / (1 + np.exp(-(logit(P) + k * offset)))

    shrink = []
    for test in folds:
        other = scored & ~test
        k = max(SHRINK, key=lambda k: (balanced_accuracy(y[other], personalised(k)[other]), -k))
        shrink.append(k)
        Q[test & scored] = personalised(k)[test & scored]

    yy, gg = y[scored], g[scored]
    rows = []
    full = 1 / (1 + np.exp(-(logit(P) + offset)))
    for name, p in (("generic cascade", P[scored]), ("personalised, whole offset", full[scored]),
                    ("personalised, offset shrunk (factor chosen on other folds)", Q[scored])):
        lo, hi = bootstrap_ci(yy, p, gg)
        rows.append(f"| {name} | {balanced_accuracy(yy, p):.3f} | {lo:.3f}–{hi:.3f} |")
    lines = ["# Personalised calibration", "",
             "Generated by `models/train/personalise.py` (method in its docstring): "
             f"{args.minutes:g} labelled minutes of Stroop and of the rest after it per subject, "
             f"{args.gap:g} s gap, then every later labelled window scored.", "",
             f"{scored.sum()} scored windows, {len(set(gg))} subjects, stress share {yy.mean():.3f}.", "",
             "| decision | balanced accuracy | subject-bootstrap 95 % |", "|---|---|---|"] + rows + [
             "", f"Shrinkage factor per fold: {', '.join(f'{k:g}' for k in shrink)}.",
             "", "| subject | offset (logit) | calibration windows stress / rest | generic | whole offset |",
             "|---|---|---|---|---|"]
    for s, (b, ns, nr) in offsets.items():
        sel = gg == s
        lines.append(f"| {s} | {b:+.2f} | {ns} / {nr} | {balanced_accuracy(yy[sel], P[scored][sel]):.3f} | "
                     f"{balanced_accuracy(yy[sel], full[scored][sel]):.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.report.write_text(text)


if __name__ == "__main__":
    main()
