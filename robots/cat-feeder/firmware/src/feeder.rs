//! The feeder's decisions, without I/O: the Arduino loop as a sequence of
//! [`Step`]s. [`crate::run`] carries each step out on the HAL and reports
//! back (a level reading, a pin failure); tests drive it directly with a
//! clock of their own.
//!
//! One loop turn, as on the board:
//!
//! 1. if a motor pin is believed high (a failed "all low"), drive all low;
//! 2. read the hopper level ([`Step::ReadLevel`]) and publish the state;
//! 3. service MQTT: handle the action messages waiting at this moment (all
//!    of them, or one, per [`Servicing`]), in arrival order. A valid event
//!    drives its motors high, waits `motor_run_ms`, drives all low, waits
//!    `after_feed_pause_ms` and publishes `fed`; a bad payload publishes an
//!    `error` at once. Messages arriving meanwhile wait for the next turn;
//! 4. sleep `loop_sleep_ms`.
//!
//! Nothing else happens while a feed runs: no state, no other message.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use twinrig_hal::{LevelError, QoS};

use crate::action::{ActionError, ErrorCode, Event, parse_action, too_large};
use crate::config::{FeederConfig, MS, Servicing};
use crate::messages::{ErrorMessage, FedMessage, MotorsField, StateMessage, to_json};

/// The level of each motor driver input: `true` = high = the motor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Motors {
    /// The left bowl's motor (L298N IN1, one direction only).
    pub left: bool,
    /// The right bowl's motor (L298N IN3, one direction only).
    pub right: bool,
}

impl Motors {
    /// Both low.
    pub const OFF: Motors = Motors {
        left: false,
        right: false,
    };

    /// Whether either motor runs.
    pub fn any(self) -> bool {
        self.left || self.right
    }

    fn field(self) -> MotorsField {
        let word = |on: bool| if on { "on" } else { "off" };
        MotorsField {
            left: word(self.left),
            right: word(self.right),
        }
    }
}

/// One of the two bowl motors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Motor {
    /// The left bowl (SINGLE).
    Left,
    /// The right bowl (DOUBLE).
    Right,
}

impl Motor {
    /// Its name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Motor::Left => "left",
            Motor::Right => "right",
        }
    }
}

/// The next thing the firmware does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Read the hopper level and hand the result to [`Feeder::level_read`].
    ReadLevel,
    /// Publish `payload` on the states topic.
    Publish {
        /// JSON text.
        payload: String,
        /// Its QoS.
        qos: QoS,
    },
    /// Set the motor pins; report each pin that failed to
    /// [`Feeder::motor_fault`] before the next step.
    DriveMotors(Motors),
    /// Block for this long (Arduino `delay`): nothing else is done meanwhile.
    Delay {
        /// Milliseconds.
        ms: u32,
    },
}

/// [`Feeder::offer`] refused a message: the firmware already holds
/// [`FeederConfig::inbox_len`] of them. Leave it in the MQTT session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxFull;

impl fmt::Display for InboxFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the feeder's action inbox is full")
    }
}

impl core::error::Error for InboxFull {}

/// A message waiting to be handled; oversized ones are not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Inbound {
    Payload(Vec<u8>),
    TooLarge(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Start of a turn: make sure no motor is left running.
    SafeOff,
    ReadLevel,
    PublishState,
    /// Take the batch of messages this service handles.
    Service,
    /// Handle the next message of the batch.
    Handle,
    /// Motors were driven high: run them (or abort if a pin failed).
    FeedRun,
    FeedStop,
    FeedPause,
    FeedDone,
    /// A pin failed at the start: the motors were driven low; report it.
    FeedAborted,
    Sleep,
}

#[derive(Debug, Clone, Copy)]
struct Feed {
    event: Event,
    started_ns: u64,
    /// The pin that failed when the motors were started.
    start_fault: Option<Motor>,
}

/// The firmware's state machine. See the module docs for one loop turn.
#[derive(Debug, Clone)]
pub struct Feeder {
    config: FeederConfig,
    inbox: VecDeque<Inbound>,
    phase: Phase,
    batch_left: usize,
    level: Option<Result<u8, LevelError>>,
    /// The pins as last driven; a pin that failed counts as high (it may run).
    motors: Motors,
    feed: Option<Feed>,
    /// Messages to publish before anything else (pin failures).
    reports: VecDeque<String>,
    feeds: u32,
    rejected: u32,
}

