//! A fake BlueZ on a private D-Bus bus, so the BLE path can be tested on machines without a radio.
//!
//! On Linux biofeedd reaches Bluetooth through btleplug, which is a D-Bus client of BlueZ: it
//! calls `org.bluez` on the system bus (through bluez-async) and reads its object tree. That bus
//! is the lowest level we can fake without patching anything, so this is the one fake the
//! project allows: everything above it (btleplug, bluez-async, libdbus, biofeedd) runs for real.
//!
//! * [`FakeBus`] runs a private `dbus-daemon`. Give its [`FakeBus::address`] to the process
//!   under test as `DBUS_SYSTEM_BUS_ADDRESS`.
//! * [`FakeBluez`] owns `org.bluez` on that bus and serves, from its own thread, the objects
//!   BlueZ 5 serves: an ObjectManager at `/`, `Adapter1` at `/org/bluez/hci0`, `Device1` at
//!   `…/dev_A0_9E_1A_00_00_01`, and `GattService1` / `GattCharacteristic1` / `GattDescriptor1`
//!   (the CCC) below it, named after ATT handles (`…/service000c/char000d/desc000f`), with
//!   Properties, PropertiesChanged and Introspect XML listing child nodes (bluez-async finds
//!   services and characteristics by introspecting, not through the ObjectManager).
//! * The test drives the "radio" through [`FakeBluez`]'s methods: add devices, send
//!   notifications, drop a link, take a device out of range, answer writes.
//!
//! ```ignore
//! let bus = FakeBus::start()?;
//! let hci0 = AdapterSpec { name: "hci0".into(), address: "00:1A:7D:DA:71:13".into() };
//! let fake = FakeBluez::serve(bus.address(), &[hci0]);
//! let hr = ServiceSpec {
//!     uuid: uuid16(0x180D),
//!     characteristics: vec![CharSpec { uuid: uuid16(0x2A37), flags: vec!["notify"], value: vec![] }],
//! };
//! let strap = DeviceSpec { address: "A0:9E:1A:00:00:01".into(), rssi: -58, services: vec![hr], ..Default::default() };
//! fake.add_device(strap);
//! let daemon = Command::new(env!("CARGO_BIN_EXE_biofeedd")).env("DBUS_SYSTEM_BUS_ADDRESS", bus.address());
//! // … once biofeedd has subscribed:
//! assert!(fake.notify("A0:9E:1A:00:00:01", &uuid16(0x2A37), &[0x16, 0x4D, 0x16, 0x03]));
//! ```
//!
//! What it mirrors of BlueZ (src/adapter.c, device.c, gatt-client.c): a device appears
//! (InterfacesAdded, with RSSI) only while a client discovers and its services match that
//! client's discovery filter; each client has one discovery and its own filter, and the adapter
//! stops discovering, and invalidates RSSI, when the last one stops. `Connect` sets Connected,
//! replies, then exports the GATT objects and sets ServicesResolved (btleplug waits for that).
//! Reads also emit a `Value` PropertiesChanged, exactly like notifications, so btleplug's
//! notification stream sees read values too. Notifications flow only while some client has
//! called StartNotify. A disconnection sets ServicesResolved to false, removes the GATT objects,
//! then sets Connected to false. Clients leaving the bus lose their discovery and notify
//! sessions. Error names and messages are BlueZ's (`org.bluez.Error.Failed:
//! le-connection-abort-by-local` for an unreachable device).
//!
//! Where it differs: the GATT objects (and with them every notify session) are removed on
//! disconnection and exported again on the next connection, as BlueZ does with `[GATT] Cache =
//! no` in main.conf, or `yes` for an unpaired device; its default, `always`, keeps them and
//! restores the notify sessions on reconnection. Here clients must rediscover and resubscribe,
//! the strictest case. Devices are seen by the first adapter only, connect at once, never time
//! out of the device list, and re-advertise only when they become connectable again (a scan
//! start, a dropped link, coming back in range), not periodically. Powering the adapter off
//! only makes discovery and connection fail with `NotReady`. No pairing agent, no
//! AcquireNotify/AcquireWrite (`NotSupported`, as BlueZ answers for characteristics that lack
//! them), no BR/EDR.

#![allow(dead_code)] // each test binary uses a different part of this module

