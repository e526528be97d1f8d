//! Proves the real BLE stack (btleplug → bluez-async → libdbus) works end to end against the fake
//! BlueZ of `support/fake_bluez.rs`: scan with a service filter, connect, GATT discovery,
//! notifications, a read, a write answered by an indication, a dropped link and a reconnection.
//! It is the only test in this binary because it points this process's system bus at the fake.
#![cfg(feature = "ble")]

#[path = "support/ble_devices.rs"]
mod ble_devices;
#[path = "support/fake_bluez.rs"]
mod fake_bluez;

use ble_devices::{polar_h10, PMD_CONTROL};
use btleplug::api::bleuuid::uuid_from_u16;
use btleplug::api::{Central, CentralEvent, Characteristic, Manager as _, Peripheral as _, ScanFilter};
use btleplug::api::{ValueNotification, WriteType};
use btleplug::platform::{Manager, Peripheral};
use fake_bluez::{uuid16, AdapterSpec, FakeBluez, FakeBus};
use futures::{Stream, StreamExt};
use std::future::Future;
use std::time::{Duration, Instant};

const STRAP: &str = "A0:9E:1A:00:00:01";
/// Heart Rate Measurements as a chest strap sends them: flags (0x16: 8-bit rate, skin contact,
/// RR present, or 0x10: RR present), beats per minute, one RR interval in 1/1024 s.
const HR_77_BPM: [u8; 4] = [0x16, 0x4D, 0x16, 0x03];
const HR_59_BPM: [u8; 4] = [0x10, 0x3B, 0x53, 0x04];
/// The PMD answer to "get ECG settings" (01 00): 130 Hz, 14-bit resolution.
const ECG_SETTINGS: [u8; 13] = [0xF0, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x82, 0x00, 0x01, 0x01, 0x0E, 0x00];
const STEP: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn btleplug_scans_connects_and_streams_from_the_fake_bluez() {
    let started = Instant::now();
    let bus = FakeBus::start().expect("start a private dbus-daemon");
    let hci0 = AdapterSpec { name: "hci0".into(), address: "00:1A:7D:DA:71:13".into() };
    let fake = FakeBluez::serve(bus.address(), &[hci0]);
    fake.add_device(polar_h10(STRAP));
    // SAFETY: this is the only test in the binary and nothing else reads the environment meanwhile.
    unsafe { std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", bus.address()) };

    let manager = step("Manager::new", Manager::new()).await.unwrap();
    let adapters = step("adapters", manager.adapters()).await.unwrap();
    let adapter = adapters.into_iter().next().expect("the fake's hci0");
    let mut events = step("events", adapter.events()).await.unwrap();
    step("start_scan", adapter.start_scan(ScanFilter { services: vec![uuid_from_u16(0x180D)] })).await.unwrap();

    let id = next_event(&mut events, |e| match e {
        CentralEvent::DeviceDiscovered(id) => Some(id),
        _ => None,
    })
    .await;
    let strap = step("peripheral", adapter.peripheral(&id)).await.unwrap();
    let properties = step("properties", strap.properties()).await.unwrap().expect("properties");
    assert_eq!(properties.local_name.as_deref(), Some("Polar H10 8AA87D20"));
    assert_eq!(properties.rssi, Some(-61));
    assert!(properties.services.contains(&uuid_from_u16(0x180D)));
    assert_eq!(strap.address().to_string(), STRAP);

    // Heart rate notifications arrive in order, byte for byte.
    connect_and_discover(&strap).await;
    let mut notifications = step("notifications", strap.notifications()).await.unwrap();
    let hr = characteristic(&strap, &uuid16(0x2A37));
    step("subscribe", strap.subscribe(&hr)).await.unwrap();
    assert!(fake.subscribed(STRAP, &uuid16(0x2A37)));
    let sent = [HR_77_BPM, HR_59_BPM, HR_77_BPM];
    for value in sent {
        assert!(fake.notify(STRAP, &uuid16(0x2A37), &value));
    }
    for value in sent {
        assert_eq!(next_value(&mut notifications).await, (uuid16(0x2A37), value.to_vec()));
    }

    // A read. BlueZ also signals the value it read, so the notification stream sees it too.
    let battery = characteristic(&strap, &uuid16(0x2A19));
    assert_eq!(step("read", strap.read(&battery)).await.unwrap(), vec![0x5A]);
    assert_eq!(next_value(&mut notifications).await, (uuid16(0x2A19), vec![0x5A]));

    // A write, answered by an indication once acknowledged.
    fake.set_write_handler(Box::new(|_device, uuid, request| match (uuid, request) {
        (PMD_CONTROL, [0x01, 0x00]) => vec![(PMD_CONTROL.to_owned(), ECG_SETTINGS.to_vec())],
        _ => vec![],
    }));
    let control = characteristic(&strap, PMD_CONTROL);
    step("subscribe", strap.subscribe(&control)).await.unwrap();
    step("write", strap.write(&control, &[0x01, 0x00], WriteType::WithResponse)).await.unwrap();
    assert_eq!(next_value(&mut notifications).await, (PMD_CONTROL.to_owned(), ECG_SETTINGS.to_vec()));
    assert_eq!(fake.writes(STRAP), vec![(PMD_CONTROL.to_owned(), vec![0x01, 0x00])]);

    // The strap drops the link.
    fake.drop_connection(STRAP);
    next_event(&mut events, |e| matches!(e, CentralEvent::DeviceDisconnected(d) if d == id).then_some(())).await;
    assert!(!step("is_connected", strap.is_connected()).await.unwrap());
    assert!(!fake.notify(STRAP, &uuid16(0x2A37), &HR_77_BPM), "nothing flows on a dropped link");

    // Reconnected, the GATT objects are back but the subscriptions are not: subscribe again.
    connect_and_discover(&strap).await;
    assert!(!fake.subscribed(STRAP, &uuid16(0x2A37)));
    let mut notifications = step("notifications", strap.notifications()).await.unwrap();
    let hr = characteristic(&strap, &uuid16(0x2A37));
    step("subscribe", strap.subscribe(&hr)).await.unwrap();
    assert!(fake.notify(STRAP, &uuid16(0x2A37), &HR_59_BPM));
    assert_eq!(next_value(&mut notifications).await, (uuid16(0x2A37), HR_59_BPM.to_vec()));
    eprintln!("fake BlueZ smoke test took {:?}", started.elapsed());
}

/// Awaits one step of the scenario, failing the test instead of hanging.
async fn step<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future).await.unwrap_or_else(|_| panic!("{what} took over {STEP:?}"))
}

async fn next_event<T>(
    events: &mut (impl Stream<Item = CentralEvent> + Unpin),
    mut want: impl FnMut(CentralEvent) -> Option<T>,
) -> T {
    step("the expected central event", async {
        loop {
            let event = events.next().await.expect("the event stream ended");
            if let Some(found) = want(event) {
                return found;
            }
        }
    })
    .await
}

/// The next notification as (characteristic UUID, bytes).
async fn next_value(notifications: &mut (impl Stream<Item = ValueNotification> + Unpin)) -> (String, Vec<u8>) {
    let n = step("a notification", notifications.next()).await.expect("the notification stream ended");
    (n.uuid.to_string(), n.value)
}

async fn connect_and_discover(strap: &Peripheral) {
    step("connect", strap.connect()).await.unwrap();
    assert!(step("is_connected", strap.is_connected()).await.unwrap());
    step("discover_services", strap.discover_services()).await.unwrap();
}

fn characteristic(strap: &Peripheral, uuid: &str) -> Characteristic {
    let mut all = strap.characteristics().into_iter();
    all.find(|c| c.uuid.to_string() == uuid).unwrap_or_else(|| panic!("no characteristic {uuid} discovered"))
}
