//! [`HandDriver`] over rustypot's `Scs0009Controller` (the real driver, unmodified).
//!
//! Every write is a unicast WRITE acknowledged by the servo, as in Pollen's demo:
//! `set_speed` writes `goal_speed` (rad/s) per id, `write_goal_positions` writes
//! `goal_position` (rad) per id, `enable_torque` writes `torque_enable` 1/0 to each
//! of the 8 servos (acknowledged, so a servo that missed it is an error), and
//! `read_present_positions` reads `present_position` of each servo.

use rustypot::servo::feetech::scs0009::Scs0009Controller;

use crate::driver::{ALL_SERVOS, DriverError, HandDriver, SERVO_COUNT};

/// The real servo bus through rustypot.
///
/// Build the controller as the hardware does:
/// `Scs0009Controller::new().with_protocol_v1().with_serial_port(port)` with a
/// `Box<dyn serialport::SerialPort>` (1,000,000 baud); the harness passes the
/// servo-bus twin's port.
pub struct RustypotDriver {
    controller: Scs0009Controller,
}

fn bus(e: Box<dyn std::error::Error>) -> DriverError {
    DriverError(e.to_string())
}

impl RustypotDriver {
    /// Wraps a controller that already has its protocol and serial port set
    /// (rustypot panics on first use otherwise).
    pub fn new(controller: Scs0009Controller) -> Self {
        RustypotDriver { controller }
    }

    /// The controller back.
    pub fn into_inner(self) -> Scs0009Controller {
        self.controller
    }
}

impl HandDriver for RustypotDriver {
    fn set_speed(&mut self, ids: &[u8], rad_per_s: f64) -> Result<(), DriverError> {
        for &id in ids {
            self.controller
                .write_goal_speed(id, rad_per_s)
                .map_err(bus)?;
        }
        Ok(())
    }

    fn write_goal_positions(&mut self, ids: &[u8], radians: &[f64]) -> Result<(), DriverError> {
        if ids.len() != radians.len() {
            return Err(DriverError(format!(
                "{} ids but {} positions",
                ids.len(),
                radians.len()
            )));
        }
        for (&id, &rad) in ids.iter().zip(radians) {
            self.controller.write_goal_position(id, rad).map_err(bus)?;
        }
        Ok(())
    }

    fn enable_torque(&mut self, on: bool) -> Result<(), DriverError> {
        for id in ALL_SERVOS {
            self.controller
                .write_torque_enable(id, u8::from(on))
                .map_err(bus)?;
        }
        Ok(())
    }

    fn read_present_positions(&mut self) -> Result<[f64; SERVO_COUNT], DriverError> {
        let mut out = [0.0; SERVO_COUNT];
        for (slot, id) in out.iter_mut().zip(ALL_SERVOS) {
            let values = self.controller.read_present_position(id).map_err(bus)?;
            *slot = *values
                .first()
                .ok_or_else(|| DriverError(format!("servo {id}: empty present_position reply")))?;
        }
        Ok(out)
    }
}

// Tested against the servo-bus twin: robots/hand/twin/tests/rustypot_driver.rs.
