"""Out-of-fold cascade probabilities for *every* window after calibration, labelled or not, as
`cascade.py` produces them for its labelled windows: the same 9 subject folds and seed, the same
stages, temperatures and exit thresholds cross-fitted on the other folds' labelled windows.
`smoothing.py` and `personalise.py` read streams of them."""
import sys
from pathlib import Path

import numpy as np

from cascade import (
    OUTER_FOLDS, SEED, STAGE0, SUBJECTS, cascade_prob, choose_thresholds, exits_of, fit_feature_stages, fit_stage2,
    fit_temperature, stage2_logits, stage_macs)
from common import dump_features, grouped_folds, load_segments, logits_of, stress_prob, window_label


def in_hyperventilation(start, end, segs):
    """The window lies >= 90 % in a hyperventilation segment (window_label's rule)."""
    return any(task == "hyperventilation" and min(end, e) - max(start, s) >= 0.9 * (end - start)
               for s, e, _, task in segs)


class Windows:
    """Every window past calibration, in time order per subject."""

    def __init__(self, data: Path, bin_path, cache: Path, hyperventilation_is_stress=False):
        here = Path(__file__).resolve().parent
        rows, raws = dump_features(bin_path, data / "Raw_data", SUBJECTS, cache, here / "features.toml",
                                   here / "raw.toml")
        self.segs = load_segments(data / "labels_segments.csv")
        names = [k for k in rows[SUBJECTS[0]][0] if k not in ("subject", "seq", "window_start", "window_end")]
        stage1 = [k for k in names if not k.startswith("quality") and k != "motion"]
        X, y, g, R, t = [], [], [], [], []
        for s, rs in rows.items():
            for i, r in enumerate(rs):
                vals = [float(r[k]) if r[k] != "" else np.nan for k in stage1]
                if all(np.isnan(v) for k, v in zip(stage1, vals) if k.startswith("z_")):
                    continue  # calibration phase
                a, b = float(r["window_start"]), float(r["window_end"])
                label = window_label(a, b, self.segs.get(s, []))
                if label is None and hyperventilation_is_stress and in_hyperventilation(a, b, self.segs.get(s, [])):
                    label = 1  # as the dataset's authors label it
                X.append(vals)
                y.append(-1 if label is None else label)
                g.append(s)
                R.append(raws[s][i])
                t.append(float(r["window_start"]))
        X, self.y, self.g, self.R, self.start = (np.array(X), np.array(y), np.array(g),
                                                 np.array(R, dtype=np.float32), np.array(t))
        self.labelled = self.y >= 0
        present = np.mean(np.isfinite(X[self.labelled]), 0) >= 0.5  # cascade.py's choice
        self.stage1 = [f for f, ok in zip(stage1, present) if ok]
        self.X1 = X[:, present]
        self.X0 = self.X1[:, [self.stage1.index(f) for f in STAGE0]]


def cascade_oof(w: Windows, budget, cache: Path = None):
    """(folds as masks over all windows, the cascade's out-of-fold stress probability per window).
    With `cache`, a previous result for the same windows is reused (training takes 2 minutes)."""
    lab, y, g = w.labelled, w.y, w.g
    # The cache is keyed by the inputs themselves: a new binary or data gives new features.
    key = np.array([np.nansum(w.X1), np.isfinite(w.X1).sum(), np.nansum(w.R)], dtype=np.float64)
    if cache and cache.exists():
        saved = np.load(cache)
        fresh = "key" in saved.files and np.array_equal(saved["key"], key)
        if fresh and len(saved["P"]) == len(y) and (saved["y"] == y).all():
            return list(saved["folds"]), saved["P"]
    keys = ["s0", "s1", "s2"]
    L = {k: np.full((len(y), 2), np.nan) for k in keys}
    # cascade.py makes its folds from its labelled windows' subjects: the same subjects here.
    folds = [np.isin(g, np.unique(g[lab][f])) for f in grouped_folds(g[lab], OUTER_FOLDS, SEED)]
    for k, test in enumerate(folds):
        train = ~test & lab
        st = fit_feature_stages(w.X0[train], w.X1[train], y[train], SEED)
        imp1 = st["s1"][0]
        s2 = fit_stage2(w.X1[train], w.R[train], y[train], SEED, imp1)
        L["s0"][test] = logits_of(st["s0"][1], st["s0"][0](w.X0[test]))
        L["s1"][test] = logits_of(st["s1"][1], imp1(w.X1[test]))
        L["s2"][test] = stage2_logits(s2, imp1, w.X1[test], w.R[test])
        print(f"fold {k}: trained", file=sys.stderr)
    macs = stage_macs(len(w.stage1), w.R.shape[1:])
    P = np.full(len(y), np.nan)
    for test in folds:
        rest = ~test & lab & np.isfinite(L["s1"][:, 0])
        probs, other = {}, {}
        for key in keys:
            fit_on = rest & np.isfinite(L[key][:, 0])
            t = fit_temperature(L[key][fit_on], y[fit_on])
            probs[key] = stress_prob(L[key][test], t)
            other[key] = stress_prob(L[key][rest], t)
        t0, t1 = choose_thresholds(other["s0"], other["s1"], other["s2"], y[rest], macs, budget)
        stop = exits_of(probs["s0"], probs["s1"], probs["s2"], t0, t1)
        P[test] = cascade_prob(probs["s0"], probs["s1"], probs["s2"], stop)
    if cache:
        np.savez(cache, folds=np.array(folds), P=P, y=y, key=key)
    return folds, P
