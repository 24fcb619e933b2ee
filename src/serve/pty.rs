//! The pseudo-terminal side of `twinrig serve --pty`: opening a raw pty pair
//! and moving bytes between its master and the simulated cable.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{self, SetArg};
use twinrig_sim::Nanos;

use super::{INBOX_CAP, OUTBOX_CAP, ServeError};

/// The longest the loop waits for host bytes before running the world again.
pub(super) const TICK: Duration = Duration::from_millis(1);

pub(super) fn pty_error(action: &'static str) -> impl FnOnce(Errno) -> ServeError {
    move |e| ServeError::Pty {
        action,
        source: io::Error::from(e),
    }
}

/// The pty pair; the slave stays open for the whole run so the master never
/// sees a hang-up between host programs and the raw settings persist.
pub(super) struct Pty {
    pub(super) master: OwnedFd,
    _slave: OwnedFd,
    pub(super) path: PathBuf,
}

pub(super) fn open_pty(baud: u32) -> Result<Pty, ServeError> {
    let pair = nix::pty::openpty(None, None).map_err(pty_error("open a pty pair"))?;
    let mut t = termios::tcgetattr(&pair.slave).map_err(pty_error("read the slave's settings"))?;
    termios::cfmakeraw(&mut t);
    if let Some(speed) = twinrig_hal_std::serial::baud_rate(baud) {
        termios::cfsetspeed(&mut t, speed).map_err(pty_error("set the slave's speed"))?;
    }
    termios::tcsetattr(&pair.slave, SetArg::TCSANOW, &t)
        .map_err(pty_error("put the slave in raw mode"))?;
    let flags =
        fcntl(&pair.master, FcntlArg::F_GETFL).map_err(pty_error("read the master's flags"))?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(&pair.master, FcntlArg::F_SETFL(flags))
        .map_err(pty_error("make the master non-blocking"))?;
    let path = nix::unistd::ttyname(&pair.slave).map_err(pty_error("name the slave"))?;
    Ok(Pty {
        master: pair.master,
        _slave: pair.slave,
        path,
    })
}

/// Host bytes read together, and the virtual time they reached the pty.
pub(super) struct Chunk {
    pub(super) at: Nanos,
    pub(super) bytes: Vec<u8>,
}

/// The byte queues between the pty and the simulated cable.
#[derive(Default)]
pub(super) struct Cable {
    /// Host -> robot, waiting for end A's TX, each chunk stamped with when it
    /// arrived so the line sees the host's own spacing between writes.
    pub(super) inbox: VecDeque<Chunk>,
    /// Bytes in `inbox`.
    pub(super) inbox_len: usize,
    /// Robot -> host, waiting for room in the pty.
    pub(super) outbox: VecDeque<u8>,
    /// The TX task, parked while the inbox is empty.
    pub(super) writer: Option<Waker>,
    pub(super) from_host: u64,
    pub(super) to_host: u64,
    pub(super) dropped_to_host: u64,
}

impl Cable {
    /// Queues bytes for the host; beyond [`OUTBOX_CAP`] they are dropped and counted.
    pub(super) fn queue_for_host(&mut self, bytes: &[u8]) {
        let room = OUTBOX_CAP - self.outbox.len();
        let keep = bytes.len().min(room);
        self.outbox.extend(&bytes[..keep]);
        self.dropped_to_host += (bytes.len() - keep) as u64;
    }
}

/// Writes as much of the outbox as the pty takes now.
pub(super) fn write_to_host(master: &OwnedFd, cable: &mut Cable) -> Result<(), ServeError> {
    while !cable.outbox.is_empty() {
        let (front, _) = cable.outbox.as_slices();
        match nix::unistd::write(master, front) {
            Ok(0) | Err(Errno::EAGAIN) => return Ok(()),
            Ok(n) => {
                cable.outbox.drain(..n);
                cable.to_host += n as u64;
            }
            Err(Errno::EINTR) => {}
            // EIO: no slave open (cannot happen while we hold it); try again later.
            Err(Errno::EIO) => return Ok(()),
            Err(e) => return Err(pty_error("write to the master")(e)),
        }
    }
    Ok(())
}

/// Waits up to one tick for host bytes and moves what arrived into the
/// inbox, stamped with `now()` (the virtual time matching the wall clock at
/// the moment they were read).
pub(super) fn read_from_host(
    master: &OwnedFd,
    cable: &Rc<RefCell<Cable>>,
    buf: &mut [u8],
    now: impl Fn() -> Nanos,
) -> Result<(), ServeError> {
    let room = INBOX_CAP.saturating_sub(cable.borrow().inbox_len);
    if room == 0 {
        std::thread::sleep(TICK);
        return Ok(());
    }
    let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(TICK).unwrap_or(PollTimeout::ZERO);
    match poll(&mut fds, timeout) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(e) => return Err(pty_error("wait for the master")(e)),
    }
    let readable = fds[0]
        .revents()
        .is_some_and(|r| r.contains(PollFlags::POLLIN));
    if !readable {
        if fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
        {
            // No slave open: poll would return at once; pace the loop instead.
            std::thread::sleep(TICK);
        }
        return Ok(());
    }
    let at = now();
    let mut room = room;
    while room > 0 {
        let want = room.min(buf.len());
        match nix::unistd::read(master, &mut buf[..want]) {
            Ok(0) | Err(Errno::EAGAIN) | Err(Errno::EIO) => break,
            Ok(n) => {
                let mut c = cable.borrow_mut();
                c.inbox.push_back(Chunk {
                    at,
                    bytes: buf[..n].to_vec(),
                });
                c.inbox_len += n;
                c.from_host += n as u64;
                room -= n;
                if let Some(w) = c.writer.take() {
                    w.wake();
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(pty_error("read from the master")(e)),
        }
    }
    Ok(())
}
