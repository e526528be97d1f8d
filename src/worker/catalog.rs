//! The models a worker can run, by what a request names: the manifest's name and the ONNX
//! file's SHA-256. Pure: decoding, checking and running one request, no I/O.

use crate::bridge::offload::reply::{hex, OffloadReply, Outcome, REPLY_SCHEMA};
use crate::bridge::offload::{channel_name, OffloadRequest};
use crate::fusion::{Fusion, Stage};
use std::collections::HashMap;
use std::time::Instant;

/// Every variant of every stage `[fusion]` names, indexed by (name, SHA-256).
pub struct Catalog {
    fusion: Fusion,
    index: HashMap<(String, [u8; 32]), (usize, usize)>,
}

impl Catalog {
    pub fn new(mut fusion: Fusion) -> Catalog {
        let mut index = HashMap::new();
        for (k, slot) in fusion.slots_mut().iter().enumerate() {
            for (v, stage) in slot.variants().iter().enumerate() {
                if let Some(sha) = crate::bridge::offload::reply::unhex(&stage.manifest.sha256) {
                    index.insert((stage.manifest.name.clone(), sha), (k, v));
                }
            }
        }
        Catalog { fusion, index }
    }

    /// `name@sha` of every model served, for the start-up log.
    pub fn describe(&self) -> Vec<String> {
        let mut all: Vec<String> = self.index.keys().map(|(n, sha)| format!("{n}@{}", &hex(sha)[..12])).collect();
        all.sort();
        all
    }

    /// Answer one request's bytes as `worker`; `started` is when the request was taken off the
    /// broker (the reply's `compute_ms` counts from it). `None`: the request waited here past
    /// its budget, so its hub has given its own answer already and a reply would only be late.
    pub fn answer(&mut self, worker: &str, payload: &[u8], started: Instant) -> Option<OffloadReply> {
        let request = match OffloadRequest::decode(payload) {
            Ok(r) => r,
            // Refused rather than ignored: the hub falls back at once and logs why.
            Err(e) => return Some(refusal(worker, "", "", e.to_string())),
        };
        if started.elapsed().as_secs_f64() * 1000.0 > f64::from(request.budget_ms) {
            return None;
        }
        Some(self.run(worker, request, started))
    }

    fn run(&mut self, worker: &str, request: OffloadRequest, started: Instant) -> OffloadReply {
        let sha = hex(&request.sha256);
        let Some(&(k, v)) = self.index.get(&(request.model.clone(), request.sha256)) else {
            let known = self.describe().join(", ");
            let reason = format!(
                "no model `{}` with SHA-256 {sha} here (this worker serves {known}): the hub and the worker run different model files",
                request.model
            );
            return refusal(worker, &request.model, &sha, reason);
        };
        let stage = &mut self.fusion.slots_mut()[k].variants_mut()[v];
        if let Err(reason) = check_shape(stage, &request) {
            return refusal(worker, &request.model, &sha, reason);
        }
        match stage.run_inputs(&request.features, &request.samples) {
            Ok(probabilities) => {
                let m = &stage.manifest;
                OffloadReply {
                    schema: REPLY_SCHEMA.into(),
                    worker: worker.into(),
                    model: request.model,
                    sha256: sha,
                    outcome: Outcome::Ok {
                        variant: m.variant,
                        stage: m.stage,
                        classes: m.outputs.classes.clone(),
                        probabilities,
                        compute_ms: started.elapsed().as_secs_f64() * 1000.0,
                    },
                }
            }
            Err(reason) => refusal(worker, &request.model, &sha, reason),
        }
    }
}

/// The request's channels must be the manifest's raw rows (name, rate, length), in order.
fn check_shape(stage: &Stage, request: &OffloadRequest) -> Result<(), String> {
    let m = &stage.manifest;
    let expected: Vec<(String, f32, u32)> = m.inputs.raw.as_ref().map_or_else(Vec::new, |r| {
        r.channels.iter().map(|c| (channel_name(c), r.rate_hz as f32, r.length as u32)).collect()
    });
    let got: Vec<(String, f32, u32)> = request.channels.iter().map(|c| (c.name.clone(), c.rate_hz, c.len)).collect();
    let same = expected.len() == got.len()
        && expected.iter().zip(&got).all(|(e, g)| e.0 == g.0 && (e.1 - g.1).abs() <= 1e-3 * e.1.abs() && e.2 == g.2);
    if !same {
        let show = |rows: &[(String, f32, u32)]| {
            rows.iter().map(|(n, r, l)| format!("{n} {l}@{r}Hz")).collect::<Vec<_>>().join(", ")
        };
        return Err(format!("`{}` takes raw rows [{}], the request has [{}]", m.name, show(&expected), show(&got)));
    }
    if request.features.len() != m.inputs.features.len() {
        return Err(format!(
            "`{}` takes {} features, the request has {}",
            m.name,
            m.inputs.features.len(),
            request.features.len()
        ));
    }
    Ok(())
}

pub(crate) fn refusal(worker: &str, model: &str, sha: &str, reason: String) -> OffloadReply {
    OffloadReply {
        schema: REPLY_SCHEMA.into(),
        worker: worker.into(),
        model: model.into(),
        sha256: sha.into(),
        outcome: Outcome::Refused { reason },
    }
}
