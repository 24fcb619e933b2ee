//! The virtual hardware the firmware drives: what `cat_feeder_firmware::Hardware`
//! holds on the board, bound to the twin.

use core::convert::Infallible;

use embedded_hal::digital::{ErrorType, OutputPin};
use twinrig_hal::{LevelError, LevelSensor};

use crate::params::Bowl;
use crate::twin::FeederTwin;

/// One L298N input: high runs the bowl's motor (when it is not jammed).
pub struct MotorPin {
    twin: FeederTwin,
    bowl: Bowl,
}

impl MotorPin {
    /// The input of `bowl`'s motor.
    pub fn new(twin: FeederTwin, bowl: Bowl) -> MotorPin {
        MotorPin { twin, bowl }
    }
}

impl ErrorType for MotorPin {
    // A GPIO write on the ESP32-C3 does not fail; pin faults are the firmware's own tests' business.
    type Error = Infallible;
}

impl OutputPin for MotorPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.twin.set_pin(self.bowl, false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        self.twin.set_pin(self.bowl, true);
        Ok(())
    }
}

/// The hopper level sensor: reads the twin's hopper, instantly and exactly
/// (the real sensor is unknown; an ideal one is assumed).
pub struct HopperLevel {
    twin: FeederTwin,
}

impl HopperLevel {
    /// The sensor of `twin`'s hopper.
    pub fn new(twin: FeederTwin) -> HopperLevel {
        HopperLevel { twin }
    }
}

impl LevelSensor for HopperLevel {
    async fn read_percent(&mut self) -> Result<u8, LevelError> {
        Ok(self.twin.level_percent())
    }
}
