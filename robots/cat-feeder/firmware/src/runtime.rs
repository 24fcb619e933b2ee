//! The async shell: carries out the [`Feeder`]'s steps on the HAL.
//!
//! Two tasks joined on one executor:
//!
//! - the loop: subscribes, then asks the feeder for its next step and does
//!   it (read the level sensor, publish, set the motor pins, delay);
//! - the receiver: takes action messages from the MQTT session into the
//!   feeder's inbox while the loop is blocked, as the board's TCP/IP stack
//!   buffers them while the Arduino loop sits in `delay`. It stops taking
//!   messages while the inbox is full, so they wait in the session.
//!
//! They share the feeder through a `RefCell` and never hold a borrow across
//! an `await`.

use core::cell::RefCell;
use core::convert::Infallible;

use embassy_futures::join::join;
use embedded_hal::digital::{OutputPin, PinState};
use embedded_hal_async::delay::DelayNs;
use twinrig_hal::{Clock, LevelSensor, MqttClient};

use crate::config::{ConfigError, FeederConfig};
use crate::feeder::{Feeder, Motor, Step};

/// Back-off after the session failed a `receive` (it is down), ms: keeps a
/// failing session from spinning the executor.
const RECEIVE_RETRY_MS: u32 = 100;

/// This firmware's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The feeder's hardware, besides the network and the clock.
///
/// Each motor is one L298N input pin, driven high to run the motor in its
/// feeding direction: the reference only ever drives its pins high or
/// low, so the second input of each channel stays low and the enable pins
/// are tied high (assumed; a board that wires them to GPIOs sets them once
/// before calling [`run`]).
#[derive(Debug)]
pub struct Hardware<L, R, S> {
    /// The left bowl's motor input (SINGLE).
    pub left_motor: L,
    /// The right bowl's motor input (DOUBLE).
    pub right_motor: R,
    /// The hopper's fill level.
    pub level_sensor: S,
}

/// A one-waiter wake-up flag (single-threaded: no locking needed).
type Signal = embassy_sync::signal::Signal<embassy_sync::blocking_mutex::raw::NoopRawMutex, ()>;

struct Shared {
    feeder: RefCell<Feeder>,
    /// The loop handled a message: the inbox has room again.
    room: Signal,
}

/// Runs the feeder firmware forever.
///
/// `mqtt` is a connected session whose client id is the thing name; `clock`
/// and `delay` give time (the delay is cloned for the receiver's back-off).
/// Returns only when `config` cannot work for this client id (a bad topic
/// or thing name, a zero setting), before touching anything.
pub async fn run<M, C, D, L, R, S>(
    mqtt: &M,
    clock: &C,
    delay: D,
    hardware: Hardware<L, R, S>,
    config: &FeederConfig,
) -> Result<Infallible, ConfigError>
where
    M: MqttClient,
    C: Clock,
    D: DelayNs + Clone,
    L: OutputPin,
    R: OutputPin,
    S: LevelSensor,
{
    let topics = config.topics(mqtt.client_id())?;
    let shared = Shared {
        feeder: RefCell::new(Feeder::new(config.clone())),
        room: Signal::new(),
    };
    let (never, _) = join(
        main_loop(
            &shared,
            mqtt,
            clock,
            delay.clone(),
            hardware,
            config,
            &topics,
        ),
        receive_actions(&shared, mqtt, delay, &topics.action),
    )
    .await;
    match never {}
}

async fn receive_actions<M: MqttClient, D: DelayNs>(
    shared: &Shared,
    mqtt: &M,
    mut delay: D,
    action_topic: &str,
) -> Infallible {
    loop {
        while !shared.feeder.borrow().has_room() {
            shared.room.wait().await;
        }
        match mqtt.receive().await {
            // Only the action topic is subscribed; anything else is not ours.
            Ok(message) if message.topic == action_topic => {
                // Room was checked before receiving and only this task adds.
                let _ = shared.feeder.borrow_mut().offer(&message.payload);
            }
            Ok(_) => {}
            Err(_) => delay.delay_ms(RECEIVE_RETRY_MS).await,
        }
    }
}

async fn main_loop<M, C, D, L, R, S>(
    shared: &Shared,
    mqtt: &M,
    clock: &C,
    mut delay: D,
    hardware: Hardware<L, R, S>,
    config: &FeederConfig,
    topics: &crate::config::Topics,
) -> Infallible
where
    M: MqttClient,
    C: Clock,
    D: DelayNs,
    L: OutputPin,
    R: OutputPin,
    S: LevelSensor,
{
    let Hardware {
        mut left_motor,
        mut right_motor,
        mut level_sensor,
    } = hardware;
    // Without the subscription the feeder is deaf: retry until the broker takes it.
    while mqtt
        .subscribe(&topics.action, config.action_qos)
        .await
        .is_err()
    {
        delay.delay_ms(config.subscribe_retry_ms).await;
    }
    loop {
        let step = shared.feeder.borrow_mut().next_step(clock.now_ns());
        match step {
            Step::ReadLevel => {
                let reading = level_sensor.read_percent().await;
                shared.feeder.borrow_mut().level_read(reading);
            }
            Step::Publish { payload, qos } => {
                // Queued by the session; when it is down the message is lost,
                // as on the board, and the next state carries on.
                let _ = mqtt.publish(&topics.states, payload.as_bytes(), qos).await;
            }
            Step::DriveMotors(motors) => {
                // Both pins are always set, so "all low" is tried on each
                // even when the other fails.
                let left = left_motor.set_state(PinState::from(motors.left));
                let right = right_motor.set_state(PinState::from(motors.right));
                let now = clock.now_ns();
                let mut feeder = shared.feeder.borrow_mut();
                if left.is_err() {
                    feeder.motor_fault(Motor::Left, now);
                }
                if right.is_err() {
                    feeder.motor_fault(Motor::Right, now);
                }
            }
            Step::Delay { ms } => delay.delay_ms(ms).await,
        }
        if shared.feeder.borrow().has_room() {
            shared.room.signal(());
        }
    }
}
