//! The command line's own stdout. A closed pipe (`biofeedd eval … | head -1`) ends the output
//! quietly, as a Unix tool's does; any other write error is reported.

use anyhow::Context;
use std::io::{ErrorKind, Write};

/// Write `text` to stdout and flush it.
pub fn print(text: &str) -> anyhow::Result<()> {
    write_stdout(text).map(|_| ())
}

/// The run summary: on stdout, or on stderr when stdout has been closed, so it is never lost.
pub fn print_summary(text: &str) -> anyhow::Result<()> {
    if !write_stdout(text)? {
        eprint!("{text}");
    }
    Ok(())
}

/// `Ok(false)` when the reader has closed the pipe.
fn write_stdout(text: &str) -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}