use dbus::arg::{Append, Arg, PropMap, RefArg, Variant};
use dbus::blocking::stdintf::org_freedesktop_dbus::{PropertiesPropertiesChanged, RequestNameReply};
use dbus::blocking::{Connection, SyncConnection};
use dbus::channel::Sender;
use dbus::message::{MessageType, SignalArgs};
use dbus::{Message, MethodErr, Path};
use dbus_crossroads::{Context, Crossroads, IfaceBuilder, IfaceToken};
use std::collections::{BTreeSet, HashMap};
use std::io::{self, BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// What the test describes

/// A local Bluetooth controller. `name` is the adapter id of its object path (`"hci0"`).
#[derive(Clone, Debug)]
pub struct AdapterSpec {
    pub name: String,
    pub address: String,
}

/// A peripheral within range. `rssi` is what its advertisements are received at (0: unknown,
/// as in BlueZ, so no RSSI property).
#[derive(Clone, Debug, Default)]
pub struct DeviceSpec {
    pub address: String,
    pub name: Option<String>,
    pub rssi: i16,
    pub services: Vec<ServiceSpec>,
    /// Advertised manufacturer data, by company id (Device1.ManufacturerData).
    pub manufacturer_data: Vec<(u16, Vec<u8>)>,
    /// Advertised service data, by full UUID (Device1.ServiceData).
    pub service_data: Vec<(String, Vec<u8>)>,
}

#[derive(Clone, Debug, Default)]
pub struct ServiceSpec {
    pub uuid: String,
    pub characteristics: Vec<CharSpec>,
}

/// A characteristic. `flags` are BlueZ's names ("read", "write", "write-without-response",
/// "notify", "indicate", …); `value` is what a read returns.
#[derive(Clone, Debug, Default)]
pub struct CharSpec {
    pub uuid: String,
    pub flags: Vec<&'static str>,
    pub value: Vec<u8>,
}

/// The full, lowercase form BlueZ gives a 16-bit SIG UUID: 0x2A37 → "00002a37-0000-1000-8000-00805f9b34fb".
pub fn uuid16(short: u16) -> String {
    format!("0000{short:04x}-0000-1000-8000-00805f9b34fb")
}

/// Called on every write the device accepts with (device address, characteristic UUID, bytes);
/// the (characteristic UUID, bytes) it returns are notified or indicated back after the write
/// is acknowledged, each only if a client subscribed to that characteristic. It runs on the
/// fake's thread, so it must not call [`FakeBluez`] methods.
pub type WriteHandler = Box<dyn FnMut(&str, &str, &[u8]) -> Vec<(String, Vec<u8>)> + Send>;

/// Characteristic flags, as BlueZ spells them.
const FLAGS: &str = "broadcast read write-without-response write notify indicate authenticated-signed-writes \
    extended-properties reliable-write writable-auxiliaries encrypt-read encrypt-write encrypt-authenticated-read \
    encrypt-authenticated-write authorize";
const ADAPTER1: &str = "org.bluez.Adapter1";
const DEVICE1: &str = "org.bluez.Device1";
const CHARACTERISTIC1: &str = "org.bluez.GattCharacteristic1";
const CCC_UUID: u16 = 0x2902;
/// The ATT MTU BlueZ reports once connected; 247 is what phones and BlueZ usually negotiate.
const MTU: u16 = 247;
/// How long the fake's thread waits for a D-Bus message; the doorbell normally wakes it sooner.
const POLL: Duration = Duration::from_millis(50);
const DISCOVERY_FILTER_KEYS: [&str; 7] =
    ["UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable", "Pattern"];

// ---------------------------------------------------------------------------------------------
// The private bus

/// A `dbus-daemon` of our own, listening on a socket in a temporary directory; killed on drop.
pub struct FakeBus {
    daemon: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl FakeBus {
    pub fn start() -> io::Result<FakeBus> {
        let dir = tempfile::Builder::new().prefix("fake-bus-").tempdir()?;
        let config = dir.path().join("bus.conf");
        std::fs::write(&config, bus_config(&dir.path().join("system_bus_socket")))?;
        // Its log is only worth reading when it fails (as root it warns it cannot raise its fd limit).
        let log = dir.path().join("dbus-daemon.log");
        let mut daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nopidfile", "--nosyslog", "--print-address"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => io::Error::new(
                    e.kind(),
                    "dbus-daemon is not on PATH; the BLE tests need it: install the `dbus-daemon` package",
                ),
                _ => e,
            })?;
        // The daemon prints its address once it listens; EOF instead means it gave up.
        let mut line = String::new();
        let read = BufReader::new(daemon.stdout.take().expect("stdout is piped")).read_line(&mut line);
        let address = line.trim().to_owned();
        if read.is_err() || address.is_empty() {
            let _ = daemon.kill();
            let status = daemon.wait()?;
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(io::Error::other(format!("dbus-daemon ({status}) printed no address: {}", log.trim())));
        }
        Ok(FakeBus { daemon, address, _dir: dir })
    }

    /// The address to put in `DBUS_SYSTEM_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for FakeBus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// Anyone may connect, own any name and send anything: the bus exists for one test.
fn bus_config(socket: &std::path::Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}

// ---------------------------------------------------------------------------------------------
// The handle the test holds

/// Work for the fake's thread; what it returns is called once the messages it caused are sent.
type Job = Box<dyn FnOnce(&mut Crossroads) -> Box<dyn FnOnce() + Send> + Send>;

/// `org.bluez` on a [`FakeBus`], served from its own thread until dropped.
pub struct FakeBluez {
    jobs: Option<mpsc::Sender<Job>>,
    /// A connection of the handle's own, to wake the fake's thread when it has a job.
    doorbell: SyncConnection,
    fake_name: String,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
}

