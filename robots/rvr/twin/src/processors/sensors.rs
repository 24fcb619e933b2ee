//! Sensor device (ST side, and the Nordic ambient light): locator, IMU and
//! the streaming sample, motor temperatures and thermal protection,
//! encoders, and the robot-to-robot infrared modes.

use rvr_protocol::constants::sensor::{MAX_INFRARED_CODE, MAX_INFRARED_STRENGTH};
use rvr_protocol::{
    Attitude, ColorReading, EncoderTicks, ErrorCode, InfraredReadings, LocatorFlags, Motor,
    MotorThermal, Quaternion, Response, SensorSample, Vector2, Vector3,
};

use super::{Infrared, RvrTwin, TwinState};
use crate::drive::wrap_deg;
use twinrig_sim::{MILLIS, Nanos};

type Answer = Result<Option<Response>, ErrorCode>;

impl RvrTwin {
    pub(super) fn reset_locator(&self) -> Answer {
        let mut s = self.state.borrow_mut();
        let p = s.body.planar();
        s.origin = (p.x, p.y);
        Ok(None)
    }

    pub(super) fn set_locator_flags(&self, flags: LocatorFlags) -> Answer {
        self.state.borrow_mut().locator_flags = flags;
        Ok(None)
    }

    pub(super) fn ambient_light(&self) -> Answer {
        Ok(Some(Response::AmbientLight {
            lux: self.state.borrow().config.ambient_lux,
        }))
    }

    pub(super) fn encoder_counts(&self) -> Answer {
        let [left, right] = self.state.borrow().body.drive().encoder_counts();
        Ok(Some(Response::EncoderCounts {
            left: left as i32,
            right: right as i32,
        }))
    }

    pub(super) fn motor_temperature(&self, motor: Motor) -> Answer {
        let heat = self.state.borrow().electrical.heat[motor.index()];
        Ok(Some(Response::MotorTemperature {
            winding_c: heat.winding_c,
            case_c: heat.case_c,
        }))
    }

    pub(super) fn thermal_status(&self) -> Answer {
        let [left, right] = self.thermal_report();
        Ok(Some(Response::MotorThermalProtectionStatus { left, right }))
    }

    /// Each motor's winding temperature and protection status.
    pub(super) fn thermal_report(&self) -> [MotorThermal; 2] {
        let e = &self.state.borrow().electrical;
        Motor::BOTH.map(|m| MotorThermal {
            temperature: e.heat[m.index()].winding_c,
            status: e.thermal[m.index()],
        })
    }

    /// No other robot is in the world: every receiver reads 0.
    pub(super) fn infrared_readings(&self) -> Answer {
        Ok(Some(Response::BotToBotInfraredReadings(
            InfraredReadings::default(),
        )))
    }

    /// Starts broadcasting, following or evading with codes 0-7. Following
    /// and evading look for another robot's broadcast; there is none, so the
    /// robot does not move.
    pub(super) fn infrared_mode(
        &self,
        far_code: u8,
        near_code: u8,
        set: impl FnOnce(&mut Infrared, Option<(u8, u8)>),
    ) -> Answer {
        if far_code > MAX_INFRARED_CODE || near_code > MAX_INFRARED_CODE {
            return Err(ErrorCode::BadParameterValue);
        }
        self.infrared_action()?;
        set(
            &mut self.state.borrow_mut().infrared,
            Some((far_code, near_code)),
        );
        Ok(None)
    }

    pub(super) fn infrared_stop(&self, set: impl FnOnce(&mut Infrared)) -> Answer {
        set(&mut self.state.borrow_mut().infrared);
        Ok(None)
    }

    /// Sends code 0-7 at strengths 0-64 per emitter; nobody receives it.
    pub(super) fn send_infrared(&self, code: u8, strengths: [u8; 4]) -> Answer {
        if code > MAX_INFRARED_CODE || strengths.iter().any(|&s| s > MAX_INFRARED_STRENGTH) {
            return Err(ErrorCode::BadParameterValue);
        }
        self.infrared_action()?;
        Ok(None)
    }

    /// Asleep, the robot takes no infrared action (assumed).
    fn infrared_action(&self) -> Result<(), ErrorCode> {
        if self.state.borrow().awake {
            Ok(())
        } else {
            Err(ErrorCode::CommandRestricted)
        }
    }
}

/// Every sensor as the twin reads it now.
pub(super) fn sample_of(s: &TwinState, now: Nanos) -> SensorSample {
    let p = s.body.planar();
    let zero = s.yaw_zero_deg.to_radians();
    // Locator frame: +y forward at the last yaw reset (or at power-on with
    // auto-calibrate), +x to its right.
    let axes = if s.locator_flags.auto_calibrate {
        s.boot_yaw_deg.to_radians()
    } else {
        zero
    };
    let (fx, fy) = (axes.cos(), axes.sin());
    let (rx, ry) = (fy, -fx);
    let (dx, dy) = (p.x - s.origin.0, p.y - s.origin.1);
    let yaw_deg = wrap_deg(p.yaw.to_degrees() - s.yaw_zero_deg);
    let half = yaw_deg.to_radians() / 2.0;
    let [l, r] = s.body.drive().encoder_counts();
    let color = s.color_detection();
    SensorSample {
        quaternion: Some(Quaternion {
            w: half.cos(),
            x: 0.0,
            y: 0.0,
            z: half.sin(),
        }),
        imu: Some(Attitude {
            pitch_deg: p.pitch.to_degrees(),
            roll_deg: p.roll.to_degrees(),
            yaw_deg,
        }),
        accelerometer: Some(Vector3 {
            x: 0.0,
            y: 0.0,
            z: 1.0,
        }),
        color: Some(ColorReading {
            r: f32::from(color.red),
            g: f32::from(color.green),
            b: f32::from(color.blue),
            index: f32::from(color.classification),
            confidence: f32::from(color.confidence) / 255.0,
        }),
        gyroscope: Some(Vector3 {
            x: 0.0,
            y: 0.0,
            z: p.yaw_rate.to_degrees(),
        }),
        core_time_lower_ms: Some(((now - s.boot) / MILLIS) as u32),
        locator: Some(Vector2 {
            x: dx * rx + dy * ry,
            y: dx * fx + dy * fy,
        }),
        velocity: Some(Vector2 {
            x: p.vx * rx + p.vy * ry,
            y: p.vx * fx + p.vy * fy,
        }),
        speed_mps: Some((p.vx * p.vx + p.vy * p.vy).sqrt()),
        core_time_ms: Some((now - s.boot) / MILLIS),
        ambient_light_lux: Some(s.config.ambient_lux),
        encoders: Some(EncoderTicks {
            left: l as i32,
            right: r as i32,
        }),
    }
}
