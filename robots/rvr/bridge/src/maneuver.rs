//! Maneuver math: closing the loop on the streamed locator (distance) and
//! IMU yaw (turns). Pure functions and small trackers, no I/O.
//!
//! Frames (fact sheet §5): the locator's +y is forward and +x right at the
//! last reset; yaw is 0 forward, positive to the left (counter-clockwise).
//! So a robot at yaw `ψ` faces `(-sin ψ, cos ψ)` in the locator frame, and
//! its left is `(-cos ψ, -sin ψ)`.

use crate::config::BridgeConfig;

/// |x| without std.
pub(crate) fn abs(x: f32) -> f32 {
    libm::fabsf(x)
}

/// Wraps an angle in degrees to (-180, 180].
pub fn wrap_deg(a: f32) -> f32 {
    if !a.is_finite() {
        return 0.0;
    }
    let mut a = libm::fmodf(a, 360.0);
    if a > 180.0 {
        a -= 360.0;
    } else if a <= -180.0 {
        a += 360.0;
    }
    a
}

/// Unit vector the robot faces at yaw `yaw_deg`, in the locator frame.
pub fn forward_vector(yaw_deg: f32) -> (f32, f32) {
    let r = yaw_deg.to_radians();
    (-libm::sinf(r), libm::cosf(r))
}

/// Unit vector to the robot's left at yaw `yaw_deg`, in the locator frame.
pub fn left_vector(yaw_deg: f32) -> (f32, f32) {
    let r = yaw_deg.to_radians();
    (-libm::cosf(r), -libm::sinf(r))
}

/// Constant-deceleration slow-down: the speed from which `decel` stops in
/// `remaining`, between `min` and `max`. `remaining <= 0` gives `min`.
pub fn slow_down(remaining: f32, max: f32, min: f32, decel: f32) -> f32 {
    let v = libm::sqrtf(2.0 * decel * remaining.max(0.0));
    v.clamp(min.min(max), max)
}

/// What the controller wants the robot to do until the next sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Control {
    /// Drive at `linear_mps` (+ forward) turning at `yaw_rate_dps` (+ left):
    /// the arguments of `drive_rc_si_units`.
    Drive {
        /// Linear velocity, m/s.
        linear_mps: f32,
        /// Yaw rate, deg/s.
        yaw_rate_dps: f32,
    },
    /// The goal is reached: stop.
    Arrived,
}

/// A straight drive of `target_m` from where the robot stood, holding the
/// heading it had.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DistanceTracker {
    start: (f32, f32),
    start_yaw_deg: f32,
    /// +1 forward, -1 reverse.
    sign: f32,
    /// Unit vector of travel (backward for reverse).
    travel: (f32, f32),
    left: (f32, f32),
    target_m: f32,
    speed_mps: f32,
}

impl DistanceTracker {
    /// Starts at locator `start` (m) and yaw `start_yaw_deg`.
    pub fn new(
        start: (f32, f32),
        start_yaw_deg: f32,
        reverse: bool,
        target_m: f32,
        speed_mps: f32,
    ) -> DistanceTracker {
        let sign = if reverse { -1.0 } else { 1.0 };
        let (fx, fy) = forward_vector(start_yaw_deg);
        DistanceTracker {
            start,
            start_yaw_deg,
            sign,
            travel: (sign * fx, sign * fy),
            left: left_vector(start_yaw_deg),
            target_m,
            speed_mps,
        }
    }

    /// Euclidean displacement from the start, m (what events report).
    pub fn distance(&self, p: (f32, f32)) -> f32 {
        let (dx, dy) = (p.0 - self.start.0, p.1 - self.start.1);
        libm::sqrtf(dx * dx + dy * dy)
    }

    /// Progress along the direction of travel, m (negative if it went the
    /// other way). The controller closes the loop on this, so an overshoot
    /// reads as negative remaining distance.
    pub fn along(&self, p: (f32, f32)) -> f32 {
        (p.0 - self.start.0) * self.travel.0 + (p.1 - self.start.1) * self.travel.1
    }

    /// Offset to the left of the line through the start, m.
    pub fn lateral(&self, p: (f32, f32)) -> f32 {
        (p.0 - self.start.0) * self.left.0 + (p.1 - self.start.1) * self.left.1
    }

    /// Remaining distance along the line, m.
    pub fn remaining(&self, p: (f32, f32)) -> f32 {
        self.target_m - self.along(p)
    }

