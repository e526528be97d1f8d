//! The Bluetooth SIG Heart Rate service: Heart Rate Measurement (0x2A37) notifications and the
//! Battery Level (0x2A19) every strap also serves. Pure: bytes in, values or a named error out.
//!
//! Layout of 0x2A37 (Heart Rate Service spec 1.0, §3.1): a flags byte, then the heart rate
//! (uint8, or uint16 when flag bit 0 is set), then Energy Expended (uint16 kJ, when bit 3 is
//! set), then zero or more RR intervals (uint16, 1/1024 s, when bit 4 is set) to the end.
//! Bits 1–2 say whether skin contact is detected and whether the sensor can tell at all.

use std::fmt;

/// Flag bits of the measurement's first byte.
const HR_IS_U16: u8 = 0x01;
const CONTACT_DETECTED: u8 = 0x02;
const CONTACT_SUPPORTED: u8 = 0x04;
const ENERGY_PRESENT: u8 = 0x08;
const RR_PRESENT: u8 = 0x10;

/// One decoded Heart Rate Measurement. Borrows the notification for its RR intervals, so
/// decoding allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeartRateMeasurement<'a> {
    pub heart_rate_bpm: u16,
    /// `None` when the sensor cannot detect contact; else whether it has it.
    pub contact: Option<bool>,
    /// Energy expended since the last reset, kJ, when the sensor sent it.
    pub energy_kj: Option<u16>,
    /// The RR interval bytes (pairs, little-endian, 1/1024 s).
    rr_bytes: &'a [u8],
}

impl<'a> HeartRateMeasurement<'a> {
    /// RR intervals in units of 1/1024 s, oldest first.
    pub fn rr_1024(&self) -> impl Iterator<Item = u16> + 'a {
        self.rr_bytes.chunks_exact(2).map(|p| u16::from_le_bytes([p[0], p[1]]))
    }

    /// RR intervals in milliseconds (exact: 1000/1024 is a power-of-two fraction), oldest first.
    pub fn rr_ms(&self) -> impl Iterator<Item = f64> + 'a {
        self.rr_1024().map(|rr| f64::from(rr) * 1000.0 / 1024.0)
    }

    /// How many RR intervals the notification carries.
    pub fn rr_count(&self) -> usize {
        self.rr_bytes.len() / 2
    }
}

/// Why a notification is not a Heart Rate Measurement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HrsError {
    #[error("empty heart rate measurement")]
    Empty,
    #[error("heart rate measurement of {len} bytes ends inside its {field} (flags {flags:#04x})")]
    Truncated { field: &'static str, len: usize, flags: u8 },
    #[error("heart rate measurement has an odd byte after its RR intervals ({len} bytes, flags {flags:#04x})")]
    OddRr { len: usize, flags: u8 },
    #[error("heart rate measurement carries {extra} bytes after its fields but no RR flag (flags {flags:#04x})")]
    Trailing { extra: usize, flags: u8 },
    #[error("battery level notification of {0} bytes (expected 1)")]
    BatteryLength(usize),
    #[error("battery level {0} % is over 100 %")]
    BatteryRange(u8),
}

/// Decode one Heart Rate Measurement notification.
pub fn parse_measurement(bytes: &[u8]) -> Result<HeartRateMeasurement<'_>, HrsError> {
    let (&flags, rest) = bytes.split_first().ok_or(HrsError::Empty)?;
    let truncated = |field| HrsError::Truncated { field, len: bytes.len(), flags };
    let (heart_rate_bpm, rest) = if flags & HR_IS_U16 != 0 {
        let (hr, rest) = take_u16(rest).ok_or(truncated("uint16 heart rate"))?;
        (hr, rest)
    } else {
        let (&hr, rest) = rest.split_first().ok_or(truncated("heart rate"))?;
        (u16::from(hr), rest)
    };
    let (energy_kj, rest) = if flags & ENERGY_PRESENT != 0 {
        let (e, rest) = take_u16(rest).ok_or(truncated("energy expended"))?;
        (Some(e), rest)
    } else {
        (None, rest)
    };
    let rr_bytes = if flags & RR_PRESENT != 0 {
        if !rest.len().is_multiple_of(2) {
            return Err(HrsError::OddRr { len: bytes.len(), flags });
        }
        rest
    } else if !rest.is_empty() {
        // A sensor that sends bytes it did not flag is not speaking this layout.
        return Err(HrsError::Trailing { extra: rest.len(), flags });
    } else {
        rest
    };
    let contact = (flags & CONTACT_SUPPORTED != 0).then_some(flags & CONTACT_DETECTED != 0);
    Ok(HeartRateMeasurement { heart_rate_bpm, contact, energy_kj, rr_bytes })
}

/// Decode a Battery Level (0x2A19) read or notification: percent, 0–100.
pub fn parse_battery(bytes: &[u8]) -> Result<u8, HrsError> {
    match bytes {
        [level] if *level <= 100 => Ok(*level),
        [level] => Err(HrsError::BatteryRange(*level)),
        _ => Err(HrsError::BatteryLength(bytes.len())),
    }
}

fn take_u16(bytes: &[u8]) -> Option<(u16, &[u8])> {
    match bytes {
        [a, b, rest @ ..] => Some((u16::from_le_bytes([*a, *b]), rest)),
        _ => None,
    }
}

