"""What every training script here shares: the features `biofeedd` dumps, the authors' labels,
the small numpy networks, their metrics and their ONNX graphs."""
import csv
import subprocess

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def dump_features(bin_path, raw_dir, subjects, cache, config, raw_spec=None):
    """`biofeedd features` over every subject's E4 export (once; cached), as dict rows; with
    `raw_spec` (a file with a [raw] table) also each window's raw tensor, as (rows, raws) where
    raws[subject] is a float32 array [windows, channels, length] aligned with the rows."""
    cache.mkdir(parents=True, exist_ok=True)
    rows, raws = {}, {}
    for s in subjects:
        out, raw_out = cache / f"{s}.csv", cache / f"{s}.raw.f32"
        if not out.exists() or (raw_spec and not raw_out.exists()):
            cmd = [bin_path, "features", "--config", str(config), "--format", "e4", "--input", str(raw_dir / s),
                   "--subject", s, "--output", "csv"]
            if raw_spec:
                cmd += ["--raw-spec", str(raw_spec), "--raw-output", str(raw_out.with_suffix(".tmp"))]
            with open(out.with_suffix(".tmp"), "w") as f:
                subprocess.run(cmd, stdout=f, stderr=subprocess.DEVNULL, check=True)
            out.with_suffix(".tmp").rename(out)
            if raw_spec:
                raw_out.with_suffix(".tmp").rename(raw_out)
        with open(out) as f:
            rows[s] = list(csv.DictReader(f))
        if raw_spec:
            raws[s] = np.fromfile(raw_out, dtype="<f4").reshape(len(rows[s]), *raw_shape(raw_spec))
    return (rows, raws) if raw_spec else rows


def raw_shape(raw_spec):
    """(channels, length) of a raw spec file."""
    import tomllib
    spec = tomllib.loads(raw_spec.read_text())["raw"]
    return len(spec["channels"]), spec["length"]


def grouped_folds(groups, k, seed):
    """K folds by subject: every subject's windows in exactly one fold (a boolean mask per fold)."""
    subjects = sorted(set(groups))
    rng = np.random.default_rng(seed)
    rng.shuffle(subjects)
    return [np.isin(groups, subjects[i::k]) for i in range(k)]


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