    /// The target distance, m.
    pub fn target_m(&self) -> f32 {
        self.target_m
    }

    /// The drive command for locator `p` and yaw `yaw_deg`.
    ///
    /// Speed: `slow_down(remaining)` between the creep speed and the cruise
    /// speed. Steering: hold the start yaw, offset by a cross-track term that
    /// steers back onto the line (the sign flips when reversing, since a
    /// reversing robot's tail leads).
    pub fn control(&self, p: (f32, f32), yaw_deg: f32, c: &BridgeConfig) -> Control {
        let remaining = self.remaining(p);
        if remaining <= c.distance_tolerance_m {
            return Control::Arrived;
        }
        let v = slow_down(remaining, self.speed_mps, c.min_speed_mps, c.decel_mps2);
        let offset = (-self.sign * c.cross_track_gain_deg_per_m * self.lateral(p))
            .clamp(-c.max_cross_track_deg, c.max_cross_track_deg);
        let error = wrap_deg(self.start_yaw_deg + offset - yaw_deg);
        let yaw_rate = (c.heading_gain * error).clamp(-c.max_steer_dps, c.max_steer_dps);
        Control::Drive {
            linear_mps: self.sign * v,
            yaw_rate_dps: yaw_rate,
        }
    }
}

/// A turn in place by `target_deg`, counting yaw across the ±180 wrap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnTracker {
    target_deg: f32,
    turned_deg: f32,
    last_yaw_deg: f32,
}

impl TurnTracker {
    /// Starts at yaw `start_yaw_deg`.
    pub fn new(start_yaw_deg: f32, target_deg: f32) -> TurnTracker {
        TurnTracker {
            target_deg,
            turned_deg: 0.0,
            last_yaw_deg: start_yaw_deg,
        }
    }

    /// Accounts a new yaw sample: adds the wrapped change since the last one
    /// (samples come at 20 Hz, far below the 180 deg per sample that would
    /// make the wrap ambiguous).
    pub fn update(&mut self, yaw_deg: f32) {
        self.turned_deg += wrap_deg(yaw_deg - self.last_yaw_deg);
        self.last_yaw_deg = yaw_deg;
    }

    /// Degrees turned so far (+ left).
    pub fn turned_deg(&self) -> f32 {
        self.turned_deg
    }

    /// The target angle, deg.
    pub fn target_deg(&self) -> f32 {
        self.target_deg
    }

    /// Remaining angle, deg (sign = direction still to go).
    pub fn remaining(&self) -> f32 {
        self.target_deg - self.turned_deg
    }

