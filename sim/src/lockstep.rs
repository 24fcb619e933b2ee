//! Blocking device code on an OS thread of its own, in lockstep with virtual time.
//!
//! Some device code is synchronous: rustypot reads a `serialport::SerialPort`
//! with blocking calls and timeouts, and the hand agent sleeps between servo
//! writes. Such code cannot be an async task, so it runs on its own thread and
//! reaches the world only through a [`Link`]: every call (the time, a sleep, a
//! serial read or write, or a device-specific request) is sent to a proxy task
//! inside the world and the thread blocks until the answer comes back.
//!
//! Exactly one side runs at a time, which keeps runs deterministic:
//! - while the thread computes between two calls, the proxy task blocks the
//!   world's thread (it waits for the next call inside its poll), so virtual
//!   time cannot move while device code is running;
//! - while the proxy serves a call (a sleep, a read waiting for bytes), the
//!   device thread is blocked waiting for the answer.
//!
//! Shutdown: when the world is dropped, the proxy and its channel ends go; the
//! device thread's next call unwinds it quietly (a [`Closed`] payload through
//! `resume_unwind`, which skips the panic hook) and the thread ends. A panic in
//! device code ends the thread; the proxy then fails with the panic's message,
//! which the world reports as a failed device task.
//!
//! The only wall-clock reading is a watchdog: a device thread that does not
//! make its next call within [`WATCHDOG`] of wall time is reported as hung. It
//! never changes what a run computes, only whether it is abandoned.

use std::any::Any;
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use embassy_futures::select::{Either, select};
use embedded_io_async::{Read, ReadReady, Write};

use crate::uart::{UartPort, UartRx, UartTx};
use crate::{Nanos, SimHandle};

/// How long (wall time) the world waits for a device thread's next call
/// before reporting it hung.
pub const WATCHDOG: Duration = Duration::from_secs(20);

/// A call from the device thread to the world.
#[derive(Debug)]
pub enum Call<A> {
    /// Virtual time now.
    Now,
    /// Let this much virtual time pass.
    Sleep(Nanos),
    /// An operation on the device's serial port.
    Serial(SerialCall),
    /// A device-specific request, served by the device's handler.
    App(A),
}

/// The world's answer to a [`Call`].
#[derive(Debug)]
pub enum Answer<B> {
    /// Virtual time now.
    Now(Nanos),
    /// The sleep is over.
    Slept,
    /// The serial operation's result.
    Serial(SerialAnswer),
    /// The device handler's answer.
    App(B),
}

/// Serial port operations, with `serialport` semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialCall {
    /// Queue bytes for transmission (returns once they are in the TX buffer).
    Write(Vec<u8>),
    /// Read at most `max` bytes: returns as soon as at least one byte is
    /// there, or nothing once `timeout` of virtual time has passed.
    Read {
        /// Largest number of bytes wanted.
        max: usize,
        /// How long to wait for the first byte.
        timeout: Nanos,
    },
    /// How many bytes wait to be read.
    Available,
    /// Throw away every byte waiting to be read.
    ClearInput,
}

/// Result of a [`SerialCall`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialAnswer {
    /// Bytes accepted for transmission.
    Written(usize),
    /// Bytes read; empty when the timeout passed first.
    Read(Vec<u8>),
    /// Bytes waiting.
    Available(usize),
    /// Bytes thrown away.
    Cleared(usize),
    /// The device has no serial port.
    NoPort,
}

/// The payload a device thread unwinds with when the world has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// The device thread's two channel ends: calls out, answers in.
type Ends<A, B> = (Sender<Call<A>>, Receiver<Answer<B>>);

/// The device thread's end: every call blocks until the world answers.
pub struct Link<A, B> {
    // One call in flight at a time even if the thread shares the link.
    channel: Mutex<Ends<A, B>>,
}