def train_net(X, y, hidden, seed, epochs=800, lr=0.01, l2=1e-3, init=None, soft=None):
    """Softmax classifier with an optional ReLU layer, balanced class weights, full-batch Adam.

    Returns (mean, std, params) with params [W1, b1, W2, b2] or [W, b] when hidden == 0."""
    rng = np.random.default_rng(seed)
    mean, std = X.mean(0), X.std(0) + 1e-6
    Z = (X - mean) / std
    n, d = Z.shape
    if init is not None:
        params = [p.copy() for p in init]
    elif hidden:
        params = [rng.normal(0, np.sqrt(2 / d), (d, hidden)), np.zeros(hidden),
                  rng.normal(0, np.sqrt(1 / hidden), (hidden, 2)), np.zeros(2)]
    else:
        params = [np.zeros((d, 2)), np.zeros(2)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    counts = np.bincount(y, minlength=2).astype(float)
    w = (n / (2 * np.maximum(counts, 1)))[y]
    Y = np.eye(2)[y]
    if soft is not None:
        # Distillation: the teacher's stress probability blended with the label.
        Y = 0.5 * Y + 0.5 * np.stack([1 - soft, soft], 1)
    for t in range(1, epochs + 1):
        if hidden:
            W1, b1, W2, b2 = params
            H = np.maximum(Z @ W1 + b1, 0)
            logits = H @ W2 + b2
        else:
            W, b = params
            logits = Z @ W + b
        P = np.exp(logits - logits.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        G = (P - Y) * w[:, None] / w.sum()
        if hidden:
            GH = (G @ W2.T) * (H > 0)
            grads = [Z.T @ GH + l2 * W1, GH.sum(0), H.T @ G + l2 * W2, G.sum(0)]
        else:
            grads = [Z.T @ G + l2 * W, G.sum(0)]
        for i, gr in enumerate(grads):
            m[i] = 0.9 * m[i] + 0.1 * gr
            v[i] = 0.999 * v[i] + 0.001 * gr * gr
            params[i] -= lr * (m[i] / (1 - 0.9**t)) / (np.sqrt(v[i] / (1 - 0.999**t)) + 1e-8)
    return mean, std, params


def logits_of(model, X):
    mean, std, params = model
    Z = (X - mean) / std
    if len(params) == 4:
        W1, b1, W2, b2 = params
        return np.maximum(Z @ W1 + b1, 0) @ W2 + b2
    W, b = params
    return Z @ W + b


def stress_prob(logits, temperature=1.0):
    z = logits / temperature
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    return p[:, 1] / p.sum(1)


def auroc(y, s):
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    pos = y == 1
    n1, n0 = pos.sum(), (~pos).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def balanced_accuracy(y, p):
    """Mean of the per-class recalls at 0.5; a class absent from `y` (one subject) is left out."""
    pred = (p >= 0.5).astype(int)
    tpr = np.mean(pred[y == 1] == 1) if np.any(y == 1) else np.nan
    tnr = np.mean(pred[y == 0] == 0) if np.any(y == 0) else np.nan
    return float(np.nanmean([tpr, tnr]))


def bootstrap_ci(y, p, g, draws=2000, seed=20261124):
    """95 % interval of the balanced accuracy, resampling subjects (`g`) with replacement."""
    rng = np.random.default_rng(seed)
    subjects = np.array(sorted(set(g)))
    idx = {s: np.flatnonzero(g == s) for s in subjects}
    stats = []
    for _ in range(draws):
        pick = np.concatenate([idx[s] for s in rng.choice(subjects, len(subjects))])
        stats.append(balanced_accuracy(y[pick], p[pick]))
    return np.percentile(stats, [2.5, 97.5])


def metrics(y, p):
    pred = (p >= 0.5).astype(int)
    tp = np.sum((pred == 1) & (y == 1))
    f1 = 2 * tp / max(1, (2 * tp + np.sum((pred == 1) & (y == 0)) + np.sum((pred == 0) & (y == 1))))
    return {"balanced_accuracy": balanced_accuracy(y, p), "f1": float(f1), "auroc": auroc(y, p), "n": int(len(y))}


def onnx_graph(name, model, temperature=None):
    """Serialised ONNX of standardise → layers → [logits / T] → softmax, and its MACs."""
    mean, std, params = model
    f32 = lambda a, n: numpy_helper.from_array(np.asarray(a, dtype=np.float32), n)  # noqa: E731
    inits = [f32(mean, "mean"), f32(std, "std")] + ([f32([temperature], "temperature")] if temperature else [])
    nodes = [helper.make_node("Sub", ["features", "mean"], ["centered"]),
             helper.make_node("Div", ["centered", "std"], ["z"])]
    if len(params) == 4:
        W1, b1, W2, b2 = params
        inits += [f32(W1, "W1"), f32(b1, "b1"), f32(W2, "W2"), f32(b2, "b2")]
        nodes += [helper.make_node("Gemm", ["z", "W1", "b1"], ["h_pre"]), helper.make_node("Relu", ["h_pre"], ["h"]),
                  helper.make_node("Gemm", ["h", "W2", "b2"], ["logits"])]
        macs = W1.size + W2.size
    else:
        W, b = params
        inits += [f32(W, "W"), f32(b, "b")]
        nodes += [helper.make_node("Gemm", ["z", "W", "b"], ["logits"])]
        macs = W.size
    if temperature:
        nodes += [helper.make_node("Div", ["logits", "temperature"], ["calibrated"]),
                  helper.make_node("Softmax", ["calibrated"], ["probabilities"], axis=1)]
    else:
        nodes += [helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, mean.size])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 2])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="biofeedd-train")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString(), macs


# reorder_eval.py appends its figures to the shipped manifests after this line; cascade.py keeps
# them while the model they describe (its sha256) is the same.
REORDERED_MARK = "\n# Time-in-session control"


def reordered_block(manifest_path, sha256=None):
    """The manifest's re-ordered-sessions block ("" if none, or if the model changed since)."""
    if not manifest_path.exists():
        return ""
    text = manifest_path.read_text()
    if sha256 is not None and f'sha256 = "{sha256}"' not in text:
        return ""
    i = text.find(REORDERED_MARK)
    return text[i:] if i >= 0 else ""


def set_reordered_block(manifest_path, block):
    text = manifest_path.read_text()
    i = text.find(REORDERED_MARK)
    manifest_path.write_text((text[:i] if i >= 0 else text.rstrip("\n") + "\n") + block)
