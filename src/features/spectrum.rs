//! A sliding Lomb–Scargle periodogram: points join and leave one at a time, and the spectrum of
//! whatever is inside is ready at any moment without looking at the points again.
//!
//! HRV's LF/HF and the beat-derived respiration rate are spectra of a window's beats. Computing
//! them afresh every hop costs (beats in the window) × (frequencies) sines and cosines, which
//! grows with the window. The classical periodogram (Lomb 1976, Scargle 1982) is built from sums
//! over the points, though — Σcos ωt, Σsin ωt, Σx·cos ωt, Σx·sin ωt, Σcos 2ωt, Σsin 2ωt — and, for a
//! series detrended by its least-squares line, Σt·cos ωt and Σt·sin ωt. Sums can be updated as
//! points arrive and depart, so each hop costs (beats in the hop) × (frequencies) and reading the
//! spectrum costs (frequencies), whatever the window length. (`rr.rs` keeps a window's beat
//! spectra in step with its beats.)
//!
//! The sines and cosines of a point at every frequency of the evenly spaced grid come from one
//! `sin_cos` of the first frequency and one of the spacing, by the angle-addition recurrence.
//!
//! Add/remove in floating point leaves rounding residue in the sums; it is ~1e-16 relative per
//! update, and the sums are zeroed exactly whenever the series empties (a gap, a reset).

/// Running sums for one frequency.
#[derive(Debug, Clone, Copy, Default)]
struct Bin {
    c: f64,
    s: f64,
    xc: f64,
    xs: f64,
    tc: f64,
    ts: f64,
    c2: f64,
    s2: f64,
}

/// How a series is centred before its spectrum is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Centre {
    /// Subtract the mean (HRV, as the Task Force and NeuroKit2 do).
    Mean,
    /// Subtract the least-squares line: drift over the window is not a slow oscillation.
    Line,
}

/// Lomb–Scargle periodogram over the grid `f0, f0 + df, …` (Hz) of a series whose points are
/// added and removed in any order.
#[derive(Debug, Clone)]
pub struct SlidingPeriodogram {
    f0: f64,
    df: f64,
    bins: Vec<Bin>,
    n: usize,
    st: f64,
    stt: f64,
    sx: f64,
    stx: f64,
    sxx: f64,
}

impl SlidingPeriodogram {
    /// An empty periodogram over `bins` frequencies `f0 + k·df`.
    pub fn new(f0: f64, df: f64, bins: usize) -> Self {
        SlidingPeriodogram {
            f0,
            df,
            bins: vec![Bin::default(); bins],
            n: 0,
            st: 0.0,
            stt: 0.0,
            sx: 0.0,
            stx: 0.0,
            sxx: 0.0,
        }
    }

    /// Frequency of bin `k`, Hz.
    pub fn freq(&self, k: usize) -> f64 {
        self.f0 + self.df * k as f64
    }

    pub fn bins(&self) -> usize {
        self.bins.len()
    }

    /// Points inside.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Add the point `x` at time `t` (s). Non-finite points are ignored (and must not be removed).
    pub fn add(&mut self, t: f64, x: f64) {
        if t.is_finite() && x.is_finite() {
            self.update(t, x, 1.0);
            self.n += 1;
        }
    }

    /// Remove a point added earlier with the same `t` and `x`.
    pub fn remove(&mut self, t: f64, x: f64) {
        if !(t.is_finite() && x.is_finite()) || self.n == 0 {
            return;
        }
        self.n -= 1;
        if self.n == 0 {
            self.clear();
        } else {
            self.update(t, x, -1.0);
        }
    }

    /// Empty it, exactly.
    pub fn clear(&mut self) {
        self.bins.iter_mut().for_each(|b| *b = Bin::default());
        (self.n, self.st, self.stt, self.sx, self.stx, self.sxx) = (0, 0.0, 0.0, 0.0, 0.0, 0.0);
    }

