//! Replay a recording through the same ring path a live device uses.
//!
//! - [`config`]: `ReplayConfig`, the `[sensor.source]` of a replay, and its parts.
//! - [`recording`]: the in-memory [`Recording`] (channels of gap-free [`Segment`]s) and
//!   [`ReadError`]; it knows no file format.
//! - Readers, one per format: [`csv`] (a header row, one column per channel) and [`e4`] (Empatica
//!   E4 export folders) stream their rows; [`wfdb`] (PhysioNet records) reads a record whole. The
//!   text formats (and the `eval` labels file) all go through the one CSV reader, [`csv_table`].
//! - [`capture`]: BLE captures (`pmd`, `hrs`): notifications through the live BLE source's
//!   decoders, each released at its recorded arrival time.
//! - [`stream`]: a recording read a piece at a time ([`RecordingStream`]), so a replay's memory
//!   does not grow with the recording's length.
//! - [`open`], [`load`] and [`probe_channels`] pick the reader a config names (`open.rs`).
//! - [`peaks`]: beat lists (`biofeedd hrv`), one sample index per line.
//! - `source.rs`: the replay as a source component (`channels`, `build`).
//! - [`player`] paces a recording stream's chunks onto the rings at real time, N× or as fast as the
//!   pipeline drains them.

pub mod capture;
pub mod config;
pub mod csv;
pub mod csv_table;
pub mod e4;
mod open;
pub mod peaks;
pub mod player;
pub mod recording;
mod source;
pub mod stream;
pub mod wfdb;

pub use config::{CsvChannel, OnBadRow, ReplayConfig, ReplayFormat, Speed, StartTime};
pub use open::{load, open, probe_channels};
pub use recording::{ReadError, RecordedChannel, Recording, Segment};
pub use stream::RecordingStream;
