//! The PMD control point (FB005C81): the requests biofeedd writes and the responses the sensor
//! indicates back. Pure encoders and parsers.
//!
//! ```text
//! request:   01 <type>              get the settings the sensor offers for a measurement
//!            02 <type> <settings>   start streaming with those settings
//!            03 <type>              stop streaming
//! response:  F0 <op> <type> <status> [more-frames] [parameters]
//! settings:  a list of (setting type, count, count × value) — see [`Setting`]
//! feature read of the characteristic itself:  0F <bitmap of measurement types>
//! ```

use super::{Measurement, PmdError};

/// Opcodes of requests (and echoed in responses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    GetSettings = 0x01,
    Start = 0x02,
    Stop = 0x03,
}

impl Op {
    fn from_byte(b: u8) -> Option<Op> {
        match b {
            0x01 => Some(Op::GetSettings),
            0x02 => Some(Op::Start),
            0x03 => Some(Op::Stop),
            _ => None,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Op::GetSettings => "get settings",
            Op::Start => "start",
            Op::Stop => "stop",
        }
    }
}

/// Status codes of a response, as the Polar Measurement Data specification lists them.
const STATUS_NAMES: [&str; 14] = [
    "success",
    "invalid op code",
    "invalid measurement type",
    "not supported",
    "invalid length",
    "invalid parameter",
    "already in state",
    "invalid resolution",
    "invalid sample rate",
    "invalid range",
    "invalid MTU",
    "invalid number of channels",
    "invalid state",
    "device in charger",
];

/// The name of status code `code`.
pub fn status_name(code: u8) -> &'static str {
    STATUS_NAMES.get(usize::from(code)).copied().unwrap_or("unknown status")
}

/// Setting types of the TLV list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    SampleRate = 0,
    Resolution = 1,
    Range = 2,
    RangeMilli = 3,
    Channels = 4,
    Factor = 5,
}

impl Setting {
    fn from_byte(b: u8) -> Option<Setting> {
        [
            Setting::SampleRate,
            Setting::Resolution,
            Setting::Range,
            Setting::RangeMilli,
            Setting::Channels,
            Setting::Factor,
        ]
        .into_iter()
        .find(|s| *s as u8 == b)
    }

    /// Bytes per value.
    fn width(self) -> usize {
        match self {
            Setting::SampleRate | Setting::Resolution | Setting::Range => 2,
            Setting::RangeMilli | Setting::Factor => 4,
            Setting::Channels => 1,
        }
    }
}

/// The settings a sensor offers (a get-settings response) or was started with: each list holds
/// the values of one setting type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub sample_rates: Vec<u16>,
    pub resolutions: Vec<u16>,
    pub ranges: Vec<u16>,
    pub ranges_milli: Vec<u32>,
    pub channels: Vec<u8>,
    /// Multiply raw sample values by this (Verity Sense reports it in its start response).
    pub factor: Option<f32>,
}

/// Parse a settings TLV list.
pub fn parse_settings(mut bytes: &[u8]) -> Result<Settings, PmdError> {
    let mut s = Settings::default();
    while let [kind, count, rest @ ..] = bytes {
        let setting = Setting::from_byte(*kind)
            .ok_or_else(|| PmdError::Format(format!("unknown setting type {kind} in a settings list")))?;
        let len = usize::from(*count) * setting.width();
        let Some((values, after)) = rest.split_at_checked(len) else {
            return Err(PmdError::Format(format!(
                "setting {setting:?} lists {count} values but only {} bytes follow",
                rest.len()
            )));
        };
        for v in values.chunks_exact(setting.width()) {
            match setting {
                Setting::SampleRate => s.sample_rates.push(u16::from_le_bytes([v[0], v[1]])),
                Setting::Resolution => s.resolutions.push(u16::from_le_bytes([v[0], v[1]])),
                Setting::Range => s.ranges.push(u16::from_le_bytes([v[0], v[1]])),
                Setting::RangeMilli => s.ranges_milli.push(u32::from_le_bytes([v[0], v[1], v[2], v[3]])),
                Setting::Channels => s.channels.push(v[0]),
                Setting::Factor => s.factor = Some(f32::from_le_bytes([v[0], v[1], v[2], v[3]])),
            }
        }
        bytes = after;
    }
    match bytes {
        [] => Ok(s),
        [_] => Err(PmdError::Format("a settings list ends with a lone byte".into())),
        _ => unreachable!("the loop takes every list of two or more bytes"),
    }
}

/// The settings to start a stream with: one value of each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamSettings {
    pub sample_rate: u16,
    pub resolution: u16,
    pub range: Option<u16>,
    pub channels: Option<u8>,
}