    fn update(&mut self, t: f64, x: f64, sign: f64) {
        self.st += sign * t;
        self.stt += sign * t * t;
        self.sx += sign * x;
        self.stx += sign * t * x;
        self.sxx += sign * x * x;
        let tau = 2.0 * std::f64::consts::PI;
        let (mut s, mut c) = (tau * self.f0 * t).sin_cos();
        let (sd, cd) = (tau * self.df * t).sin_cos();
        for b in &mut self.bins {
            b.c += sign * c;
            b.s += sign * s;
            b.xc += sign * x * c;
            b.xs += sign * x * s;
            b.tc += sign * t * c;
            b.ts += sign * t * s;
            b.c2 += sign * (c * c - s * s);
            b.s2 += sign * 2.0 * s * c;
            (s, c) = (s * cd + c * sd, c * cd - s * sd);
        }
    }

    /// Mean and slope (per second) the series is centred with.
    fn centre(&self, centre: Centre) -> (f64, f64, f64) {
        let n = self.n as f64;
        let (mean_t, mean_x) = (self.st / n, self.sx / n);
        let slope = match centre {
            Centre::Mean => 0.0,
            Centre::Line => {
                let stt = self.stt - self.st * mean_t;
                if stt > 0.0 {
                    (self.stx - self.st * mean_x) / stt
                } else {
                    0.0
                }
            }
        };
        (mean_t, mean_x, slope)
    }

