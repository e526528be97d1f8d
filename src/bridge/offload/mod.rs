//! Offload: the heavy stage of a window sent to `biofeedd worker` processes over MQTT 5, and the
//! answer merged back into the window's feedback — or, when none comes in time, the hub's own.
//!
//! The hub publishes each request ([`wire`]: a versioned binary layout) on
//! `biofeedd/v1/{hub}/offload/req` with a response topic (`…/{hub}/offload/resp`), correlation
//! data and a message expiry; workers take requests from a shared subscription, so any number
//! of them share the load. The [`Offloader`] keeps each window's feedback (holding the best
//! local answer) until the first of: the reply, merged in with `source = "cloud"`; the deadline,
//! the local answer going out with `source = "fallback"`; a refusal, the same at once. A reply
//! after its deadline finds nothing to merge into and is counted as late.
//!
//! [`link`] is the connection (its own, apart from the durable publisher's), [`reply`] the JSON
//! answer. Nothing here waits on the broker: a request that cannot be queued at once falls back.

pub mod config;
pub mod link;
pub mod reply;
pub mod wire;

use crate::bridge::payload::Feedback;
use crate::fusion::Source;
pub use crate::metrics::OffloadStats;
use crate::window::Window;
use bytes::Bytes;
pub use config::OffloadConfig;
use link::OffloadLink;
use reply::{OffloadReply, Outcome};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
pub use wire::OffloadRequest;

/// A window's feedback waiting for its worker.
struct Pending<T> {
    feedback: Box<Feedback>,
    /// When the request was handed to the link (round trips count from here).
    sent: Instant,
    /// The model asked for: a reply must name the same.
    model: String,
    sha256: String,
    classes: Vec<String>,
    deadline: Instant,
    arrival: Instant,
    token: T,
}

/// The hub's side of offload.
pub struct Offloader<T> {
    link: OffloadLink,
    request_topic: String,
    response_topic: String,
    /// Correlation data is `{run}:{n}`: a reply meant for an earlier run never matches.
    run: String,
    next: u64,
    pending: HashMap<u64, Pending<T>>,
    deadlines: BTreeSet<(Instant, u64)>,
    max_in_flight: usize,
    stats: OffloadStats,
    refusals_logged: u32,
    link_ended: bool,
    encode_error_logged: bool,
}

/// A request to send, with what to do when it is answered or not.
pub struct Job<T> {
    pub request: OffloadRequest,
    /// The feedback with the best local answer (`source = "fallback"`, or `unknown`).
    pub feedback: Box<Feedback>,
    /// The offloaded stage's classes: a reply must give exactly these.
    pub classes: Vec<String>,
    pub deadline: Instant,
    /// Arrival of the window's last bytes: the feedback's `latency_ms` is counted from here.
    pub arrival: Instant,
    /// Share of `max_in_flight` this window may use (its tier's priority): a basic-tier window
    /// is not sent when half the bound is taken, a premium one until all of it is.
    pub share: f64,
    pub token: T,
}

impl<T> Offloader<T> {
    pub fn new(
        link: OffloadLink,
        request_topic: String,
        response_topic: String,
        run: &str,
        max_in_flight: usize,
    ) -> Self {
        Offloader {
            link,
            request_topic,
            response_topic,
            run: run.to_string(),
            next: 0,
            pending: HashMap::new(),
            deadlines: BTreeSet::new(),
            max_in_flight,
            stats: OffloadStats::default(),
            refusals_logged: 0,
            link_ended: false,
            encode_error_logged: false,
        }
    }

    pub fn stats(&self) -> OffloadStats {
        self.stats
    }

