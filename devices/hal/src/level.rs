//! How full a container is (a feeder's hopper, a water tank), in percent.
//!
//! No standard embedded trait fits: embedded-hal 1.0 dropped its ADC traits,
//! and the physical measurement differs per board (an ultrasonic or
//! time-of-flight distance to the food surface, a load cell, an analogue
//! float). The board converts its raw reading with its own calibration and
//! reports a percent; the simulator reports the twin's fill level. Device
//! code therefore sees one small, testable number.

use core::fmt;

/// Why a level reading failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LevelError {
    /// No reading in time (no echo from an ultrasonic sensor, a bus that
    /// did not answer).
    Timeout,
    /// The sensor reported a failure or an impossible raw value.
    Fault,
}

impl fmt::Display for LevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LevelError::Timeout => "level sensor timed out",
            LevelError::Fault => "level sensor fault",
        })
    }
}

impl core::error::Error for LevelError {}

/// A fill-level sensor.
#[allow(async_fn_in_trait)] // devices run on single-threaded executors; Send is not wanted
pub trait LevelSensor {
    /// Measures the fill level: 0 = empty, 100 = full. Implementations
    /// return at most 100; callers still check, since a wrong calibration
    /// is a likely bug on a real board.
    async fn read_percent(&mut self) -> Result<u8, LevelError>;
}

impl<S: LevelSensor + ?Sized> LevelSensor for &mut S {
    async fn read_percent(&mut self) -> Result<u8, LevelError> {
        (**self).read_percent().await
    }
}