/// `01 <type>`: ask which settings `m` supports.
pub fn get_settings_request(m: Measurement) -> [u8; 2] {
    [Op::GetSettings as u8, m as u8]
}

/// `02 <type> <settings>`: start `m` with `s`.
pub fn start_request(m: Measurement, s: &StreamSettings) -> Vec<u8> {
    let mut out = vec![Op::Start as u8, m as u8];
    out.extend([Setting::SampleRate as u8, 1]);
    out.extend(s.sample_rate.to_le_bytes());
    out.extend([Setting::Resolution as u8, 1]);
    out.extend(s.resolution.to_le_bytes());
    if let Some(range) = s.range {
        out.extend([Setting::Range as u8, 1]);
        out.extend(range.to_le_bytes());
    }
    if let Some(channels) = s.channels {
        out.extend([Setting::Channels as u8, 1, channels]);
    }
    out
}

/// `03 <type>`: stop `m`. Polar's protocol has the central stop what it started.
pub fn stop_request(m: Measurement) -> [u8; 2] {
    [Op::Stop as u8, m as u8]
}

/// A response indicated on the control point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Response<'a> {
    pub op: Op,
    pub measurement: u8,
    pub status: u8,
    /// More response frames follow (long settings lists).
    pub more: bool,
    pub params: &'a [u8],
}

/// Parse a control-point indication.
pub fn parse_response(bytes: &[u8]) -> Result<Response<'_>, PmdError> {
    let [0xF0, op, measurement, status, rest @ ..] = bytes else {
        return Err(PmdError::Format(format!("control point response {} is not `F0 op type status …`", hex(bytes))));
    };
    let op = Op::from_byte(*op)
        .ok_or_else(|| PmdError::Format(format!("control point response with unknown op code {op:#04x}")))?;
    let (more, params) = match rest {
        [more, params @ ..] => (*more != 0, params),
        [] => (false, rest),
    };
    Ok(Response { op, measurement: *measurement, status: *status, more, params })
}

impl Response<'_> {
    /// Ok when the sensor did what was asked, else an error naming the request and the status.
    pub fn check(&self) -> Result<(), PmdError> {
        if self.status == 0 {
            return Ok(());
        }
        Err(PmdError::Refused {
            request: format!("{} {}", self.op.verb(), Measurement::name_of(self.measurement)),
            status: self.status,
            name: status_name(self.status),
        })
    }

    /// The settings of a get-settings response.
    pub fn settings(&self) -> Result<Settings, PmdError> {
        parse_settings(self.params)
    }

    /// The factor a start response carries, if any. An H10 sends one reserved byte instead of a
    /// settings list, so anything that is not a list is no factor.
    pub fn start_factor(&self) -> Option<f32> {
        parse_settings(self.params).ok().and_then(|s| s.factor).filter(|f| f.is_finite() && *f != 0.0)
    }
}

/// The measurement types a sensor supports, from a read of the control point (`0F <bitmap>`).
pub fn parse_features(bytes: &[u8]) -> Result<Vec<Measurement>, PmdError> {
    let [0x0F, bitmap, ..] = bytes else {
        return Err(PmdError::Format(format!("control point read {} is not a feature list (`0F …`)", hex(bytes))));
    };
    Ok(Measurement::ALL.into_iter().filter(|m| bitmap & (1 << (*m as u8)) != 0).collect())
}

