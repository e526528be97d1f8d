#!/usr/bin/env python3
"""Personalised calibration: a few labelled minutes of one subject adapt that subject's decision.

    models/train/.venv/bin/python models/train/personalise.py --bin target/release/biofeedd

The generic cascade's errors on a new person look like a bias: a subject whose heart rate and
skin react weakly sits below the threshold through a whole stressor, one who reacts strongly
sits above it at rest (smoothing.py shows smoothing across windows gains nothing, so the errors
are not window noise). A clinician can record a few labelled minutes at the start of a session;
this measures what they buy, with the cascade's out-of-fold probabilities (models that never saw
the subject, `oof.py`), chronologically:

- calibration: the windows lying wholly in the last `--minutes` (2) of the rest before a stressor
  (after the 300 s baseline, so the models answer there) and in the first minutes of that
  stressor: the first one (Stroop), and separately the interview, the stressor most of the
  scored stress time comes from;
- scored: only labelled windows starting at least `--gap` (60) s after the calibration minutes
  end (hyperventilation left out as everywhere). The calibration minutes and everything before
  them are never scored. Generic and personalised are compared on exactly these windows.

Three ways to adapt the decision, each with its strength chosen on the other folds' subjects only
(nested; the smallest strength wins ties):

- offset: the logit shift putting the boundary half-way between the mean logits of the two
  calibration sets, `b = -(mean_stress + mean_rest) / 2`, times a factor k in 0..1;
- bias: a per-subject logistic intercept on top of the generic logit, fitted to the calibration
  windows (class-balanced), times k;
- head: a per-subject logistic head, intercept plus weights on four baseline-relative features
  (heart rate, skin conductance level and tonic level, skin temperature; standardised with the
  population's spread), on top of the generic logit, all L2-penalised with lambda chosen nested
  (a large lambda is the generic decision).

Result (personalise-report.md): every design loses at full strength and nested selection picks
(almost) the generic decision; so no personalised mode ships (see the README's model section).
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
LAMBDA = [1000.0, 10.0, 1.0, 0.1, 0.01]  # strongest first: ties go to the most generic
HEAD = ["z_hr_mean_bpm", "z_eda_mean_us", "z_eda_tonic_us", "z_temp_mean_c"]


def logit(p):
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def sigmoid(z):
    return 1 / (1 + np.exp(-np.clip(z, -30, 30)))


def fit_logistic(F, offset, y, lam):
    """Class-balanced logistic regression with a fixed offset (the generic logit), every
    parameter L2-penalised by `lam` (a strong penalty keeps the generic decision); Newton's
    method. Returns [weights..., intercept]."""
    A = np.hstack([F, np.ones((len(y), 1))])
    wts = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean())) / len(y)
    ridge = np.full(A.shape[1], lam + 1e-9)
    beta = np.zeros(A.shape[1])
    for _ in range(100):
        p = sigmoid(offset + A @ beta)
        step = np.linalg.solve((A * (wts * p * (1 - p))[:, None]).T @ A + np.diag(ridge),
                               A.T @ (wts * (p - y)) + ridge * beta)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def calibration(w, P, s, task, minutes, gap):
    """(rest calibration, stress calibration, scored) masks of subject `s` for stressor `task`."""
    segs = sorted(w.segs[s])
    stress = next(seg for seg in segs if seg[3] == task)
    rest = max((seg for seg in segs if seg[1] <= stress[0] and seg[2] == 0), key=lambda seg: seg[1])
    mine = (w.g == s) & np.isfinite(P)
    span = minutes * 60
    cal_r = mine & (w.start >= rest[1] - span) & (w.start + WINDOW_S <= rest[1])
    cal_s = mine & (w.start >= stress[0]) & (w.start + WINDOW_S <= stress[0] + span)
    return cal_r, cal_s, mine & w.labelled & (w.start >= stress[0] + span + gap)


def personalised_logits(w, P, Z, task, minutes, gap):
    """Per design and strength, the adapted logit of every scored window; and the scored mask."""
    L = logit(P)
    scored = np.zeros(len(P), bool)
    out = {("offset", k): L.copy() for k in SHRINK} | {("bias", k): L.copy() for k in SHRINK} | \
        {("head", lam): L.copy() for lam in LAMBDA}
    for s in sorted(set(w.g)):
        cal_r, cal_s, sel = calibration(w, P, s, task, minutes, gap)
        if not cal_r.any() or not cal_s.any():
            print(f"{s}: no calibration windows for {task}; not scored", file=sys.stderr)
            continue
        scored |= sel
        cal = cal_r | cal_s
        y = cal_s[cal].astype(float)
        offset = -(L[cal_s].mean() + L[cal_r].mean()) / 2
        bias = fit_logistic(np.zeros((cal.sum(), 0)), L[cal], y, 0.0)[-1]
        for k in SHRINK:
            out[("offset", k)][sel] += k * offset
            out[("bias", k)][sel] += k * bias
        for lam in LAMBDA:
            beta = fit_logistic(Z[cal], L[cal], y, lam)
            out[("head", lam)][sel] += Z[sel] @ beta[:-1] + beta[-1]
    return out, scored


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
    w = Windows.stress_predict(args.data, args.bin, args.cache)
    oof = cascade_oof(w, args.budget, args.cache / "oof-all-windows.npz")
    folds, P, y, g = oof.folds, oof.P["cascade"], w.y, w.g
    cols = [w.stage1.index(f) for f in HEAD]
    X = w.X1[:, cols]
    Z = np.nan_to_num((X - np.nanmean(X[w.labelled], 0)) / np.nanstd(X[w.labelled], 0))

    lines = ["# Personalised calibration", "",
             f"Generated by `models/train/personalise.py` (method in its docstring): {args.minutes:g} labelled minutes "
             f"of a stressor and of the rest before it per subject, {args.gap:g} s gap, then every later labelled "
             "window scored. Nested: the strength chosen on the other folds' subjects.", "",
             "| calibrated on | decision | strength | balanced accuracy | subject-bootstrap 95 % |", "|---|---|---|---|---|"]
    for task in ("stroop", "interview"):
        out, scored = personalised_logits(w, P, Z, task, args.minutes, args.gap)
        yy, gg = y[scored], g[scored]

        def row(decision, strength, p):
            lo, hi = bootstrap_ci(yy, p[scored], gg)
            return f"| {task} | {decision} | {strength} | {balanced_accuracy(yy, p[scored]):.3f} | {lo:.3f}–{hi:.3f} |"

        lines.append(row("generic cascade", "–", P))
        for design, grid, full in (("offset", SHRINK, 1.0), ("bias", SHRINK, 1.0), ("head", LAMBDA, LAMBDA[-1])):
            lines.append(row(design, f"{'k' if design != 'head' else 'λ'} = {full:g}", sigmoid(out[(design, full)])))
            nested, picks = np.full(len(y), np.nan), []
            for test in folds:
                other = scored & ~test
                best = max(grid, key=lambda v: balanced_accuracy(y[other], sigmoid(out[(design, v)][other])))
                picks.append(best)
                nested[test] = sigmoid(out[(design, best)][test])
            lines.append(row(design, "nested: " + ", ".join(f"{v:g}" for v in picks), nested))
        lines.append(f"| {task} | ({scored.sum()} scored windows, {len(set(gg))} subjects, stress share "
                     f"{yy.mean():.3f}) | | | |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.report.write_text(text)


if __name__ == "__main__":
    main()
