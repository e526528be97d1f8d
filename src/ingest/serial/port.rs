//! Opening a serial port the way the config says: line settings, DTR/RTS, and the driver's low
//! latency mode. The only file here that touches the operating system's serial API.

use super::config::{Parity, SerialConfig};
use std::path::Path;
use tokio_serial::{DataBits, SerialPort, SerialPortBuilderExt, SerialStream, StopBits};

/// What the driver granted when asked for low latency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LowLatency {
    NotAsked,
    Set,
    /// The driver refused or has no such mode (a pseudo-terminal, a USB CDC device): why.
    Unsupported(String),
}

impl std::fmt::Display for LowLatency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LowLatency::NotAsked => write!(f, "low latency not asked for"),
            LowLatency::Set => write!(f, "low latency set"),
            LowLatency::Unsupported(why) => write!(f, "low latency not available ({why})"),
        }
    }
}

/// Open `path` with the config's line settings. Exclusive: a second reader of the same device
/// would steal bytes from the first.
pub fn open(config: &SerialConfig, path: &Path) -> std::io::Result<(SerialStream, LowLatency)> {
    let data_bits = match config.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let parity = match config.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Odd => tokio_serial::Parity::Odd,
        Parity::Even => tokio_serial::Parity::Even,
    };
    let stop_bits = if config.stop_bits == 2 { StopBits::Two } else { StopBits::One };
    let mut port = tokio_serial::new(path.to_string_lossy(), config.baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .open_native_async()?;
    if let Some(level) = config.dtr {
        port.write_data_terminal_ready(level)?;
    }
    if let Some(level) = config.rts {
        port.write_request_to_send(level)?;
    }
    let low_latency = if config.low_latency { set_low_latency(&port) } else { LowLatency::NotAsked };
    Ok((port, low_latency))
}

/// Linux `ASYNC_LOW_LATENCY` through `TIOCGSERIAL`/`TIOCSSERIAL`: FTDI and similar USB bridges
/// then hand over bytes at once instead of after their 16 ms latency timer.
#[cfg(target_os = "linux")]
fn set_low_latency(port: &SerialStream) -> LowLatency {
    use std::os::fd::AsRawFd;
    /// `struct serial_struct` of `<linux/serial.h>`; only `flags` is touched, the rest is
    /// passed back as the driver gave it.
    #[repr(C)]
    struct SerialStruct {
        kind: libc::c_int,
        line: libc::c_int,
        port: libc::c_uint,
        irq: libc::c_int,
        flags: libc::c_int,
        xmit_fifo_size: libc::c_int,
        custom_divisor: libc::c_int,
        baud_base: libc::c_int,
        close_delay: libc::c_ushort,
        io_type: libc::c_char,
        reserved_char: libc::c_char,
        hub6: libc::c_int,
        closing_wait: libc::c_ushort,
        closing_wait2: libc::c_ushort,
        iomem_base: *mut libc::c_uchar,
        iomem_reg_shift: libc::c_ushort,
        port_high: libc::c_uint,
        iomap_base: libc::c_ulong,
    }
    const ASYNC_LOW_LATENCY: libc::c_int = 1 << 13;
    let fd = port.as_raw_fd();
    // SAFETY: the struct matches the kernel's layout and outlives both calls; the fd is open.
    unsafe {
        let mut s: SerialStruct = std::mem::zeroed();
        if libc::ioctl(fd, libc::TIOCGSERIAL, &mut s) != 0 {
            return LowLatency::Unsupported(std::io::Error::last_os_error().to_string());
        }
        s.flags |= ASYNC_LOW_LATENCY;
        if libc::ioctl(fd, libc::TIOCSSERIAL, &s) != 0 {
            return LowLatency::Unsupported(std::io::Error::last_os_error().to_string());
        }
    }
    LowLatency::Set
}

#[cfg(not(target_os = "linux"))]
fn set_low_latency(_port: &SerialStream) -> LowLatency {
    LowLatency::Unsupported("only on Linux".into())
}
