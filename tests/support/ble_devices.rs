//! The devices the BLE tests put in range of the fake BlueZ: a Polar H10 (Heart Rate, Battery and
//! Polar's PMD services) and a plain heart-rate strap, with the UUIDs they are found by.
#![allow(dead_code)]

use super::fake_bluez::{uuid16, CharSpec, DeviceSpec, ServiceSpec, WriteHandler};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const PMD_SERVICE: &str = "fb005c80-02e7-f387-1cad-8acd2d8df0c8";
pub const PMD_CONTROL: &str = "fb005c81-02e7-f387-1cad-8acd2d8df0c8";
pub const PMD_DATA: &str = "fb005c82-02e7-f387-1cad-8acd2d8df0c8";

fn chr(uuid: String, flags: Vec<&'static str>, value: Vec<u8>) -> CharSpec {
    CharSpec { uuid, flags, value }
}

/// A Polar H10 at `address`: heart rate notifications, a battery of 90 % (BAT-1 of VECTORS.md)
/// and the PMD control point and data characteristics.
pub fn polar_h10(address: &str) -> DeviceSpec {
    DeviceSpec {
        address: address.into(),
        name: Some("Polar H10 8AA87D20".into()),
        rssi: -61,
        services: vec![
            ServiceSpec { uuid: uuid16(0x180D), characteristics: vec![chr(uuid16(0x2A37), vec!["notify"], vec![])] },
            ServiceSpec {
                uuid: uuid16(0x180F),
                characteristics: vec![chr(uuid16(0x2A19), vec!["read", "notify"], vec![0x5A])],
            },
            ServiceSpec {
                uuid: PMD_SERVICE.into(),
                characteristics: vec![
                    // CP-1 of VECTORS.md: an H10's feature read (ECG and ACC).
                    chr(
                        PMD_CONTROL.into(),
                        vec!["read", "write", "indicate"],
                        vec![0x0F, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                    ),
                    chr(PMD_DATA.into(), vec!["notify"], vec![]),
                ],
            },
        ],
        ..Default::default()
    }
}

/// A heart-rate strap with no PMD service.
pub fn hr_strap(address: &str) -> DeviceSpec {
    DeviceSpec {
        address: address.into(),
        name: Some("HRM-Pro 2".into()),
        rssi: -70,
        services: vec![
            ServiceSpec { uuid: uuid16(0x180D), characteristics: vec![chr(uuid16(0x2A37), vec!["notify"], vec![])] },
            ServiceSpec { uuid: uuid16(0x180F), characteristics: vec![chr(uuid16(0x2A19), vec!["read"], vec![0x64])] },
        ],
        ..Default::default()
    }
}

/// Which devices have their PMD ECG stream on, as Polar's control point left it.
pub type Streaming = Arc<Mutex<HashMap<String, bool>>>;

/// A model of an H10's control point as the captured exchanges show it (CP-3, CP-5, CP-6 of
/// VECTORS.md): "get ECG settings" offers 130 Hz at 14 bits, a start request is answered with
/// success and turns the device's ECG on, a stop turns it off.
pub fn pmd_control_point(streaming: Streaming) -> WriteHandler {
    Box::new(move |device, uuid, request| match (uuid, request) {
        (PMD_CONTROL, [0x01, 0x00]) => {
            vec![(
                PMD_CONTROL.into(),
                vec![0xF0, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x82, 0x00, 0x01, 0x01, 0x0E, 0x00],
            )]
        }
        (PMD_CONTROL, [0x02, 0x00, ..]) => {
            streaming.lock().unwrap().insert(device.to_string(), true);
            vec![(PMD_CONTROL.into(), vec![0xF0, 0x02, 0x00, 0x00, 0x00, 0x00])]
        }
        (PMD_CONTROL, [0x03, 0x00]) => {
            streaming.lock().unwrap().insert(device.to_string(), false);
            vec![(PMD_CONTROL.into(), vec![0xF0, 0x03, 0x00, 0x00, 0x00])]
        }
        _ => vec![],
    })
}
