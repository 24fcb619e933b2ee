//! `fingerspell` planning: text -> explicit, timed actions for the servo driver.
//!
//! Per letter, per finger (index, middle, ring, thumb):
//! `SetSpeed(angle_1 servo)`, pause 0.2 ms, `SetSpeed(angle_2 servo)`, pause 0.2 ms,
//! `WriteGoals(both servos)`, pause 5 ms; after the four fingers the pose is held
//! 0.8 s. A space is a 0.4 s pause. Letters are case-insensitive; anything the
//! table has no letter for (digits, punctuation, other whitespace, non-ASCII) is
//! skipped. The speed writes follow the authoritative system sheet and Pollen's
//! demo: one speed write per servo, each followed by the 0.2 ms pause.
//!
//! Angles: the table angle is clamped to ±90°, the servo's calibration offset
//! (MiddlePos) is added, and the sum is converted to radians.

use crate::table::{AslTable, Finger, Pose};

/// Per-servo calibration: MiddlePos in degrees for servos 1..=8.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// MiddlePos of servo `i + 1`, degrees.
    pub middle_pos_deg: [f64; 8],
}

impl Calibration {
    /// The offsets from the system sheet: `[-17, 8, -16, -4, -12, 10, -9, 9]`.
    pub const SHEET: Calibration = Calibration {
        middle_pos_deg: [-17.0, 8.0, -16.0, -4.0, -12.0, 10.0, -9.0, 9.0],
    };

    /// No offsets.
    pub const ZERO: Calibration = Calibration {
        middle_pos_deg: [0.0; 8],
    };

    /// The offset of servo `id` (1..=8); 0 for other ids.
    pub fn offset_deg(&self, id: u8) -> f64 {
        match id {
            1..=8 => self.middle_pos_deg[usize::from(id - 1)],
            _ => 0.0,
        }
    }
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration::SHEET
    }
}

/// Every duration of a spelled sentence, in nanoseconds, plus the goal speed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Pause after each speed write. Default 0.2 ms.
    pub speed_pause_ns: u64,
    /// Pause after a finger's two goal positions. Default 5 ms.
    pub finger_pause_ns: u64,
    /// How long a letter's pose is held after its last finger. Default 0.8 s.
    pub letter_hold_ns: u64,
    /// The pause for a space. Default 0.4 s.
    pub space_ns: u64,
    /// Goal speed written to every servo, rad/s (rustypot's unit). Default 5.0
    /// (assumed: the agent's speed is unknown; Pollen's demo uses 3..7, and 5 rad/s
    /// is 977 raw, inside the register's 10 bits).
    pub goal_speed_rad_s: f64,
}

impl Timing {
    /// The agent's timing without the bus pauses (0.2 ms and 5 ms set to zero, so
    /// no pause actions are planned for them): commands go out back to back, which
    /// the servo-bus twin should report as missed commands. Holds are kept.
    pub fn without_bus_pauses(self) -> Timing {
        Timing {
            speed_pause_ns: 0,
            finger_pause_ns: 0,
            ..self
        }
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            speed_pause_ns: 200_000,
            finger_pause_ns: 5_000_000,
            letter_hold_ns: 800_000_000,
            space_ns: 400_000_000,
            goal_speed_rad_s: 5.0,
        }
    }
}

/// The angle limit applied to table angles, degrees.
pub const ANGLE_LIMIT_DEG: f64 = 90.0;

/// One driver action.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write the goal speed (rad/s) of these servos.
    SetSpeed {
        /// Servo ids.
        ids: Vec<u8>,
        /// Speed, rad/s.
        rad_per_s: f64,
    },
    /// Write goal positions (radians, calibration included), one per id.
    WriteGoals {
        /// Servo ids.
        ids: Vec<u8>,
        /// Goal per id, radians.
        radians: Vec<f64>,
    },
    /// Wait this long (virtual time in the harness).
    Pause {
        /// Nanoseconds.
        ns: u64,
    },
}

