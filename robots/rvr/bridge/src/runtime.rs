//! The async shell: three cooperating tasks joined on one executor.
//!
//! - UART receive: bytes -> [`Link`] -> samples and answers -> [`Bridge`].
//! - MQTT receive: waits for boot, subscribes, announces itself, then hands
//!   every command payload to the [`Bridge`].
//! - Main: boots the RVR, then loops: retries overdue commands, ticks the
//!   bridge, carries out its [`Output`]s (UART frames, publishes), and sleeps
//!   until something arrives or the next tick.
//!
//! The tasks share state through `RefCell`s and never hold a borrow across
//! an `await`.

use alloc::vec::Vec;
use core::cell::RefCell;

use embassy_futures::join::join3;
use embassy_futures::select::select;
use embedded_hal_async::delay::DelayNs;
use embedded_io_async::{Read, Write};
use rvr_protocol::{Command, Processor};
use twinrig_hal::{Clock, MqttClient, QoS};

use crate::bridge::{Bridge, Output};
use crate::config::{BridgeConfig, MS, Topics, ms};
use crate::link::{Link, LinkEvent, streaming_slots};
use crate::messages::{Status, to_json};

/// A one-waiter wake-up flag (single-threaded: no locking needed).
type Signal = embassy_sync::signal::Signal<embassy_sync::blocking_mutex::raw::NoopRawMutex, ()>;

struct Shared {
    bridge: RefCell<Bridge>,
    link: RefCell<Link>,
    /// Something arrived for the main loop (a sample, an answer, a command).
    wake: Signal,
    /// Boot finished: the MQTT task may subscribe.
    ready: Signal,
    boot_failures: RefCell<Vec<&'static str>>,
}

/// How long boot waits for the first streamed samples.
const FIRST_SAMPLE_TIMEOUT_NS: u64 = 1_000 * MS;

/// This firmware's version, announced in the `status` message.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs the bridge forever.
///
/// `uart_rx` / `uart_tx` are the two halves of the UART to the RVR (115200
/// 8N1); `mqtt` is a connected session whose client id is the thing name;
/// `clock` and `delay` give time (the delay is cloned for the receive tasks'
/// back-off after errors). See the crate docs for what it does.
pub async fn run<R, W, M, C, D>(
    uart_rx: R,
    uart_tx: W,
    mqtt: &M,
    clock: &C,
    delay: D,
    config: &BridgeConfig,
) where
    R: Read,
    W: Write,
    M: MqttClient,
    C: Clock,
    D: DelayNs + Clone,
{
    let topics = Topics::new(&config.topic_prefix, mqtt.client_id());
    let shared = Shared {
        bridge: RefCell::new(Bridge::new(config.clone())),
        link: RefCell::new(Link::new()),
        wake: Signal::new(),
        ready: Signal::new(),
        boot_failures: RefCell::new(Vec::new()),
    };
    join3(
        receive_uart(&shared, uart_rx, clock, delay.clone()),
        receive_mqtt(&shared, mqtt, clock, delay.clone(), &topics),
        main_loop(&shared, uart_tx, mqtt, clock, delay, &topics),
    )
    .await;
}

async fn receive_uart<R: Read, C: Clock, D: DelayNs>(
    shared: &Shared,
    mut rx: R,
    clock: &C,
    mut delay: D,
) {
    let mut buf = [0u8; 64];
    loop {
        match rx.read(&mut buf).await {
            Ok(n) if n > 0 => {
                let now = clock.now_ns();
                let mut any = false;
                for &byte in &buf[..n] {
                    let event = shared.link.borrow_mut().push_byte(byte);
                    let Some(event) = event else { continue };
                    any = true;
                    let mut bridge = shared.bridge.borrow_mut();
                    match event {
                        LinkEvent::Sample { token, sample } => {
                            bridge.on_sample(token, &sample, now)
                        }
                        LinkEvent::Battery(pct) => bridge.on_battery(pct),
                        LinkEvent::Answered | LinkEvent::Asleep => {}
                    }
                }
                if any {
                    shared.wake.signal(());
                }
            }
            // A line break or driver error: the frame in progress is lost.
            // Back off briefly so a driver that keeps failing cannot spin.
            _ => {
                shared.link.borrow_mut().reset_parser();
                delay.delay_ms(1).await;
            }
        }
    }
}

