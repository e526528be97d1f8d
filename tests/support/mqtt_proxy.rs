//! A TCP proxy between the daemon and a real broker that the test can break: take the broker
//! "down" (every connection cut, new ones refused) or make it withhold its answers (PUBACKs,
//! CONNACKs and PINGRESPs stop coming back while publishes still go through).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const UP: u8 = 0;
const DOWN: u8 = 1;
const WITHHOLD: u8 = 2;

pub struct Proxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Listen on a free loopback port and forward to the broker on `broker_port`.
    pub fn start(broker_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(UP));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (m, conns) = (mode.clone(), connections.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if m.load(Ordering::SeqCst) == DOWN {
                    continue; // dropped: the client sees its connection closed at once
                }
                let Ok(broker) = TcpStream::connect(("127.0.0.1", broker_port)) else { continue };
                let _ = client.set_nodelay(true);
                let _ = broker.set_nodelay(true);
                {
                    let mut c = conns.lock().unwrap();
                    c.push(client.try_clone().unwrap());
                    c.push(broker.try_clone().unwrap());
                }
                let upstream = (client.try_clone().unwrap(), broker.try_clone().unwrap());
                std::thread::spawn(move || pump(upstream.0, upstream.1, None));
                let gate = m.clone();
                std::thread::spawn(move || pump(broker, client, Some(gate)));
            }
        });
        Proxy { port, mode, connections }
    }

    /// Cut every connection and refuse new ones, as a stopped broker would.
    pub fn down(&self) {
        self.mode.store(DOWN, Ordering::SeqCst);
        for c in self.connections.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Let connections through again.
    pub fn up(&self) {
        self.mode.store(UP, Ordering::SeqCst);
    }

    /// Keep connections open but stop passing the broker's bytes back to the client.
    pub fn withhold(&self) {
        self.mode.store(WITHHOLD, Ordering::SeqCst);
    }
}

/// Copy `from` → `to` until either side closes; with a `gate`, hold the bytes while it says
/// withhold (they wait in the kernel's buffers, in order).
fn pump(mut from: TcpStream, mut to: TcpStream, gate: Option<Arc<AtomicU8>>) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = [0u8; 16 * 1024];
    loop {
        match gate.as_ref().map(|g| g.load(Ordering::SeqCst)) {
            Some(WITHHOLD) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Some(DOWN) => break,
            _ => {}
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