/// What a step spells.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepKind {
    /// A letter (uppercase) and the pose commanded for it (clamped to ±90°, before
    /// calibration offsets: the frame of the state message).
    Letter {
        /// The letter, uppercase.
        letter: char,
        /// Commanded pose, degrees.
        pose: Pose,
    },
    /// A space.
    Space,
}

/// One planned step: the motion actions, then (for a letter) the state message,
/// then the hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Letter or space.
    pub kind: StepKind,
    /// Driver actions in order (empty for a space).
    pub actions: Vec<Action>,
    /// Hold after the actions (0.8 s for a letter, 0.4 s for a space by default).
    pub hold_ns: u64,
}

impl Step {
    /// Total duration of the step's pauses and hold.
    pub fn duration_ns(&self) -> u64 {
        let pauses: u64 = self
            .actions
            .iter()
            .map(|a| match a {
                Action::Pause { ns } => *ns,
                _ => 0,
            })
            .sum();
        pauses + self.hold_ns
    }
}

/// Converts a commanded table angle for servo `id` to the goal in radians:
/// clamp to ±90°, add MiddlePos, convert.
pub fn goal_radians(angle_deg: f64, id: u8, calibration: &Calibration) -> f64 {
    (angle_deg.clamp(-ANGLE_LIMIT_DEG, ANGLE_LIMIT_DEG) + calibration.offset_deg(id)).to_radians()
}

/// Plans a sentence. See the module docs for the sequence.
pub fn plan(text: &str, table: &AslTable, calibration: &Calibration, timing: &Timing) -> Vec<Step> {
    let mut steps = Vec::new();
    for c in text.chars() {
        if c == ' ' {
            steps.push(Step {
                kind: StepKind::Space,
                actions: Vec::new(),
                hold_ns: timing.space_ns,
            });
            continue;
        }
        if !c.is_ascii_alphabetic() {
            continue;
        }
        let Some(pose) = table.pose(c) else { continue };
        let pose = pose.clamped(ANGLE_LIMIT_DEG);
        let mut actions = Vec::with_capacity(4 * 7);
        let pause = |actions: &mut Vec<Action>, ns: u64| {
            if ns > 0 {
                actions.push(Action::Pause { ns });
            }
        };
        for finger in Finger::ALL {
            let ids = finger.servo_ids();
            for id in ids {
                actions.push(Action::SetSpeed {
                    ids: vec![id],
                    rad_per_s: timing.goal_speed_rad_s,
                });
                pause(&mut actions, timing.speed_pause_ns);
            }
            let angles = pose.finger(finger);
            actions.push(Action::WriteGoals {
                ids: ids.to_vec(),
                radians: vec![
                    goal_radians(angles[0], ids[0], calibration),
                    goal_radians(angles[1], ids[1], calibration),
                ],
            });
            pause(&mut actions, timing.finger_pause_ns);
        }
        steps.push(Step {
            kind: StepKind::Letter {
                letter: c.to_ascii_uppercase(),
                pose,
            },
            actions,
            hold_ns: timing.letter_hold_ns,
        });
    }
    steps
}

