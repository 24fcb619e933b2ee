//! Power (Nordic): sleep and wake, the battery's charge, voltage and state,
//! and the motor current sense amplifiers.
//!
//! The charge integrates exactly: idle current while awake, plus per motor
//! `drive_ma / 2` at full tread speed (scaled by |tread speed|) and
//! `amps_per_newton` per newton of tread force, both from the drive's tread
//! integrals, so the result does not depend on how often it is updated. The
//! voltage is read every `read_period` (the robot's "most recent reading"),
//! from the charge and the current flowing then.

use rvr_protocol::{
    BatteryVoltageState, ErrorCode, Motor, Notification, Processor, Response, VoltageReading,
};

use super::{RvrTwin, TreadMarks};
use crate::drive::DriveTarget;
use crate::models::{battery_voltage, next_voltage_state, seconds};

type Answer = Result<Option<Response>, ErrorCode>;

impl RvrTwin {
    pub(super) fn sleep(&self) -> Answer {
        self.notify(Notification::WillSleep, Processor::Nordic);
        {
            let now = self.handle.now();
            let mut s = self.state.borrow_mut();
            s.body.command(DriveTarget::Stop, now);
            s.awake = false;
            for st in &mut s.streaming {
                st.generation += 1;
            }
            s.color.notify_generation += 1;
            s.color.leds = Default::default();
        }
        self.notify(Notification::DidSleep, Processor::Nordic);
        Ok(None)
    }

    pub(super) fn wake(&self) -> Answer {
        self.state.borrow_mut().awake = true;
        Ok(None)
    }

    pub(super) fn battery_percentage(&self) -> Answer {
        let pct = self.stats().battery_pct.round().clamp(0.0, 100.0) as u8;
        Ok(Some(Response::BatteryPercentage(pct)))
    }

    pub(super) fn battery_voltage_state(&self) -> Answer {
        let state = self.state.borrow().electrical.battery_state;
        Ok(Some(Response::BatteryVoltageState(state)))
    }

    /// The most recent reading. The twin has no measurement noise or
    /// calibration error, so the three reading types agree (assumed).
    pub(super) fn battery_voltage(&self, _reading: VoltageReading) -> Answer {
        let volts = self.state.borrow().electrical.battery_volts;
        Ok(Some(Response::BatteryVoltageInVolts(volts)))
    }

    pub(super) fn battery_thresholds(&self) -> Answer {
        let p = &self.state.borrow().config.battery;
        Ok(Some(Response::BatteryVoltageStateThresholds {
            critical_v: p.critical_v,
            low_v: p.low_v,
            hysteresis_v: p.hysteresis_v,
        }))
    }

    /// A motor's current over the last monitor period, amps.
    pub(super) fn motor_current(&self, motor: Motor) -> Answer {
        let amps = self.state.borrow().electrical.motor_amps[motor.index()];
        Ok(Some(Response::CurrentSenseAmplifierCurrent { amps }))
    }

    /// Brings the charge up to now.
    pub(super) fn drain_battery(&self) {
        let now = self.handle.now();
        let mut s = self.state.borrow_mut();
        let marks = TreadMarks::of(&s.body);
        let max_tread = f64::from(s.body.drive().params.max_tread_speed);
        let (idle_ma, drive_ma, amps_per_newton) = (
            f64::from(s.config.idle_ma),
            f64::from(s.config.drive_ma),
            f64::from(s.config.motors.amps_per_newton),
        );
        let awake = s.awake;
        let e = &mut s.electrical;
        let dt_s = seconds(now.saturating_sub(e.last_drain));
        let mut ma_s = if awake { idle_ma * dt_s } else { 0.0 };
        for i in 0..2 {
            let travel = marks.abs_travel_m[i] - e.drained.abs_travel_m[i];
            let impulse = marks.force_impulse_ns[i] - e.drained.force_impulse_ns[i];
            ma_s += drive_ma / (2.0 * max_tread) * travel + 1000.0 * amps_per_newton * impulse;
        }
        e.charge_mah = (e.charge_mah - ma_s / 3600.0).max(0.0);
        e.drained = marks;
        e.last_drain = now;
    }

    /// Takes a battery reading; returns the new state if it changed.
    pub(super) fn read_battery(&self) -> Option<BatteryVoltageState> {
        self.drain_battery();
        let mut s = self.state.borrow_mut();
        let pct = s.charge_pct();
        let idle_a = if s.awake {
            s.config.idle_ma / 1000.0
        } else {
            0.0
        };
        let amps = idle_a + s.electrical.motor_amps.iter().sum::<f32>();
        let volts = battery_voltage(&s.config.battery, pct, amps);
        let prev = s.electrical.battery_state;
        let next = next_voltage_state(prev, volts, &s.config.battery);
        s.electrical.battery_volts = volts;
        s.electrical.battery_state = next;
        (next != prev).then_some(next)
    }
}