impl Feeder {
    /// A feeder that has just booted: its first step reads the level for
    /// the first state.
    pub fn new(config: FeederConfig) -> Feeder {
        Feeder {
            inbox: VecDeque::with_capacity(config.inbox_len.min(64)),
            config,
            phase: Phase::SafeOff,
            batch_left: 0,
            level: None,
            motors: Motors::OFF,
            feed: None,
            reports: VecDeque::new(),
            feeds: 0,
            rejected: 0,
        }
    }

    /// Its settings.
    pub fn config(&self) -> &FeederConfig {
        &self.config
    }

    /// Feeds completed since boot.
    pub fn feeds(&self) -> u32 {
        self.feeds
    }

    /// Action payloads refused since boot.
    pub fn rejected(&self) -> u32 {
        self.rejected
    }

    /// The motor pins as last driven (a pin that failed counts as high).
    pub fn motors(&self) -> Motors {
        self.motors
    }

    /// Messages received and not handled yet.
    pub fn waiting(&self) -> usize {
        self.inbox.len()
    }

    /// Whether [`Feeder::offer`] would take another message.
    pub fn has_room(&self) -> bool {
        self.inbox.len() < self.config.inbox_len
    }

    /// A message arrived on the action topic. It waits until the loop next
    /// services MQTT. Oversized payloads are not stored, only their length.
    pub fn offer(&mut self, payload: &[u8]) -> Result<(), InboxFull> {
        if !self.has_room() {
            return Err(InboxFull);
        }
        self.inbox
            .push_back(if payload.len() > self.config.max_payload_bytes {
                Inbound::TooLarge(payload.len())
            } else {
                Inbound::Payload(payload.to_vec())
            });
        Ok(())
    }

    /// The result of the [`Step::ReadLevel`] just returned. Ignored at any
    /// other time; a state published without one says `not_read`.
    pub fn level_read(&mut self, reading: Result<u8, LevelError>) {
        if self.phase == Phase::PublishState {
            self.level = Some(reading);
        }
    }

    /// Setting `motor`'s pin failed in the last [`Step::DriveMotors`]. The
    /// pin may be high, so it counts as running until driving it low
    /// succeeds. A failure while starting a feed aborts the feed (all pins
    /// low, an error, no `fed`); any other one is reported at once and
    /// "all low" is tried again at the start of every loop turn.
    pub fn motor_fault(&mut self, motor: Motor, now_ns: u64) {
        match motor {
            Motor::Left => self.motors.left = true,
            Motor::Right => self.motors.right = true,
        }
        if self.phase == Phase::FeedRun
            && let Some(feed) = self.feed.as_mut()
        {
            feed.start_fault.get_or_insert(motor);
            return;
        }
        let event = self.feed.map(|f| f.event.as_str());
        let text = alloc::format!(
            "{} motor pin could not be driven low; it may still run (retried every loop turn)",
            motor.as_str()
        );
        let report = self.error_message(ErrorCode::MotorPin, &text, event, now_ns);
        self.reports.push_back(report);
    }