async fn receive_mqtt<M: MqttClient, C: Clock, D: DelayNs>(
    shared: &Shared,
    mqtt: &M,
    clock: &C,
    mut delay: D,
    topics: &Topics,
) {
    shared.ready.wait().await;
    while mqtt
        .subscribe(&topics.action, QoS::AtLeastOnce)
        .await
        .is_err()
    {
        delay.delay_ms(1000).await;
    }
    let now = clock.now_ns();
    let status = {
        let failures = shared.boot_failures.borrow();
        let firmware = alloc::format!("rvr-bridge {VERSION}");
        to_json(&Status {
            kind: "status",
            status: "online",
            firmware: &firmware,
            boot_failures: failures.clone(),
            ts: shared.bridge.borrow().unix_s(now),
            uptime_ms: now / MS,
        })
    };
    let _ = mqtt
        .publish(&topics.state, status.as_bytes(), QoS::AtLeastOnce)
        .await;
    loop {
        match mqtt.receive().await {
            Ok(msg) => {
                if msg.topic == topics.action {
                    shared
                        .bridge
                        .borrow_mut()
                        .on_action_payload(&msg.payload, clock.now_ns());
                    shared.wake.signal(());
                }
            }
            Err(_) => delay.delay_ms(100).await,
        }
    }
}

struct Io<'a, W, C, D> {
    shared: &'a Shared,
    tx: W,
    clock: &'a C,
    delay: D,
    timeout_ns: u64,
    retries: u8,
    tick_ms: u32,
    /// Set during a rearm: skip the remaining steps when a stop or drive waits.
    abort_on_urgent: bool,
}