impl<A: Send, B: Send> Link<A, B> {
    /// Sends `call` and waits for the answer. When the world has gone, the
    /// thread unwinds with [`Closed`] (no panic message): nothing it could do
    /// next would be seen.
    pub fn call(&self, call: Call<A>) -> Answer<B> {
        let channel = self.channel.lock().unwrap_or_else(|e| e.into_inner());
        if channel.0.send(call).is_err() {
            resume_unwind(Box::new(Closed));
        }
        match channel.1.recv() {
            Ok(answer) => answer,
            Err(_) => resume_unwind(Box::new(Closed)),
        }
    }

    /// Virtual time now.
    pub fn now(&self) -> Nanos {
        match self.call(Call::Now) {
            Answer::Now(t) => t,
            other => unexpected("Now", &other),
        }
    }

    /// Lets `ns` of virtual time pass.
    pub fn sleep(&self, ns: Nanos) {
        match self.call(Call::Sleep(ns)) {
            Answer::Slept => {}
            other => unexpected("Sleep", &other),
        }
    }

    /// A serial operation.
    pub fn serial(&self, call: SerialCall) -> SerialAnswer {
        match self.call(Call::Serial(call)) {
            Answer::Serial(a) => a,
            other => unexpected("Serial", &other),
        }
    }

    /// A device-specific request.
    pub fn app(&self, request: A) -> B {
        match self.call(Call::App(request)) {
            Answer::App(b) => b,
            other => unexpected("App", &other),
        }
    }
}

fn unexpected<B>(call: &str, answer: &Answer<B>) -> ! {
    let kind = match answer {
        Answer::Now(_) => "Now",
        Answer::Slept => "Slept",
        Answer::Serial(_) => "Serial",
        Answer::App(_) => "App",
    };
    panic!("lockstep: {call} answered with {kind} (proxy bug)")
}

/// Starts `body` on a thread named `name` in lockstep with the world.
///
/// `serial` is the device's end of a UART line, if it has one; `handler`
/// answers the device-specific calls (it may await virtual time). The proxy
/// task is called `name` in the world; it ends when the thread does.
pub fn spawn<A, B, Body, Handler, Fut>(
    handle: &SimHandle,
    name: &str,
    serial: Option<UartPort>,
    body: Body,
    mut handler: Handler,
) -> io::Result<()>
where
    A: Send + 'static,
    B: Send + 'static,
    Body: FnOnce(Arc<Link<A, B>>) + Send + 'static,
    Handler: FnMut(A) -> Fut + 'static,
    Fut: Future<Output = B> + 'static,
{
    let (call_tx, call_rx) = bounded::<Call<A>>(1);
    let (answer_tx, answer_rx) = bounded::<Answer<B>>(1);
    let link = Arc::new(Link {
        channel: Mutex::new((call_tx, answer_rx)),
    });
    let thread = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| body(link)))
                && !payload.is::<Closed>()
            {
                resume_unwind(payload);
            }
        })?;
    let h = handle.clone();
    let task_name = name.to_string();
    handle.spawn(name.to_string(), async move {
        let mut port = serial.map(UartPort::split);
        loop {
            // Blocking here is the point: the device thread is running.
            let call = match call_rx.recv_timeout(WATCHDOG) {
                Ok(call) => call,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "device thread {task_name} made no call for {} s of wall time (hung?)",
                    WATCHDOG.as_secs()
                ),
            };
            let answer = match call {
                Call::Now => Answer::Now(h.now()),
                Call::Sleep(ns) => {
                    h.sleep(ns).await;
                    Answer::Slept
                }
                Call::Serial(c) => Answer::Serial(match port.as_mut() {
                    Some((rx, tx)) => serve_serial(&h, rx, tx, c).await,
                    None => SerialAnswer::NoPort,
                }),
                Call::App(a) => Answer::App(handler(a).await),
            };
            if answer_tx.send(answer).is_err() {
                break;
            }
        }
        drop(answer_tx);
        if let Err(payload) = thread.join() {
            panic!(
                "device thread {task_name} panicked: {}",
                panic_text(&*payload)
            );
        }
    });
    Ok(())
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-text panic payload)".to_string()
    }
}

