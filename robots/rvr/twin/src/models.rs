//! The RVR twin's small physical models, as pure functions: battery voltage
//! and its state, motor temperatures and thermal protection, stall
//! detection, and the colour sensor with its palette. Parameters and their
//! sources are in [`super::config`].

use rvr_protocol::constants::io::UNIDENTIFIED_COLOR;
use rvr_protocol::{BatteryVoltageState, ColorDetection, ColorMatch, PaletteEntry, ThermalStatus};

use super::config::{BatteryParams, ColorParams, MotorParams};
use twinrig_sim::{Nanos, SECONDS};

/// Open-circuit voltage at `charge_pct`, interpolated linearly in `curve`
/// and clamped to its ends.
pub fn open_circuit_voltage(curve: &[(f32, f32)], charge_pct: f32) -> f32 {
    let Some(&(first_pct, first_v)) = curve.first() else {
        return 0.0;
    };
    if charge_pct <= first_pct {
        return first_v;
    }
    for pair in curve.windows(2) {
        let [(p0, v0), (p1, v1)] = [pair[0], pair[1]];
        if charge_pct <= p1 {
            let t = if p1 > p0 {
                (charge_pct - p0) / (p1 - p0)
            } else {
                1.0
            };
            return v0 + t * (v1 - v0);
        }
    }
    curve.last().map_or(first_v, |&(_, v)| v)
}

/// Battery voltage under load: open-circuit voltage minus the sag of
/// `amps` through the internal resistance.
pub fn battery_voltage(p: &BatteryParams, charge_pct: f32, amps: f32) -> f32 {
    open_circuit_voltage(&p.ocv_curve, charge_pct) - amps * p.internal_ohm
}

/// The voltage state after a reading of `volts`: falling below a threshold
/// enters its state at once; leaving it on a rising voltage needs the
/// threshold plus the hysteresis (the rule of the SDK docstring of
/// `get_battery_voltage_state_thresholds`).
pub fn next_voltage_state(
    prev: BatteryVoltageState,
    volts: f32,
    p: &BatteryParams,
) -> BatteryVoltageState {
    use BatteryVoltageState as S;
    let h = p.hysteresis_v;
    match prev {
        S::Unknown | S::Ok => {
            if volts < p.critical_v {
                S::Critical
            } else if volts < p.low_v {
                S::Low
            } else {
                S::Ok
            }
        }
        S::Low => {
            if volts < p.critical_v {
                S::Critical
            } else if volts > p.low_v + h {
                S::Ok
            } else {
                S::Low
            }
        }
        S::Critical => {
            if volts > p.low_v + h {
                S::Ok
            } else if volts > p.critical_v + h {
                S::Low
            } else {
                S::Critical
            }
        }
    }
}

/// One motor's temperatures: the case follows the ambient plus a rise per
/// A², the winding follows the case plus its own rise, each as a first-order
/// lag (assumed model; parameters in [`MotorParams`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotorHeat {
    /// Winding (coil) temperature, °C.
    pub winding_c: f32,
    /// Case temperature, °C.
    pub case_c: f32,
}

impl MotorHeat {
    /// A motor at the ambient temperature.
    pub fn ambient(p: &MotorParams) -> MotorHeat {
        MotorHeat {
            winding_c: p.ambient_c,
            case_c: p.ambient_c,
        }
    }

    /// Advances `dt` with `amps` flowing.
    pub fn step(&mut self, amps: f32, dt: Nanos, p: &MotorParams) {
        let lag = |tau: Nanos| {
            if tau == 0 {
                1.0
            } else {
                1.0 - (-(dt as f64) / tau as f64).exp() as f32
            }
        };
        let a2 = amps * amps;
        let case_target = p.ambient_c + p.case_rise_c_per_a2 * a2;
        self.case_c += (case_target - self.case_c) * lag(p.case_tau);
        let winding_target = self.case_c + p.winding_rise_c_per_a2 * a2;
        self.winding_c += (winding_target - self.winding_c) * lag(p.winding_tau);
    }
}

/// The thermal protection status after a winding temperature of `winding_c`:
/// a warning from `warning_c` (cleared `warning_hysteresis_c` lower),
/// protection from `critical_c`, held until the motor has cooled to
/// `recovered_c`.
pub fn next_thermal_status(prev: ThermalStatus, winding_c: f32, p: &MotorParams) -> ThermalStatus {
    use ThermalStatus as S;
    match prev {
        S::Critical if winding_c > p.recovered_c => S::Critical,
        S::Critical => S::Ok,
        _ if winding_c >= p.critical_c => S::Critical,
        S::Warning if winding_c >= p.warning_c - p.warning_hysteresis_c => S::Warning,
        S::Ok if winding_c >= p.warning_c => S::Warning,
        _ => S::Ok,
    }
}

/// `true` if a tread commanded at `set_point` (m/s) makes too little
/// progress at `ground_speed` (m/s, same sign convention).
pub fn tread_is_stalling(set_point: f32, ground_speed: f32, p: &MotorParams) -> bool {
    let commanded = set_point.abs();
    commanded >= p.stall_min_speed
        && ground_speed * set_point.signum() < p.stall_progress_ratio * commanded
}

