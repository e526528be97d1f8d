#!/usr/bin/env python3
"""Train biofeedd's first stress model (stress-v0) on Stress-Predict and write ONNX + manifest.

The features are exactly what the daemon computes: this script runs
`biofeedd features --format e4 --input SNN` for every subject and trains on that output, so
training and serving share one feature code.

    models/train/.venv/bin/python models/train/train.py \
        --data ../shared/data/stress-predict --bin target/release/biofeedd

Labels: the authors' 1 Hz stress/rest labels via labels_segments.csv. A window is used when at
least 90 % of it lies in one labelled segment. Hyperventilation segments are left out: they are a
breathing challenge, not an affective stressor, and their physiology (forced breathing) would
teach the model the wrong thing. Evaluation is leave-one-subject-out over S02..S28.

Everything is seeded; the same data and binary give the same bytes.
"""
import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MODEL = "stress-v0"
INPUTS = [
    "hr_mean_bpm",
    "hr_std_bpm",
    "hrv_sdnn_ms",
    "hrv_rmssd_ms",
    "hrv_pnn50",
    "eda_mean_us",
    "eda_std_us",
    "eda_slope_us_per_min",
    "scr_rate_per_min",
]
CLASSES = ["rest", "stress"]
HIDDEN = 16
SEED = 20261123
WINDOW_S, HOP_S = 60.0, 5.0
SUBJECTS = [f"S{i:02d}" for i in range(2, 29)]


def features_for(bin_path, raw_dir, subject, cache):
    out = cache / f"{subject}.csv"
    if not out.exists():
        cmd = [bin_path, "features", "--format", "e4", "--input", str(raw_dir / subject), "--output", "csv"]
        with open(out.with_suffix(".tmp"), "w") as f:
            subprocess.run(cmd, stdout=f, stderr=subprocess.DEVNULL, check=True)
        out.with_suffix(".tmp").rename(out)
    with open(out) as f:
        return list(csv.DictReader(f))


def load_segments(path):
    segs = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            segs.setdefault(r["subject"], []).append(
                (float(r["start_unix"]), float(r["end_unix"]), int(r["label"]), r["task"])
            )
    return segs


def window_label(start, end, segs):
    """Label of the segment holding >= 90 % of [start, end), or None."""
    for s, e, label, task in segs:
        overlap = min(end, e) - max(start, s)
        if overlap >= 0.9 * (end - start):
            return None if task == "hyperventilation" else label
    return None


def dataset(rows_by_subject, segs):
    X, y, g = [], [], []
    for subject, rows in rows_by_subject.items():
        for r in rows:
            label = window_label(float(r["window_start"]), float(r["window_end"]), segs.get(subject, []))
            if label is None:
                continue
            vals = [float(r[k]) if r[k] != "" else np.nan for k in INPUTS]
            if not np.all(np.isfinite(vals)):
                continue
            X.append(vals)
            y.append(label)
            g.append(subject)
    return np.array(X, dtype=np.float64), np.array(y), np.array(g)


