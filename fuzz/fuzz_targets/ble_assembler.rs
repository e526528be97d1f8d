//! A stream of BLE notifications, any bytes from any characteristic, through the assembler the
//! live BLE source and capture replay share, with reconnects between them: chunks lie inside
//! the values, times and values are finite and every channel's chunks come in time order (live
//! or replayed), never a panic.
#![no_main]

use biofeedd::ingest::protocol::ble::stream::{Assembler, Gatt, StreamKind, StreamSpec, TimeBase, Timed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Some((&mode, mut rest)) = bytes.split_first() else { return };
    let streams: Vec<StreamSpec> = [StreamKind::Hr, StreamKind::Ecg, StreamKind::Acc, StreamKind::Ppg, StreamKind::Ppi]
        .into_iter()
        .enumerate()
        .filter(|(k, _)| mode & (1 << k) != 0)
        .map(|(_, kind)| StreamSpec::default_for(kind))
        .collect();
    let time_base = if mode & 0x80 != 0 { TimeBase::Sensor } else { TimeBase::Arrival };
    let mut a = Assembler::new(&streams, time_base);
    let channels = a.specs().len();
    let mut last_time = vec![f64::NEG_INFINITY; channels];
    let mut out = Timed::default();
    let mut arrival = 1_700_000_000.0;
    // Records: head (source: bits 0–1, arrival step: bits 2–6, a reconnect first: bit 7),
    // length, bytes.
    while let [head, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (notification, after) = tail.split_at(n);
        rest = after;
        let source = [Gatt::HeartRate, Gatt::Battery, Gatt::PmdControl, Gatt::PmdData][usize::from(head & 3)];
        arrival += f64::from((head >> 2) & 0x1F) * 0.05;
        if head & 0x80 != 0 {
            a.reconnect();
        }
        out.clear();
        a.push(source, notification, arrival, &mut out);
        for c in &out.chunks {
            assert!(c.channel < channels && c.len > 0);
            assert!(c.start + c.len <= out.values.len());
            assert!(c.time.is_finite(), "{c:?}");
            // Never before what the channel already had: the windower would drop it. (Compared
            // to a few ulps: a sensor's timestamp may put times near 1e10 s.)
            let slack = 1e-6 + 1e-12 * c.time.abs();
            assert!(c.time >= last_time[c.channel] - slack, "{c:?} after {}", last_time[c.channel]);
            let period = a.specs()[c.channel].period_s();
            let span = if a.evenly_sampled(c.channel) { c.len as f64 * period } else { 0.0 };
            last_time[c.channel] = last_time[c.channel].max(c.time + span);
        }
        assert!(out.values.iter().all(|v| v.is_finite()));
        if let Some(b) = out.battery {
            assert!(b <= 100);
        }
    }
});