/// Stall protection of one motor: triggers after `stall_after` of
/// continuous stalling, clears after `stall_clear_after` without.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StallDetector {
    stalling_for: Nanos,
    clear_for: Nanos,
    triggered: bool,
}

impl StallDetector {
    /// Whether stall protection is triggered.
    pub fn triggered(&self) -> bool {
        self.triggered
    }

    /// Advances `dt`; returns the new state when it changes.
    pub fn update(&mut self, stalling: bool, dt: Nanos, p: &MotorParams) -> Option<bool> {
        if stalling {
            self.clear_for = 0;
            self.stalling_for = self.stalling_for.saturating_add(dt);
            if !self.triggered && self.stalling_for >= p.stall_after {
                self.triggered = true;
                return Some(true);
            }
        } else {
            self.stalling_for = 0;
            if self.triggered {
                self.clear_for = self.clear_for.saturating_add(dt);
                if self.clear_for >= p.stall_clear_after {
                    self.triggered = false;
                    self.clear_for = 0;
                    return Some(false);
                }
            }
        }
        None
    }
}

/// How well `seen` matches `reference`, 0..=255: 255 for the same colour,
/// falling linearly with the RGB distance to 0 at `match_distance` (assumed).
pub fn match_confidence(seen: [u8; 3], reference: [u8; 3], match_distance: f32) -> u8 {
    let d = seen
        .iter()
        .zip(reference)
        .map(|(&a, b)| (f32::from(a) - f32::from(b)).powi(2))
        .sum::<f32>()
        .sqrt();
    if match_distance <= 0.0 {
        return u8::from(d == 0.0) * u8::MAX;
    }
    (255.0 * (1.0 - d / match_distance))
        .clamp(0.0, 255.0)
        .round() as u8
}

fn rgb(e: &PaletteEntry) -> [u8; 3] {
    [e.red, e.green, e.blue]
}

/// What colour detection reports for `seen`: the best-matching palette
/// entry, or [`UNIDENTIFIED_COLOR`] with confidence 0 when none matches at
/// all (the SDK docstring: e.g. too dark). Ties go to the first entry.
pub fn detect_color(seen: [u8; 3], palette: &[PaletteEntry], p: &ColorParams) -> ColorDetection {
    let best = palette
        .iter()
        .map(|e| (e.index, match_confidence(seen, rgb(e), p.match_distance)))
        .fold(None, |best: Option<(u8, u8)>, (i, c)| match best {
            Some((_, bc)) if bc >= c => best,
            _ => Some((i, c)),
        });
    let (classification, confidence) = match best {
        Some((index, confidence)) if confidence > 0 => (index, confidence),
        _ => (UNIDENTIFIED_COLOR, 0),
    };
    ColorDetection {
        red: seen[0],
        green: seen[1],
        blue: seen[2],
        confidence,
        classification,
    }
}

/// The palette entries `seen` matches with more confidence than `threshold`,
/// in palette order (`get_color_identification_report`).
pub fn identification_report(
    seen: [u8; 3],
    threshold: u8,
    palette: &[PaletteEntry],
    p: &ColorParams,
) -> Vec<ColorMatch> {
    palette
        .iter()
        .map(|e| ColorMatch {
            index: e.index,
            confidence: match_confidence(seen, rgb(e), p.match_distance),
        })
        .filter(|m| m.confidence > threshold)
        .collect()
}

/// Raw RGBC counts for a sensed colour: each channel scaled to
/// `rgbc_full_scale`, clear the mean of the three (assumed).
pub fn rgbc_counts(seen: [u8; 3], p: &ColorParams) -> [u16; 4] {
    let scale = |v: f32| (v / 255.0 * f32::from(p.rgbc_full_scale)).round() as u16;
    let [r, g, b] = seen.map(f32::from);
    [scale(r), scale(g), scale(b), scale((r + g + b) / 3.0)]
}

