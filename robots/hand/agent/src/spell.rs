//! Running a plan against the driver: the `fingerspell` tool's body.

use twinrig_hal::Clock;

use crate::driver::{DriverError, HandDriver, Pause};
use crate::plan::{Action, Calibration, Step, StepKind, Timing, plan};
use crate::state::{StateMessage, StateSink};
use crate::table::AslTable;

/// What a spelled sentence did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpellOutcome {
    /// Letters spelled, in order, uppercase.
    pub letters: String,
    /// Spaces paused for.
    pub spaces: usize,
    /// Characters skipped (not a letter in the table and not a space).
    pub skipped: usize,
    /// Clock time from start to end, ns.
    pub duration_ns: u64,
}

/// The hand: hardware seams plus the table, calibration and timing.
pub struct Hand<D, P, C> {
    /// Servo bus.
    pub driver: D,
    /// Pauses.
    pub pause: P,
    /// Clock for state timestamps.
    pub clock: C,
    /// Letter table.
    pub table: AslTable,
    /// Per-servo offsets.
    pub calibration: Calibration,
    /// Durations and speed.
    pub timing: Timing,
    /// Added to `clock.now_ns() / 1e9` for state `ts` (unix seconds at clock zero).
    pub epoch_s: u64,
}

impl<D: HandDriver, P: Pause, C: Clock> Hand<D, P, C> {
    /// A hand with the bundled table, the sheet's calibration and default timing.
    pub fn new(driver: D, pause: P, clock: C) -> Self {
        Hand {
            driver,
            pause,
            clock,
            table: AslTable::bundled(),
            calibration: Calibration::SHEET,
            timing: Timing::default(),
            epoch_s: 0,
        }
    }

    /// State timestamp now, integer seconds.
    pub fn ts(&self) -> u64 {
        self.epoch_s + self.clock.now_ns() / 1_000_000_000
    }

    /// Plans and executes `text`, publishing a state after each letter's pose is
    /// commanded (before its hold). Stops at the first driver error.
    pub fn fingerspell(
        &mut self,
        text: &str,
        sink: &mut dyn StateSink,
    ) -> Result<SpellOutcome, DriverError> {
        let steps = plan(text, &self.table, &self.calibration, &self.timing);
        let considered = text.chars().count();
        let mut outcome = self.execute(&steps, sink)?;
        outcome.skipped = considered - outcome.letters.chars().count() - outcome.spaces;
        Ok(outcome)
    }

    /// Executes planned steps in order.
    pub fn execute(
        &mut self,
        steps: &[Step],
        sink: &mut dyn StateSink,
    ) -> Result<SpellOutcome, DriverError> {
        let start = self.clock.now_ns();
        let mut outcome = SpellOutcome::default();
        for step in steps {
            for action in &step.actions {
                match action {
                    Action::SetSpeed { ids, rad_per_s } => {
                        self.driver.set_speed(ids, *rad_per_s)?
                    }
                    Action::WriteGoals { ids, radians } => {
                        self.driver.write_goal_positions(ids, radians)?
                    }
                    Action::Pause { ns } => self.pause.pause(*ns),
                }
            }
            match step.kind {
                StepKind::Letter { letter, pose } => {
                    sink.publish(&StateMessage::letter(letter, self.ts(), &pose));
                    outcome.letters.push(letter);
                }
                StepKind::Space => outcome.spaces += 1,
            }
            if step.hold_ns > 0 {
                self.pause.pause(step.hold_ns);
            }
        }
        outcome.duration_ns = self.clock.now_ns() - start;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::testing::{Bench, Call};
    use crate::table::Finger;

    #[test]
    fn hello_world_drives_the_bus_in_order_with_exact_pauses() {
        let bench = Bench::new();
        let mut hand = Hand::new(bench.driver(), bench.pause(), bench.clock());
        hand.epoch_s = 1_770_550_000;
        let mut states = Vec::new();
        let out = hand.fingerspell("HELLO WORLD", &mut states).unwrap();
        assert_eq!(out.letters, "HELLOWORLD");
        assert_eq!((out.spaces, out.skipped), (1, 0));

        let calls = bench.calls();
        let mut i = 0;
        let mut letter_count = 0;
        for (n, c) in "HELLO WORLD".chars().enumerate() {
            if c == ' ' {
                assert_eq!(calls[i], Call::Pause(400_000_000), "space at {n}");
                i += 1;
                continue;
            }
            letter_count += 1;
            for finger in Finger::ALL {
                let [a, b] = finger.servo_ids();
                assert_eq!(calls[i], Call::SetSpeed(vec![a], 5.0));
                assert_eq!(calls[i + 1], Call::Pause(200_000));
                assert_eq!(calls[i + 2], Call::SetSpeed(vec![b], 5.0));
                assert_eq!(calls[i + 3], Call::Pause(200_000));
                assert!(
                    matches!(&calls[i + 4], Call::WriteGoals(ids, r) if ids == &vec![a, b] && r.len() == 2)
                );
                assert_eq!(calls[i + 5], Call::Pause(5_000_000));
                i += 6;
            }
            assert_eq!(calls[i], Call::Pause(800_000_000), "hold of letter {n}");
            i += 1;
        }
        assert_eq!(i, calls.len());
        assert_eq!(letter_count, 10);
        let holds = calls
            .iter()
            .filter(|c| **c == Call::Pause(800_000_000))
            .count();
        assert_eq!(holds, 10);
        assert_eq!(
            out.duration_ns,
            10 * (800_000_000 + 4 * 5_400_000) + 400_000_000
        );

        assert_eq!(states.len(), 10);
        let letters: String = states
            .iter()
            .map(|s| match s {
                StateMessage::Hand(h) => h.letter.clone(),
                StateMessage::Error(_) => panic!(),
            })
            .collect();
        assert_eq!(letters, "HELLOWORLD");
        // ts comes from the clock: the final D is commanded at 9 x 0.8216 + 0.4 + 0.0216 = 7.816 s.
        match states.last().unwrap() {
            StateMessage::Hand(h) => assert_eq!(h.ts, 1_770_550_000 + 7),
            StateMessage::Error(_) => panic!(),
        }
    }

    #[test]
    fn skipped_characters_cause_no_motion() {
        let bench = Bench::new();
        let mut hand = Hand::new(bench.driver(), bench.pause(), bench.clock());
        let mut states = Vec::new();
        let out = hand.fingerspell("42!?.", &mut states).unwrap();
        assert_eq!(out.skipped, 5);
        assert!(bench.calls().is_empty());
        assert!(states.is_empty());
    }

    #[test]
    fn driver_error_stops_the_sentence() {
        let bench = Bench::new();
        bench.fail_after(3);
        let mut hand = Hand::new(bench.driver(), bench.pause(), bench.clock());
        let mut states = Vec::new();
        assert!(hand.fingerspell("AB", &mut states).is_err());
        assert!(states.is_empty());
        assert_eq!(bench.driver_calls().len(), 3);
    }
}
