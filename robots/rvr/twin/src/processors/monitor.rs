//! The periodic checks behind the notifications, every [`MONITOR_PERIOD`]:
//! the stop controller taking over, motor currents and temperatures with
//! thermal protection, stall protection, gyro overruns, an injected motor
//! fault, and (every battery read period) the battery voltage state.

use rvr_protocol::{GyroMaxFlags, Motor, Notification, Processor, ThermalStatus};

use super::{MONITOR_PERIOD, RvrTwin, TreadMarks};
use crate::drive::DriveTarget;
use crate::models::{next_thermal_status, seconds, tread_is_stalling};

impl RvrTwin {
    pub(super) async fn monitor(&self) {
        loop {
            self.handle.sleep(MONITOR_PERIOD).await;
            self.monitor_tick();
        }
    }

    fn monitor_tick(&self) {
        let (stopped, timed_out) = self.state.borrow().body.take_events();
        if stopped || timed_out {
            self.notify(Notification::RobotHasStopped, Processor::St);
        }
        let dt = self.update_motor_currents();
        self.drain_battery();
        self.update_temperatures(dt);
        self.check_stalls(dt);
        self.check_gyro();
        self.check_motor_fault();
        self.check_battery();
    }

    /// Motor currents over the time since the last tick; returns that time.
    fn update_motor_currents(&self) -> twinrig_sim::Nanos {
        let now = self.handle.now();
        let mut s = self.state.borrow_mut();
        let marks = TreadMarks::of(&s.body);
        let max_tread = f64::from(s.body.drive().params.max_tread_speed);
        let full_speed_a = f64::from(s.config.drive_ma) / 1000.0 / 2.0;
        let amps_per_newton = f64::from(s.config.motors.amps_per_newton);
        let e = &mut s.electrical;
        let dt = now.saturating_sub(e.last_monitor);
        let dt_s = seconds(dt);
        if dt_s > 0.0 {
            for i in 0..2 {
                let speed = (marks.abs_travel_m[i] - e.monitored.abs_travel_m[i]) / dt_s;
                let force = (marks.force_impulse_ns[i] - e.monitored.force_impulse_ns[i]) / dt_s;
                e.motor_amps[i] =
                    (full_speed_a * speed / max_tread + amps_per_newton * force) as f32;
            }
        }
        e.monitored = marks;
        e.last_monitor = now;
        dt
    }

    /// Heats or cools the motors; thermal protection stops them.
    fn update_temperatures(&self, dt: twinrig_sim::Nanos) {
        let (changed, protection_began) = {
            let mut s = self.state.borrow_mut();
            let p = s.config.motors.clone();
            let e = &mut s.electrical;
            let before = e.thermal;
            for m in Motor::BOTH {
                let i = m.index();
                e.heat[i].step(e.motor_amps[i], dt, &p);
                e.thermal[i] = next_thermal_status(e.thermal[i], e.heat[i].winding_c, &p);
            }
            let critical = |t: &[ThermalStatus; 2]| t.contains(&ThermalStatus::Critical);
            (
                before != e.thermal,
                critical(&e.thermal) && !critical(&before),
            )
        };
        if protection_began {
            self.stop_motors();
        }
        if changed && self.state.borrow().notify.thermal_protection {
            let [left, right] = self.thermal_report();
            self.notify(
                Notification::MotorThermalProtectionStatus { left, right },
                Processor::St,
            );
        }
    }

    /// A tread commanded but not making progress for `stall_after` triggers
    /// its motor's stall protection (the twin reports it; it does not cut
    /// the motor: the firmware's reaction is not published).
    fn check_stalls(&self, dt: twinrig_sim::Nanos) {
        let changes = {
            let mut s = self.state.borrow_mut();
            let drive = s.body.drive();
            let pose = s.body.planar();
            let forward = pose.vx * pose.yaw.cos() + pose.vy * pose.yaw.sin();
            let half_track = pose.yaw_rate * drive.params.track_m / 2.0;
            let ground = [forward - half_track, forward + half_track];
            let p = s.config.motors.clone();
            let mut changes = Vec::new();
            for m in Motor::BOTH {
                let i = m.index();
                let stalling = tread_is_stalling(drive.tread[i], ground[i], &p);
                if let Some(triggered) = s.electrical.stall[i].update(stalling, dt, &p) {
                    changes.push(Notification::MotorStall {
                        motor: m,
                        triggered,
                    });
                }
            }
            changes
        };
        if self.state.borrow().notify.motor_stall {
            for n in changes {
                self.notify(n, Processor::St);
            }
        }
    }

    /// A yaw rate beyond the gyro's range raises `gyro_max_notify` once per
    /// excursion (roll and pitch rates are 0 on the flat floor).
    fn check_gyro(&self) {
        let flags = {
            let mut s = self.state.borrow_mut();
            let rate = s.body.planar().yaw_rate.to_degrees();
            let range = s.config.gyro_range_dps;
            let flags = if rate > range {
                GyroMaxFlags::PLUS_Z
            } else if rate < -range {
                GyroMaxFlags::MINUS_Z
            } else {
                GyroMaxFlags::NONE
            };
            let changed = flags != s.electrical.gyro_max;
            s.electrical.gyro_max = flags;
            (changed && !flags.is_empty() && s.notify.gyro_max).then_some(flags)
        };
        if let Some(flags) = flags {
            self.notify(Notification::GyroMax(flags), Processor::St);
        }
    }

    /// The injected motor fault, if any, at its time: latched, motors off.
    fn check_motor_fault(&self) {
        let began = {
            let mut s = self.state.borrow_mut();
            let due = s
                .config
                .motors
                .fault_after
                .is_some_and(|after| self.handle.now() >= s.boot.saturating_add(after));
            let began = due && !s.electrical.motor_fault;
            s.electrical.motor_fault |= due;
            began
        };
        if began {
            self.stop_motors();
            if self.state.borrow().notify.motor_fault {
                self.notify(Notification::MotorFault { is_fault: true }, Processor::St);
            }
        }
    }

    fn check_battery(&self) {
        let now = self.handle.now();
        let due = now >= self.state.borrow().electrical.next_battery_read;
        if !due {
            return;
        }
        let changed = self.read_battery();
        let enabled = {
            let mut s = self.state.borrow_mut();
            let period = s.config.battery.read_period.max(MONITOR_PERIOD);
            s.electrical.next_battery_read = now.saturating_add(period);
            s.notify.battery_voltage_state
        };
        if let (Some(state), true) = (changed, enabled) {
            self.notify(
                Notification::BatteryVoltageStateChange(state),
                Processor::Nordic,
            );
        }
    }

    fn stop_motors(&self) {
        let now = self.handle.now();
        self.state.borrow().body.command(DriveTarget::Stop, now);
    }
}