    /// Requests waiting for their reply.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Send a job's request. When it cannot go (no connection, the bound reached, a full
    /// queue, the deadline already past) the job's feedback comes straight back to be delivered
    /// as the fallback.
    pub fn submit(&mut self, job: Job<T>) -> Result<(), (Box<Feedback>, T)> {
        let now = Instant::now();
        // Every tier may have at least one request in flight.
        let room = ((self.max_in_flight as f64 * job.share.clamp(0.0, 1.0)).ceil() as usize).max(1);
        if !self.link.is_connected() || self.pending.len() >= room || job.deadline <= now {
            self.stats.not_sent += 1;
            return Err(fallback(job.feedback, job.arrival, job.token, "offload: the request could not be sent"));
        }
        let bytes = match job.request.encode() {
            Ok(bytes) => bytes,
            Err(e) => {
                // A stage whose inputs do not fit the layout: the same for every window, so say it once.
                if !self.encode_error_logged {
                    self.encode_error_logged = true;
                    tracing::error!("offload: `{}` cannot be sent: {e}", job.request.model);
                }
                self.stats.not_sent += 1;
                return Err(fallback(
                    job.feedback,
                    job.arrival,
                    job.token,
                    "offload: the request could not be encoded",
                ));
            }
        };
        let id = self.next;
        self.next += 1;
        let correlation = Bytes::from(format!("{}:{id}", self.run));
        let sent = self.link.try_publish(
            &self.request_topic,
            bytes,
            Some(self.response_topic.clone()),
            Some(correlation),
            Some(job.deadline - now),
        );
        if !sent {
            self.stats.not_sent += 1;
            return Err(fallback(job.feedback, job.arrival, job.token, "offload: the request could not be sent"));
        }
        self.stats.sent += 1;
        self.deadlines.insert((job.deadline, id));
        let pending = Pending {
            sent: now,
            feedback: job.feedback,
            model: job.request.model,
            sha256: reply::hex(&job.request.sha256),
            classes: job.classes,
            deadline: job.deadline,
            arrival: job.arrival,
            token: job.token,
        };
        self.pending.insert(id, pending);
        Ok(())
    }

    /// The next window settled: a reply merged in, a refusal, or a deadline passed. Never
    /// resolves while nothing is pending and nothing arrives.
    pub async fn next(&mut self) -> (Box<Feedback>, T) {
        loop {
            let first = self.deadlines.first().copied();
            let deadline = async {
                match first {
                    Some((at, _)) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                message = self.link.incoming.recv(), if !self.link_ended => {
                    // The link's task ended (shutdown): only deadlines settle windows now.
                    let Some(message) = message else {
                        self.link_ended = true;
                        continue;
                    };
                    if let Some(done) = self.on_reply(message.correlation.as_deref(), &message.payload) {
                        return done;
                    }
                }
                () = deadline => {
                    let (_, id) = first.expect("a deadline was waited for");
                    self.stats.timed_out += 1;
                    let p = self.take(id).expect("every deadline has its pending window");
                    tracing::debug!("offload: {id} timed out {:?} after it was sent", p.sent.elapsed());
                    return fallback(p.feedback, p.arrival, p.token, NO_ANSWER);
                }
            }
        }
    }

    /// Everything still pending, as fallbacks (shutdown: nothing waits for a worker then).
    pub fn drain(&mut self) -> Vec<(Box<Feedback>, T)> {
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        self.stats.timed_out += ids.len() as u64;
        ids.into_iter()
            .filter_map(|id| self.take(id))
            .map(|p| fallback(p.feedback, p.arrival, p.token, NO_ANSWER))
            .collect()
    }

    pub async fn close(self) {
        self.link.close(Duration::from_secs(1)).await;
    }

    fn take(&mut self, id: u64) -> Option<Pending<T>> {
        let p = self.pending.remove(&id)?;
        self.deadlines.remove(&(p.deadline, id));
        Some(p)
    }

    fn on_reply(&mut self, correlation: Option<&[u8]>, payload: &[u8]) -> Option<(Box<Feedback>, T)> {
        let id = correlation
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| c.strip_prefix(self.run.as_str()))
            .and_then(|c| c.strip_prefix(':'))
            .and_then(|n| n.parse::<u64>().ok());
        let Some(id) = id else {
            self.stats.invalid += 1;
            return None;
        };
        let Some(p) = self.take(id) else {
            // Its deadline passed and the fallback went out already.
            self.stats.late += 1;
            tracing::debug!("offload: late reply {id}");
            return None;
        };
        let mut feedback = p.feedback;
        let why = match OffloadReply::parse(payload) {
            Ok(OffloadReply {
                outcome: Outcome::Ok { variant, stage, classes, probabilities, .. },
                model,
                sha256,
                ..
            }) if classes == p.classes && model == p.model && sha256 == p.sha256 => {
                self.stats.answered += 1;
                tracing::debug!("offload: answered in {:?}", p.sent.elapsed());
                let top = probabilities.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
                feedback.label = classes[top].clone();
                feedback.probabilities = classes.into_iter().zip(probabilities).collect();
                feedback.model = model;
                feedback.variant = variant;
                feedback.exit_stage = stage;
                feedback.source = Source::Cloud;
                feedback.reason = None;
                return Some(settle(feedback, p.arrival, p.token));
            }
            Ok(OffloadReply { outcome: Outcome::Refused { reason }, worker, .. }) => {
                self.stats.refused += 1;
                if self.refusals_logged < 5 {
                    self.refusals_logged += 1;
                    tracing::warn!("offload worker `{worker}` refused a request: {reason}; the hub's answer goes out");
                }
                format!("offload: worker `{worker}` refused: {reason}")
            }
            Ok(OffloadReply { outcome: Outcome::Ok { classes, .. }, worker, model, .. }) => {
                self.stats.invalid += 1;
                tracing::warn!(
                    "offload worker `{worker}` answered `{model}` {classes:?} for `{}` {:?}",
                    p.model,
                    p.classes
                );
                format!("offload: worker `{worker}` answered for another model")
            }
            Err(e) => {
                self.stats.invalid += 1;
                tracing::warn!("offload reply: {e}");
                "offload: the worker's reply was not valid".to_string()
            }
        };
        Some(fallback(feedback, p.arrival, p.token, &why))
    }
}

