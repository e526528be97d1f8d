//! The replay source as a component: its channels from the recording's headers, its task the
//! player streaming the recording.

use super::{open, player, probe_channels, ReplayConfig, Speed};
use crate::ingest::{RunningSource, SourceContext, SourceError};
use crate::signal::ChannelSpec;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

impl ReplayConfig {
    /// The recording's channels, as the replay will produce them, from its headers alone.
    pub fn channels(&self, base_dir: &Path) -> Result<Vec<ChannelSpec>, SourceError> {
        Ok(probe_channels(self, &self.resolved_path(base_dir))?)
    }

    /// Open the recording and return the task that streams it onto `ctx`'s rings.
    pub fn build(&self, ctx: SourceContext) -> Result<RunningSource, SourceError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let path = self.resolved_path(&ctx.base_dir);
        let stream = open(self, &path, now)?;
        for note in &stream.notes {
            tracing::warn!("sensor `{}`: {note}", ctx.sensor);
        }
        if stream.specs().len() != ctx.producers.len() {
            return Err(SourceError::Mismatch(format!(
                "sensor `{}`: the recording has {} channels, its header announced {} (did it change on disk?)",
                ctx.sensor,
                stream.specs().len(),
                ctx.producers.len()
            )));
        }
        tracing::info!(
            "sensor `{}`: replaying {} channels of {} at {}",
            ctx.sensor,
            stream.specs().len(),
            path.display(),
            self.speed
        );
        let health = ctx.health.clone();
        let task = player::play(stream, ctx.producers, self.speed, self.chunk_ms, ctx.shutdown, ctx.health);
        Ok(RunningSource { health, task: Box::pin(task), waits_for_room: self.speed == Speed::Max })
    }

    /// The recording's path, relative paths taken from `base_dir` (the config file's folder);
    /// `Path::join` keeps an absolute path as it is.
    pub fn resolved_path(&self, base_dir: &Path) -> PathBuf {
        base_dir.join(&self.path)
    }
}
