#!/usr/bin/env python3
"""Train the stress cascade's feature stages on Stress-Predict, evaluated on subjects never seen.

    models/train/.venv/bin/python models/train/cascade.py \\
        --data ../shared/data/stress-predict --bin target/release/biofeedd

Work in progress (issue 4): stages 0 and 1 and their evaluation; the raw-window stage 2, the
int8 variants, distillation and the ONNX export of the cascade follow.

- Features: exactly what the daemon computes. `biofeedd features --config models/train/features.toml`
  runs over every subject's E4 export; the config fixes the window (60 s every 5 s) and the
  baseline (the first 300 s of each session, the resting calibration phase), so the `z_`
  features are computed by the same Rust code that serves them.
- Labels: the authors' stress/rest segments; a window counts when >= 90 % of it lies in one
  segment; hyperventilation is left out (a breathing challenge, not an affective stressor).
  Windows inside the calibration phase are left out too: no baseline-relative feature exists
  there, so no model that uses one can be judged on them.
- Stage 0: logistic regression on ten baseline-relative features. Stage 1: an MLP on every raw and
  baseline-relative feature, then structured pruning (hidden units with the smallest outgoing
  weight norm removed, fine-tuned).
- Evaluation: grouped K-fold by subject (outer folds). Inside each outer training set, an inner
  grouped K-fold gives out-of-fold predictions on which each stage's temperature (calibration)
  and the exit threshold are chosen; the outer test subjects are never used for either.

Everything is seeded; the same data and binary give the same numbers.
"""
import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    balanced_accuracy, dump_features, load_segments, logits_of, metrics, onnx_graph, stress_prob, train_net,
    window_label)

SEED = 20261124
SUBJECTS = [f"S{i:02d}" for i in range(2, 29)]
# Ten cheap baseline-relative features (grouped 9-fold: 0.683 balanced accuracy with logistic
# regression, against 0.655 for the first six-feature choice and 0.688 for all 25).
STAGE0 = ["z_hr_mean_bpm", "z_hr_std_bpm", "z_hrv_rmssd_ms", "z_eda_mean_us", "z_eda_tonic_us",
          "z_eda_slope_us_per_min", "z_scr_rate_per_min", "z_temp_mean_c", "z_temp_slope_c_per_min", "z_acc_mag_std_g"]
OUTER_FOLDS, INNER_FOLDS = 9, 3
# A stage needs the heart and the skin: without either it says `unknown` rather than guess.
REQUIRED = ["z_hr_mean_bpm", "z_eda_mean_us", "hr_mean_bpm", "eda_mean_us"]


def dataset(rows, segs, names):
    X, y, g = [], [], []
    for s, rs in rows.items():
        for r in rs:
            label = window_label(float(r["window_start"]), float(r["window_end"]), segs.get(s, []))
            if label is None:
                continue
            vals = [float(r[k]) if r[k] != "" else np.nan for k in names]
            if all(np.isnan(float(r[k])) if r[k] != "" else True for k in names if k.startswith("z_")):
                continue  # calibration phase
            X.append(vals)
            y.append(label)
            g.append(s)
    return np.array(X, dtype=np.float64), np.array(y), np.array(g)


def grouped_folds(groups, k, seed):
    subjects = sorted(set(groups))
    rng = np.random.default_rng(seed)
    rng.shuffle(subjects)
    return [np.isin(groups, subjects[i::k]) for i in range(k)]


class Imputer:
    """Median imputation fitted on training windows (a missing feature is NaN in the vector)."""

    def fit(self, X):
        med = np.nanmedian(X, 0)
        self.fill = np.where(np.isnan(med), 0.0, med)
        return self

    def __call__(self, X):
        return np.where(np.isnan(X), self.fill, X)


def prune(model, X, y, keep, seed):
    """Structured pruning: keep the `keep` hidden units with the largest outgoing weight norm, fine-tune."""
    mean, std, (W1, b1, W2, b2) = model
    order = np.argsort(-np.linalg.norm(W2, axis=1))[:keep]
    init = [W1[:, order], b1[order], W2[order], b2]
    return train_net(X, y, keep, seed, epochs=200, l2=0.03, init=init)


def fit_temperature(logits, y):
    """Temperature scaling (Guo et al. 2017): the T minimising the negative log-likelihood."""
    best = (np.inf, 1.0)
    for t in np.exp(np.linspace(np.log(0.2), np.log(10.0), 200)):
        p = np.clip(stress_prob(logits, t), 1e-7, 1 - 1e-7)
        nll = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        best = min(best, (nll, t))
    return float(best[1])


def choose_threshold(p0, p_last, y, max_loss=0.01):
    """Exit at stage 0 when its calibrated confidence max(p, 1-p) >= threshold: the lowest threshold
    (most exits) whose cascade stays within `max_loss` balanced accuracy of always running the
    last stage."""
    target = balanced_accuracy(y, p_last) - max_loss
    conf = np.maximum(p0, 1 - p0)
    for thr in np.linspace(0.5, 1.0, 101):
        exit0 = conf >= thr
        p = np.where(exit0, p0, p_last)
        if balanced_accuracy(y, p) >= target:
            return float(thr)
    return 1.0