/// The request for `stage` on `window`, from the inputs [`crate::fusion::Stage::prepare`] left
/// in it; `budget` is what remains of the window's deadline.
pub fn request_for(stage: &crate::fusion::Stage, hub: &str, window: &Window, budget: Duration) -> OffloadRequest {
    let m = &stage.manifest;
    let (features, samples) = stage.last_inputs();
    let channels = m.inputs.raw.as_ref().map_or_else(Vec::new, |r| {
        r.channels
            .iter()
            .map(|c| wire::WireChannel {
                name: channel_name(c),
                modality: c.modality,
                rate_hz: r.rate_hz as f32,
                len: r.length as u32,
            })
            .collect()
    });
    OffloadRequest {
        model: m.name.clone(),
        // A loaded stage's SHA was checked against its ONNX bytes, so it is 64 hex digits.
        sha256: reply::unhex(&m.sha256).unwrap_or([0; 32]),
        hub: hub.to_string(),
        subject: window.subject.clone(),
        seq: window.seq,
        window_start: window.start,
        window_end: window.end,
        budget_ms: budget.as_secs_f32() * 1000.0,
        features: features.to_vec(),
        channels,
        samples: samples.to_vec(),
    }
}

/// A raw row's name on the wire: its modality and transform, e.g. `ppg:zscore`.
pub fn channel_name(c: &crate::fusion::raw::RawChannel) -> String {
    let transform = match c.transform {
        crate::fusion::raw::Transform::None => "none",
        crate::fusion::raw::Transform::Center => "center",
        crate::fusion::raw::Transform::Zscore => "zscore",
    };
    format!("{}:{transform}", c.modality)
}

const NO_ANSWER: &str = "offload: no worker answered within the deadline";

/// The hub's own answer as it leaves now; when the stages run here had none, `why` says why.
fn fallback<T>(mut feedback: Box<Feedback>, arrival: Instant, token: T, why: &str) -> (Box<Feedback>, T) {
    if feedback.probabilities.is_empty() {
        feedback.reason = Some(match feedback.reason.take() {
            Some(r) if !r.ends_with(": ") => format!("{why}; here: {r}"),
            _ => why.to_string(),
        });
    }
    settle(feedback, arrival, token)
}

/// The feedback as it leaves now: its latency counts to this moment.
fn settle<T>(mut feedback: Box<Feedback>, arrival: Instant, token: T) -> (Box<Feedback>, T) {
    feedback.latency_ms = arrival.elapsed().as_secs_f64() * 1000.0;
    (feedback, token)
}