    /// Variance of the centred series, or `None` when empty.
    pub fn variance(&self, centre: Centre) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let n = self.n as f64;
        let (_, mean_x, slope) = self.centre(centre);
        let sxx = self.sxx - self.sx * mean_x;
        let stx = self.stx - self.st * mean_x;
        Some(((sxx - slope * stx) / n).max(0.0))
    }

    /// Mean of the series (for scale-relative thresholds).
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sx / self.n as f64)
    }

    /// The classical Lomb–Scargle power of the centred series at bin `k` (same scale as the
    /// direct formula the tests hold it to: a sinusoid of amplitude A over n points gives about
    /// A²n/4).
    pub fn power(&self, k: usize, centre: Centre) -> f64 {
        let Some(b) = self.bins.get(k) else { return 0.0 };
        if self.n == 0 {
            return 0.0;
        }
        let n = self.n as f64;
        let (mean_t, mean_x, slope) = self.centre(centre);
        // Σ r·cos ωt and Σ r·sin ωt of the residual r = x − mean − slope·(t − mean_t).
        let rc = b.xc - mean_x * b.c - slope * (b.tc - mean_t * b.c);
        let rs = b.xs - mean_x * b.s - slope * (b.ts - mean_t * b.s);
        // Scargle's shift τ makes the sine and cosine terms orthogonal: tan 2ωτ = Σsin 2ωt / Σcos 2ωt.
        let (sin_wt, cos_wt) = (0.5 * b.s2.atan2(b.c2)).sin_cos();
        let xc = rc * cos_wt + rs * sin_wt;
        let xs = rs * cos_wt - rc * sin_wt;
        let (sin_2wt, cos_2wt) = (2.0 * sin_wt * cos_wt, cos_wt * cos_wt - sin_wt * sin_wt);
        let cc = 0.5 * (n + b.c2 * cos_2wt + b.s2 * sin_2wt);
        let ss = n - cc;
        0.5 * (xc * xc / cc.max(1e-12) + xs * xs / ss.max(1e-12))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classical Lomb–Scargle periodogram of zero-mean `x` at times `t` (s), at `f` Hz: the
    /// direct formula, which [`SlidingPeriodogram`] is tested against.
    fn lomb_scargle(t: &[f64], x: &[f64], f: f64, trig: &mut Vec<(f64, f64)>) -> f64 {
        let w = 2.0 * std::f64::consts::PI * f;
        trig.clear();
        trig.extend(t.iter().map(|&ti| (w * ti).sin_cos()));
        let (s2, c2) = trig.iter().fold((0.0, 0.0), |(s, c), &(sn, cs)| (s + 2.0 * sn * cs, c + cs * cs - sn * sn));
        let (sin_wt, cos_wt) = (0.5 * s2.atan2(c2)).sin_cos(); // ωτ
        let (mut xc, mut xs, mut cc, mut ss) = (0.0, 0.0, 0.0, 0.0);
        for (&(sn0, cs0), &xi) in trig.iter().zip(x) {
            let sn = sn0 * cos_wt - cs0 * sin_wt;
            let cs = cs0 * cos_wt + sn0 * sin_wt;
            xc += xi * cs;
            xs += xi * sn;
            cc += cs * cs;
            ss += sn * sn;
        }
        0.5 * (xc * xc / cc.max(1e-12) + xs * xs / ss.max(1e-12))
    }

    /// Uneven times and a noisy sinusoid with a trend.
    fn series(n: usize, offset: f64) -> Vec<(f64, f64)> {
        let mut t = offset;
        (0..n)
            .map(|k| {
                t += 0.7 + 0.3 * ((k * 7919) % 13) as f64 / 13.0;
                (t, 800.0 + 40.0 * (2.0 * std::f64::consts::PI * 0.25 * t).sin() + 0.5 * t + ((k * 31) % 7) as f64)
            })
            .collect()
    }

    fn direct(points: &[(f64, f64)], f: f64, centre: Centre) -> f64 {
        let t: Vec<f64> = points.iter().map(|p| p.0).collect();
        let n = t.len() as f64;
        let (mt, mx) = (t.iter().sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
        let slope = match centre {
            Centre::Mean => 0.0,
            Centre::Line => {
                points.iter().map(|p| (p.0 - mt) * (p.1 - mx)).sum::<f64>()
                    / points.iter().map(|p| (p.0 - mt).powi(2)).sum::<f64>()
            }
        };
        let x: Vec<f64> = points.iter().map(|p| p.1 - mx - slope * (p.0 - mt)).collect();
        lomb_scargle(&t, &x, f, &mut Vec::new())
    }

    #[test]
    fn sliding_sums_give_the_direct_periodogram() {
        // A window sliding along a long series, far from t = 0 (hours into a session).
        let all = series(400, 20_000.0);
        let mut p = SlidingPeriodogram::new(0.0425, 0.005, 93);
        for &(t, x) in &all[..80] {
            p.add(t, x);
        }
        for step in 0..300 {
            let inside = &all[step..step + 80];
            if step % 50 == 0 {
                for centre in [Centre::Mean, Centre::Line] {
                    for k in [0, 11, 41, 92] {
                        let (a, b) = (p.power(k, centre), direct(inside, p.freq(k), centre));
                        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "step {step} bin {k} {centre:?}: {a} vs {b}");
                    }
                }
            }
            p.remove(all[step].0, all[step].1);
            p.add(all[step + 80].0, all[step + 80].1);
        }
        assert_eq!(p.len(), 80);
    }

    #[test]
    fn variance_matches_and_emptying_resets_exactly() {
        let pts = series(50, 3.0);
        let mut p = SlidingPeriodogram::new(0.1, 0.01, 10);
        for &(t, x) in &pts {
            p.add(t, x);
        }
        let n = pts.len() as f64;
        let mx = pts.iter().map(|q| q.1).sum::<f64>() / n;
        let var = pts.iter().map(|q| (q.1 - mx).powi(2)).sum::<f64>() / n;
        assert!((p.variance(Centre::Mean).unwrap() - var).abs() < 1e-6 * var);
        assert!(p.variance(Centre::Line).unwrap() < var, "the trend is part of the variance");
        for &(t, x) in &pts {
            p.remove(t, x);
        }
        assert!(p.is_empty() && p.variance(Centre::Mean).is_none());
        assert_eq!(p.power(3, Centre::Mean), 0.0);
        p.add(f64::NAN, 1.0);
        assert!(p.is_empty(), "non-finite points are not taken");
    }
}
