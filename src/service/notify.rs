//! The `sd_notify` datagrams. See `man sd_notify`: one message per datagram, `KEY=value` lines,
//! to the Unix socket in `NOTIFY_SOCKET` (a path, or an abstract name after `@`).

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::time::Duration;

/// Where notifications go; a notifier without a socket (not started by a service manager)
/// accepts every message and sends nothing.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The service manager's socket and watchdog from the environment systemd sets:
    /// `NOTIFY_SOCKET`, and `WATCHDOG_USEC` when `WATCHDOG_PID` is unset or ours.
    pub fn from_env() -> io::Result<Self> {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let pid_ok = match std::env::var("WATCHDOG_PID") {
            Ok(pid) => pid.trim().parse::<u32>().ok() == Some(std::process::id()),
            Err(_) => true,
        };
        let watchdog_usec = std::env::var("WATCHDOG_USEC").ok().and_then(|v| v.trim().parse::<u64>().ok());
        let watchdog = watchdog_usec.filter(|&u| u > 0 && pid_ok).map(Duration::from_micros);
        match socket {
            None => Ok(Notifier { target: None, watchdog: None }),
            Some(socket) => {
                let socket = socket.to_string_lossy().into_owned();
                Ok(Notifier { watchdog, ..Notifier::at(&socket)? })
            }
        }
    }

    /// Notify the socket at `path` (`@name` for an abstract socket), without a watchdog.
    pub fn at(path: &str) -> io::Result<Self> {
        let addr = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
            None => SocketAddr::from_pathname(Path::new(path))?,
        };
        Ok(Notifier { target: Some((UnixDatagram::unbound()?, addr)), watchdog: None })
    }

    /// The same, with a watchdog of `timeout` (what `WATCHDOG_USEC` gives).
    pub fn with_watchdog(mut self, timeout: Duration) -> Self {
        self.watchdog = Some(timeout);
        self
    }

    /// The service manager's watchdog timeout, when a watchdog is on.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Send one message: `KEY=value` lines.
    pub fn send(&self, message: &str) -> io::Result<()> {
        let Some((socket, addr)) = &self.target else { return Ok(()) };
        socket.send_to_addr(message.as_bytes(), addr).map(|_| ())
    }

    pub fn ready(&self) -> io::Result<()> {
        self.send(&format!("READY=1\nMAINPID={}\nSTATUS=running", std::process::id()))
    }

    pub fn watchdog(&self) -> io::Result<()> {
        self.send("WATCHDOG=1")
    }

    /// A reload begins; `READY=1` ends it. (Without `MONOTONIC_USEC`: that is for
    /// `Type=notify-reload`, systemd 253+, and the units use `Type=notify` with `ExecReload`.)
    pub fn reloading(&self) -> io::Result<()> {
        self.send("RELOADING=1\nSTATUS=reloading the configuration")
    }

    pub fn stopping(&self) -> io::Result<()> {
        self.send("STOPPING=1\nSTATUS=stopping: draining the pipeline")
    }

    /// A line for `systemctl status`.
    pub fn status(&self, status: &str) -> io::Result<()> {
        self.send(&format!("STATUS={}", status.replace('\n', " ")))
    }
}
