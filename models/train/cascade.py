#!/usr/bin/env python3
"""Train the stress cascade on Stress-Predict, evaluated on subjects never seen, and export it.

    models/train/.venv/bin/python models/train/cascade.py \\
        --data ../shared/data/stress-predict --bin target/release/biofeedd

- Inputs: exactly what the daemon computes. `biofeedd features --config models/train/features.toml
  --raw-spec models/train/raw.toml` runs over every subject's E4 export: the config fixes the
  window (60 s every 5 s) and the baseline (the first 300 s of each session, the resting
  calibration phase), so the `z_` features come from the same Rust code that serves them; the
  raw spec makes it dump the raw tensor stage 2 reads, prepared by the daemon's own code.
- Labels: the authors' stress/rest segments; a window counts when >= 90 % of it lies in one
  segment; hyperventilation is left out (a breathing challenge, not an affective stressor).
  Windows inside the calibration phase are left out too: no baseline-relative feature exists
  there, so no model that uses one can be judged on them.
- Stage 0: logistic regression on ten baseline-relative features. Stage 1: an MLP on every raw and
  baseline-relative feature; its pruned variant keeps the hidden units with the largest outgoing
  weights and is fine-tuned. Stage 2 (raw_stage.py): a 1-D CNN on the raw window joined with the
  features, the stage a hub short of resources offloads.
- Evaluation: grouped K-fold by subject gives every window a prediction from models that never
  saw its subject. Temperatures (calibration) and exit thresholds for the windows of fold k are
  fitted on the out-of-fold predictions of the other folds only ("cross-fitting"), so no test
  subject's label chooses anything that is applied to it.
- Distillation: stages 0 and 1 retrained on a blend of labels and stage 2's soft targets, judged
  the same way; shipped only if they gain.
- Variants: int8 (onnxruntime dynamic quantisation of MatMul/Conv only: tract gives wrong values
  for a quantised Softmax) of stages 1 and 2, and stage 1 pruned.

Everything is seeded; the same data and binary give the same numbers.
"""
import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import raw_stage  # noqa: E402
from common import (  # noqa: E402
    balanced_accuracy, dump_features, grouped_folds, load_segments, logits_of, metrics, onnx_graph, reordered_block,
    stress_prob, train_net, window_label)

SEED = 20261124
SUBJECTS = [f"S{i:02d}" for i in range(2, 29)]
# Ten cheap baseline-relative features (grouped 9-fold: 0.683 balanced accuracy with logistic
# regression, against 0.655 for the first six-feature choice and 0.688 for all 25).
STAGE0 = ["z_hr_mean_bpm", "z_hr_std_bpm", "z_hrv_rmssd_ms", "z_eda_mean_us", "z_eda_tonic_us",
          "z_eda_slope_us_per_min", "z_scr_rate_per_min", "z_temp_mean_c", "z_temp_slope_c_per_min", "z_acc_mag_std_g"]
OUTER_FOLDS = 9
# A stage needs the heart and the skin: without either it says `unknown` rather than guess.
REQUIRED = ["z_hr_mean_bpm", "z_eda_mean_us", "hr_mean_bpm", "eda_mean_us"]


def dataset(rows, raws, segs, names):
    """Labelled windows past the calibration phase: features X, labels y, subjects g, raw R."""
    X, y, g, R = [], [], [], []
    for s, rs in rows.items():
        for i, r in enumerate(rs):
            label = window_label(float(r["window_start"]), float(r["window_end"]), segs.get(s, []))
            if label is None:
                continue
            vals = [float(r[k]) if r[k] != "" else np.nan for k in names]
            if all(np.isnan(v) for k, v in zip(names, vals) if k.startswith("z_")):
                continue  # calibration phase
            X.append(vals)
            y.append(label)
            g.append(s)
            R.append(raws[s][i])
    return np.array(X, dtype=np.float64), np.array(y), np.array(g), np.array(R, dtype=np.float32)


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


def exits_of(p0, p1, p2, t0, t1):
    """Stage each window stops at: 0 when stage 0's confidence reaches t0, else 1 when stage 1's
    reaches t1, else 2 (stage 1 when stage 2 has no raw window: p2 is NaN there)."""
    stop = np.full(len(p0), 2)
    stop[np.maximum(p1, 1 - p1) >= t1] = 1
    stop[np.isnan(p2)] = 1
    stop[np.maximum(p0, 1 - p0) >= t0] = 0
    return stop


