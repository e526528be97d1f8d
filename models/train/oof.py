"""Out-of-fold cascade probabilities for *every* window after calibration, labelled or not, as
`cascade.py` produces them for its labelled windows: the same 9 subject folds and seed, the same
stages, temperatures and exit thresholds cross-fitted on the other folds' labelled windows.
`smoothing.py`, `personalise.py` and `hyperventilation.py` read streams of them; `reorder_eval.py`
has the same fold models score a second version of every session."""
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cascade import (
    OUTER_FOLDS, SEED, STAGE0, SUBJECTS, cascade_prob, choose_thresholds, exits_of, fit_feature_stages, fit_stage2,
    fit_temperature, stage2_logits, stage_macs)
from common import dump_features, grouped_folds, load_segments, logits_of, stress_prob, window_label

STAGES = ["s0", "s1", "s2"]


def in_hyperventilation(start, end, segs):
    """The window lies >= 90 % in a hyperventilation segment (window_label's rule)."""
    return any(task == "hyperventilation" and min(end, e) - max(start, s) >= 0.9 * (end - start)
               for s, e, _, task in segs)


class Windows:
    """Every window past calibration of the E4 folders in `raw_dir`, in time order per subject,
    labelled from `labels` (-1: no label). `stage1` fixes stage 1's inputs (another set's choice);
    by default they are cascade.py's: the features present in at least half the labelled windows."""

    def __init__(self, raw_dir: Path, labels: Path, bin_path, cache: Path, hyperventilation_is_stress=False,
                 stage1=None):
        here = Path(__file__).resolve().parent
        rows, raws = dump_features(bin_path, raw_dir, SUBJECTS, cache, here / "features.toml", here / "raw.toml")
        self.segs = load_segments(labels)
        names = [k for k in rows[SUBJECTS[0]][0] if k not in ("subject", "seq", "window_start", "window_end")]
        candidates = stage1 or [k for k in names if not k.startswith("quality") and k != "motion"]
        X, y, g, R, t = [], [], [], [], []
        for s, rs in rows.items():
            for i, r in enumerate(rs):
                vals = [float(r[k]) if r[k] != "" else np.nan for k in candidates]
                if all(np.isnan(v) for k, v in zip(candidates, vals) if k.startswith("z_")):
                    continue  # calibration phase
                a, b = float(r["window_start"]), float(r["window_end"])
                label = window_label(a, b, self.segs.get(s, []))
                if label is None and hyperventilation_is_stress and in_hyperventilation(a, b, self.segs.get(s, [])):
                    label = 1  # as the dataset's authors label it
                X.append(vals)
                y.append(-1 if label is None else label)
                g.append(s)
                R.append(raws[s][i])
                t.append(a)
        X, self.y, self.g, self.R, self.start = (np.array(X), np.array(y), np.array(g),
                                                 np.array(R, dtype=np.float32), np.array(t))
        self.labelled = self.y >= 0
        present = np.ones(len(candidates), bool) if stage1 else np.mean(np.isfinite(X[self.labelled]), 0) >= 0.5
        self.stage1 = [f for f, ok in zip(candidates, present) if ok]
        self.X1 = X[:, present]
        self.X0 = self.X1[:, [self.stage1.index(f) for f in STAGE0]]

    @classmethod
    def stress_predict(cls, data: Path, bin_path, cache: Path, **kw):
        """The dataset as its authors ship it (`Raw_data/S..`, `labels_segments.csv`)."""
        return cls(data / "Raw_data", data / "labels_segments.csv", bin_path, cache, **kw)

    def key(self):
        """A fingerprint of the inputs: a new binary or data set gives new features."""
        return np.array([np.nansum(self.X1), np.isfinite(self.X1).sum(), np.nansum(self.R)], dtype=np.float64)


@dataclass
class Oof:
    folds: list  # one mask over `w`'s windows per fold: the held-out subjects
    P: dict      # "s0", "s1", "s2", "cascade" → stress probability of each of `w`'s windows
    also: dict   # the same for the `also` windows (empty without them)


def cascade_oof(w: Windows, budget, cache: Path = None, also: Windows = None) -> Oof:
    """The cascade's out-of-fold probabilities on `w`; with `also` (the same subjects' sessions in
    another form), the same fold models, temperatures and exits score those too. With `cache`, a
    previous result for the same inputs is reused (training takes 2 minutes)."""
    key = np.concatenate([w.key()] + ([also.key()] if also else []))
    if cache and cache.exists():
        saved = np.load(cache)
        complete = all(k in saved.files for k in ["key", "folds", "cascade"] + STAGES)
        if complete and np.array_equal(saved["key"], key) and (saved["y"] == w.y).all():
            return Oof(list(saved["folds"]), {k: saved[k] for k in STAGES + ["cascade"]},
                       {k: saved["also_" + k] for k in STAGES + ["cascade"] if "also_" + k in saved.files})
    lab, y, g = w.labelled, w.y, w.g
    # cascade.py makes its folds from its labelled windows' subjects: the same subjects here.
    fold_subjects = [np.unique(g[lab][f]) for f in grouped_folds(g[lab], OUTER_FOLDS, SEED)]
    sets = [w] + ([also] if also else [])
    L = [{k: np.full((len(v.y), 2), np.nan) for k in STAGES} for v in sets]
    for k, subjects in enumerate(fold_subjects):
        train = ~np.isin(g, subjects) & lab
        st = fit_feature_stages(w.X0[train], w.X1[train], y[train], SEED)
        imp1 = st["s1"][0]
        s2 = fit_stage2(w.X1[train], w.R[train], y[train], SEED, imp1)
        for v, logits in zip(sets, L):
            test = np.isin(v.g, subjects)
            logits["s0"][test] = logits_of(st["s0"][1], st["s0"][0](v.X0[test]))
            logits["s1"][test] = logits_of(st["s1"][1], imp1(v.X1[test]))
            logits["s2"][test] = stage2_logits(s2, imp1, v.X1[test], v.R[test])
        print(f"fold {k}: trained", file=sys.stderr)
    macs = stage_macs(len(w.stage1), w.R.shape[1:])
    out = [{k: np.full(len(v.y), np.nan) for k in STAGES + ["cascade"]} for v in sets]
    for subjects in fold_subjects:
        rest = ~np.isin(g, subjects) & lab & np.isfinite(L[0]["s1"][:, 0])
        temps = {}
        for k in STAGES:
            fit_on = rest & np.isfinite(L[0][k][:, 0])
            temps[k] = fit_temperature(L[0][k][fit_on], y[fit_on])
        other = {k: stress_prob(L[0][k][rest], temps[k]) for k in STAGES}
        t0, t1 = choose_thresholds(other["s0"], other["s1"], other["s2"], y[rest], macs, budget)
        for v, logits, probs in zip(sets, L, out):
            test = np.isin(v.g, subjects)
            p = {k: stress_prob(logits[k][test], temps[k]) for k in STAGES}
            for k in STAGES:
                probs[k][test] = p[k]
            probs["cascade"][test] = cascade_prob(p["s0"], p["s1"], p["s2"], exits_of(p["s0"], p["s1"], p["s2"], t0, t1))
    result = Oof([np.isin(g, s) for s in fold_subjects], out[0], out[1] if also else {})
    if cache:
        np.savez(cache, folds=np.array(result.folds), y=y, key=key, **result.P,
                 **{"also_" + k: v for k, v in result.also.items()})
    return result