async fn serve_serial(
    h: &SimHandle,
    rx: &mut UartRx,
    tx: &mut UartTx,
    call: SerialCall,
) -> SerialAnswer {
    match call {
        SerialCall::Write(bytes) => match tx.write_all(&bytes).await {
            Ok(()) => SerialAnswer::Written(bytes.len()),
            Err(_) => SerialAnswer::Written(0),
        },
        SerialCall::Read { max, timeout } => {
            let mut buf = vec![0u8; max];
            if max == 0 {
                return SerialAnswer::Read(Vec::new());
            }
            if timeout == 0 && !rx.read_ready().unwrap_or(false) {
                return SerialAnswer::Read(Vec::new());
            }
            match select(rx.read(&mut buf), h.sleep(timeout)).await {
                Either::First(Ok(n)) => {
                    buf.truncate(n);
                    SerialAnswer::Read(buf)
                }
                // A line break or error reads as nothing, like a timeout.
                Either::First(Err(_)) | Either::Second(()) => SerialAnswer::Read(Vec::new()),
            }
        }
        SerialCall::Available => SerialAnswer::Available(rx.available()),
        SerialCall::ClearInput => {
            let mut dropped = 0;
            let mut buf = [0u8; 256];
            while rx.available() > 0 {
                match rx.read(&mut buf).await {
                    Ok(n) => dropped += n,
                    Err(_) => break,
                }
            }
            SerialAnswer::Cleared(dropped)
        }
    }
}

/// A `serialport::SerialPort` whose bytes go through the world's UART model,
/// for synchronous drivers (rustypot) on a lockstep thread.
///
/// Settings other than the timeout are recorded and reported back but change
/// nothing: the line's baud rate is the twin's (a driver that sets another
/// rate would be wrong on the real bus too, which the twin cannot show).
pub struct SimSerialPort<A, B> {
    link: Arc<Link<A, B>>,
    name: String,
    baud: u32,
    timeout: Duration,
}

impl<A: Send, B: Send> SimSerialPort<A, B> {
    /// A port on `link` named `name` at `baud`, with a 10 ms read timeout.
    pub fn new(link: Arc<Link<A, B>>, name: &str, baud: u32) -> Self {
        SimSerialPort {
            link,
            name: name.to_string(),
            baud,
            timeout: Duration::from_millis(10),
        }
    }
}

fn timeout_ns(d: Duration) -> Nanos {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<A: Send, B: Send> io::Read for SimSerialPort<A, B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let call = SerialCall::Read {
            max: buf.len(),
            timeout: timeout_ns(self.timeout),
        };
        match self.link.serial(call) {
            SerialAnswer::Read(bytes) if bytes.is_empty() && !buf.is_empty() => Err(
                io::Error::new(io::ErrorKind::TimedOut, "serial read timed out"),
            ),
            SerialAnswer::Read(bytes) => {
                buf[..bytes.len()].copy_from_slice(&bytes);
                Ok(bytes.len())
            }
            other => Err(port_error(&other)),
        }
    }
}