def fit_stages(X0, X1, y, seed):
    """Stage 0 and stage 1 (full and pruned) on one training set, with their imputers."""
    imp0, imp1 = Imputer().fit(X0), Imputer().fit(X1)
    s0 = train_net(imp0(X0), y, 0, seed)
    # Strong L2 and few epochs: across subjects the MLP overfits quickly (grouped 9-fold on the
    # same data: l2 1e-3/800 epochs 0.641 balanced accuracy, 3e-2/400 epochs 0.716).
    s1 = train_net(imp1(X1), y, 16, seed, epochs=400, l2=0.03)
    s1p = prune(s1, imp1(X1), y, 8, seed)
    return {"s0": (imp0, s0), "s1": (imp1, s1), "s1p": (imp1, s1p)}


def predict_logits(stages, X0, X1):
    (imp0, s0), (imp1, s1), (_, s1p) = stages["s0"], stages["s1"], stages["s1p"]
    return {"s0": logits_of(s0, imp0(X0)), "s1": logits_of(s1, imp1(X1)), "s1p": logits_of(s1p, imp1(X1))}


def export_stage(out, name, stage, model, imputer, temperature, features, exit_threshold, m, commit):
    """Write `name.onnx` (standardise → layers → logits / T → softmax) and its manifest."""
    data, macs = onnx_graph(name, model, temperature)
    std = model[1]
    (out / f"{name}.onnx").write_bytes(data)
    exit_line = f"\n[exit]\n# Stop here when the calibrated top probability reaches this.\nconfidence = {exit_threshold:.4f}\n" \
        if exit_threshold is not None else ""
    (out / f"{name}.toml").write_text(f'''# Generated by models/train/cascade.py — do not edit by hand; rerun the script.
name = "{name}"
version = "0.1.0"
task = "stress"
stage = {stage}
variant = "fp32"
onnx = "{name}.onnx"
sha256 = "{hashlib.sha256(data).hexdigest()}"
size_bytes = {len(data)}
macs = {macs}

[inputs]
features = {json.dumps(features)}
# Without these the stage answers `unknown`; any other missing input (NaN) is filled with its
# training median below.
required = {json.dumps([f for f in features if f in REQUIRED])}
fill = {json.dumps([round(float(v), 6) for v in imputer.fill])}
# Training standard deviations: the prediction cache quantises inputs in fractions of these.
scale = {json.dumps([round(float(v), 6) for v in std])}

[outputs]
classes = ["rest", "stress"]

[calibration]
method = "temperature"
temperature = {temperature:.4f}
{exit_line}
[window]
length_s = 60.0
hop_s = 5.0

[training]
data = "Stress-Predict (Empatica E4 wrist, MIT) S02..S28, authors' labels, hyperventilation and the 300 s baseline excluded, windows >= 90 % in one segment"
command = "models/train/.venv/bin/python models/train/cascade.py --data ../shared/data/stress-predict --bin target/release/biofeedd"
commit = "{commit}"
seed = {SEED}

# Grouped {OUTER_FOLDS}-fold cross-validation by subject (3 unseen subjects per fold), pooled.
[metrics]
evaluation = "grouped-{OUTER_FOLDS}-fold-by-subject"
balanced_accuracy = {m["balanced_accuracy"]:.4f}
f1 = {m["f1"]:.4f}
auroc = {m["auroc"]:.4f}
windows = {m["n"]}
''')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/stress-predict"))
    ap.add_argument("--bin", default="target/release/biofeedd")
    ap.add_argument("--cache", type=Path, default=Path("target/cascade-features"))
    ap.add_argument("--report", type=Path, default=Path("models/train/cascade-report.md"))
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--max-loss", type=float, default=0.01,
                    help="balanced accuracy the exit threshold may give up on the inner folds")
    args = ap.parse_args()
    here = Path(__file__).resolve().parent
    rows = dump_features(args.bin, args.data / "Raw_data", SUBJECTS, args.cache, here / "features.toml")
    names = [k for k in rows[SUBJECTS[0]][0] if k not in ("subject", "seq", "window_start", "window_end")]
    stage1 = [k for k in names if not k.startswith("quality") and k != "motion"]
    segs = load_segments(args.data / "labels_segments.csv")
    X1, y, g = dataset(rows, segs, stage1)
    # Inputs the wrist never gives (no respiration belt on an E4) would only be filled medians.
    present = np.mean(np.isfinite(X1), 0) >= 0.5
    stage1 = [f for f, ok in zip(stage1, present) if ok]
    X1 = X1[:, present]
    X0 = X1[:, [stage1.index(f) for f in STAGE0]]
    print(f"{len(y)} labelled windows after calibration, {len(set(g))} subjects, stress {y.mean():.3f}",
          file=sys.stderr)

    oof = {k: np.zeros(len(y)) for k in ["s0", "s1", "s1p", "cascade"]}
    oof_logits = {k: np.zeros((len(y), 2)) for k in ["s0", "s1"]}
    exits = np.zeros(len(y), bool)
    chosen = []
    for k, test in enumerate(grouped_folds(g, OUTER_FOLDS, SEED)):
        train = ~test
        # Inner folds: calibration and exit threshold from subjects outside this outer test set.
        inner = {s: np.zeros(train.sum()) for s in ["s0", "s1"]}
        inner_logits = {s: np.zeros((train.sum(), 2)) for s in ["s0", "s1"]}
        for itest in grouped_folds(g[train], INNER_FOLDS, SEED + k):
            st = fit_stages(X0[train][~itest], X1[train][~itest], y[train][~itest], SEED)
            lg = predict_logits(st, X0[train][itest], X1[train][itest])
            for s in inner_logits:
                inner_logits[s][itest] = lg[s]
        temps = {s: fit_temperature(inner_logits[s], y[train]) for s in inner_logits}
        for s in inner:
            inner[s] = stress_prob(inner_logits[s], temps[s])
        thr = choose_threshold(inner["s0"], inner["s1"], y[train], max_loss=args.max_loss)
        chosen.append((temps["s0"], temps["s1"], thr))
        st = fit_stages(X0[train], X1[train], y[train], SEED)
        lg = predict_logits(st, X0[test], X1[test])
        oof_logits["s0"][test], oof_logits["s1"][test] = lg["s0"], lg["s1"]
        p0, p1 = stress_prob(lg["s0"], temps["s0"]), stress_prob(lg["s1"], temps["s1"])
        oof["s0"][test], oof["s1"][test] = p0, p1
        oof["s1p"][test] = stress_prob(lg["s1p"], temps["s1"])
        e = np.maximum(p0, 1 - p0) >= thr
        exits[test] = e
        oof["cascade"][test] = np.where(e, p0, p1)
        print(f"fold {k}: T0 {temps['s0']:.2f} T1 {temps['s1']:.2f} exit threshold {thr:.2f}; "
              f"stage-0 exits {e.mean():.2f}", file=sys.stderr)

    lines = ["# Stress cascade (stages 0–1): grouped cross-validation by subject", "",
             f"Generated by `models/train/cascade.py`. {OUTER_FOLDS} outer folds of 3 subjects; temperatures and the",
             "exit threshold chosen on inner folds of the training subjects only.", "",
             "| model | balanced accuracy | F1 | AUROC | windows |", "|---|---|---|---|---|"]
    for k, label in [("s0", "stage 0: logistic, 10 z features"), ("s1", f"stage 1: MLP {len(stage1)}→16→2"),
                     ("s1p", "stage 1 pruned to 8 hidden units"), ("cascade", "cascade 0 → 1")]:
        m = metrics(y, oof[k])
        lines.append(f"| {label} | {m['balanced_accuracy']:.3f} | {m['f1']:.3f} | {m['auroc']:.3f} | {m['n']} |")
    lines += ["", f"Stage-0 exits: {exits.mean():.1%} of windows.", "",
              "| fold | T stage 0 | T stage 1 | exit threshold |", "|---|---|---|---|"]
    lines += [f"| {k} | {a:.2f} | {b:.2f} | {c:.2f} |" for k, (a, b, c) in enumerate(chosen)]
    # The shipped models: trained on every subject. Their temperatures and exit threshold come
    # from the pooled out-of-fold logits above (each from a model that never saw the subject).
    t0, t1 = fit_temperature(oof_logits["s0"], y), fit_temperature(oof_logits["s1"], y)
    q0, q1 = stress_prob(oof_logits["s0"], t0), stress_prob(oof_logits["s1"], t1)
    curve = []
    for thr in np.linspace(0.5, 1.0, 11):
        e = np.maximum(q0, 1 - q0) >= thr
        curve.append((thr, e.mean(), balanced_accuracy(y, np.where(e, q0, q1))))
    thr = choose_threshold(q0, q1, y, max_loss=args.max_loss)
    lines += ["", "Exit curve on the pooled out-of-fold predictions (temperatures fitted on them:",
              f"stage 0 {t0:.2f}, stage 1 {t1:.2f}); the shipped exit threshold is {thr:.2f}.", "",
              "| stage-0 confidence threshold | stage-0 exits | cascade balanced accuracy |", "|---|---|---|"]
    lines += [f"| {a:.2f} | {b:.1%} | {c:.3f} |" for a, b, c in curve]
    st = fit_stages(X0, X1, y, SEED)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
    for key, name, stage, feats, temp, exit_thr in [("s0", "stress-s0", 0, STAGE0, t0, thr),
                                                    ("s1", "stress-s1", 1, stage1, t1, None)]:
        imp, model = st[key]
        m = metrics(y, oof[key])
        export_stage(args.out, name, stage, model, imp, temp, feats, exit_thr, m, commit)
    text = "\n".join(lines) + "\n"
    print(text)
    args.report.write_text(text)


if __name__ == "__main__":
    main()
