//! Window summaries (mean, spread, extremes, slope, non-finite count) kept incrementally, so a
//! hop costs O(hop + window / block) instead of a pass over the whole window.
//!
//! Samples are summarised in blocks of a fixed number of samples. A window is the newest `len`
//! samples; its summary merges the whole blocks inside it (Chan et al.'s pairwise update for mean,
//! M2 and co-moment, exact up to rounding) and recomputes only the block cut by the window start
//! from the raw samples the caller still holds. The block deque is bounded by the window length.

use std::collections::VecDeque;

/// Summary of a run of samples. Indices are absolute sample numbers of the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Samples seen, finite or not.
    pub n: u64,
    /// Finite samples.
    pub n_finite: u64,
    /// Mean of the finite values and of their indices.
    pub mean: f64,
    mean_i: f64,
    /// Σ(x − mean)², Σ(i − mean_i)², Σ(i − mean_i)(x − mean) over finite values.
    m2: f64,
    m2_i: f64,
    c_ix: f64,
    pub min: f32,
    pub max: f32,
    /// Finite samples exactly equal to `min` / `max` (clipping shows up as many of them).
    pub at_min: u64,
    pub at_max: u64,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            n: 0,
            n_finite: 0,
            mean: 0.0,
            mean_i: 0.0,
            m2: 0.0,
            m2_i: 0.0,
            c_ix: 0.0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            at_min: 0,
            at_max: 0,
        }
    }
}

impl Summary {
    /// Add sample number `i` with value `x`.
    #[inline]
    pub fn add(&mut self, i: u64, x: f32) {
        self.n += 1;
        if !x.is_finite() {
            return;
        }
        self.n_finite += 1;
        let n = self.n_finite as f64;
        let (xf, fi) = (x as f64, i as f64);
        let dx = xf - self.mean;
        let di = fi - self.mean_i;
        self.mean += dx / n;
        self.mean_i += di / n;
        self.m2 += dx * (xf - self.mean);
        self.m2_i += di * (fi - self.mean_i);
        self.c_ix += di * (xf - self.mean);
        if x < self.min {
            (self.min, self.at_min) = (x, 1);
        } else if x == self.min {
            self.at_min += 1;
        }
        if x > self.max {
            (self.max, self.at_max) = (x, 1);
        } else if x == self.max {
            self.at_max += 1;
        }
    }

    /// Combine with the summary of a disjoint run.
    pub fn merge(&mut self, o: &Summary) {
        self.n += o.n;
        if o.n_finite == 0 {
            return;
        }
        if self.n_finite == 0 {
            let n = self.n;
            *self = *o;
            self.n = n;
            return;
        }
        let (na, nb) = (self.n_finite as f64, o.n_finite as f64);
        let n = na + nb;
        let dx = o.mean - self.mean;
        let di = o.mean_i - self.mean_i;
        self.m2 += o.m2 + dx * dx * na * nb / n;
        self.m2_i += o.m2_i + di * di * na * nb / n;
        self.c_ix += o.c_ix + di * dx * na * nb / n;
        self.mean += dx * nb / n;
        self.mean_i += di * nb / n;
        self.n_finite += o.n_finite;
        match o.min.total_cmp(&self.min) {
            std::cmp::Ordering::Less => (self.min, self.at_min) = (o.min, o.at_min),
            std::cmp::Ordering::Equal => self.at_min += o.at_min,
            _ => {}
        }
        match o.max.total_cmp(&self.max) {
            std::cmp::Ordering::Greater => (self.max, self.at_max) = (o.max, o.at_max),
            std::cmp::Ordering::Equal => self.at_max += o.at_max,
            _ => {}
        }
    }

    /// Population standard deviation of the finite values.
    pub fn std(&self) -> Option<f64> {
        (self.n_finite > 0).then(|| (self.m2 / self.n_finite as f64).max(0.0).sqrt())
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n_finite > 0).then_some(self.mean)
    }

    /// Least-squares slope of value against sample number, per sample.
    pub fn slope_per_sample(&self) -> Option<f64> {
        (self.n_finite >= 2 && self.m2_i > 0.0).then(|| self.c_ix / self.m2_i)
    }
}

#[derive(Debug, Clone, Copy)]
struct Block {
    start: u64,
    summary: Summary,
}

/// Running block summaries of one channel.
#[derive(Debug)]
pub struct RunningStats {
    block_len: u64,
    /// Completed blocks, oldest first.
    blocks: VecDeque<Block>,
    current: Block,
    /// Samples pushed so far; the next sample's index.
    total: u64,
    /// Blocks older than this many samples behind `total` are dropped.
    keep: u64,
}

