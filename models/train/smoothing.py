#!/usr/bin/env python3
"""Causal smoothing of the cascade's probabilities across consecutive windows: how much it gains.

    models/train/.venv/bin/python models/train/smoothing.py --bin target/release/biofeedd

Stress states last minutes and windows come every 5 s, so one window's answer is a noisy reading
of a slow state. Two causal smoothers, each using only the windows up to the one it answers (what
the daemon could run):

- `ema`: an exponential average of the calibrated probability with time constant tau;
- `hmm`: a two-state forward pass: the state stays with probability 1 - switch per 5 s hop, and
  each window's calibrated probability is its evidence (the likelihood ratio p/(1-p) over the
  training prior odds).

Out-of-fold cascade probabilities are produced as `cascade.py` produces them (same 9 subject folds,
stages, cross-fitted temperatures and exit thresholds), for *every* window after the calibration
phase, labelled or not: hyperventilation and windows between segments are in the stream the
smoother sees, though only labelled windows are scored. A subject's stream restarts nowhere: a
window without an answer (a stage missing an input) leaves the smoother's state as it was.
The smoother's parameter is chosen per outer fold on the other folds' predictions only (nested),
from a fixed grid; "none" is on the grid, so smoothing is only used where it helps elsewhere.

Result (smoothing-report.md): no gain (0.714 with and without). 60 s windows every 5 s already
overlap by 92 %, so consecutive answers are smooth; the errors are whole segments of a subject
misjudged, which no causal smoother can undo. Nothing is added to the runtime for it.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import balanced_accuracy, bootstrap_ci  # noqa: E402
from oof import Windows, cascade_oof  # noqa: E402

HOP_S = 5.0
TAUS_S = [0.0, 15.0, 30.0, 60.0, 90.0, 120.0, 180.0, 240.0]
SWITCHES = [1.0, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005]  # 1.0: no memory (each window alone)


def ema(p, g, tau):
    out = p.copy()
    if tau <= 0:
        return out
    a = 1 - np.exp(-HOP_S / tau)
    state, last = None, None
    for i in range(len(p)):
        if g[i] != last:
            state, last = None, g[i]
        if np.isfinite(p[i]):
            state = p[i] if state is None else (1 - a) * state + a * p[i]
        out[i] = np.nan if state is None else state
    return out


def hmm(p, g, switch, prior):
    """Forward pass of a symmetric two-state chain; returns P(stress | windows so far)."""
    out = p.copy()
    if switch >= 1.0:
        return out
    odds0 = prior / (1 - prior)
    post, last = None, None
    for i in range(len(p)):
        if g[i] != last:
            post, last = prior, g[i]
        pred = post * (1 - switch) + (1 - post) * switch
        if np.isfinite(p[i]):
            q = np.clip(p[i], 1e-6, 1 - 1e-6)
            lr = (q / (1 - q)) / odds0
            post = pred * lr / (pred * lr + (1 - pred))
        else:
            post = pred
        out[i] = post
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/stress-predict"))
    ap.add_argument("--bin", default="target/release/biofeedd")
    ap.add_argument("--cache", type=Path, default=Path("target/cascade-features"))
    ap.add_argument("--report", type=Path, default=Path("models/train/smoothing-report.md"))
    ap.add_argument("--budget", type=float, default=0.35)
    args = ap.parse_args()
    w = Windows.stress_predict(args.data, args.bin, args.cache)
    y, g, lab = w.y, w.g, w.labelled
    print(f"{len(y)} windows after calibration, {lab.sum()} labelled", file=sys.stderr)
    oof = cascade_oof(w, args.budget, args.cache / "oof-all-windows.npz")
    folds, P = oof.folds, oof.P["cascade"]

    def score(p, sel):
        ok = sel & lab & np.isfinite(p)
        return balanced_accuracy(y[ok], p[ok])

    results, chosen = {}, {"ema": [], "hmm": []}
    prior = float(np.mean(y[lab]))
    smoothers = {"none": lambda p, _: p, "ema": lambda p, v: ema(p, g, v), "hmm": lambda p, v: hmm(p, g, v, prior)}
    grids = {"none": [None], "ema": TAUS_S, "hmm": SWITCHES}
    for name, f in smoothers.items():
        out = np.full(len(y), np.nan)
        for test in folds:
            # Nested: the parameter that does best on the other folds' out-of-fold predictions.
            best = max(grids[name], key=lambda v: (score(f(P, v), ~test), -grids[name].index(v)))
            if name != "none":
                chosen[name].append(best)
            out[test] = f(P, best)[test]
        ok = lab & np.isfinite(out)
        lo, hi = bootstrap_ci(y[ok], out[ok], g[ok])
        results[name] = (balanced_accuracy(y[ok], out[ok]), lo, hi)

    lines = ["# Causal smoothing of the cascade's probabilities", "",
             "Generated by `models/train/smoothing.py` (method in its docstring). Out-of-fold cascade "
             "probabilities over every window after calibration; labelled windows scored.", "",
             f"{len(y)} windows in the streams, {lab.sum()} labelled (hyperventilation left out of scoring).", "",
             "| smoothing | balanced accuracy | subject-bootstrap 95 % | parameter per fold |", "|---|---|---|---|"]
    for name, label in [("none", "none (each window alone)"), ("ema", "exponential average, tau (s)"),
                        ("hmm", "two-state forward pass, switch probability per hop")]:
        ba, lo, hi = results[name]
        params = ", ".join(f"{v:g}" for v in chosen.get(name, [])) or "–"
        lines.append(f"| {label} | {ba:.3f} | {lo:.3f}–{hi:.3f} | {params} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.report.write_text(text)


if __name__ == "__main__":
    main()
