//! A real serial port (a USB adapter, or the pty `twinrig serve rvr --pty`
//! prints) as the UART the device crates use: `embedded_io_async` read and
//! write halves, raw 8N1 at a given baud rate, driven by tokio's reactor.
//!
//! The device crates split their UART into a receive task and a transmit
//! path, as on a board; each half here owns a handle to the same
//! non-blocking file descriptor, so the halves never wait on each other.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use embedded_io_async::{ErrorKind, ErrorType, Read, Write};
use nix::fcntl::OFlag;
use nix::sys::termios::{self, BaudRate, SetArg};
use tokio::io::unix::AsyncFd;

/// Why the port could not be opened. Messages name the port.
#[derive(Debug, thiserror::Error)]
pub enum SerialOpenError {
    /// The file could not be opened or set up.
    #[error("{path}: {source}")]
    Io {
        /// The port.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The baud rate is not one a Linux UART takes.
    #[error("{path}: unsupported baud rate {baud}")]
    Baud {
        /// The port.
        path: PathBuf,
        /// The rate asked for.
        baud: u32,
    },
}

/// An I/O error on the port, as `embedded_io` sees it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SerialError(#[from] io::Error);

impl embedded_io_async::Error for SerialError {
    fn kind(&self) -> ErrorKind {
        match self.0.kind() {
            io::ErrorKind::TimedOut => ErrorKind::TimedOut,
            io::ErrorKind::Interrupted => ErrorKind::Interrupted,
            _ => ErrorKind::Other,
        }
    }
}

/// The receive half.
pub struct SerialRx(Arc<AsyncFd<File>>);

/// The transmit half.
pub struct SerialTx(Arc<AsyncFd<File>>);

/// Opens `path` raw (no echo, no line editing, 8N1) at `baud`, as the two
/// halves of a UART. Must be called inside a tokio runtime with I/O enabled.
pub fn open_serial(path: &Path, baud: u32) -> Result<(SerialRx, SerialTx), SerialOpenError> {
    let io_err = |source| SerialOpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let speed = baud_rate(baud).ok_or_else(|| SerialOpenError::Baud {
        path: path.to_path_buf(),
        baud,
    })?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        // Not our controlling terminal; reads and writes never block the thread.
        .custom_flags((OFlag::O_NOCTTY | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(io_err)?;
    let mut t = termios::tcgetattr(&file).map_err(|e| io_err(e.into()))?;
    termios::cfmakeraw(&mut t);
    termios::cfsetspeed(&mut t, speed).map_err(|e| io_err(e.into()))?;
    termios::tcsetattr(&file, SetArg::TCSANOW, &t).map_err(|e| io_err(e.into()))?;
    // SAFETY: the `File` owns its descriptor and moves into the `AsyncFd`,
    // which owns it from here on: nothing else can close it, so it stays
    // open and the same for the `AsyncFd`'s whole life (tokio's condition).
    let registered = unsafe { AsyncFd::register(file) };
    let fd = Arc::new(registered.map_err(|e| io_err(e.into()))?);
    Ok((SerialRx(fd.clone()), SerialTx(fd)))
}

/// The termios speed of a standard rate (the twin's ptys use it too).
pub fn baud_rate(baud: u32) -> Option<BaudRate> {
    Some(match baud {
        1_200 => BaudRate::B1200,
        2_400 => BaudRate::B2400,
        4_800 => BaudRate::B4800,
        9_600 => BaudRate::B9600,
        19_200 => BaudRate::B19200,
        38_400 => BaudRate::B38400,
        57_600 => BaudRate::B57600,
        115_200 => BaudRate::B115200,
        230_400 => BaudRate::B230400,
        460_800 => BaudRate::B460800,
        500_000 => BaudRate::B500000,
        921_600 => BaudRate::B921600,
        1_000_000 => BaudRate::B1000000,
        1_500_000 => BaudRate::B1500000,
        2_000_000 => BaudRate::B2000000,
        _ => return None,
    })
}

impl ErrorType for SerialRx {
    type Error = SerialError;
}

impl ErrorType for SerialTx {
    type Error = SerialError;
}

impl Read for SerialRx {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, SerialError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let mut ready = self.0.readable().await?;
            if let Ok(result) = ready.try_io(|f| f.get_ref().read(buf)) {
                return Ok(result?);
            }
        }
    }
}

impl Write for SerialTx {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, SerialError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let mut ready = self.0.writable().await?;
            if let Ok(result) = ready.try_io(|f| f.get_ref().write(buf)) {
                return Ok(result?);
            }
        }
    }

    async fn flush(&mut self) -> Result<(), SerialError> {
        // The kernel sends what was written; nothing is buffered here.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::pty::openpty;

    /// Bytes written on one side of a pty pair arrive on the other, both ways.
    #[tokio::test]
    async fn a_pty_carries_bytes_both_ways() {
        let pair = openpty(None, None).unwrap();
        let slave = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&pair.slave)
        ))
        .unwrap();
        let (mut rx, mut tx) = open_serial(&slave, 115_200).unwrap();
        let master = File::from(pair.master);
        let mut t = termios::tcgetattr(&master).unwrap();
        termios::cfmakeraw(&mut t);
        termios::tcsetattr(&master, SetArg::TCSANOW, &t).unwrap();
        (&master).write_all(b"\x8d\x01\xd8").unwrap();
        let mut got = [0u8; 3];
        let mut n = 0;
        while n < 3 {
            n += rx.read(&mut got[n..]).await.unwrap();
        }
        assert_eq!(&got, b"\x8d\x01\xd8");
        assert_eq!(tx.write(b"ok").await.unwrap(), 2);
        let mut back = [0u8; 2];
        let mut master_read = master.try_clone().unwrap();
        master_read.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"ok");
    }

    #[test]
    fn bad_ports_and_rates_are_named() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let err = open_serial(Path::new("/dev/no-such-port"), 115_200)
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("/dev/no-such-port: "), "{err}");
        let err = open_serial(Path::new("/dev/null"), 12_345).err().unwrap();
        assert_eq!(err.to_string(), "/dev/null: unsupported baud rate 12345");
    }
}