    /// The drive command: spin toward the goal at `slow_down(|remaining|)`
    /// between the creep rate and the turn rate; stop within the tolerance.
    pub fn control(&self, c: &BridgeConfig) -> Control {
        let e = self.remaining();
        if abs(e) <= c.angle_tolerance_deg {
            return Control::Arrived;
        }
        let rate = slow_down(
            abs(e),
            c.turn_rate_dps,
            c.min_turn_rate_dps,
            c.turn_decel_dps2,
        );
        Control::Drive {
            linear_mps: 0.0,
            yaw_rate_dps: if e > 0.0 { rate } else { -rate },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-4
    }

    #[test]
    fn wrap_keeps_angles_in_plus_minus_180() {
        assert_eq!(wrap_deg(190.0), -170.0);
        assert_eq!(wrap_deg(-190.0), 170.0);
        assert_eq!(wrap_deg(180.0), 180.0);
        assert_eq!(wrap_deg(-180.0), 180.0);
        assert_eq!(wrap_deg(720.0), 0.0);
        assert_eq!(wrap_deg(f32::NAN), 0.0);
    }

    #[test]
    fn frames_follow_the_locator_convention() {
        let (x, y) = forward_vector(0.0);
        assert!(close(x, 0.0) && close(y, 1.0));
        // Turned left by 90: facing -x (x is to the right at the reset).
        let (x, y) = forward_vector(90.0);
        assert!(close(x, -1.0) && close(y, 0.0));
        let (x, y) = left_vector(0.0);
        assert!(close(x, -1.0) && close(y, 0.0));
    }

    #[test]
    fn slow_down_is_a_constant_deceleration_profile() {
        assert_eq!(slow_down(10.0, 0.4, 0.04, 0.5), 0.4);
        assert!(close(slow_down(0.09, 0.4, 0.04, 0.5), 0.3));
        assert_eq!(slow_down(0.0001, 0.4, 0.04, 0.5), 0.04);
        assert_eq!(slow_down(-1.0, 0.4, 0.04, 0.5), 0.04);
    }

    #[test]
    fn distance_tracker_measures_along_and_across_the_line() {
        let t = DistanceTracker::new((1.0, 2.0), 90.0, false, 1.0, 0.4);
        // Facing -x: 0.3 m along, 0.01 m to the left (-y).
        let p = (0.7, 1.99);
        assert!(close(t.along(p), 0.3));
        assert!(close(t.lateral(p), 0.01));
        assert!(close(t.remaining(p), 0.7));
        assert!(close(t.distance(p), (0.09f32 + 0.0001).sqrt()));
        let r = DistanceTracker::new((0.0, 0.0), 0.0, true, 0.5, 0.4);
        assert!(close(r.along((0.0, -0.2)), 0.2));
    }

    #[test]
    fn distance_control_slows_near_the_goal_and_stops_within_tolerance() {
        let c = BridgeConfig::default();
        let t = DistanceTracker::new((0.0, 0.0), 0.0, false, 1.0, 0.4);
        match t.control((0.0, 0.0), 0.0, &c) {
            Control::Drive {
                linear_mps,
                yaw_rate_dps,
            } => {
                assert_eq!(linear_mps, 0.4);
                assert_eq!(yaw_rate_dps, 0.0);
            }
            other => panic!("{other:?}"),
        }
        match t.control((0.0, 0.99), 0.0, &c) {
            Control::Drive { linear_mps, .. } => assert!(linear_mps < 0.11, "{linear_mps}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(t.control((0.0, 0.998), 0.0, &c), Control::Arrived);
        // Overshoot also stops (no backing up).
        assert_eq!(t.control((0.0, 1.05), 0.0, &c), Control::Arrived);
    }

    #[test]
    fn heading_hold_steers_back_onto_the_line() {
        let c = BridgeConfig::default();
        let t = DistanceTracker::new((0.0, 0.0), 0.0, false, 1.0, 0.4);
        // Yawed 2 degrees left: steer right.
        let Control::Drive { yaw_rate_dps, .. } = t.control((0.0, 0.1), 2.0, &c) else {
            panic!()
        };
        assert!(yaw_rate_dps < 0.0);
        // On heading but 1 cm to the left (-x): steer right too.
        let Control::Drive { yaw_rate_dps, .. } = t.control((-0.01, 0.1), 0.0, &c) else {
            panic!()
        };
        assert!(yaw_rate_dps < 0.0);
        // Reversing 1 cm to the left: the tail leads, so turn the nose left.
        let r = DistanceTracker::new((0.0, 0.0), 0.0, true, 1.0, 0.4);
        let Control::Drive {
            yaw_rate_dps,
            linear_mps,
        } = r.control((-0.01, -0.1), 0.0, &c)
        else {
            panic!()
        };
        assert!(linear_mps < 0.0);
        assert!(yaw_rate_dps > 0.0);
    }

    #[test]
    fn turn_tracker_counts_across_the_wrap() {
        let c = BridgeConfig::default();
        let mut t = TurnTracker::new(170.0, 90.0);
        for yaw in [-170.0, -150.0, -110.0, -101.0] {
            t.update(yaw);
        }
        assert!(close(t.turned_deg(), 89.0), "{}", t.turned_deg());
        let Control::Drive { yaw_rate_dps, .. } = t.control(&c) else {
            panic!()
        };
        assert!(yaw_rate_dps > 0.0 && yaw_rate_dps <= 20.0);
        t.update(-100.4);
        assert_eq!(t.control(&c), Control::Arrived);
        // A right turn spins clockwise.
        let r = TurnTracker::new(0.0, -90.0);
        let Control::Drive { yaw_rate_dps, .. } = r.control(&c) else {
            panic!()
        };
        assert_eq!(yaw_rate_dps, -90.0);
        // Multi-turn targets keep counting past 360.
        let mut m = TurnTracker::new(0.0, 720.0);
        for k in 1..=40 {
            m.update(wrap_deg(k as f32 * 18.0));
        }
        assert!(close(m.turned_deg(), 720.0));
    }
}