impl<W: Write, C: Clock, D: DelayNs> Io<'_, W, C, D> {
    async fn write(&mut self, bytes: &[u8]) {
        // A failed write shows up as a missing response (and a retry).
        let _ = self.tx.write_all(bytes).await;
    }

    async fn retry_overdue(&mut self) {
        let now = self.clock.now_ns();
        let frames = self
            .shared
            .link
            .borrow_mut()
            .sweep(now, self.timeout_ns, self.retries);
        for f in frames {
            self.write(&f).await;
        }
    }

    async fn send(
        &mut self,
        command: &Command,
        processor: Processor,
        reliable: bool,
    ) -> Option<u32> {
        let now = self.clock.now_ns();
        let sent = self
            .shared
            .link
            .borrow_mut()
            .send(command, processor, reliable, now);
        let (request, frame) = sent?;
        self.write(&frame).await;
        Some(request)
    }

    /// Sends a command and waits until the robot answered it, retrying;
    /// false if it answered an error or never answered.
    async fn call(&mut self, command: Command, processor: Processor) -> bool {
        let Some(request) = self.send(&command, processor, true).await else {
            return false;
        };
        // The link gives up after the retries; this bound only guards against
        // an outcome lost from its bounded record.
        let attempts = u64::from(self.retries) + 2;
        let deadline = self.clock.now_ns() + attempts * self.timeout_ns;
        loop {
            if let Some(ok) = self.shared.link.borrow_mut().outcome(request) {
                return ok;
            }
            if self.clock.now_ns() > deadline {
                return false;
            }
            self.retry_overdue().await;
            select(self.shared.wake.wait(), self.delay.delay_ms(self.tick_ms)).await;
        }
    }

    async fn step(
        &mut self,
        failures: &mut Vec<&'static str>,
        name: &'static str,
        command: Command,
        processor: Processor,
    ) {
        if self.abort_on_urgent && self.shared.bridge.borrow().has_urgent_outputs() {
            // A stop or drive arrived during a rearm: it goes first; the
            // rearm is tried again later.
            return;
        }
        if !self.call(command, processor).await && !failures.contains(&name) {
            failures.push(name);
        }
    }

    /// Wakes the RVR and sets streaming up; `full` also waits for the wake
    /// to settle, re-zeroes yaw and locator, and reads the battery.
    async fn boot(&mut self, config: &BridgeConfig, full: bool) -> Vec<&'static str> {
        let mut failures = Vec::new();
        let f = &mut failures;
        self.step(f, "wake", Command::Wake, Processor::Nordic).await;
        if full {
            self.delay.delay_ms(config.wake_settle_ms).await;
        }
        for p in [Processor::St, Processor::Nordic] {
            self.step(f, "clear_streaming", Command::ClearStreaming, p)
                .await;
        }
        if full {
            self.step(f, "reset_yaw", Command::ResetYaw, Processor::St)
                .await;
            self.step(f, "reset_locator", Command::ResetLocatorXy, Processor::St)
                .await;
        }
        for (p, slot) in streaming_slots() {
            self.step(
                f,
                "configure_streaming",
                Command::ConfigureStreaming(slot),
                p,
            )
            .await;
        }
        let period_ms = config.stream_period_ms;
        for p in [Processor::St, Processor::Nordic] {
            self.step(
                f,
                "start_streaming",
                Command::StartStreaming { period_ms },
                p,
            )
            .await;
        }
        if full {
            // Announce only once the data the maneuvers close the loop on flows.
            let deadline = self.clock.now_ns() + FIRST_SAMPLE_TIMEOUT_NS;
            while !self.shared.bridge.borrow().sensors_ready() {
                if self.clock.now_ns() >= deadline {
                    f.push("streaming");
                    break;
                }
                select(self.shared.wake.wait(), self.delay.delay_ms(self.tick_ms)).await;
            }
            let battery = Command::GetBatteryPercentage;
            self.step(f, "get_battery_percentage", battery, Processor::Nordic)
                .await;
        }
        failures
    }
}

async fn main_loop<W: Write, M: MqttClient, C: Clock, D: DelayNs>(
    shared: &Shared,
    tx: W,
    mqtt: &M,
    clock: &C,
    delay: D,
    topics: &Topics,
) {
    let config = shared.bridge.borrow().config().clone();
    let mut io = Io {
        shared,
        tx,
        clock,
        delay,
        timeout_ns: ms(config.response_timeout_ms),
        retries: config.command_retries,
        tick_ms: config.tick_ms.max(1),
        abort_on_urgent: false,
    };
    let failures = io.boot(&config, true).await;
    *shared.boot_failures.borrow_mut() = failures;
    shared.ready.signal(());
    loop {
        io.retry_overdue().await;
        let now = clock.now_ns();
        let outputs = {
            let stats = shared.link.borrow().stats();
            let mut bridge = shared.bridge.borrow_mut();
            bridge.set_link_stats(stats);
            bridge.tick(now);
            bridge.take_outputs()
        };
        for output in outputs {
            match output {
                Output::Rvr {
                    command,
                    processor,
                    reliable,
                } => {
                    io.send(&command, processor, reliable).await;
                }
                Output::Publish { payload, qos } => {
                    // Queued by the session; a failure (session down) drops
                    // this message and the next telemetry carries on.
                    let _ = mqtt.publish(&topics.state, payload.as_bytes(), qos).await;
                }
                Output::Rearm => {
                    shared.link.borrow_mut().count_rearm();
                    io.abort_on_urgent = true;
                    io.boot(&config, false).await;
                    io.abort_on_urgent = false;
                }
            }
        }
        // Outputs produced while this iteration awaited are picked up at once.
        if shared.bridge.borrow().has_outputs() {
            continue;
        }
        select(shared.wake.wait(), io.delay.delay_ms(io.tick_ms)).await;
    }
}