    /// What to do next, at device time `now_ns`.
    pub fn next_step(&mut self, now_ns: u64) -> Step {
        if let Some(payload) = self.reports.pop_front() {
            return self.report(payload);
        }
        loop {
            match self.phase {
                Phase::SafeOff => {
                    self.phase = Phase::ReadLevel;
                    if self.motors.any() {
                        return self.drive(Motors::OFF);
                    }
                }
                Phase::ReadLevel => {
                    self.level = None;
                    self.phase = Phase::PublishState;
                    return Step::ReadLevel;
                }
                Phase::PublishState => {
                    self.phase = Phase::Service;
                    let state = self.state_message(now_ns);
                    return Step::Publish {
                        payload: state,
                        qos: self.config.state_qos,
                    };
                }
                Phase::Service => {
                    self.batch_left = match self.config.servicing {
                        Servicing::AllWaiting => self.inbox.len(),
                        Servicing::OnePerTurn => self.inbox.len().min(1),
                    };
                    self.phase = Phase::Handle;
                }
                Phase::Handle => {
                    let Some(message) = self.take_from_batch() else {
                        self.phase = Phase::Sleep;
                        continue;
                    };
                    let parsed = match message {
                        Inbound::Payload(bytes) => {
                            parse_action(&bytes, self.config.max_payload_bytes)
                        }
                        Inbound::TooLarge(len) => {
                            Err(too_large(len, self.config.max_payload_bytes))
                        }
                    };
                    match parsed {
                        Ok(event) => {
                            self.feed = Some(Feed {
                                event,
                                started_ns: now_ns,
                                start_fault: None,
                            });
                            self.phase = Phase::FeedRun;
                            return self.drive(event.motors());
                        }
                        Err(ActionError { code, message }) => {
                            self.rejected = self.rejected.saturating_add(1);
                            let report = self.error_message(code, &message, None, now_ns);
                            return self.report(report);
                        }
                    }
                }
                Phase::FeedRun => {
                    if self.feed.is_some_and(|f| f.start_fault.is_some()) {
                        self.phase = Phase::FeedAborted;
                        return self.drive(Motors::OFF);
                    }
                    self.phase = Phase::FeedStop;
                    return Step::Delay {
                        ms: self.config.motor_run_ms,
                    };
                }
                Phase::FeedStop => {
                    self.phase = Phase::FeedPause;
                    return self.drive(Motors::OFF);
                }
                Phase::FeedPause => {
                    self.phase = Phase::FeedDone;
                    return Step::Delay {
                        ms: self.config.after_feed_pause_ms,
                    };
                }
                Phase::FeedDone => {
                    self.phase = Phase::Handle;
                    let Some(feed) = self.feed.take() else {
                        continue;
                    };
                    self.feeds = self.feeds.saturating_add(1);
                    let fed = to_json(&FedMessage {
                        kind: "fed",
                        event: feed.event.as_str(),
                        bowls: feed.event.bowls(),
                        feeds: self.feeds,
                        started_ms: feed.started_ns / MS,
                        ts: self.unix_s(now_ns),
                        uptime_ms: now_ns / MS,
                    });
                    return self.report(fed);
                }
                Phase::FeedAborted => {
                    self.phase = Phase::Handle;
                    let Some(feed) = self.feed.take() else {
                        continue;
                    };
                    let motor = feed.start_fault.map_or("a", Motor::as_str);
                    let text = alloc::format!(
                        "{motor} motor pin could not be driven high; feed {} aborted",
                        feed.event.as_str()
                    );
                    let report = self.error_message(
                        ErrorCode::MotorPin,
                        &text,
                        Some(feed.event.as_str()),
                        now_ns,
                    );
                    return self.report(report);
                }
                Phase::Sleep => {
                    self.phase = Phase::SafeOff;
                    return Step::Delay {
                        ms: self.config.loop_sleep_ms,
                    };
                }
            }
        }
    }

    /// Unix seconds at device time `now_ns`.
    pub fn unix_s(&self, now_ns: u64) -> u64 {
        self.config
            .epoch_offset_s
            .saturating_add(now_ns / 1_000_000_000)
    }

    fn take_from_batch(&mut self) -> Option<Inbound> {
        if self.batch_left == 0 {
            return None;
        }
        self.batch_left -= 1;
        let next = self.inbox.pop_front();
        if next.is_none() {
            self.batch_left = 0;
        }
        next
    }

    fn drive(&mut self, motors: Motors) -> Step {
        self.motors = motors;
        Step::DriveMotors(motors)
    }

    fn report(&self, payload: String) -> Step {
        Step::Publish {
            payload,
            qos: self.config.report_qos,
        }
    }

    fn state_message(&mut self, now_ns: u64) -> String {
        let (food_capacity, level_error) = match self.level.take() {
            Some(Ok(percent)) if percent <= 100 => (Some(percent), None),
            Some(Ok(_)) => (None, Some("out_of_range")),
            Some(Err(LevelError::Timeout)) => (None, Some("timeout")),
            Some(Err(LevelError::Fault)) => (None, Some("fault")),
            None => (None, Some("not_read")),
        };
        to_json(&StateMessage {
            kind: "state",
            food_capacity,
            level_error,
            device_location: &self.config.device_location,
            feeds: self.feeds,
            motors: self.motors.field(),
            rejected: self.rejected,
            ts: self.unix_s(now_ns),
            uptime_ms: now_ns / MS,
        })
    }

    fn error_message(
        &self,
        code: ErrorCode,
        text: &str,
        event: Option<&'static str>,
        now_ns: u64,
    ) -> String {
        to_json(&ErrorMessage {
            kind: "error",
            code: code.as_str(),
            error: text,
            event,
            ts: self.unix_s(now_ns),
            uptime_ms: now_ns / MS,
        })
    }
}