/// The letters of a plan, in order.
pub fn planned_letters(steps: &[Step]) -> String {
    steps
        .iter()
        .filter_map(|s| match s.kind {
            StepKind::Letter { letter, .. } => Some(letter),
            StepKind::Space => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hello_world_has_ten_letters_one_space_and_exact_holds() {
        let steps = plan(
            "HELLO WORLD",
            &AslTable::bundled(),
            &Calibration::SHEET,
            &Timing::default(),
        );
        assert_eq!(steps.len(), 11);
        assert_eq!(planned_letters(&steps), "HELLOWORLD");
        assert_eq!(steps[5].kind, StepKind::Space);
        assert_eq!(steps[5].hold_ns, 400_000_000);
        assert!(steps[5].actions.is_empty());
        for (i, s) in steps.iter().enumerate() {
            if i != 5 {
                assert_eq!(s.hold_ns, 800_000_000);
                assert_eq!(s.actions.len(), 4 * 6);
                // 4 fingers x (0.2 + 0.2 + 5) ms of pauses before the hold.
                assert_eq!(s.duration_ns(), 800_000_000 + 4 * 5_400_000);
            }
        }
    }

    #[test]
    fn per_finger_sequence_is_speed_pause_speed_pause_goals_pause() {
        let steps = plan(
            "b",
            &AslTable::bundled(),
            &Calibration::ZERO,
            &Timing::default(),
        );
        let actions = &steps[0].actions;
        for (f, finger) in Finger::ALL.iter().enumerate() {
            let [a, b] = finger.servo_ids();
            let chunk = &actions[f * 6..f * 6 + 6];
            assert_eq!(
                chunk[0],
                Action::SetSpeed {
                    ids: vec![a],
                    rad_per_s: 5.0
                }
            );
            assert_eq!(chunk[1], Action::Pause { ns: 200_000 });
            assert_eq!(
                chunk[2],
                Action::SetSpeed {
                    ids: vec![b],
                    rad_per_s: 5.0
                }
            );
            assert_eq!(chunk[3], Action::Pause { ns: 200_000 });
            assert!(matches!(&chunk[4], Action::WriteGoals { ids, .. } if ids == &vec![a, b]));
            assert_eq!(chunk[5], Action::Pause { ns: 5_000_000 });
        }
    }

    #[test]
    fn digits_punctuation_and_case_are_handled() {
        let table = AslTable::bundled();
        let t = Timing::default();
        let steps = plan("h3ll0, w\u{f6}rld! 42\tok", &table, &Calibration::SHEET, &t);
        assert_eq!(planned_letters(&steps), "HLLWRLDOK");
        let spaces = steps.iter().filter(|s| s.kind == StepKind::Space).count();
        assert_eq!(spaces, 2);
        assert!(
            plan("123 .,!?", &table, &Calibration::SHEET, &t)
                .iter()
                .all(|s| s.kind == StepKind::Space)
        );
    }

    #[test]
    fn calibration_offset_is_added_before_radians_and_angles_clamp_at_90() {
        let pose = Pose([[120.0, -120.0], [10.0, -10.0], [-95.0, 95.0], [90.0, -90.0]]);
        let table = AslTable::from_poses([('Q', pose)]);
        let steps = plan("q", &table, &Calibration::SHEET, &Timing::default());
        let goals: Vec<Vec<f64>> = steps[0]
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::WriteGoals { radians, .. } => Some(radians.clone()),
                _ => None,
            })
            .collect();
        let expect_deg: [[f64; 2]; 4] = [
            [90.0 - 17.0, -90.0 + 8.0],
            [10.0 - 16.0, -10.0 - 4.0],
            [-90.0 - 12.0, 90.0 + 10.0],
            [90.0 - 9.0, -90.0 + 9.0],
        ];
        for (g, e) in goals.iter().zip(expect_deg) {
            assert!(
                close(g[0], e[0].to_radians()) && close(g[1], e[1].to_radians()),
                "{g:?} vs {e:?}"
            );
        }
        match steps[0].kind {
            StepKind::Letter { pose, .. } => assert_eq!(pose.0[0], [90.0, -90.0]),
            StepKind::Space => panic!(),
        }
    }

    #[test]
    fn without_bus_pauses_plans_no_short_pauses_but_keeps_holds() {
        let t = Timing::default().without_bus_pauses();
        let steps = plan("ab c", &AslTable::bundled(), &Calibration::SHEET, &t);
        for s in &steps {
            assert!(s.actions.iter().all(|a| !matches!(a, Action::Pause { .. })));
        }
        assert_eq!(steps[0].actions.len(), 4 * 3);
        assert_eq!(steps[0].hold_ns, 800_000_000);
        assert_eq!(steps[2].hold_ns, 400_000_000);
    }
}