impl FakeBluez {
    /// Connects to the bus at `address`, takes the name `org.bluez` and serves `adapters`
    /// (powered, not discovering). Panics, with the reason, if that fails.
    pub fn serve(address: &str, adapters: &[AdapterSpec]) -> FakeBluez {
        assert!(!adapters.is_empty(), "FakeBluez::serve needs at least one adapter");
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready, started) = mpsc::channel();
        let (bus, adapters) = (address.to_owned(), adapters.to_vec());
        let thread = thread::Builder::new()
            .name("fake-bluez".into())
            .spawn(move || match Server::start(&bus, adapters) {
                Ok(server) => {
                    let _ = ready.send(Ok(server.conn.unique_name().to_string()));
                    server.run(inbox);
                }
                Err(e) => drop(ready.send(Err(e))),
            })
            .expect("cannot spawn the fake BlueZ thread");
        let fail = |e: &dyn std::fmt::Display| -> ! { panic!("fake BlueZ cannot serve on {address}: {e}") };
        let fake_name = match started.recv() {
            Ok(started) => started.unwrap_or_else(|e| fail(&e)),
            Err(_) => fail(&"its thread died while starting"),
        };
        let doorbell = SyncConnection::new_address(address).unwrap_or_else(|e| fail(&e));
        let thread_id = thread.thread().id();
        FakeBluez { jobs: Some(jobs), doorbell, fake_name, thread: Some(thread), thread_id }
    }

    /// A device comes within range; it appears at the ongoing or next discovery.
    pub fn add_device(&self, spec: DeviceSpec) {
        self.call(move |cr| add_device(cr, spec)).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The device notifies (or indicates) `value` on `char_uuid`. False, and nothing is sent,
    /// unless it is connected, has that characteristic and a client subscribed to it.
    pub fn notify(&self, address: &str, char_uuid: &str, value: &[u8]) -> bool {
        let (uuid, value) = (char_uuid.to_ascii_lowercase(), value.to_vec());
        self.on_device(address, move |cr, d| {
            let m = model(cr);
            let message = m.notification(d, &uuid, value);
            message.map(|message| m.outbox.push(message)).is_some()
        })
    }

    /// The link drops from the device's side, as when it walks out of range for a moment.
    pub fn drop_connection(&self, address: &str) {
        self.on_device(address, disconnect);
    }

    /// Out of range, a device is not advertised and `Connect` fails as BlueZ fails it; going
    /// out of range also drops its connection.
    pub fn set_reachable(&self, address: &str, reachable: bool) {
        self.on_device(address, move |cr, d| {
            model(cr).devices[d].reachable = reachable;
            if !reachable {
                disconnect(cr, d);
                model(cr).devices[d].advertised = false;
            }
        });
    }

    /// What reads of `char_uuid` return from now on.
    pub fn set_value(&self, address: &str, char_uuid: &str, value: &[u8]) {
        let (uuid, value) = (char_uuid.to_ascii_lowercase(), value.to_vec());
        let found = self.on_device(address, move |cr, d| {
            let mut found = false;
            for c in model(cr).devices[d].gatt.iter_mut().flat_map(|s| &mut s.chars).filter(|c| c.uuid == uuid) {
                c.value = value.clone();
                found = true;
            }
            found
        });
        assert!(found, "fake BlueZ: {address} has no characteristic {char_uuid}");
    }

    pub fn set_write_handler(&self, handler: WriteHandler) {
        self.call(move |cr| model(cr).write_handler = Some(handler));
    }

    /// Every write the device accepted, in order, as (characteristic UUID, bytes).
    pub fn writes(&self, address: &str) -> Vec<(String, Vec<u8>)> {
        self.on_device(address, |cr, d| model(cr).devices[d].writes.clone())
    }

    /// Whether a client has notifications of `char_uuid` on.
    pub fn subscribed(&self, address: &str, char_uuid: &str) -> bool {
        let uuid = char_uuid.to_ascii_lowercase();
        self.on_device(address, move |cr, d| {
            let device = &model(cr).devices[d];
            device.connected && device.find_char(&uuid).is_some_and(|c| !c.subscribers.is_empty())
        })
    }

    pub fn is_connected(&self, address: &str) -> bool {
        self.on_device(address, |cr, d| model(cr).devices[d].connected)
    }

    /// Runs `f` on the fake's thread, between two D-Bus messages, and returns its result once
    /// the messages `f` caused are on the bus.
    fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Crossroads) -> R + Send + 'static) -> R {
        assert_ne!(
            thread::current().id(),
            self.thread_id,
            "FakeBluez methods cannot be called from a write handler (it runs on the fake's thread)"
        );
        let (reply, result) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |cr| {
            let value = f(cr);
            Box::new(move || drop(reply.send(value)))
        });
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(job); // if the thread is gone, the job and its reply sender are dropped
        }
        self.ring();
        result
            .recv()
            .expect("the fake BlueZ thread has stopped: did the FakeBus go away first, or a write handler panic?")
    }

    /// A unicast signal to the fake's connection: its arrival ends the thread's wait for messages.
    fn ring(&self) {
        if let Ok(mut ring) = Message::new_signal("/", "org.bluez.FakeDoorbell", "Ring") {
            ring.set_destination(Some(self.fake_name.clone().into()));
            let _ = self.doorbell.channel().send(ring);
            self.doorbell.channel().flush();
        }
    }

    fn on_device<R: Send + 'static>(
        &self,
        address: &str,
        f: impl FnOnce(&mut Crossroads, usize) -> R + Send + 'static,
    ) -> R {
        let address = address.to_ascii_uppercase();
        let found = self.call(move |cr| match model(cr).devices.iter().position(|d| d.address == address) {
            Some(d) => Ok(f(cr, d)),
            None => Err(format!("fake BlueZ has no device {address}; add_device it first")),
        });
        found.unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for FakeBluez {
    fn drop(&mut self) {
        drop(self.jobs.take()); // the thread stops when it finds the channel closed
        self.ring();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The serving thread

struct Server {
    conn: Connection,
    cr: Crossroads,
    outbox: Arc<Outbox>,
}

impl Server {
    fn start(address: &str, adapters: Vec<AdapterSpec>) -> Result<Server, dbus::Error> {
        let conn = Connection::new_address(address)?;
        if conn.request_name("org.bluez", false, false, true)? != RequestNameReply::PrimaryOwner {
            return Err(dbus::Error::new_failed("org.bluez is already owned on this bus"));
        }
        // BlueZ drops the discovery and notify sessions of clients that leave the bus.
        conn.add_match_no_cb("type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'")?;
        let outbox = Arc::new(Outbox::default());
        let cr = object_tree(adapters, outbox.clone());
        Ok(Server { conn, cr, outbox })
    }

    /// Serves until the [`FakeBluez`] is dropped or the bus goes away.
    fn run(mut self, jobs: mpsc::Receiver<Job>) {
        loop {
            match self.conn.channel().blocking_pop_message(POLL) {
                Ok(Some(message)) => self.dispatch(message),
                Ok(None) => {}
                Err(e) => {
                    eprintln!("fake BlueZ: lost the bus ({e}); stopping");
                    return;
                }
            }
            while let Some(message) = self.conn.channel().pop_message() {
                self.dispatch(message);
            }
            loop {
                match jobs.try_recv() {
                    Ok(job) => {
                        let reply = job(&mut self.cr);
                        self.send_outbox();
                        reply();
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => return,
                }
            }
            // Work that BlueZ does after replying: advertisements, then GATT discovery.
            advertise(&mut self.cr);
            resolve_services(&mut self.cr);
            self.send_outbox();
        }
    }

    fn send_outbox(&self) {
        for message in self.outbox.take() {
            let _ = self.conn.channel().send(message);
        }
        self.conn.channel().flush();
    }

    fn dispatch(&mut self, message: Message) {
        if let Some(client) = departed_client(&message) {
            return client_left(&mut self.cr, &client);
        }
        // Replies go through the outbox too, so they keep their place among the signals.
        let _ = self.cr.handle_message(message, &*self.outbox); // Err: not a method call
    }
}

/// The unique name of a client that has just left the bus, from NameOwnerChanged.
fn departed_client(message: &Message) -> Option<String> {
    if message.msg_type() != MessageType::Signal || &*message.member()? != "NameOwnerChanged" {
        return None;
    }
    let (name, _old, new): (&str, &str, &str) = message.read3().ok()?;
    (name.starts_with(':') && new.is_empty()).then(|| name.to_owned())
}

/// Outgoing messages in the order they were made; the loop sends them after each round.
#[derive(Default)]
struct Outbox(Mutex<Vec<Message>>);

impl Outbox {
    fn push(&self, message: Message) {
        self.0.lock().unwrap().push(message);
    }
    fn take(&self) -> Vec<Message> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    fn changed(&self, path: &str, interface: &str, name: &str, value: Box<dyn RefArg>) {
        self.push(properties_changed(path, interface, [(name.to_owned(), Variant(value))].into(), vec![]));
    }
    fn invalidated(&self, path: &str, interface: &str, name: &str) {
        self.push(properties_changed(path, interface, PropMap::new(), vec![name.to_owned()]));
    }
}

impl Sender for Outbox {
    fn send(&self, message: Message) -> Result<u32, ()> {
        self.push(message);
        Ok(0)
    }
}

fn properties_changed(path: &str, interface: &str, changed: PropMap, invalidated: Vec<String>) -> Message {
    let signal = PropertiesPropertiesChanged {
        interface_name: interface.to_owned(),
        changed_properties: changed,
        invalidated_properties: invalidated,
    };
    signal.to_emit_message(&Path::from(path.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// The state of the radio world, kept as the data of "/" in the Crossroads tree

struct Model {
    outbox: Arc<Outbox>,
    ifaces: Ifaces,
    adapters: Vec<Adapter>,
    devices: Vec<Device>,
    write_handler: Option<WriteHandler>,
}

#[derive(Clone, Copy)]
struct Ifaces {
    device: IfaceToken<()>,
    service: IfaceToken<()>,
    characteristic: IfaceToken<()>,
    descriptor: IfaceToken<()>,
}

struct Adapter {
    spec: AdapterSpec,
    path: String,
    powered: bool,
    /// The clients (unique bus names) discovering, each with its UUID filter (empty: all).
    discovering: HashMap<String, Vec<String>>,
    /// Filters set with SetDiscoveryFilter before StartDiscovery.
    filters: HashMap<String, Vec<String>>,
}

#[derive(Default)]
struct Device {
    address: String,
    spec: DeviceSpec,
    path: String,
    reachable: bool,
    /// Device1 exists on the bus (it was discovered once and not removed).
    on_bus: bool,
    /// Its advertising has been reported since it last became connectable or a scan started.
    advertised: bool,
    /// RSSI is known: BlueZ drops it when discovery stops.
    rssi_known: bool,
    connected: bool,
    /// GATT objects exported and ServicesResolved true.
    resolved: bool,
    paired: bool,
    gatt: Vec<Service>,
    writes: Vec<(String, Vec<u8>)>,
}

struct Service {
    uuid: String,
    handle: u16,
    path: String,
    chars: Vec<Char>,
}

#[derive(Default)]
struct Char {
    uuid: String,
    flags: Vec<String>,
    /// What the peripheral holds: reads return it.
    value: Vec<u8>,
    /// BlueZ's cached copy, the Value property: set by reads and notifications.
    cached: Option<Vec<u8>>,
    handle: u16,
    path: String,
    ccc: Option<String>,
    subscribers: BTreeSet<String>,
}

impl Char {
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
    fn notifies(&self) -> bool {
        self.has("notify") || self.has("indicate")
    }
    /// The Client Characteristic Configuration value BlueZ has written to the device.
    fn ccc_value(&self) -> Vec<u8> {
        match (self.subscribers.is_empty(), self.has("notify")) {
            (true, _) => vec![0, 0],
            (false, true) => vec![1, 0],
            (false, false) => vec![2, 0],
        }
    }
}

impl Device {
    fn uuids(&self) -> Vec<String> {
        self.gatt.iter().map(|s| s.uuid.clone()).collect()
    }
    fn find_char(&self, uuid: &str) -> Option<&Char> {
        self.gatt.iter().flat_map(|s| &s.chars).find(|c| c.uuid == uuid)
    }
    /// The GATT objects under the device, parents first, with the interface each implements.
    fn gatt_objects(&self, ifaces: &Ifaces) -> Vec<(String, IfaceToken<()>)> {
        let mut objects = vec![];
        for service in &self.gatt {
            objects.push((service.path.clone(), ifaces.service));
            for c in &service.chars {
                objects.push((c.path.clone(), ifaces.characteristic));
                objects.extend(c.ccc.clone().map(|ccc| (ccc, ifaces.descriptor)));
            }
        }
        objects
    }
}

impl Model {
    fn adapter_at(&mut self, path: &str) -> Result<&mut Adapter, MethodErr> {
        self.adapters.iter_mut().find(|a| a.path == path).ok_or_else(|| MethodErr::no_path(&path))
    }
    fn device_index(&self, path: &str) -> Result<usize, MethodErr> {
        let found = self.devices.iter().position(|d| d.on_bus && d.path == path);
        found.ok_or_else(|| bluez_error("DoesNotExist", "Does Not Exist"))
    }
    fn device_at(&self, path: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.on_bus && d.path == path)
    }
    fn service_at(&self, path: &str) -> Option<&Service> {
        self.devices.iter().flat_map(|d| &d.gatt).find(|s| s.path == path)
    }
    /// (device index, characteristic) for the path of a characteristic or of its CCC.
    fn char_at(&mut self, path: &str) -> Option<(usize, &mut Char)> {
        self.devices.iter_mut().enumerate().find_map(|(d, device)| {
            let mut chars = device.gatt.iter_mut().flat_map(|s| &mut s.chars);
            chars.find(|c| c.path == path || c.ccc.as_deref() == Some(path)).map(|c| (d, c))
        })
    }
    fn char_ref(&self, path: &str) -> Option<&Char> {
        let mut chars = self.devices.iter().flat_map(|d| &d.gatt).flat_map(|s| &s.chars);
        chars.find(|c| c.path == path || c.ccc.as_deref() == Some(path))
    }
    /// Whether any discovering client's filter lets `device` through.
    fn wanted(&self, device: &Device) -> bool {
        let adapter = self.adapters.iter().find(|a| a.path == parent(&device.path));
        let uuids = device.uuids();
        adapter.is_some_and(|a| {
            a.discovering.values().any(|filter| filter.is_empty() || filter.iter().any(|u| uuids.contains(u)))
        })
    }
    /// The PropertiesChanged of a notification of `uuid`, if the device can send one now.
    fn notification(&mut self, d: usize, uuid: &str, value: Vec<u8>) -> Option<Message> {
        let device = &mut self.devices[d];
        if !device.resolved {
            return None;
        }
        let c = device.gatt.iter_mut().flat_map(|s| &mut s.chars).find(|c| c.uuid == uuid)?;
        if c.subscribers.is_empty() {
            return None;
        }
        c.cached = Some(value.clone());
        Some(properties_changed(
            &c.path,
            CHARACTERISTIC1,
            [("Value".to_owned(), Variant(Box::new(value) as Box<dyn RefArg>))].into(),
            vec![],
        ))
    }
}

fn model(cr: &mut Crossroads) -> &mut Model {
    cr.data_mut(&Path::from("/")).expect("the model is the data of /")
}

fn bluez_error(name: &str, message: &str) -> MethodErr {
    (format!("org.bluez.Error.{name}"), message).into()
}

/// The object a BlueZ object path lies under: adapter of a device, device of a service, and so on.
fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(parent, _)| parent)
}

fn sender(ctx: &Context) -> String {
    ctx.message().sender().map(|s| s.to_string()).unwrap_or_default()
}

fn add_device(cr: &mut Crossroads, mut spec: DeviceSpec) -> Result<(), String> {
    let address = spec.address.to_ascii_uppercase();
    let bytes: Vec<_> = address.split(':').collect();
    if bytes.len() != 6 || !bytes.iter().all(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok()) {
        return Err(format!("fake BlueZ: {:?} is not a Bluetooth address like A0:9E:1A:00:00:01", spec.address));
    }
    let chars: Vec<&CharSpec> = spec.services.iter().flat_map(|s| &s.characteristics).collect();
    let uuids = spec.services.iter().map(|s| &s.uuid).chain(chars.iter().map(|c| &c.uuid));
    if let Some(uuid) = uuids.chain(spec.service_data.iter().map(|(uuid, _)| uuid)).find(|u| !is_full_uuid(u)) {
        return Err(format!("fake BlueZ: {uuid:?} is not a full UUID (write 0x2A37 as uuid16(0x2A37))"));
    }
    let known = |flag: &&str| FLAGS.split_whitespace().any(|f| f == *flag);
    if let Some(flag) = chars.iter().flat_map(|c| &c.flags).find(|flag| !known(flag)) {
        return Err(format!("fake BlueZ: {flag:?} is not a BlueZ characteristic flag; they are: {FLAGS}"));
    }
    let m = model(cr);
    if m.devices.iter().any(|d| d.address == address) {
        return Err(format!("fake BlueZ: device {address} was already added"));
    }
    let path = format!("{}/dev_{}", m.adapters[0].path, address.replace(':', "_"));
    spec.service_data.iter_mut().for_each(|(uuid, _)| *uuid = uuid.to_ascii_lowercase());
    let gatt = gatt_layout(&path, &spec.services);
    m.devices.push(Device { address, spec, path, gatt, reachable: true, ..Default::default() });
    Ok(())
}

/// The 128-bit form BlueZ uses and bluez-async parses: 8-4-4-4-12 hex digits.
fn is_full_uuid(uuid: &str) -> bool {
    let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
    groups == [8, 4, 4, 4, 12] && uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

/// Numbers the attributes as a peripheral's GATT server does: each service's declaration, then
/// per characteristic its declaration, its value and (if it notifies) its CCC. BlueZ names the
/// objects after those handles. 0x000c is where a device's own services typically start, after
/// the GAP and GATT services.
fn gatt_layout(device: &str, services: &[ServiceSpec]) -> Vec<Service> {
    let mut handle = 0x000c;
    let mut layout = vec![];
    for spec in services {
        let path = format!("{device}/service{handle:04x}");
        let mut service = Service { uuid: spec.uuid.to_ascii_lowercase(), handle, path, chars: vec![] };
        handle += 1;
        for c in &spec.characteristics {
            let path = format!("{}/char{handle:04x}", service.path);
            let uuid = c.uuid.to_ascii_lowercase();
            let flags = c.flags.iter().map(|f| f.to_string()).collect();
            let mut chr = Char { uuid, flags, value: c.value.clone(), handle, path, ..Default::default() };
            handle += 2;
            if chr.notifies() {
                chr.ccc = Some(format!("{}/desc{handle:04x}", chr.path));
                handle += 1;
            }
            service.chars.push(chr);
        }
        layout.push(service);
    }
    layout
}

// ---------------------------------------------------------------------------------------------
// What happens on the radio

/// Reports the devices that advertise to a discovering client: a new one appears with
/// InterfacesAdded, a known one updates RSSI (a real RSSI jitters, so BlueZ reports each
/// fresh sighting) and its advertising data.
fn advertise(cr: &mut Crossroads) {
    let m = model(cr);
    let due: Vec<usize> = (0..m.devices.len())
        .filter(|&d| {
            let device = &m.devices[d];
            device.reachable && !device.connected && !device.advertised && m.wanted(device)
        })
        .collect();
    for d in due {
        let m = model(cr);
        let token = m.ifaces.device;
        let device = &mut m.devices[d];
        device.advertised = true;
        device.rssi_known = true;
        if !device.on_bus {
            device.on_bus = true;
            let path = device.path.clone();
            cr.insert(path, &[token], ()); // InterfacesAdded, RSSI included
            continue;
        }
        let outbox = &m.outbox;
        outbox.changed(&device.path, DEVICE1, "RSSI", Box::new(device.spec.rssi));
        if let Some(data) = manufacturer_data(device) {
            outbox.changed(&device.path, DEVICE1, "ManufacturerData", Box::new(data));
        }
        if let Some(data) = service_data(device) {
            outbox.changed(&device.path, DEVICE1, "ServiceData", Box::new(data));
        }
    }
}

/// Finishes GATT discovery of freshly connected devices: exports the objects, then sets
/// ServicesResolved, which is what bluez-async waits for after `Connect` returns.
fn resolve_services(cr: &mut Crossroads) {
    let m = model(cr);
    let due: Vec<usize> = (0..m.devices.len()).filter(|&d| m.devices[d].connected && !m.devices[d].resolved).collect();
    for d in due {
        let m = model(cr);
        let objects = m.devices[d].gatt_objects(&m.ifaces);
        for (path, token) in objects {
            cr.insert(path, &[token], ());
        }
        let m = model(cr);
        let device = &mut m.devices[d];
        device.resolved = true;
        m.outbox.changed(&device.path, DEVICE1, "ServicesResolved", Box::new(true));
    }
}

fn connect(cr: &mut Crossroads, path: &str) -> Result<(), MethodErr> {
    let m = model(cr);
    let d = m.device_index(path)?;
    let powered = m.adapters.iter().any(|a| a.path == parent(&m.devices[d].path) && a.powered);
    let device = &mut m.devices[d];
    if !powered {
        return Err(bluez_error("NotReady", "Resource Not Ready"));
    }
    if device.connected {
        return Ok(());
    }
    if !device.reachable {
        return Err(bluez_error("Failed", "le-connection-abort-by-local"));
    }
    device.connected = true;
    m.outbox.changed(path, DEVICE1, "Connected", Box::new(true));
    Ok(()) // resolve_services() follows the reply
}

/// The link goes down, from either side: ServicesResolved, GATT objects (and with them the
/// notify sessions), then Connected.
fn disconnect(cr: &mut Crossroads, d: usize) {
    let m = model(cr);
    let device = &mut m.devices[d];
    if !device.connected {
        return;
    }
    if device.resolved {
        m.outbox.changed(&device.path, DEVICE1, "ServicesResolved", Box::new(false));
        let objects = device.gatt_objects(&m.ifaces);
        for (path, _) in objects.into_iter().rev() {
            cr.remove::<()>(&Path::from(path));
        }
    }
    let m = model(cr);
    let device = &mut m.devices[d];
    device.connected = false;
    device.resolved = false;
    device.advertised = false; // it advertises again
    for c in device.gatt.iter_mut().flat_map(|s| &mut s.chars) {
        c.subscribers.clear();
        c.cached = None;
    }
    m.outbox.changed(&device.path, DEVICE1, "Connected", Box::new(false));
}

fn start_discovery(cr: &mut Crossroads, ctx: &Context) -> Result<(), MethodErr> {
    let client = sender(ctx);
    let m = model(cr);
    let adapter = m.adapter_at(ctx.path())?;
    if !adapter.powered {
        return Err(bluez_error("NotReady", "Resource Not Ready"));
    }
    if adapter.discovering.contains_key(&client) {
        return Err(bluez_error("InProgress", "Operation already in progress"));
    }
    let filter = adapter.filters.remove(&client).unwrap_or_default();
    let first = adapter.discovering.is_empty();
    adapter.discovering.insert(client, filter);
    let path = adapter.path.clone();
    if first {
        m.outbox.changed(&path, ADAPTER1, "Discovering", Box::new(true));
        m.devices.iter_mut().filter(|d| parent(&d.path) == path).for_each(|d| d.advertised = false);
    }
    Ok(()) // advertise() follows the reply
}

fn stop_discovery(cr: &mut Crossroads, adapter_path: &str, client: &str) -> Result<(), MethodErr> {
    let m = model(cr);
    let adapter = m.adapter_at(adapter_path)?;
    if !adapter.powered {
        return Err(bluez_error("NotReady", "Resource Not Ready"));
    }
    if adapter.discovering.remove(client).is_none() {
        return Err(bluez_error("Failed", "No discovery started"));
    }
    if !adapter.discovering.is_empty() {
        return Ok(());
    }
    m.outbox.changed(adapter_path, ADAPTER1, "Discovering", Box::new(false));
    for device in m.devices.iter_mut().filter(|d| parent(&d.path) == adapter_path) {
        device.advertised = false;
        if std::mem::take(&mut device.rssi_known) && device.on_bus {
            m.outbox.invalidated(&device.path, DEVICE1, "RSSI");
        }
    }
    Ok(())
}

fn set_discovery_filter(cr: &mut Crossroads, ctx: &Context, filter: PropMap) -> Result<(), MethodErr> {
    if let Some(key) = filter.keys().find(|k| !DISCOVERY_FILTER_KEYS.contains(&String::as_str(k))) {
        return Err(bluez_error("InvalidArguments", &format!("Invalid arguments in method call: {key}")));
    }
    let uuids = dbus::arg::prop_cast::<Vec<String>>(&filter, "UUIDs").cloned().unwrap_or_default();
    let client = sender(ctx);
    let adapter = model(cr).adapter_at(ctx.path())?;
    let uuids = uuids.iter().map(|u| u.to_ascii_lowercase()).collect();
    match adapter.discovering.get_mut(&client) {
        Some(filter) => *filter = uuids,
        None => drop(adapter.filters.insert(client, uuids)),
    }
    Ok(())
}

fn remove_device(cr: &mut Crossroads, device_path: &Path) -> Result<(), MethodErr> {
    let d = model(cr).device_index(device_path)?;
    disconnect(cr, d);
    let device = &mut model(cr).devices[d];
    (device.on_bus, device.advertised, device.rssi_known, device.paired) = (false, false, false, false);
    cr.remove::<()>(&device_path.clone().into_static());
    Ok(())
}

fn pair(cr: &mut Crossroads, path: &str) -> Result<(), MethodErr> {
    let m = model(cr);
    let d = m.device_index(path)?;
    if m.devices[d].paired {
        return Err(bluez_error("AlreadyExists", "Already Exists"));
    }
    connect(cr, path)?;
    let m = model(cr);
    m.devices[d].paired = true;
    m.outbox.changed(path, DEVICE1, "Paired", Box::new(true));
    m.outbox.changed(path, DEVICE1, "Bonded", Box::new(true));
    Ok(())
}

/// Returns the value and, like BlueZ, first updates the cached Value with a PropertiesChanged.
fn read_value(cr: &mut Crossroads, path: &str, options: PropMap) -> Result<(Vec<u8>,), MethodErr> {
    let m = model(cr);
    let outbox = m.outbox.clone();
    let (_, c) = m.char_at(path).ok_or_else(|| MethodErr::no_path(&path))?;
    if !c.has("read") {
        return Err(bluez_error("NotPermitted", "Read not permitted"));
    }
    let offset = match options.get("offset") {
        None => 0,
        Some(v) if v.0.arg_type() == dbus::arg::ArgType::UInt16 => v.0.as_u64().unwrap_or(0) as usize,
        // BlueZ takes only a uint16 offset (bluez-async sends a uint64: real BlueZ refuses it too).
        Some(_) => return Err(bluez_error("InvalidArguments", "Invalid arguments in method call")),
    };
    let value = c.value.get(offset..).ok_or_else(|| bluez_error("InvalidArguments", "Invalid offset"))?.to_vec();
    c.cached = Some(c.value.clone());
    outbox.changed(path, CHARACTERISTIC1, "Value", Box::new(c.value.clone()));
    Ok((value,))
}

fn write_value(cr: &mut Crossroads, ctx: &mut Context, value: Vec<u8>, options: PropMap) -> Result<(), MethodErr> {
    let m = model(cr);
    let path = ctx.path().to_string();
    let (d, c) = m.char_at(&path).ok_or_else(|| MethodErr::no_path(&path))?;
    let kind = match dbus::arg::prop_cast::<String>(&options, "type").map(String::as_str) {
        Some(kind @ ("request" | "command" | "reliable")) => kind,
        Some(_) => return Err(bluez_error("InvalidArguments", "Invalid arguments in method call")),
        None if c.has("write") || c.has("reliable-write") => "request",
        None if c.has("write-without-response") => "command",
        None => return Err(bluez_error("NotSupported", "Operation is not supported")),
    };
    // BlueZ sends what it is asked to; it is the peripheral that refuses.
    if kind != "command" && !c.has("write") && !c.has("reliable-write") {
        return Err(bluez_error("NotPermitted", "Write not permitted"));
    }
    if kind == "command" && !c.has("write-without-response") {
        return Ok(()); // a command gets no ATT response, so the peripheral drops it silently
    }
    let uuid = c.uuid.clone();
    let address = m.devices[d].address.clone();
    m.devices[d].writes.push((uuid.clone(), value.clone()));
    let replies = m.write_handler.as_mut().map(|h| h(&address, &uuid, &value)).unwrap_or_default();
    for (uuid, bytes) in replies {
        match m.notification(d, &uuid.to_ascii_lowercase(), bytes) {
            Some(message) => ctx.push_msg(message), // sent after the reply
            None => eprintln!(
                "fake BlueZ: write handler reply on {uuid} dropped: not subscribed (or no such characteristic)"
            ),
        }
    }
    Ok(())
}

fn start_notify(cr: &mut Crossroads, ctx: &Context) -> Result<(), MethodErr> {
    let client = sender(ctx);
    let m = model(cr);
    let outbox = m.outbox.clone();
    let (_, c) = m.char_at(ctx.path()).ok_or_else(|| MethodErr::no_path(ctx.path()))?;
    if !c.notifies() {
        return Err(bluez_error("NotSupported", "Operation is not supported"));
    }
    if c.subscribers.insert(client) && c.subscribers.len() == 1 {
        outbox.changed(&c.path, CHARACTERISTIC1, "Notifying", Box::new(true));
    }
    Ok(())
}

fn stop_notify(cr: &mut Crossroads, char_path: &str, client: &str) -> Result<(), MethodErr> {
    let m = model(cr);
    let outbox = m.outbox.clone();
    let (_, c) = m.char_at(char_path).ok_or_else(|| MethodErr::no_path(&char_path))?;
    if !c.subscribers.remove(client) {
        return Err(bluez_error("Failed", "No notify session started"));
    }
    if c.subscribers.is_empty() {
        outbox.changed(&c.path, CHARACTERISTIC1, "Notifying", Box::new(false));
    }
    Ok(())
}

/// A client left the bus: BlueZ ends its discovery and its notify sessions.
fn client_left(cr: &mut Crossroads, client: &str) {
    let m = model(cr);
    let adapters: Vec<String> = m.adapters.iter().map(|a| a.path.clone()).collect();
    m.adapters.iter_mut().for_each(|a| drop(a.filters.remove(client)));
    let chars: Vec<String> = m
        .devices
        .iter()
        .flat_map(|d| &d.gatt)
        .flat_map(|s| &s.chars)
        .filter(|c| c.subscribers.contains(client))
        .map(|c| c.path.clone())
        .collect();
    for path in adapters {
        let _ = stop_discovery(cr, &path, client);
    }
    for path in chars {
        let _ = stop_notify(cr, &path, client);
    }
}

fn manufacturer_data(device: &Device) -> Option<HashMap<u16, Variant<Vec<u8>>>> {
    let data = &device.spec.manufacturer_data;
    (!data.is_empty()).then(|| data.iter().map(|(id, bytes)| (*id, Variant(bytes.clone()))).collect())
}

fn service_data(device: &Device) -> Option<HashMap<String, Variant<Vec<u8>>>> {
    let data = &device.spec.service_data;
    (!data.is_empty()).then(|| data.iter().map(|(uuid, bytes)| (uuid.clone(), Variant(bytes.clone()))).collect())
}

// ---------------------------------------------------------------------------------------------
// The D-Bus interfaces, with BlueZ's names, signatures and error replies

fn object_tree(adapters: Vec<AdapterSpec>, outbox: Arc<Outbox>) -> Crossroads {
    let mut cr = Crossroads::new();
    let adapter = register_adapter(&mut cr);
    let ifaces = Ifaces {
        device: register_device(&mut cr),
        service: register_service(&mut cr),
        characteristic: register_characteristic(&mut cr),
        descriptor: register_descriptor(&mut cr),
    };
    let adapters: Vec<Adapter> = adapters
        .into_iter()
        .map(|spec| Adapter {
            path: format!("/org/bluez/{}", spec.name),
            spec: AdapterSpec { address: spec.address.to_ascii_uppercase(), ..spec },
            powered: true,
            discovering: HashMap::new(),
            filters: HashMap::new(),
        })
        .collect();
    // Plain nodes on the way down, so introspecting "/" walks the tree as it does on BlueZ.
    cr.insert("/org", &[], ());
    cr.insert("/org/bluez", &[], ());
    for a in &adapters {
        cr.insert(a.path.clone(), &[adapter], ());
    }
    let model = Model { outbox: outbox.clone(), ifaces, adapters, devices: vec![], write_handler: None };
    let manager = cr.object_manager::<Model>();
    cr.insert("/", &[manager], model);
    // From here on, inserting and removing objects emits InterfacesAdded/Removed from "/".
    cr.set_object_manager_support(Some(outbox));
    cr
}

/// What a property getter may return.
trait PropValue: Arg + RefArg + Append + Send + 'static {}
impl<A: Arg + RefArg + Append + Send + 'static> PropValue for A {}

/// A read-only property of the object `find` locates by path; `get` returning None leaves the
/// property out of GetAll and InterfacesAdded, as BlueZ leaves out those it has no value for.
fn prop<T: 'static, A: PropValue>(
    b: &mut IfaceBuilder<()>,
    name: &'static str,
    find: for<'a> fn(&'a Model, &str) -> Option<&'a T>,
    get: fn(&T) -> Option<A>,
) {
    b.property::<A, _>(name).get_with_cr(move |ctx, cr| {
        find(model(cr), ctx.path()).and_then(get).ok_or_else(|| {
            MethodErr::from(("org.freedesktop.DBus.Error.InvalidArgs", format!("No such property '{name}'")))
        })
    });
}

fn adapter_prop<A: PropValue>(b: &mut IfaceBuilder<()>, name: &'static str, get: fn(&Adapter) -> Option<A>) {
    prop(b, name, |m, path| m.adapters.iter().find(|a| a.path == path), get);
}
fn device_prop<A: PropValue>(b: &mut IfaceBuilder<()>, name: &'static str, get: fn(&Device) -> Option<A>) {
    prop(b, name, Model::device_at, get);
}
fn service_prop<A: PropValue>(b: &mut IfaceBuilder<()>, name: &'static str, get: fn(&Service) -> Option<A>) {
    prop(b, name, Model::service_at, get);
}
fn char_prop<A: PropValue>(b: &mut IfaceBuilder<()>, name: &'static str, get: fn(&Char) -> Option<A>) {
    prop(b, name, Model::char_ref, get);
}

fn register_adapter(cr: &mut Crossroads) -> IfaceToken<()> {
    cr.register(ADAPTER1, |b: &mut IfaceBuilder<()>| {
        adapter_prop(b, "Address", |a| Some(a.spec.address.clone()));
        adapter_prop(b, "AddressType", |_| Some("public".to_owned()));
        adapter_prop(b, "Name", |_| Some("fake-bluez".to_owned()));
        adapter_prop(b, "Alias", |_| Some("fake-bluez".to_owned()));
        adapter_prop(b, "Class", |_| Some(0u32));
        adapter_prop(b, "Discoverable", |_| Some(false));
        adapter_prop(b, "DiscoverableTimeout", |_| Some(180u32));
        adapter_prop(b, "Pairable", |_| Some(false));
        adapter_prop(b, "PairableTimeout", |_| Some(0u32));
        adapter_prop(b, "Discovering", |a| Some(!a.discovering.is_empty()));
        adapter_prop(b, "UUIDs", |_| Some(vec![uuid16(0x1800), uuid16(0x1801)]));
        // Linux Foundation / BlueZ 5.72, as bluez-async parses it (it rejects a missing one).
        adapter_prop(b, "Modalias", |_| Some("usb:v1D6Bp0246d0548".to_owned()));
        adapter_prop(b, "Roles", |_| Some(vec!["central".to_owned(), "peripheral".to_owned()]));
        // bluez-async powers the adapter on (Properties.Set) before every discovery.
        b.property::<bool, _>("Powered")
            .get_with_cr(|ctx, cr| Ok(model(cr).adapter_at(ctx.path())?.powered))
            .set_with_cr(|ctx, cr, on| {
                let adapter = model(cr).adapter_at(ctx.path())?;
                let changed = adapter.powered != on;
                adapter.powered = on;
                Ok(changed.then_some(on))
            });
        b.method_with_cr("StartDiscovery", (), (), |ctx, cr, ()| start_discovery(cr, ctx));
        b.method_with_cr("StopDiscovery", (), (), |ctx, cr, ()| stop_discovery(cr, ctx.path(), &sender(ctx)));
        b.method_with_cr("SetDiscoveryFilter", ("properties",), (), |ctx, cr, (filter,)| {
            set_discovery_filter(cr, ctx, filter)
        });
        b.method_with_cr("RemoveDevice", ("device",), (), |_, cr, (device,): (Path,)| remove_device(cr, &device));
        b.method_with_cr("GetDiscoveryFilters", (), ("filters",), |_, _, ()| {
            Ok((DISCOVERY_FILTER_KEYS.map(str::to_owned).to_vec(),))
        });
    })
}

fn register_device(cr: &mut Crossroads) -> IfaceToken<()> {
    cr.register(DEVICE1, |b: &mut IfaceBuilder<()>| {
        device_prop(b, "Address", |d| Some(d.address.clone()));
        device_prop(b, "AddressType", |_| Some("public".to_owned()));
        device_prop(b, "Name", |d| d.spec.name.clone());
        // BlueZ's fallback for a nameless device is its address with dashes.
        device_prop(b, "Alias", |d| Some(d.spec.name.clone().unwrap_or_else(|| d.address.replace(':', "-"))));
        device_prop(b, "Adapter", |d| Some(Path::from(parent(&d.path).to_owned())));
        device_prop(b, "Paired", |d| Some(d.paired));
        device_prop(b, "Bonded", |d| Some(d.paired));
        device_prop(b, "Trusted", |_| Some(false));
        device_prop(b, "Blocked", |_| Some(false));
        device_prop(b, "LegacyPairing", |_| Some(false));
        device_prop(b, "Connected", |d| Some(d.connected));
        device_prop(b, "ServicesResolved", |d| Some(d.resolved));
        device_prop(b, "RSSI", |d| (d.rssi_known && d.spec.rssi != 0).then_some(d.spec.rssi)); // 0: unknown
        device_prop(b, "UUIDs", |d| Some(d.uuids()));
        device_prop(b, "ManufacturerData", manufacturer_data);
        device_prop(b, "ServiceData", service_data);
        b.method_with_cr("Connect", (), (), |ctx, cr, ()| connect(cr, ctx.path()));
        b.method_with_cr("Disconnect", (), (), |ctx, cr, ()| {
            let d = model(cr).device_index(ctx.path())?;
            disconnect(cr, d);
            Ok(()) // not connected: BlueZ replies success too
        });
        b.method_with_cr("Pair", (), (), |ctx, cr, ()| pair(cr, ctx.path()));
        b.method_with_cr("CancelPairing", (), (), |_, _, ()| -> Result<(), _> {
            Err(bluez_error("DoesNotExist", "Does Not Exist")) // pairing here is instant
        });
        for method in ["ConnectProfile", "DisconnectProfile"] {
            b.method_with_cr(method, ("UUID",), (), |_, _, (_uuid,): (String,)| -> Result<(), _> {
                Err(bluez_error("NotSupported", "Operation is not supported")) // LE only, no profiles
            });
        }
    })
}

fn register_service(cr: &mut Crossroads) -> IfaceToken<()> {
    cr.register("org.bluez.GattService1", |b: &mut IfaceBuilder<()>| {
        service_prop(b, "UUID", |s| Some(s.uuid.clone()));
        service_prop(b, "Primary", |_| Some(true));
        service_prop(b, "Device", |s| Some(Path::from(parent(&s.path).to_owned())));
        service_prop(b, "Handle", |s| Some(s.handle));
        service_prop(b, "Includes", |_| Some(Vec::<Path<'static>>::new()));
    })
}

fn register_characteristic(cr: &mut Crossroads) -> IfaceToken<()> {
    cr.register(CHARACTERISTIC1, |b: &mut IfaceBuilder<()>| {
        char_prop(b, "UUID", |c| Some(c.uuid.clone()));
        char_prop(b, "Service", |c| Some(Path::from(parent(&c.path).to_owned())));
        char_prop(b, "Flags", |c| Some(c.flags.clone()));
        char_prop(b, "Handle", |c| Some(c.handle));
        char_prop(b, "Value", |c| c.cached.clone());
        char_prop(b, "Notifying", |c| c.notifies().then_some(!c.subscribers.is_empty()));
        char_prop(b, "MTU", |_| Some(MTU));
        b.method_with_cr("ReadValue", ("options",), ("value",), |ctx, cr, (options,)| {
            read_value(cr, ctx.path(), options)
        });
        b.method_with_cr("WriteValue", ("value", "options"), (), |ctx, cr, (value, options)| {
            write_value(cr, ctx, value, options)
        });
        b.method_with_cr("StartNotify", (), (), |ctx, cr, ()| start_notify(cr, ctx));
        b.method_with_cr("StopNotify", (), (), |ctx, cr, ()| stop_notify(cr, ctx.path(), &sender(ctx)));
        for method in ["AcquireWrite", "AcquireNotify"] {
            b.method_with_cr(
                method,
                ("options",),
                ("fd", "mtu"),
                |_, _, (_options,): (PropMap,)| -> Result<(dbus::arg::OwnedFd, u16), _> {
                    Err(bluez_error("NotSupported", "Operation is not supported"))
                },
            );
        }
    })
}

/// The Client Characteristic Configuration descriptor of a characteristic that notifies.
fn register_descriptor(cr: &mut Crossroads) -> IfaceToken<()> {
    cr.register("org.bluez.GattDescriptor1", |b: &mut IfaceBuilder<()>| {
        char_prop(b, "UUID", |_| Some(uuid16(CCC_UUID)));
        char_prop(b, "Characteristic", |c| Some(Path::from(c.path.clone())));
        char_prop(b, "Handle", |c| Some(c.handle + 2));
        char_prop(b, "Value", |c| Some(c.ccc_value()));
        b.method_with_cr("ReadValue", ("options",), ("value",), |ctx, cr, (_options,): (PropMap,)| {
            let c = model(cr).char_ref(ctx.path()).ok_or_else(|| MethodErr::no_path(ctx.path()))?;
            Ok((c.ccc_value(),))
        });
        // BlueZ keeps the CCC to itself: clients use StartNotify/StopNotify.
        b.method_with_cr(
            "WriteValue",
            ("value", "options"),
            (),
            |_, _, (_value, _options): (Vec<u8>, PropMap)| -> Result<(), _> {
                Err(bluez_error("NotPermitted", "Write not permitted"))
            },
        );
    })
}
