//! Messages into the running pipeline thread, and the handle that sends them.
//!
//! The pipeline thread owns the fusion cascade (tract is not shared across threads), so anything
//! that wants to change how it runs — the governor's plan under CPU pressure, an operator, a
//! test — sends a [`Control`] message. The pipeline drains its queue at the top of
//! every loop, before it drains the rings, and the handle wakes it so a message is seen at once
//! even when no data flows.
//!
//! Architecture invariant: the pipeline never waits on this queue; sending never blocks.

use crate::fusion::Variant;
use crate::governor::Plan;
use crate::ring::Waker;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// What can be asked of the pipeline while it runs.
#[derive(Debug)]
pub enum Control {
    /// Every cascade stage that has `variant` switches to it; the others keep theirs.
    SetVariant(Variant),
    /// Cascade stage `stage` (0 = cheapest) switches to `variant`, if it has it.
    SetStageVariant { stage: usize, variant: Variant },
    /// The governor's plan for the current pressure level: variants, offload, stages run here.
    SetPlan(Plan),
    /// Reply with the pipeline's current state.
    Snapshot(oneshot::Sender<PipelineSnapshot>),
}

/// The pipeline's state at one moment, as the pipeline thread sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSnapshot {
    /// The active variant of each cascade stage (empty in features-only mode).
    pub variants: Vec<Variant>,
    /// Windows closed so far, over all subjects.
    pub windows: u64,
    /// The last plan applied (`None` before the governor's first).
    pub plan: Option<Plan>,
}

/// The sending side; cheap to clone.
#[derive(Debug, Clone)]
pub struct ControlHandle {
    tx: mpsc::Sender<Control>,
    waker: Waker,
}

/// The pipeline has ended; nothing reads control messages any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline has ended")]
pub struct PipelineGone;

/// A control queue: the handle for senders, the receiver for the pipeline thread.
pub fn channel(waker: Waker) -> (ControlHandle, mpsc::Receiver<Control>) {
    let (tx, rx) = mpsc::channel();
    (ControlHandle { tx, waker }, rx)
}

impl ControlHandle {
    pub fn send(&self, message: Control) -> Result<(), PipelineGone> {
        self.tx.send(message).map_err(|_| PipelineGone)?;
        self.waker.wake();
        Ok(())
    }

    /// Ask for a snapshot and wait for the pipeline's answer.
    pub async fn snapshot(&self) -> Result<PipelineSnapshot, PipelineGone> {
        let (reply, answer) = oneshot::channel();
        self.send(Control::Snapshot(reply))?;
        answer.await.map_err(|_| PipelineGone)
    }
}
