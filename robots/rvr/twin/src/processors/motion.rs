//! Drive (ST): the drive commands turned into targets for the tread drive,
//! the yaw frame, the control timeout, and the motor fault state.

use rvr_protocol::{ErrorCode, HeadingFlags, MotorMode, Response, ThermalStatus};

use super::RvrTwin;
use crate::drive::{DriveTarget, wrap_deg};
use twinrig_sim::MILLIS;

type Answer = Result<Option<Response>, ErrorCode>;

/// A finite number, else bad parameter value.
fn finite(values: &[f32]) -> Result<(), ErrorCode> {
    if values.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(ErrorCode::BadParameterValue)
    }
}

/// -127..127 (-128 clamps) as a fraction of `max`.
fn normalized(v: i8, max: f32) -> f32 {
    f32::from(v.max(-127)) / 127.0 * max
}

impl RvrTwin {
    /// Why the motors cannot be driven now, if they cannot.
    pub(super) fn drive_refused(&self) -> Option<ErrorCode> {
        let s = self.state.borrow();
        let protected = s.electrical.thermal.contains(&ThermalStatus::Critical);
        (!s.awake || protected || s.electrical.motor_fault).then_some(ErrorCode::CommandRestricted)
    }

    fn drive(&self, target: DriveTarget) -> Answer {
        if let Some(code) = self.drive_refused() {
            return Err(code);
        }
        let mut s = self.state.borrow_mut();
        s.stats.drive_commands += 1;
        s.body.command(target, self.handle.now());
        Ok(None)
    }

    /// (per-tread, linear, yaw-rate) limits of the drive.
    fn limits(&self) -> (f32, f32, f32) {
        let p = self.state.borrow().body.drive().params;
        (p.max_tread_speed, p.max_linear, p.max_yaw_rate_deg)
    }

    pub(super) fn raw_motors(
        &self,
        left_mode: MotorMode,
        left_duty: u8,
        right_mode: MotorMode,
        right_duty: u8,
    ) -> Answer {
        let (max_tread, _, _) = self.limits();
        let speed = |mode: MotorMode, duty: u8| match mode {
            MotorMode::Off => 0.0,
            MotorMode::Forward => f32::from(duty) / 255.0 * max_tread,
            MotorMode::Reverse => -f32::from(duty) / 255.0 * max_tread,
        };
        self.drive(DriveTarget::Treads {
            left: speed(left_mode, left_duty),
            right: speed(right_mode, right_duty),
        })
    }

    pub(super) fn drive_tank_si(&self, left_mps: f32, right_mps: f32) -> Answer {
        finite(&[left_mps, right_mps])?;
        self.drive(DriveTarget::Treads {
            left: left_mps,
            right: right_mps,
        })
    }

    pub(super) fn drive_tank_normalized(&self, left: i8, right: i8) -> Answer {
        let (max_tread, _, _) = self.limits();
        self.drive(DriveTarget::Treads {
            left: normalized(left, max_tread),
            right: normalized(right, max_tread),
        })
    }

    pub(super) fn drive_rc_si(&self, yaw_rate_dps: f32, linear_mps: f32) -> Answer {
        finite(&[yaw_rate_dps, linear_mps])?;
        self.drive(DriveTarget::Rc {
            linear: linear_mps,
            yaw_rate_deg: yaw_rate_dps,
        })
    }

    pub(super) fn drive_rc_normalized(&self, yaw_rate: i8, linear: i8) -> Answer {
        let (_, max_linear, max_yaw) = self.limits();
        self.drive(DriveTarget::Rc {
            linear: normalized(linear, max_linear),
            yaw_rate_deg: normalized(yaw_rate, max_yaw),
        })
    }

    /// Speed 0-255 of the linear limit along a compass-like heading (0
    /// forward at the last yaw reset, 90 right); reverse flips the speed.
    pub(super) fn drive_with_heading(
        &self,
        speed: u8,
        heading_deg: u16,
        flags: HeadingFlags,
    ) -> Answer {
        if heading_deg > rvr_protocol::constants::drive::MAX_HEADING_DEG {
            return Err(ErrorCode::BadParameterValue);
        }
        let (_, max_linear, _) = self.limits();
        let sign = if flags.contains(HeadingFlags::REVERSE) {
            -1.0
        } else {
            1.0
        };
        let zero = self.state.borrow().yaw_zero_deg;
        // Heading is compass-like (90 = right); yaw is + left.
        let yaw = wrap_deg(zero - f32::from(heading_deg));
        self.drive(DriveTarget::Heading {
            speed: sign * f32::from(speed) / 255.0 * max_linear,
            yaw_deg: yaw,
        })
    }

    pub(super) fn drive_with_yaw_si(&self, yaw_deg: f32, linear_mps: f32) -> Answer {
        finite(&[yaw_deg, linear_mps])?;
        let zero = self.state.borrow().yaw_zero_deg;
        self.drive(DriveTarget::Heading {
            speed: linear_mps,
            yaw_deg: wrap_deg(zero + yaw_deg),
        })
    }

    pub(super) fn drive_stop(&self) -> Answer {
        self.drive(DriveTarget::Stop)
    }

    pub(super) fn stop_controller_state(&self) -> Answer {
        let stopped = self.state.borrow().body.drive().at_rest();
        Ok(Some(Response::StopControllerState { stopped }))
    }

    pub(super) fn set_control_timeout(&self, timeout_ms: u16) -> Answer {
        self.state
            .borrow()
            .body
            .set_command_timeout(u64::from(timeout_ms) * MILLIS);
        Ok(None)
    }

    pub(super) fn restore_control_timeout(&self) -> Answer {
        let default = u64::from(rvr_protocol::constants::drive::DEFAULT_CONTROL_TIMEOUT_MS);
        self.state
            .borrow()
            .body
            .set_command_timeout(default * MILLIS);
        Ok(None)
    }

    /// The current heading becomes yaw 0 (and the locator's axes follow it
    /// unless auto-calibrate is set).
    pub(super) fn reset_yaw(&self) -> Answer {
        let mut s = self.state.borrow_mut();
        s.yaw_zero_deg = s.body.planar().yaw.to_degrees();
        Ok(None)
    }

    pub(super) fn motor_fault_state(&self) -> Answer {
        let is_fault = self.state.borrow().electrical.motor_fault;
        Ok(Some(Response::MotorFaultState { is_fault }))
    }
}
