//! Text lines: any bytes, cut anywhere, decode the same way, with counted errors and
//! well-formed runs, never a panic; the first byte picks the separator, a header, and a counter
//! or timestamp column.
#![no_main]

mod decoder_check;

use biofeedd::ingest::protocol::line::{Column, LineConfig, Separator};
use biofeedd::signal::{ChannelSpec, Modality};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let mode = bytes.first().copied().unwrap_or(0);
    let sep = [Separator::Comma, Separator::Tab, Separator::Semicolon, Separator::Whitespace][usize::from(mode % 4)];
    let specs: Vec<_> = (0..3).map(|i| ChannelSpec::new(format!("c{i}"), Modality::Other, "a.u.", 100.0)).collect();
    let mut cfg = LineConfig::for_encoder(&specs, sep, Some(256));
    match (mode >> 2) % 4 {
        0 => {}
        1 => (cfg.counter_column, cfg.counter_modulus) = (Some(Column::Index(0)), None),
        2 => (cfg.counter_column, cfg.counter_modulus, cfg.timestamp_column) = (None, None, Some(Column::Index(0))),
        _ => {
            cfg.header = true;
            cfg.channels[1].column = Column::Name("b".into());
            cfg.counter_column = Some(Column::Name("n".into()));
        }
    }
    decoder_check::check(|| Box::new(cfg.decoder()), bytes);
});