def train_mlp(X, y, seed, epochs=1500, lr=0.01, l2=1e-3):
    """Two-layer MLP, softmax cross-entropy with balanced class weights, full-batch Adam."""
    rng = np.random.default_rng(seed)
    mean, std = X.mean(0), X.std(0) + 1e-6
    Z = (X - mean) / std
    n, d = Z.shape
    W1 = rng.normal(0, np.sqrt(2 / d), (d, HIDDEN))
    b1 = np.zeros(HIDDEN)
    W2 = rng.normal(0, np.sqrt(1 / HIDDEN), (HIDDEN, 2))
    b2 = np.zeros(2)
    params = [W1, b1, W2, b2]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    counts = np.bincount(y, minlength=2).astype(float)
    w = (n / (2 * np.maximum(counts, 1)))[y]
    Y = np.eye(2)[y]
    for t in range(1, epochs + 1):
        H = np.maximum(Z @ W1 + b1, 0)
        logits = H @ W2 + b2
        P = np.exp(logits - logits.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        G = (P - Y) * w[:, None] / w.sum()
        gW2 = H.T @ G + l2 * W2
        gb2 = G.sum(0)
        GH = (G @ W2.T) * (H > 0)
        gW1 = Z.T @ GH + l2 * W1
        gb1 = GH.sum(0)
        for i, gr in enumerate([gW1, gb1, gW2, gb2]):
            m[i] = 0.9 * m[i] + 0.1 * gr
            v[i] = 0.999 * v[i] + 0.001 * gr * gr
            params[i] -= lr * (m[i] / (1 - 0.9**t)) / (np.sqrt(v[i] / (1 - 0.999**t)) + 1e-8)
    return mean, std, params


def predict(model, X):
    mean, std, (W1, b1, W2, b2) = model
    H = np.maximum(((X - mean) / std) @ W1 + b1, 0)
    logits = H @ W2 + b2
    P = np.exp(logits - logits.max(1, keepdims=True))
    return (P / P.sum(1, keepdims=True))[:, 1]


def auroc(y, s):
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    pos = y == 1
    n1, n0 = pos.sum(), (~pos).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def metrics(y, p):
    pred = (p >= 0.5).astype(int)
    tpr = np.mean(pred[y == 1] == 1) if np.any(y == 1) else np.nan
    tnr = np.mean(pred[y == 0] == 0) if np.any(y == 0) else np.nan
    tp = np.sum((pred == 1) & (y == 1))
    f1 = 2 * tp / max(1, (2 * tp + np.sum((pred == 1) & (y == 0)) + np.sum((pred == 0) & (y == 1))))
    return {"balanced_accuracy": float(np.nanmean([tpr, tnr])), "f1": float(f1), "auroc": auroc(y, p), "n": int(len(y))}


def export_onnx(model, path):
    mean, std, (W1, b1, W2, b2) = model
    f32 = lambda a, name: numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)
    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centered"]),
        helper.make_node("Div", ["centered", "std"], ["z"]),
        helper.make_node("Gemm", ["z", "W1", "b1"], ["h_pre"]),
        helper.make_node("Relu", ["h_pre"], ["h"]),
        helper.make_node("Gemm", ["h", "W2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        MODEL,
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, len(INPUTS)])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, len(CLASSES)])],
        [f32(mean, "mean"), f32(std, "std"), f32(W1, "W1"), f32(b1, "b1"), f32(W2, "W2"), f32(b2, "b2")],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="biofeedd-train")
    m.ir_version = 8
    onnx.checker.check_model(m)
    data = m.SerializeToString()
    path.write_bytes(data)
    return data


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/stress-predict"))
    ap.add_argument("--bin", default="target/release/biofeedd")
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--cache", type=Path, default=Path("target/train-features"))
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)

    rows = {s: features_for(args.bin, args.data / "Raw_data", s, args.cache) for s in SUBJECTS}
    segs = load_segments(args.data / "labels_segments.csv")
    X, y, g = dataset(rows, segs)
    print(f"{len(y)} labelled windows from {len(set(g))} subjects; stress fraction {y.mean():.3f}", file=sys.stderr)

    # Leave-one-subject-out: every prediction comes from a model that never saw that subject.
    oof = np.zeros(len(y))
    per_subject = {}
    for s in sorted(set(g)):
        test = g == s
        model = train_mlp(X[~test], y[~test], SEED)
        oof[test] = predict(model, X[test])
        per_subject[s] = metrics(y[test], oof[test])
    pooled = metrics(y, oof)
    bal = [m["balanced_accuracy"] for m in per_subject.values() if np.isfinite(m["balanced_accuracy"])]
    print(f"LOSO pooled: {pooled}; per-subject balanced accuracy median {np.median(bal):.3f}", file=sys.stderr)

    final = train_mlp(X, y, SEED)
    onnx_path = args.out / f"{MODEL}.onnx"
    data = export_onnx(final, onnx_path)
    sha = hashlib.sha256(data).hexdigest()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
    macs = len(INPUTS) * HIDDEN + HIDDEN * len(CLASSES)
    manifest = f'''# Generated by models/train/train.py — do not edit by hand; rerun the script.
name = "{MODEL}"
version = "0.1.0"
task = "stress"
stage = 0
variant = "fp32"
onnx = "{MODEL}.onnx"
sha256 = "{sha}"
size_bytes = {len(data)}
macs = {macs}

[inputs]
features = {json.dumps(INPUTS)}

[outputs]
classes = {json.dumps(CLASSES)}

[window]
length_s = {WINDOW_S}
hop_s = {HOP_S}

[training]
data = "Stress-Predict (Empatica E4 wrist, MIT) {SUBJECTS[0]}..{SUBJECTS[-1]}, authors' labels, hyperventilation excluded, windows >= 90 % in one segment"
command = "models/train/.venv/bin/python models/train/train.py --data ../shared/data/stress-predict --bin target/release/biofeedd"
commit = "{commit}"
seed = {SEED}

# Leave-one-subject-out over {len(set(g))} subjects, pooled over {pooled["n"]} windows.
[metrics]
evaluation = "leave-one-subject-out"
balanced_accuracy = {pooled["balanced_accuracy"]:.4f}
f1 = {pooled["f1"]:.4f}
auroc = {pooled["auroc"]:.4f}
windows = {pooled["n"]}
subject_balanced_accuracy_median = {float(np.median(bal)):.4f}
'''
    (args.out / f"{MODEL}.toml").write_text(manifest)
    report = ["| subject | windows | balanced accuracy | F1 | AUROC |", "|---|---|---|---|---|"]
    for s, m in per_subject.items():
        report.append(f"| {s} | {m['n']} | {m['balanced_accuracy']:.3f} | {m['f1']:.3f} | {m['auroc']:.3f} |")
    report.append(f"| **pooled** | {pooled['n']} | {pooled['balanced_accuracy']:.3f} | {pooled['f1']:.3f} | {pooled['auroc']:.3f} |")
    (args.out / "train" / f"{MODEL}-report.md").write_text(
        f"# {MODEL}: leave-one-subject-out results\n\nGenerated by `models/train/train.py`.\n\n" + "\n".join(report) + "\n"
    )
    print(f"wrote {onnx_path} ({len(data)} bytes, sha256 {sha[:12]}…) and its manifest", file=sys.stderr)


if __name__ == "__main__":
    main()