/// Bytes as `F0 01 …` for messages (at most 24 bytes shown).
pub fn hex(bytes: &[u8]) -> String {
    let mut s: Vec<String> = bytes.iter().take(24).map(|b| format!("{b:02X}")).collect();
    if bytes.len() > 24 {
        s.push(format!("… ({} bytes)", bytes.len()));
    }
    s.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h10_control_point_session() {
        // CP-1: an H10's feature read (phdiethelm/h10_ecg exploration/gatttool.md; the same bytes
        // in polar-ble-sdk issue #360): ECG and ACC.
        let features = parse_features(&[0x0F, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(features, [Measurement::Ecg, Measurement::Acc]);
        // CP-3: get ECG settings → 130 Hz, 14 bit (same source).
        let r =
            parse_response(&[0xF0, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x82, 0x00, 0x01, 0x01, 0x0E, 0x00]).unwrap();
        assert_eq!((r.op, r.measurement, r.more), (Op::GetSettings, 0, false));
        r.check().unwrap();
        let s = r.settings().unwrap();
        assert_eq!((s.sample_rates.as_slice(), s.resolutions.as_slice()), (&[130][..], &[14][..]));
        // CP-5: the start request for those settings, and its success response.
        let start = StreamSettings { sample_rate: 130, resolution: 14, range: None, channels: None };
        assert_eq!(
            start_request(Measurement::Ecg, &start),
            [0x02, 0x00, 0x00, 0x01, 0x82, 0x00, 0x01, 0x01, 0x0E, 0x00]
        );
        let r = parse_response(&[0xF0, 0x02, 0x00, 0x00, 0x00, 0x00]).unwrap();
        r.check().unwrap();
        assert_eq!(r.start_factor(), None);
        // CP-6 (h10_ecg python/doc/ecg2_demo.txt): stop.
        assert_eq!(stop_request(Measurement::Ecg), [0x03, 0x00]);
        parse_response(&[0xF0, 0x03, 0x00, 0x00, 0x00]).unwrap().check().unwrap();
    }

    #[test]
    fn refusals_are_errors_naming_the_request_and_status() {
        // CP-4: start ECG without settings → invalid parameter; CP-2': too small an MTU
        // (h10_ecg python/ecg5_record.py).
        let e = parse_response(&[0xF0, 0x02, 0x00, 0x05, 0x00]).unwrap().check().unwrap_err();
        assert_eq!(e.to_string(), "Polar PMD refused `start ECG`: invalid parameter (status 5)");
        let e = parse_response(&[0xF0, 0x01, 0x00, 0x0A]).unwrap().check().unwrap_err();
        assert!(e.to_string().contains("invalid MTU (status 10)"), "{e}");
        // The SDK's hand-made MAG error (BlePmdClientControlPointResponseTest.kt).
        let e = parse_response(&[0xF0, 0x01, 0x06, 0x07, 0x00]).unwrap().check().unwrap_err();
        assert!(e.to_string().contains("get settings MAG") && e.to_string().contains("invalid resolution"), "{e}");
        assert!(parse_response(&[0xF0, 0x09, 0x00, 0x00]).is_err());
        assert!(parse_response(&[0x0F, 0x05]).is_err());
        assert_eq!(status_name(200), "unknown status");
    }

    #[test]
    fn verity_sense_settings_and_start_factor() {
        // CP-7: Verity Sense PPG settings (polar-ble-sdk issues #280 and #226): 135 Hz, 22 bit,
        // 4 channels — the rate its FW 1.1.5 reports wrongly outside SDK mode (issue #215).
        let r = parse_response(&[
            0xF0, 0x01, 0x01, 0x00, 0x00, 0x00, 0x01, 0x87, 0x00, 0x01, 0x01, 0x16, 0x00, 0x04, 0x01, 0x04,
        ])
        .unwrap();
        let s = r.settings().unwrap();
        assert_eq!((s.sample_rates[0], s.resolutions[0], s.channels[0]), (135, 22, 4));
        // CP-8 (issue #226): the start request, and a start response carrying factor 1.0.
        let start = StreamSettings { sample_rate: 135, resolution: 22, range: None, channels: Some(4) };
        assert_eq!(
            start_request(Measurement::Ppg, &start),
            [0x02, 0x01, 0x00, 0x01, 0x87, 0x00, 0x01, 0x01, 0x16, 0x00, 0x04, 0x01, 0x04]
        );
        let r = parse_response(&[0xF0, 0x02, 0x01, 0x00, 0x00, 0x05, 0x01, 0x00, 0x00, 0x80, 0x3F]).unwrap();
        assert_eq!(r.start_factor(), Some(1.0));
        // CP-9 (issues #443, #331): start ACC at 52 Hz, 16 bit, ±8 G, 3 channels.
        let acc = StreamSettings { sample_rate: 52, resolution: 16, range: Some(8), channels: Some(3) };
        assert_eq!(
            start_request(Measurement::Acc, &acc),
            [0x02, 0x02, 0x00, 0x01, 0x34, 0x00, 0x01, 0x01, 0x10, 0x00, 0x02, 0x01, 0x08, 0x00, 0x04, 0x01, 0x03]
        );
        parse_response(&[0xF0, 0x02, 0x02, 0x00, 0x00]).unwrap().check().unwrap();
        // PmdSettingTest.kt: a list with four ranges.
        let s = parse_settings(&[
            0x00, 0x01, 0x34, 0x00, 0x01, 0x01, 0x10, 0x00, 0x02, 0x04, 0xF5, 0x00, 0xF4, 0x01, 0xE8, 0x03, 0xD0, 0x07,
            0x04, 0x01, 0x03,
        ])
        .unwrap();
        assert_eq!(s.ranges, [245, 500, 1000, 2000]);
        assert!(parse_settings(&[0x00, 0x02, 0x34]).is_err());
        assert!(parse_settings(&[0x09, 0x01, 0x00]).is_err());
    }
}
