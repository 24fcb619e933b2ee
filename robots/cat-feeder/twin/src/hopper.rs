//! The hopper and the dispensing rate, without the simulation.
//!
//! The real feeder's hopper and auger are not described by the reference
//! (only "a click event dispenses food by running a motor for 10 s"), so
//! the model is the simplest one that makes food run out (assumed): the
//! hopper holds a whole number of treats, and a running motor releases one
//! every `1 / rate` seconds, the first half a period after it starts. The
//! half period keeps every release strictly inside the run: a release never
//! coincides with the instant the firmware drives the pin low, so the count
//! per run does not depend on which of two tasks runs first at one instant.

use twinrig_sim::{Nanos, SECONDS};

/// A hopper of treats. Both bowls' motors draw from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hopper {
    capacity: u32,
    treats: u32,
}

impl Hopper {
    /// A hopper holding `treats` of at most `capacity` (more is clamped to
    /// the capacity; parameters are checked before this is built).
    pub fn new(capacity: u32, treats: u32) -> Hopper {
        Hopper {
            capacity,
            treats: treats.min(capacity),
        }
    }

    /// Treats left.
    pub fn treats(&self) -> u32 {
        self.treats
    }

    /// How many it holds when full.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Takes one treat out; false when empty.
    pub fn take(&mut self) -> bool {
        if self.treats == 0 {
            return false;
        }
        self.treats -= 1;
        true
    }

    /// The fill level the sensor reports, 0-100, rounded down: 0 only
    /// when the hopper is really empty, 100 only when it is full. A
    /// hopper of capacity 0 is always empty.
    pub fn percent(&self) -> u8 {
        if self.capacity == 0 {
            return 0;
        }
        let p = u64::from(self.treats) * 100 / u64::from(self.capacity);
        u8::try_from(p).unwrap_or(100)
    }
}

/// The dispensing schedule of one motor run at `treats_per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    period: Nanos,
}

impl Schedule {
    /// The schedule for a rate in treats per second (finite, > 0; checked
    /// with the parameters). The period is at least 2 ns so the half
    /// period is never 0.
    pub fn new(treats_per_second: f64) -> Schedule {
        let period = (SECONDS as f64 / treats_per_second).round();
        let period = if period.is_finite() && period >= 2.0 {
            // Saturates at u64::MAX for absurdly slow rates: never releases.
            period as Nanos
        } else {
            2
        };
        Schedule { period }
    }

    /// Time of the `k`-th release (0-based) after a motor started at `start`.
    pub fn release_at(&self, start: Nanos, k: u64) -> Nanos {
        let offset = self
            .period
            .saturating_mul(k)
            .saturating_add(self.period / 2);
        start.saturating_add(offset)
    }

    /// Releases during a run of `run` ns, ignoring the hopper.
    pub fn releases_in(&self, run: Nanos) -> u64 {
        // Release k happens when period * k + period / 2 < run.
        let half = self.period / 2;
        if run <= half {
            return 0;
        }
        (run - half - 1) / self.period + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hopper_empties_one_treat_at_a_time_and_reports_percent_rounded_down() {
        let mut h = Hopper::new(40, 40);
        assert_eq!(h.percent(), 100);
        assert!(h.take());
        assert_eq!((h.treats(), h.percent()), (39, 97));
        let mut taken = 1;
        while h.take() {
            taken += 1;
        }
        assert_eq!(taken, 40);
        assert_eq!((h.treats(), h.percent()), (0, 0));
        assert!(!h.take(), "an empty hopper gives nothing");
        // One treat left of 40 is not reported empty.
        assert_eq!(Hopper::new(40, 1).percent(), 2);
        assert_eq!(Hopper::new(3, 2).percent(), 66);
        assert_eq!(Hopper::new(0, 5).percent(), 0);
        assert_eq!(Hopper::new(10, 50).treats(), 10, "clamped to the capacity");
    }

    #[test]
    fn releases_fall_strictly_inside_the_run() {
        let s = Schedule::new(0.5);
        let ten_s = 10 * SECONDS;
        // 2 s period: releases at 1, 3, 5, 7, 9 s.
        let times: Vec<Nanos> = (0..5).map(|k| s.release_at(0, k)).collect();
        assert_eq!(
            times,
            vec![SECONDS, 3 * SECONDS, 5 * SECONDS, 7 * SECONDS, 9 * SECONDS]
        );
        assert_eq!(s.releases_in(ten_s), 5);
        assert_eq!(
            s.releases_in(9 * SECONDS),
            4,
            "a release at the end instant does not count"
        );
        assert_eq!(s.releases_in(9 * SECONDS + 1), 5);
        assert_eq!(s.releases_in(0), 0);
        assert_eq!(Schedule::new(1.0).releases_in(ten_s), 10);
        assert_eq!(Schedule::new(2.0).releases_in(ten_s), 20);
        // The count agrees with release_at for every run length tried.
        for run in [1, SECONDS / 2, SECONDS, 2 * SECONDS, 7_777_777_777, ten_s] {
            let n = (0..100).filter(|&k| s.release_at(0, k) < run).count() as u64;
            assert_eq!(s.releases_in(run), n, "run {run}");
        }
    }

    #[test]
    fn extreme_rates_do_not_overflow() {
        let fast = Schedule::new(1e12);
        assert_eq!(fast.release_at(5, 0), 6);
        let slow = Schedule::new(1e-30);
        assert_eq!(slow.release_at(0, 3), Nanos::MAX);
        assert_eq!(slow.releases_in(10 * SECONDS), 0);
    }
}