impl<A: Send, B: Send> io::Write for SimSerialPort<A, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.link.serial(SerialCall::Write(buf.to_vec())) {
            SerialAnswer::Written(n) => Ok(n),
            other => Err(port_error(&other)),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn port_error(answer: &SerialAnswer) -> io::Error {
    match answer {
        SerialAnswer::NoPort => io::Error::new(io::ErrorKind::NotConnected, "no serial port"),
        other => io::Error::other(format!("unexpected serial answer {other:?}")),
    }
}

impl<A: Send + 'static, B: Send + 'static> serialport::SerialPort for SimSerialPort<A, B> {
    fn name(&self) -> Option<String> {
        Some(self.name.clone())
    }
    fn baud_rate(&self) -> serialport::Result<u32> {
        Ok(self.baud)
    }
    fn data_bits(&self) -> serialport::Result<serialport::DataBits> {
        Ok(serialport::DataBits::Eight)
    }
    fn flow_control(&self) -> serialport::Result<serialport::FlowControl> {
        Ok(serialport::FlowControl::None)
    }
    fn parity(&self) -> serialport::Result<serialport::Parity> {
        Ok(serialport::Parity::None)
    }
    fn stop_bits(&self) -> serialport::Result<serialport::StopBits> {
        Ok(serialport::StopBits::One)
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    fn set_baud_rate(&mut self, baud_rate: u32) -> serialport::Result<()> {
        self.baud = baud_rate;
        Ok(())
    }
    fn set_data_bits(&mut self, _: serialport::DataBits) -> serialport::Result<()> {
        Ok(())
    }
    fn set_flow_control(&mut self, _: serialport::FlowControl) -> serialport::Result<()> {
        Ok(())
    }
    fn set_parity(&mut self, _: serialport::Parity) -> serialport::Result<()> {
        Ok(())
    }
    fn set_stop_bits(&mut self, _: serialport::StopBits) -> serialport::Result<()> {
        Ok(())
    }
    fn set_timeout(&mut self, timeout: Duration) -> serialport::Result<()> {
        self.timeout = timeout;
        Ok(())
    }
    fn write_request_to_send(&mut self, _: bool) -> serialport::Result<()> {
        Ok(())
    }
    fn write_data_terminal_ready(&mut self, _: bool) -> serialport::Result<()> {
        Ok(())
    }
    fn read_clear_to_send(&mut self) -> serialport::Result<bool> {
        Ok(true)
    }
    fn read_data_set_ready(&mut self) -> serialport::Result<bool> {
        Ok(true)
    }
    fn read_ring_indicator(&mut self) -> serialport::Result<bool> {
        Ok(false)
    }
    fn read_carrier_detect(&mut self) -> serialport::Result<bool> {
        Ok(true)
    }
    fn bytes_to_read(&self) -> serialport::Result<u32> {
        match self.link.serial(SerialCall::Available) {
            SerialAnswer::Available(n) => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
            other => Err(serialport::Error::from(port_error(&other))),
        }
    }
    fn bytes_to_write(&self) -> serialport::Result<u32> {
        Ok(0)
    }
    fn clear(&self, buffer: serialport::ClearBuffer) -> serialport::Result<()> {
        if matches!(
            buffer,
            serialport::ClearBuffer::Input | serialport::ClearBuffer::All
        ) {
            self.link.serial(SerialCall::ClearInput);
        }
        Ok(())
    }
    fn try_clone(&self) -> serialport::Result<Box<dyn serialport::SerialPort>> {
        Err(serialport::Error::new(
            serialport::ErrorKind::Io(io::ErrorKind::Unsupported),
            "a lockstep serial port cannot be cloned (one call in flight at a time)",
        ))
    }
    fn set_break(&self) -> serialport::Result<()> {
        Ok(())
    }
    fn clear_break(&self) -> serialport::Result<()> {
        Ok(())
    }
}

/// `twinrig_hal::Clock` for a lockstep thread.
pub struct LinkClock<A, B>(pub Arc<Link<A, B>>);

impl<A: Send, B: Send> twinrig_hal::Clock for LinkClock<A, B> {
    fn now_ns(&self) -> u64 {
        self.0.now()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;
    use crate::uart::{Uart, UartConfig};
    use crate::{MILLIS, Sim};

    #[test]
    fn a_thread_sees_only_virtual_time() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        spawn::<(), (), _, _, _>(
            &h,
            "sleeper",
            None,
            move |link| {
                for _ in 0..3 {
                    link.sleep(250 * MILLIS);
                    s.lock().unwrap().push(link.now());
                }
            },
            |_| async {},
        )
        .unwrap();
        sim.run_until(10 * crate::SECONDS, |_| false).unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![250 * MILLIS, 500 * MILLIS, 750 * MILLIS]
        );
    }