impl fmt::Display for HeartRateMeasurement<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bpm", self.heart_rate_bpm)?;
        for rr in self.rr_1024() {
            write!(f, " rr {rr}/1024 s")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(bytes: &[u8]) -> Vec<u16> {
        parse_measurement(bytes).unwrap().rr_1024().collect()
    }

    #[test]
    fn real_strap_notifications_decode_to_the_values_their_sources_state() {
        // HRS-1, a Polar H10: Stack Overflow q. 67024800 (CC BY-SA 4.0); the asker states HR 59.
        let m = parse_measurement(&[0x10, 0x3B, 0x53, 0x04]).unwrap();
        assert_eq!((m.heart_rate_bpm, m.contact, m.energy_kj), (59, None, None));
        assert_eq!(m.rr_1024().collect::<Vec<_>>(), [1107]);
        assert!((m.rr_ms().next().unwrap() - 1081.0547).abs() < 1e-3);
        // HRS-2, a Polar H7: Stack Overflow answer mirrored at e-learn.cn (CC BY-SA); the answer
        // states HR 77 and RR 790/1024 s.
        let m = parse_measurement(&[0x16, 0x4D, 0x16, 0x03]).unwrap();
        assert_eq!((m.heart_rate_bpm, m.contact), (77, Some(true)));
        assert_eq!(rr(&[0x16, 0x4D, 0x16, 0x03]), [790]);
        // HRS-3a..d, a gatttool log of an unbranded strap: Stack Overflow q. 60599696.
        assert_eq!(rr(&[0x16, 0x34, 0xE4, 0x04]), [1252]);
        assert_eq!(rr(&[0x16, 0x34, 0xA5, 0x04]), [1189]);
        assert_eq!(rr(&[0x16, 0x33, 0xEA, 0x04]), [1258]);
        assert_eq!(rr(&[0x16, 0x33, 0xDE, 0x04]), [1246]);
        // HRS-4a..c: one, three and two RR intervals in one notification (SO q. 33917836).
        assert_eq!(rr(&[0x16, 0x77, 0x04, 0x02]), [516]);
        assert_eq!(rr(&[0x16, 0x78, 0xFF, 0x01, 0xFF, 0x01, 0x0C, 0x01]), [511, 511, 268]);
        assert_eq!(rr(&[0x16, 0x77, 0x08, 0x02, 0x08, 0x02]), [520, 520]);
        assert_eq!(parse_measurement(&[0x16, 0x78, 0xFF, 0x01, 0xFF, 0x01, 0x0C, 0x01]).unwrap().heart_rate_bpm, 120);
    }

    #[test]
    fn every_flag_combination_of_the_polar_sdk_tests_decodes() {
        // Hand-made vectors of polar-ble-sdk BleHrClientTest.kt @8fb5311c (Polar SDK License).
        assert_eq!(parse_measurement(&[0x00, 0xFF]).unwrap().heart_rate_bpm, 255);
        assert_eq!(parse_measurement(&[0x01, 0x80, 0x80]).unwrap().heart_rate_bpm, 32896);
        assert_eq!(parse_measurement(&[0x01, 0x7F, 0x7F]).unwrap().heart_rate_bpm, 32639);
        assert_eq!(parse_measurement(&[0x06, 0x00]).unwrap().contact, Some(true));
        assert_eq!(parse_measurement(&[0x04, 0x00]).unwrap().contact, Some(false));
        assert_eq!(parse_measurement(&[0x02, 0x00]).unwrap().contact, None);
        assert_eq!(parse_measurement(&[0x09, 0x00, 0x00, 0xFF, 0xFF]).unwrap().energy_kj, Some(65535));
        assert_eq!(parse_measurement(&[0x08, 0x00, 0x7F, 0x80]).unwrap().energy_kj, Some(32895));
        assert_eq!(rr(&[0x10, 0x00, 0xFF, 0xFF]), [65535]);
        assert_eq!(rr(&[0x11, 0x00, 0x00, 0xFF, 0xFF, 0x7F, 0x80]), [65535, 32895]);
        assert_eq!(rr(&[0x11, 0x00, 0x00, 0x00, 0x00]), [0]);
        // A "polar_h10" Python package test: energy and RR together.
        let m = parse_measurement(&[0x1E, 0x54, 0x49, 0x00, 0x9F, 0x03]).unwrap();
        assert_eq!((m.heart_rate_bpm, m.contact, m.energy_kj, m.rr_count()), (84, Some(true), Some(73), 1));
        assert_eq!(rr(&[0x17, 0x14, 0x01, 0x9F, 0x03]), [927]);
    }

    #[test]
    fn malformed_measurements_are_named_errors() {
        assert_eq!(parse_measurement(&[]), Err(HrsError::Empty));
        // The same package's malformed vector: the uint16 flag with one heart-rate byte.
        let e = parse_measurement(&[0x01, 0x54]).unwrap_err();
        assert!(e.to_string().contains("uint16 heart rate"), "{e}");
        assert!(matches!(parse_measurement(&[0x08, 0x50, 0x01]), Err(HrsError::Truncated { .. })));
        assert!(matches!(parse_measurement(&[0x10, 0x50, 0x01]), Err(HrsError::OddRr { .. })));
        assert!(matches!(parse_measurement(&[0x00, 0x50, 0x01, 0x02]), Err(HrsError::Trailing { .. })));
    }

    #[test]
    fn battery_levels() {
        // BAT-1, a real read: hackaday.io project 88055 ("5A (90%)"); BAT-2 the SDK's 0x64.
        assert_eq!(parse_battery(&[0x5A]), Ok(90));
        assert_eq!(parse_battery(&[0x64]), Ok(100));
        assert_eq!(parse_battery(&[0x65]), Err(HrsError::BatteryRange(101)));
        assert_eq!(parse_battery(&[]), Err(HrsError::BatteryLength(0)));
    }
}