impl RunningStats {
    /// `block_len` samples per block (a hop's worth is a good choice); keeps enough blocks to
    /// cover windows of up to `keep` samples.
    pub fn new(block_len: usize, keep: usize) -> Self {
        let block_len = block_len.max(1) as u64;
        let capacity = (keep as u64 / block_len + 2) as usize;
        RunningStats {
            block_len,
            blocks: VecDeque::with_capacity(capacity),
            current: Block { start: 0, summary: Summary::default() },
            total: 0,
            keep: keep as u64 + block_len,
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn push(&mut self, x: f32) {
        self.current.summary.add(self.total, x);
        self.total += 1;
        if self.total - self.current.start == self.block_len {
            if self.blocks.len() == self.blocks.capacity() {
                self.blocks.pop_front();
            }
            self.blocks.push_back(self.current);
            self.current = Block { start: self.total, summary: Summary::default() };
        }
        while self.blocks.front().is_some_and(|b| b.start + self.block_len + self.keep <= self.total) {
            self.blocks.pop_front();
        }
    }

    /// Summary of the newest `len` samples. `raw(k)` gives the window's sample `k` (0 = oldest);
    /// it is read only for the block the window start cuts through.
    pub fn window_with(&self, len: usize, raw: impl Fn(usize) -> f32) -> Summary {
        let from = self.total.saturating_sub(len as u64);
        let mut out = Summary::default();
        let first_whole = self.first_block_from(from);
        for k in 0..(first_whole - from).min(len as u64) {
            out.add(from + k, raw(k as usize));
        }
        self.merge_blocks_from(from, &mut out);
        out
    }

    /// Summary of the whole blocks inside the newest `len` samples, without the cut block: for
    /// derived series whose raw values are not kept (the window loses at most one block).
    pub fn window_blocks(&self, len: usize) -> Summary {
        let mut out = Summary::default();
        self.merge_blocks_from(self.total.saturating_sub(len as u64), &mut out);
        out
    }

    /// Start of the oldest retained block that lies wholly at or after `from`.
    fn first_block_from(&self, from: u64) -> u64 {
        self.blocks
            .iter()
            .chain(std::iter::once(&self.current))
            .find(|b| b.start >= from)
            .map_or(self.total, |b| b.start)
    }

    fn merge_blocks_from(&self, from: u64, out: &mut Summary) {
        for b in self.blocks.iter().filter(|b| b.start >= from) {
            out.merge(&b.summary);
        }
        if self.current.start >= from {
            out.merge(&self.current.summary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(values: &[f32], first: u64) -> Summary {
        let mut s = Summary::default();
        for (k, &x) in values.iter().enumerate() {
            s.add(first + k as u64, x);
        }
        s
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn windows_match_a_direct_pass_at_every_hop() {
        let values: Vec<f32> = (0..5000)
            .map(|i| {
                if i % 977 == 0 {
                    f32::NAN
                } else {
                    ((i as f32 * 0.37).sin() * 3.0 + i as f32 * 0.001).clamp(-2.5, 2.5)
                }
            })
            .collect();
        let (len, hop) = (600usize, 50usize);
        let mut rs = RunningStats::new(hop, len);
        for (k, &x) in values.iter().enumerate() {
            rs.push(x);
            let n = k + 1;
            if n >= len && n % hop == 7 {
                let w = &values[n - len..n];
                let (got, want) = (rs.window_with(len, |k| w[k]), direct(w, (n - len) as u64));
                assert_eq!((got.n, got.n_finite), (want.n, want.n_finite));
                assert_eq!((got.min, got.max, got.at_min, got.at_max), (want.min, want.max, want.at_min, want.at_max));
                assert!(close(got.mean, want.mean));
                assert!(close(got.std().unwrap(), want.std().unwrap()));
                assert!(close(got.slope_per_sample().unwrap(), want.slope_per_sample().unwrap()));
            }
        }
        assert!(rs.blocks.len() <= len / hop + 2);
    }

    #[test]
    fn non_finite_only_and_empty() {
        let mut rs = RunningStats::new(4, 8);
        for _ in 0..10 {
            rs.push(f32::NAN);
        }
        let s = rs.window_with(8, |_| f32::NAN);
        assert_eq!((s.n, s.n_finite), (8, 0));
        assert!(s.mean().is_none() && s.std().is_none() && s.slope_per_sample().is_none());
        assert_eq!(RunningStats::new(4, 8).window_with(0, |_| 0.0).n, 0);
    }
}