    #[test]
    fn app_calls_are_served_by_the_handler_in_virtual_time() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let answers = Arc::new(Mutex::new(Vec::new()));
        let a = answers.clone();
        let hh = h.clone();
        spawn::<u64, u64, _, _, _>(
            &h,
            "asker",
            None,
            move |link| {
                for x in 1..=3 {
                    a.lock().unwrap().push(link.app(x));
                }
            },
            move |x| {
                let hh = hh.clone();
                async move {
                    hh.sleep(x * MILLIS).await;
                    x * 10 + hh.now() / MILLIS
                }
            },
        )
        .unwrap();
        sim.run_until(crate::SECONDS, |_| false).unwrap();
        // 1 ms, then 2 more, then 3 more.
        assert_eq!(*answers.lock().unwrap(), vec![11, 23, 36]);
    }

    #[test]
    fn serial_port_round_trips_bytes_through_the_uart_with_timeouts() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let config = UartConfig {
            baud: 1_000_000,
            ..UartConfig::default()
        };
        let (port, _control) = Uart::loopback(&h, "loop", config);
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        spawn::<(), (), _, _, _>(
            &h,
            "serial",
            Some(port),
            move |link| {
                let mut p = SimSerialPort::new(link.clone(), "sim0", 1_000_000);
                use serialport::SerialPort;
                p.write_all(b"hello").unwrap();
                let mut buf = [0u8; 5];
                p.read_exact(&mut buf).unwrap();
                let t = link.now();
                l.lock()
                    .unwrap()
                    .push(format!("{} at {t}", String::from_utf8_lossy(&buf)));
                p.set_timeout(Duration::from_millis(3)).unwrap();
                let err = p.read(&mut buf).unwrap_err();
                l.lock()
                    .unwrap()
                    .push(format!("{:?} at {}", err.kind(), link.now() - t));
                p.write_all(b"xy").unwrap();
                link.sleep(MILLIS);
                l.lock()
                    .unwrap()
                    .push(format!("waiting {}", p.bytes_to_read().unwrap()));
                p.clear(serialport::ClearBuffer::Input).unwrap();
                l.lock()
                    .unwrap()
                    .push(format!("after clear {}", p.bytes_to_read().unwrap()));
            },
            |_| async {},
        )
        .unwrap();
        sim.run_until(crate::SECONDS, |_| false).unwrap();
        // 5 bytes at 1 Mbaud 8N1: the last arrives at exactly 50 us.
        assert_eq!(
            *log.lock().unwrap(),
            vec![
                "hello at 50000".to_string(),
                "TimedOut at 3000000".to_string(),
                "waiting 2".to_string(),
                "after clear 0".to_string(),
            ]
        );
    }

    #[test]
    fn a_panicking_thread_fails_its_proxy_task_with_the_message() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        spawn::<(), (), _, _, _>(
            &h,
            "faulty",
            None,
            |link| {
                link.sleep(MILLIS);
                panic!("servo table missing");
            },
            |_| async {},
        )
        .unwrap();
        sim.run_until(crate::SECONDS, |_| false).unwrap();
        let failures = sim.failures();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].message.contains("servo table missing"),
            "{failures:?}"
        );
        assert_eq!(failures[0].at, MILLIS);
    }

    #[test]
    fn dropping_the_world_ends_a_waiting_thread_quietly() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let (done_tx, done_rx) = bounded::<&'static str>(1);
        spawn::<(), (), _, _, _>(
            &h,
            "forever",
            None,
            move |link| {
                struct Flag(Sender<&'static str>);
                impl Drop for Flag {
                    fn drop(&mut self) {
                        let _ = self.0.send("unwound");
                    }
                }
                let _flag = Flag(done_tx);
                loop {
                    link.sleep(MILLIS);
                }
            },
            |_| async {},
        )
        .unwrap();
        sim.run_until(50 * MILLIS, |_| false).unwrap();
        drop(sim);
        assert_eq!(done_rx.recv_timeout(WATCHDOG), Ok("unwound"));
    }
}