def cascade_prob(p0, p1, p2, stop):
    return np.choose(stop, [p0, p1, np.where(np.isnan(p2), p1, p2)])


def cost_of(stop, macs):
    """Mean MACs per window: every stage up to the one that answers runs."""
    cum = np.cumsum(macs)
    return float(np.mean(cum[stop]))


GRID = np.round(np.arange(0.50, 1.0001, 0.01), 2)


def choose_thresholds(p0, p1, p2, y, macs, budget):
    """(t0, t1) with the best balanced accuracy among those whose mean cost is at most `budget`
    times always running stage 2; ties go to the cheaper. Early exit then saves compute where the
    cheap stages are sure, and stage 2 looks again at the windows they are unsure of."""
    heavy = float(macs[-1])
    best = (-np.inf, 0.0, 1.0, 1.0)
    for t0 in GRID:
        for t1 in GRID:
            stop = exits_of(p0, p1, p2, t0, t1)
            cost = cost_of(stop, macs) / heavy
            if cost <= budget:
                ba = balanced_accuracy(y, cascade_prob(p0, p1, p2, stop))
                best = max(best, (round(ba, 4), -cost, float(t0), float(t1)))
    return best[2], best[3]


def stage_macs(n_stage1, raw_shape):
    """Each stage's cost in multiply-accumulates, of the shipped architectures."""
    return np.array([len(STAGE0) * 2, n_stage1 * 16 + 16 * 2, raw_stage.macs(
        (None, None, {"f": np.zeros((n_stage1, 16)), "h": np.zeros((48, 16)), "o": np.zeros((16, 2))}),
        *raw_shape)])


def fit_feature_stages(X0, X1, y, seed, soft=None):
    """Stage 0 and stage 1 (full and pruned) on one training set, with their imputers."""
    imp0, imp1 = Imputer().fit(X0), Imputer().fit(X1)
    s0 = train_net(imp0(X0), y, 0, seed, soft=soft)
    # Strong L2 and few epochs: across subjects the MLP overfits quickly (grouped 9-fold on the
    # same data: l2 1e-3/800 epochs 0.641 balanced accuracy, 3e-2/400 epochs 0.716).
    s1 = train_net(imp1(X1), y, 16, seed, epochs=400, l2=0.03, soft=soft)
    s1p = prune(s1, imp1(X1), y, 8, seed)
    return {"s0": (imp0, s0), "s1": (imp1, s1), "s1p": (imp1, s1p)}


def fit_stage2(X1, R, y, seed, imp1):
    ok = np.isfinite(R).all((1, 2))
    return raw_stage.train(R[ok], imp1(X1[ok]), y[ok], seed)


def stage2_logits(model, imp1, X1, R):
    out = np.full((len(X1), 2), np.nan)
    ok = np.isfinite(R).all((1, 2))
    if ok.any():
        out[ok] = raw_stage.logits_of(model, R[ok], imp1(X1[ok]))
    return out


