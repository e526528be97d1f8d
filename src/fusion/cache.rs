//! The prediction cache: recent answers, keyed on the active variants and every stage's
//! feature inputs quantised.
//!
//! Each input is quantised to `cache_quantum` of its training spread (`inputs.scale`), so two
//! windows whose inputs differ by less than that share an answer. The key is the quantised
//! vector itself, not a hash of it: two windows share an entry only when their quantised
//! inputs are equal.

use super::{Prediction, Variant};
use crate::features::FeatureVector;
use lru::LruCache;
use std::num::NonZeroUsize;

/// What a cached answer was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct CacheKey {
    /// The active variant of each stage: another variant's answer is not this one's.
    variants: Box<[Variant]>,
    /// Each input in quantisation steps; `None` for a missing input, which changes what the
    /// stages do (fill values, or no answer from the stages that require it).
    steps: Box<[Option<i64>]>,
}

/// Recent answers keyed on quantised inputs, least recently used evicted first.
pub(super) struct PredictionCache {
    /// (feature index, quantisation step) of every stage's inputs.
    inputs: Vec<(usize, f64)>,
    lru: LruCache<CacheKey, Prediction>,
    lookups: u64,
    hits: u64,
}

impl PredictionCache {
    pub(super) fn new(capacity: NonZeroUsize, inputs: Vec<(usize, f64)>) -> PredictionCache {
        PredictionCache { inputs, lru: LruCache::new(capacity), lookups: 0, hits: 0 }
    }

    /// The key of `fv`'s quantised inputs under the `active` variants.
    pub(super) fn key(&self, fv: &FeatureVector, active: &[Variant]) -> CacheKey {
        let quantise = |&(i, step): &(usize, f64)| {
            let v = fv.values[i];
            v.is_finite().then(|| (v as f64 / step).round() as i64)
        };
        CacheKey { variants: active.into(), steps: self.inputs.iter().map(quantise).collect() }
    }

    /// The answer stored under `key`, counted as a lookup (and a hit when there is one).
    pub(super) fn get(&mut self, key: &CacheKey) -> Option<&Prediction> {
        self.lookups += 1;
        let found = self.lru.get(key);
        self.hits += found.is_some() as u64;
        found
    }

    pub(super) fn put(&mut self, key: CacheKey, prediction: Prediction) {
        self.lru.put(key, prediction);
    }

    /// (lookups, hits) so far.
    pub(super) fn stats(&self) -> (u64, u64) {
        (self.lookups, self.hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::fixtures::fv;
    use crate::fusion::Source;

    fn answer(label: &str) -> Prediction {
        Prediction {
            label: label.into(),
            probabilities: Vec::new(),
            model: "m".into(),
            variant: Variant::Fp32,
            exit_stage: 0,
            source: Source::Edge,
            reason: None,
            stage_latency: Vec::new(),
        }
    }

    #[test]
    fn the_key_is_the_quantised_inputs_and_the_variants() {
        let cache = PredictionCache::new(NonZeroUsize::new(4).unwrap(), vec![(0, 0.5), (1, 0.1), (2, 1.0)]);
        let mut v = fv(f32::NAN);
        v.values[0] = 10.2;
        v.values[1] = -0.33;
        let key = cache.key(&v, &[Variant::Fp32, Variant::Int8]);
        assert_eq!(*key.steps, [Some(20), Some(-3), None]);
        assert_eq!(*key.variants, [Variant::Fp32, Variant::Int8]);
        // Within half a step: the same key; a step further: another.
        v.values[0] = 10.1;
        assert_eq!(cache.key(&v, &[Variant::Fp32, Variant::Int8]), key);
        v.values[0] = 10.7;
        assert_ne!(cache.key(&v, &[Variant::Fp32, Variant::Int8]), key);
    }

    #[test]
    fn different_inputs_never_share_an_entry() {
        // Every pair of values on a 100 × 100 grid of two inputs, one quantisation step apart:
        // each must get back its own answer, whatever the hash of its key.
        let n = 100;
        let mut cache = PredictionCache::new(NonZeroUsize::new(n * n).unwrap(), vec![(0, 1.0), (1, 1.0)]);
        let point = |a: usize, b: usize| {
            let mut v = fv(0.0);
            v.values[0] = a as f32;
            v.values[1] = b as f32;
            v
        };
        for a in 0..n {
            for b in 0..n {
                let key = cache.key(&point(a, b), &[Variant::Fp32]);
                assert!(cache.get(&key).is_none(), "({a}, {b}) found an entry before it was stored");
                cache.put(key, answer(&format!("{a},{b}")));
            }
        }
        for a in 0..n {
            for b in 0..n {
                let key = cache.key(&point(a, b), &[Variant::Fp32]);
                assert_eq!(cache.get(&key).map(|p| p.label.as_str()), Some(format!("{a},{b}").as_str()));
            }
        }
        // The same inputs under another variant are another entry.
        assert!(cache.get(&cache.key(&point(0, 0), &[Variant::Int8])).is_none());
        assert_eq!(cache.stats(), (2 * (n * n) as u64 + 1, (n * n) as u64));
    }
}
