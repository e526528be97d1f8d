//! The replay source as a component: its channels from the recording, its task the player.

use super::{load, player, probe_channels, ReplayConfig, Speed};
use crate::ingest::{RunningSource, SourceContext, SourceError};
use crate::signal::ChannelSpec;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

impl ReplayConfig {
    /// The recording's channels, as the replay will produce them, from its headers alone.
    pub fn channels(&self, base_dir: &Path) -> Result<Vec<ChannelSpec>, SourceError> {
        Ok(probe_channels(self, &self.resolved_path(base_dir))?)
    }

    /// Read the recording and return the task that plays it onto `ctx`'s rings.
    pub fn build(&self, ctx: SourceContext) -> Result<RunningSource, SourceError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let rec = load(self, &self.resolved_path(&ctx.base_dir), now)?;
        for note in &rec.notes {
            tracing::warn!("sensor `{}`: {note}", ctx.sensor);
        }
        let produced: Vec<&ChannelSpec> = rec.channels.iter().map(|c| &c.spec).collect();
        if produced.len() != ctx.producers.len() {
            return Err(SourceError::Mismatch(format!(
                "sensor `{}`: the recording has {} channels, its header announced {} (did it change on disk?)",
                ctx.sensor,
                produced.len(),
                ctx.producers.len()
            )));
        }
        tracing::info!(
            "sensor `{}`: replaying {} channels, {} samples at {}",
            ctx.sensor,
            rec.channels.len(),
            rec.total_samples(),
            self.speed
        );
        let health = ctx.health.clone();
        let task = player::play(rec, ctx.producers, self.speed, self.chunk_ms, ctx.shutdown, ctx.health);
        Ok(RunningSource { health, task: Box::pin(task), waits_for_room: self.speed == Speed::Max })
    }

    /// The recording's path, relative paths taken from `base_dir` (the config file's folder);
    /// `Path::join` keeps an absolute path as it is.
    pub fn resolved_path(&self, base_dir: &Path) -> PathBuf {
        base_dir.join(&self.path)
    }
}