def quantized(onnx_bytes):
    """int8 variant: onnxruntime dynamic quantisation of MatMul and Conv only (8-bit weights,
    activations quantised at run time); Softmax and everything else stay float. Unsigned 8-bit:
    onnxruntime has no ConvInteger kernel for signed weights."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    # Its advice to pre-process (shape inference for large models) does not apply to these.
    logging.getLogger().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        src.write_bytes(onnx_bytes)
        quantize_dynamic(src, dst, op_types_to_quantize=["MatMul", "Conv"], per_channel=True,
                         weight_type=QuantType.QUInt8)
        m = onnx.load(dst)
        # Stale shape annotations left by the quantiser confuse tract's type inference.
        del m.graph.value_info[:]
        return m.SerializeToString()


def ort_probs(onnx_bytes, X=None, R=None):
    """Stress probability of every row through onnxruntime (one window at a time, as served)."""
    import onnxruntime as ort
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    out = np.full(len(X if X is not None else R), np.nan)
    for i in range(len(out)):
        feed = {}
        if "features" in names:
            feed["features"] = X[i:i + 1].astype(np.float32)
        if "raw" in names:
            if not np.isfinite(R[i]).all():
                continue
            feed["raw"] = R[i:i + 1].astype(np.float32)
        out[i] = sess.run(None, feed)[0][0, 1]
    return out


def serving_inputs(X, feats, imp):
    """What the daemon hands a stage: rows missing a required input get no answer (mask False);
    other missing inputs take the training median."""
    req = [i for i, f in enumerate(feats) if f in REQUIRED]
    ok = np.isfinite(X[:, req]).all(1)
    return imp(X), ok


def eval_set_metrics(args, shipped, stage1, here):
    """The shipped models (through onnxruntime) on the committed evaluation set, as `biofeedd
    eval` computes them: every labelled window each model can answer, cascade included."""
    folder = args.eval_set
    subjects = sorted(p.name for p in folder.iterdir() if p.is_dir())
    with tempfile.TemporaryDirectory() as d:
        rows, raws = dump_features(args.bin, folder, subjects, Path(d), here / "features.toml", here / "raw.toml")
    names = [k for k in rows[subjects[0]][0] if k not in ("subject", "seq", "window_start", "window_end")]
    X, y, _, R = dataset(rows, raws, load_segments(folder / "labels.csv"), names)
    out = {}
    P = {}
    for name, spec in shipped.items():
        cols = [names.index(f) for f in spec["feats"]]
        Xs, ok = serving_inputs(X[:, cols], spec["feats"], spec["imp"])
        p = ort_probs(spec["onnx"][0], Xs, R if "raw" in spec else None)
        p[~ok] = np.nan
        P[name] = p
        sel = np.isfinite(p)
        out[name] = metrics(y[sel], p[sel])
    # The fp32 cascade, with the shipped thresholds.
    stop = exits_of(P["stress-s0"], P["stress-s1"], P["stress-s2"], shipped["stress-s0"]["exit"],
                    shipped["stress-s1"]["exit"])
    p = cascade_prob(P["stress-s0"], P["stress-s1"], P["stress-s2"], stop)
    sel = np.isfinite(p)
    out["cascade"] = metrics(y[sel], p[sel])
    return out


def export_stage(out, name, spec, cv, ev, commit):
    """Write `name.onnx` and its manifest."""
    data, macs = spec["onnx"]
    (out / f"{name}.onnx").write_bytes(data)
    feats, imp = spec["feats"], spec["imp"]
    exit_line = (f"\n[exit]\n# Stop here when the calibrated top probability reaches this.\nconfidence = {spec['exit']:.4f}\n"
                 if spec["exit"] is not None else "")
    raw = ""
    if "raw" in spec:
        r = spec["raw"]
        chans = ", ".join(f'{{ modality = "{c["modality"]}", transform = "{c.get("transform", "none")}" }}'
                          for c in r["channels"])
        raw = (f"\n# The raw window (second input): models/train/raw.toml, prepared by the daemon.\n[inputs.raw]\n"
               f"rate_hz = {r['rate_hz']}\nlength = {r['length']}\nchannels = [{chans}]\n")
    variants = ""
    if spec.get("variants"):
        variants = "\n# Other variants of this stage, for `Fusion::set_variant` (the governor).\n[variants]\n" + \
            "".join(f'{k} = "{v}"\n' for k, v in spec["variants"].items())
    ev_lines = ""
    if ev:
        ev_lines = (f"\n# The shipped model on the committed evaluation set (tests/data/stress-eval, in-sample:\n"
                    f"# S05 is a training subject); `biofeedd eval` reproduces these.\n[metrics.eval]\n"
                    f"balanced_accuracy = {ev['balanced_accuracy']:.4f}\nf1 = {ev['f1']:.4f}\n"
                    f"auroc = {ev['auroc']:.4f}\nwindows = {ev['n']}\n")
    sha = hashlib.sha256(data).hexdigest()
    kept = reordered_block(out / f"{name}.toml", sha)
    (out / f"{name}.toml").write_text(f'''# Generated by models/train/cascade.py — do not edit by hand; rerun the script.
name = "{name}"
version = "0.2.0"
task = "stress"
stage = {spec["stage"]}
variant = "{spec["variant"]}"
onnx = "{name}.onnx"
sha256 = "{sha}"
size_bytes = {len(data)}
macs = {macs}

[inputs]
features = {json.dumps(feats)}
# Without these the stage answers `unknown`; any other missing input (NaN) is filled with its
# training median below.
required = {json.dumps([f for f in feats if f in REQUIRED])}
fill = {json.dumps([round(float(v), 6) for v in imp.fill])}
# Training standard deviations: the prediction cache quantises inputs in fractions of these.
scale = {json.dumps([round(float(v), 6) for v in spec["std"]])}
{raw}
[outputs]
classes = ["rest", "stress"]

[calibration]
method = "temperature"
temperature = {spec["temp"]:.4f}
{exit_line}{variants}
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
balanced_accuracy = {cv["balanced_accuracy"]:.4f}
f1 = {cv["f1"]:.4f}
auroc = {cv["auroc"]:.4f}
windows = {cv["n"]}
{ev_lines}''' + kept)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/stress-predict"))
    ap.add_argument("--bin", default="target/release/biofeedd")
    ap.add_argument("--cache", type=Path, default=Path("target/cascade-features"))
    ap.add_argument("--report", type=Path, default=Path("models/train/cascade-report.md"))
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--eval-set", type=Path, default=Path("tests/data/stress-eval"),
                    help="committed recordings + labels.csv whose metrics the manifests record for `biofeedd eval`")
    ap.add_argument("--budget", type=float, default=0.35,
                    help="mean cost the cascade may spend, as a fraction of always running stage 2")
    ap.add_argument("--reuse-oof", action="store_true",
                    help="take the out-of-fold predictions from the last run's cache (threshold rules only)")
    args = ap.parse_args()
    here = Path(__file__).resolve().parent
    raw_spec = here / "raw.toml"
    rows, raws = dump_features(args.bin, args.data / "Raw_data", SUBJECTS, args.cache, here / "features.toml",
                               raw_spec)
    names = [k for k in rows[SUBJECTS[0]][0] if k not in ("subject", "seq", "window_start", "window_end")]
    stage1 = [k for k in names if not k.startswith("quality") and k != "motion"]
    segs = load_segments(args.data / "labels_segments.csv")
    X1, y, g, R = dataset(rows, raws, segs, stage1)
    # Inputs the wrist never gives (no respiration belt on an E4) would only be filled medians.
    present = np.mean(np.isfinite(X1), 0) >= 0.5
    stage1 = [f for f, ok in zip(stage1, present) if ok]
    X1 = X1[:, present]
    X0 = X1[:, [stage1.index(f) for f in STAGE0]]
    print(f"{len(y)} labelled windows after calibration, {len(set(g))} subjects, stress {y.mean():.3f}, "
          f"{np.isfinite(R).all((1, 2)).mean():.1%} with a complete raw window", file=sys.stderr)

    keys = ["s0", "s1", "s1p", "s2", "s0d", "s1d", "s1q", "s2q"]
    logits = {k: np.full((len(y), 2), np.nan) for k in keys if not k.endswith("q")}
    q_probs = {k: np.full(len(y), np.nan) for k in ["s1q", "s2q"]}
    folds = grouped_folds(g, OUTER_FOLDS, SEED)
    oof_cache = args.cache / "oof.npz"
    if args.reuse_oof:
        saved = np.load(oof_cache)
        logits = {k: saved[k] for k in logits}
        q_probs = {k: saved[k] for k in q_probs}
    for k, test in enumerate([] if args.reuse_oof else folds):
        train = ~test
        st = fit_feature_stages(X0[train], X1[train], y[train], SEED)
        imp1 = st["s1"][0]
        s2 = fit_stage2(X1[train], R[train], y[train], SEED, imp1)
        for key in ["s0", "s1", "s1p"]:
            imp, model = st[key]
            logits[key][test] = logits_of(model, imp(X0[test] if key == "s0" else X1[test]))
        logits["s2"][test] = stage2_logits(s2, imp1, X1[test], R[test])
        # Distillation: stage 2's probabilities on its own training windows as soft targets.
        teacher = stress_prob(stage2_logits(s2, imp1, X1[train], R[train]))
        teacher = np.where(np.isnan(teacher), y[train], teacher)
        sd = fit_feature_stages(X0[train], X1[train], y[train], SEED, soft=teacher)
        logits["s0d"][test] = logits_of(sd["s0"][1], sd["s0"][0](X0[test]))
        logits["s1d"][test] = logits_of(sd["s1"][1], sd["s1"][0](X1[test]))
        # int8 variants of this fold's stages, judged like the fp32 ones (temperature 1 here;
        # calibration is cross-fitted below on the logits, the same for both).
        q_probs["s1q"][test] = ort_probs(quantized(onnx_graph("q", st["s1"][1], None)[0]), imp1(X1[test]))
        q_probs["s2q"][test] = ort_probs(quantized(raw_stage.onnx_graph("q", s2, 1.0, *R.shape[1:])[0]), imp1(X1[test]),
                                         R[test])
        print(f"fold {k}: trained", file=sys.stderr)
    if not args.reuse_oof:
        np.savez(oof_cache, **logits, **q_probs)

    macs = stage_macs(len(stage1), R.shape[1:])

    # Cross-fitting: fold k's temperatures and thresholds come from the other folds' predictions.
    probs = {k: np.full(len(y), np.nan) for k in logits}
    casc = {"fp32": np.zeros(len(y)), "distilled": np.zeros(len(y))}
    stops = {"fp32": np.zeros(len(y), int), "distilled": np.zeros(len(y), int)}
    chosen = []
    for k, test in enumerate(folds):
        rest = ~test & np.isfinite(logits["s1"][:, 0])
        temps = {}
        for key in logits:
            fit_on = rest & np.isfinite(logits[key][:, 0])
            temps[key] = fit_temperature(logits[key][fit_on], y[fit_on])
            probs[key][test] = stress_prob(logits[key][test], temps[key])
        other = {key: stress_prob(logits[key][rest], temps[key]) for key in logits}
        for name, (a, b) in {"fp32": ("s0", "s1"), "distilled": ("s0d", "s1d")}.items():
            t0, t1 = choose_thresholds(other[a], other[b], other["s2"], y[rest], macs, args.budget)
            stop = exits_of(probs[a][test], probs[b][test], probs["s2"][test], t0, t1)
            stops[name][test] = stop
            casc[name][test] = cascade_prob(probs[a][test], probs[b][test], probs["s2"][test], stop)
            if name == "fp32":
                chosen.append((temps["s0"], temps["s1"], temps["s2"], t0, t1))
    s2_or_s1 = np.where(np.isnan(probs["s2"]), probs["s1"], probs["s2"])

    # ---- report
    lines = ["# Stress cascade: grouped cross-validation by subject", "",
             f"Generated by `models/train/cascade.py`. {OUTER_FOLDS} folds of 3 subjects; every window is scored",
             "by models that never saw its subject. Temperatures and exit thresholds for a fold's windows are",
             "fitted on the other folds' predictions only.", "",
             f"{len(y)} windows, {len(set(g))} subjects; stage costs {macs[0]} / {macs[1]} / {macs[2]} MACs.", "",
             "| model | balanced accuracy | F1 | AUROC |", "|---|---|---|---|"]
    table = [("s0", "stage 0: logistic, 10 z features"), ("s1", f"stage 1: MLP {len(stage1)}→16→2"),
             ("s1p", "stage 1 pruned to 8 hidden units"), ("s1q", "stage 1 int8"),
             ("s2", "stage 2: CNN on the raw window + features"), ("s2q", "stage 2 int8"),
             ("s0d", "stage 0 distilled from stage 2"), ("s1d", "stage 1 distilled from stage 2")]
    results = {}
    for key, label in table:
        p = probs.get(key, q_probs.get(key))
        ok = np.isfinite(p)
        results[key] = metrics(y[ok], p[ok])
        m = results[key]
        lines.append(f"| {label} | {m['balanced_accuracy']:.3f} | {m['f1']:.3f} | {m['auroc']:.3f} |")
    results["always2"] = metrics(y, s2_or_s1)
    for name in casc:
        results["cascade-" + name] = metrics(y, casc[name])
    for key, label in [("always2", "always stage 2 (stage 1 without a raw window)"),
                       ("cascade-fp32", "**cascade 0 → 1 → 2**"), ("cascade-distilled", "cascade, distilled 0 and 1")]:
        m = results[key]
        lines.append(f"| {label} | {m['balanced_accuracy']:.3f} | {m['f1']:.3f} | {m['auroc']:.3f} |")
    heavy = float(macs[2])
    for name in casc:
        st = stops[name]
        lines += ["", f"Cascade ({name}): exits at stage 0 / 1 / 2: "
                  f"{np.mean(st == 0):.1%} / {np.mean(st == 1):.1%} / {np.mean(st == 2):.1%}; mean cost "
                  f"{cost_of(st, macs) / heavy:.3f} × always running stage 2 (in MACs)."]
    lines += ["", "| fold | T0 | T1 | T2 | exit t0 | exit t1 |", "|---|---|---|---|---|---|"]
    lines += [f"| {k} | {a:.2f} | {b:.2f} | {c:.2f} | {d:.2f} | {e:.2f} |" for k, (a, b, c, d, e) in enumerate(chosen)]
    lines += ["", "Per subject (balanced accuracy; a subject's windows hold both classes):", "",
              "| subject | stage 1 | stage 2 | cascade |", "|---|---|---|---|"]
    for s in sorted(set(g)):
        sel = g == s
        lines.append(f"| {s} | {balanced_accuracy(y[sel], probs['s1'][sel]):.3f} | "
                     f"{balanced_accuracy(y[sel], s2_or_s1[sel]):.3f} | {balanced_accuracy(y[sel], casc['fp32'][sel]):.3f} |")

    # ---- the shipped stages: trained on every subject; temperatures and thresholds from all
    # the out-of-fold predictions (each from a model that never saw the subject).
    temps = {key: fit_temperature(logits[key][np.isfinite(logits[key][:, 0])], y[np.isfinite(logits[key][:, 0])])
             for key in ["s0", "s1", "s1p", "s2"]}
    P = {key: stress_prob(logits[key], temps[key]) for key in temps}
    t0, t1 = choose_thresholds(P["s0"], P["s1"], P["s2"], y, macs, args.budget)
    lines += ["", "Exit curve on the pooled out-of-fold predictions (temperatures fitted on them: "
              f"{temps['s0']:.2f} / {temps['s1']:.2f} / {temps['s2']:.2f}); the shipped thresholds are "
              f"t0 = {t0:.2f}, t1 = {t1:.2f}.", "",
              "| t0 | t1 | exits 0 / 1 / 2 | mean cost × always stage 2 | balanced accuracy |", "|---|---|---|---|---|"]
    for a in [0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0]:
        for b in [0.6, 0.7, 0.8, 1.0]:
            st = exits_of(P["s0"], P["s1"], P["s2"], a, b)
            lines.append(f"| {a:.2f} | {b:.2f} | {np.mean(st == 0):.0%} / {np.mean(st == 1):.0%} / "
                         f"{np.mean(st == 2):.0%} | {cost_of(st, macs) / heavy:.3f} | "
                         f"{balanced_accuracy(y, cascade_prob(P['s0'], P['s1'], P['s2'], st)):.3f} |")

    st = fit_feature_stages(X0, X1, y, SEED)
    imp1 = st["s1"][0]
    s2 = fit_stage2(X1, R, y, SEED, imp1)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
    spec = tomllib.loads(raw_spec.read_text())["raw"]
    shipped = {
        "stress-s0": dict(stage=0, variant="fp32", key="s0", feats=STAGE0, onnx=onnx_graph("stress-s0", st["s0"][1], temps["s0"]),
                          imp=st["s0"][0], exit=t0, temp=temps["s0"], std=st["s0"][1][1]),
        "stress-s1": dict(stage=1, variant="fp32", key="s1", feats=stage1, onnx=onnx_graph("stress-s1", st["s1"][1], temps["s1"]),
                          imp=imp1, exit=t1, temp=temps["s1"], std=st["s1"][1][1]),
        "stress-s2": dict(stage=2, variant="fp32", key="s2", feats=stage1, raw=spec, imp=imp1, exit=None, temp=temps["s2"], std=s2[1],
                          onnx=raw_stage.onnx_graph("stress-s2", s2, temps["s2"], *R.shape[1:])),
    }
    shipped["stress-s1-pruned"] = dict(shipped["stress-s1"], variant="pruned", key="s1p",
                                       onnx=onnx_graph("stress-s1-pruned", st["s1p"][1], temps["s1p"]), temp=temps["s1p"], std=st["s1p"][1][1])
    for parent in ["stress-s1", "stress-s2"]:
        data, n = shipped[parent]["onnx"]
        shipped[parent + "-int8"] = dict(shipped[parent], variant="int8", key=shipped[parent]["key"] + "q",
                                         onnx=(quantized(data), n))
    shipped["stress-s1"]["variants"] = {"pruned": "stress-s1-pruned.toml", "int8": "stress-s1-int8.toml"}
    shipped["stress-s2"]["variants"] = {"int8": "stress-s2-int8.toml"}
    evaluation = eval_set_metrics(args, shipped, stage1, here)
    for name, spec_ in shipped.items():
        cv = results[spec_["key"]]
        export_stage(args.out, name, spec_, cv, evaluation.get(name), commit)
    lines += ["", "Shipped models on the committed evaluation set (`biofeedd eval` reproduces these):", "",
              "| model | windows | balanced accuracy | F1 | AUROC |", "|---|---|---|---|---|"]
    for name, m in evaluation.items():
        lines.append(f"| {name} | {m['n']} | {m['balanced_accuracy']:.4f} | {m['f1']:.4f} | {m['auroc']:.4f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.report.write_text(text)


if __name__ == "__main__":
    main()