/// Seconds in `ns`, for rates.
pub fn seconds(ns: Nanos) -> f64 {
    ns as f64 / SECONDS as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voltage_follows_the_curve_and_sags_under_load() {
        let p = BatteryParams::default();
        assert_eq!(open_circuit_voltage(&p.ocv_curve, 100.0), 8.35);
        assert_eq!(open_circuit_voltage(&p.ocv_curve, 150.0), 8.35);
        assert_eq!(open_circuit_voltage(&p.ocv_curve, -1.0), 6.0);
        assert!((open_circuit_voltage(&p.ocv_curve, 90.0) - 8.15).abs() < 1e-5);
        assert!((battery_voltage(&p, 100.0, 2.0) - (8.35 - 0.3)).abs() < 1e-5);
    }

    #[test]
    fn voltage_state_has_hysteresis_on_the_way_up() {
        use BatteryVoltageState as S;
        let p = BatteryParams::default();
        assert_eq!(next_voltage_state(S::Unknown, 8.0, &p), S::Ok);
        assert_eq!(next_voltage_state(S::Ok, 6.99, &p), S::Low);
        assert_eq!(next_voltage_state(S::Low, 7.05, &p), S::Low);
        assert_eq!(next_voltage_state(S::Low, 7.11, &p), S::Ok);
        assert_eq!(next_voltage_state(S::Low, 6.5, &p), S::Critical);
        assert_eq!(next_voltage_state(S::Critical, 6.65, &p), S::Critical);
        assert_eq!(next_voltage_state(S::Critical, 6.75, &p), S::Low);
        assert_eq!(next_voltage_state(S::Critical, 7.2, &p), S::Ok);
    }

    #[test]
    fn a_stalled_motor_heats_to_protection_and_cools_back() {
        let p = MotorParams::default();
        let mut heat = MotorHeat::ambient(&p);
        let mut status = ThermalStatus::Ok;
        let mut warned_at = None;
        let mut protected_at = None;
        let step = SECONDS / 10;
        for i in 1..=600 {
            heat.step(2.9, step, &p);
            let next = next_thermal_status(status, heat.winding_c, &p);
            if next != status {
                match next {
                    ThermalStatus::Warning => warned_at = Some(i),
                    ThermalStatus::Critical => protected_at = Some(i),
                    ThermalStatus::Ok => {}
                }
            }
            status = next;
        }
        // 2.9 A: winding about 84 °C above the case at steady state, 20 s lag.
        let warned = warned_at.expect("a warning") as f32 / 10.0;
        let protected = protected_at.expect("protection") as f32 / 10.0;
        assert!(warned > 10.0 && warned < 25.0, "warned after {warned} s");
        assert!(
            protected > warned && protected < 35.0,
            "protected after {protected} s"
        );
        // Without current it cools, and protection ends below 60 °C.
        let mut cooled_at = None;
        for i in 1..=6000 {
            heat.step(0.0, step, &p);
            let next = next_thermal_status(status, heat.winding_c, &p);
            if next == ThermalStatus::Ok && status == ThermalStatus::Critical {
                cooled_at = Some(i);
                assert!(heat.winding_c <= p.recovered_c);
            }
            status = next;
        }
        assert!(
            cooled_at.is_some(),
            "still protected at {} °C",
            heat.winding_c
        );
    }

    #[test]
    fn warning_clears_below_its_hysteresis() {
        use ThermalStatus as S;
        let p = MotorParams::default();
        assert_eq!(next_thermal_status(S::Ok, 73.9, &p), S::Ok);
        assert_eq!(next_thermal_status(S::Ok, 74.0, &p), S::Warning);
        assert_eq!(next_thermal_status(S::Warning, 72.5, &p), S::Warning);
        assert_eq!(next_thermal_status(S::Warning, 71.9, &p), S::Ok);
        assert_eq!(next_thermal_status(S::Warning, 84.0, &p), S::Critical);
        assert_eq!(next_thermal_status(S::Critical, 70.0, &p), S::Critical);
        assert_eq!(next_thermal_status(S::Critical, 60.0, &p), S::Ok);
    }

    #[test]
    fn stall_triggers_after_five_seconds_and_clears_after_two() {
        let p = MotorParams::default();
        assert!(tread_is_stalling(0.5, 0.0, &p));
        assert!(
            tread_is_stalling(-0.5, 0.05, &p),
            "wrong way counts as no progress"
        );
        assert!(!tread_is_stalling(0.5, 0.4, &p));
        assert!(!tread_is_stalling(0.01, 0.0, &p), "not commanded");
        let mut d = StallDetector::default();
        let tick = SECONDS / 100;
        let mut changes = Vec::new();
        for i in 1..=1000u64 {
            let stalling = i <= 600;
            if let Some(state) = d.update(stalling, tick, &p) {
                changes.push((i, state));
            }
        }
        assert_eq!(changes, [(500, true), (800, false)]);
    }

    #[test]
    fn colours_match_the_nearest_palette_entry() {
        let p = ColorParams::default();
        let floor = detect_color(p.floor_rgb, &p.default_palette, &p);
        // (230,230,230) vs white: distance 25 * sqrt(3) = 43.3 -> 255 * (1 - 43.3/120).
        assert_eq!(floor.classification, 3, "{floor:?}");
        assert_eq!(floor.confidence, 163);
        let dark = detect_color([0, 0, 0], &p.default_palette, &p);
        assert_eq!(
            (dark.classification, dark.confidence),
            (UNIDENTIFIED_COLOR, 0)
        );
        let red = detect_color([250, 10, 0], &p.default_palette, &p);
        assert_eq!(red.classification, 0);
        let report = identification_report([255, 40, 0], 100, &p.default_palette, &p);
        // Red (distance 40) and orange (distance 8) match; nothing else is close.
        let indexes: Vec<u8> = report.iter().map(|m| m.index).collect();
        assert_eq!(indexes, [0, 6]);
        assert!(report.iter().all(|m| m.confidence > 100));
        assert_eq!(rgbc_counts([255, 0, 51], &p), [65535, 0, 13107, 26214]);
    }
}
