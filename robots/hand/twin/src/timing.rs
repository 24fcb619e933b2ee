//! The hand's timing report: for every sentence, per letter, when its pose was
//! commanded, when all servos reached it, and how long it was held before the
//! next letter started; letters never reached or held too briefly are flagged.
//!
//! Inputs are observations, not the agent's plan: the servo-bus twin's log of
//! goal-position writes (accepted or missed, with arrival times) and the times
//! the agent published each letter's state. A letter's commands are the goal
//! writes after the previous letter's state (or the sentence start) up to its
//! own state, which the agent publishes once the pose is commanded and before
//! the hold. The next letter starts at its first goal write; the last letter
//! ends when the agent finishes the message.

use std::collections::BTreeMap;

use crate::GoalEvent;
use serde::Serialize;
use twinrig_sim::Nanos;

/// Report settings (scenario device parameters).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimingLimits {
    /// A servo is at its goal when within this many degrees.
    pub tolerance_deg: f64,
    /// A pose held less than this is flagged.
    pub min_held_ns: Nanos,
}

/// One sentence as the harness saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SentenceLog {
    /// The job's sequence number.
    pub seq: u64,
    /// The text the agent was given.
    pub text: String,
    /// When the worker took the job.
    pub started: Nanos,
    /// Letter states published: (time, letter).
    pub states: Vec<(Nanos, String)>,
    /// When the agent finished the message.
    pub ended: Option<Nanos>,
}

/// Why a letter is flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// Some servo never got within tolerance of the commanded pose before the
    /// next letter started (e.g. a missed goal write).
    NotReached,
    /// The pose was reached but held less than the minimum.
    ShortHold,
    /// The agent stopped in the middle of the letter (a driver error): no
    /// state was published for it.
    Aborted,
}

/// Timing of one letter. Times are virtual milliseconds since the run started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LetterTiming {
    /// The letter.
    pub letter: String,
    /// First goal write of the letter.
    pub command_ms: Option<f64>,
    /// When every servo was within tolerance of the pose.
    pub reached_ms: Option<f64>,
    /// From the first command to the pose reached.
    pub reach_ms: Option<f64>,
    /// From the letter's state (pose commanded) to the next letter's first
    /// command (or the end of the message): the agent's hold, plus any spaces.
    pub hold_ms: Option<f64>,
    /// How long the reached pose was actually held before the next letter.
    pub held_ms: Option<f64>,
    /// Spaces in the text between this letter and the next.
    pub spaces_after: usize,
    /// Goal writes of this letter the servos missed.
    pub missed_writes: usize,
    /// Problems.
    pub flags: Vec<Flag>,
}

/// Min and max of a set of durations (ms); `None` when the set is empty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Span {
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

/// The report of one sentence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentenceTiming {
    /// Job sequence number.
    pub seq: u64,
    /// The text.
    pub text: String,
    /// Letters spelled, in order (from the states).
    pub letters: String,
    /// Whether the spelled letters are exactly the text's letters A-Z, in order.
    pub letters_match: bool,
    /// Per letter.
    pub per_letter: Vec<LetterTiming>,
    /// Holds of letters not followed by a space.
    pub hold_ms: Option<Span>,
    /// Holds of letters followed by exactly one space (hold + space).
    pub spaced_hold_ms: Option<Span>,
    /// Longest first-command-to-reached time.
    pub max_reach_ms: Option<f64>,
    /// Letters with at least one flag.
    pub flagged: usize,
    /// Goal writes missed during the sentence.
    pub missed_writes: usize,
    /// Whether the message has finished.
    pub finished: bool,
}

fn ms(t: Nanos) -> f64 {
    t as f64 / 1e6
}

fn span(values: impl Iterator<Item = f64>) -> Option<Span> {
    values.fold(None, |acc, v| match acc {
        None => Some(Span { min: v, max: v }),
        Some(s) => Some(Span {
            min: s.min.min(v),
            max: s.max.max(v),
        }),
    })
}

/// Spaces after each letter of `text` (letters A-Z only; other characters
/// neither count as letters nor break a run of spaces).
fn text_letters(text: &str) -> (String, Vec<usize>) {
    let mut letters = String::new();
    let mut spaces = Vec::new();
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            letters.push(c.to_ascii_uppercase());
            spaces.push(0);
        } else if c == ' '
            && let Some(last) = spaces.last_mut()
        {
            *last += 1;
        }
    }
    // Spaces after the last letter are not between letters.
    if let Some(last) = spaces.last_mut() {
        *last = 0;
    }
    (letters, spaces)
}

/// The servo's accepted goal in force at `t`, with its arrival time.
fn goal_at(log: &[GoalEvent], id: u8, t: Nanos) -> Option<&GoalEvent> {
    log.iter().rfind(|e| e.id == id && e.accepted && e.t <= t)
}

/// What the servo bus recorded: goal writes, and the arrival time of every
/// write packet (speed writes included: a letter starts with them).
#[derive(Debug, Clone, Copy)]
pub struct BusLog<'a> {
    /// Goal-position writes.
    pub goals: &'a [GoalEvent],
    /// Every WRITE / SYNC_WRITE packet, sorted.
    pub writes: &'a [Nanos],
}

/// Builds the report of one sentence from the bus's logs.
pub fn sentence_timing(
    sentence: &SentenceLog,
    bus: BusLog<'_>,
    limits: TimingLimits,
) -> SentenceTiming {
    let goals = bus.goals;
    let (text_letters, spaces) = text_letters(&sentence.text);
    let letters: String = sentence.states.iter().map(|(_, l)| l.as_str()).collect();
    let mut windows = Vec::new();
    let mut from = sentence.started;
    for (t, letter) in &sentence.states {
        windows.push((from, *t, letter.clone()));
        from = *t;
    }
    let first_command =
        |lo: Nanos, hi: Nanos| bus.writes.iter().copied().find(|&t| t > lo && t <= hi);
    // A letter commanded but never finished (the driver failed mid-pose): it
    // has no state; it is the text's next letter and ends with the message.
    let mut aborted = None;
    if let Some(end) = sentence.ended
        && first_command(from, end).is_some()
        && sentence.states.len() < text_letters.len()
    {
        let letter = text_letters[sentence.states.len()..][..1].to_string();
        aborted = Some(windows.len());
        windows.push((from, end, letter));
    }
    let mut per_letter = Vec::new();
    for (i, (lo, hi, letter)) in windows.iter().enumerate() {
        let in_window: Vec<&GoalEvent> = goals.iter().filter(|e| e.t > *lo && e.t <= *hi).collect();
        let command = first_command(*lo, *hi);
        let next_start = match windows.get(i + 1) {
            Some((nlo, nhi, _)) => first_command(*nlo, *nhi).or(Some(*nhi)),
            None => sentence.ended,
        };
        if aborted == Some(i) {
            per_letter.push(LetterTiming {
                letter: letter.clone(),
                command_ms: command.map(ms),
                reached_ms: None,
                reach_ms: None,
                hold_ms: None,
                held_ms: None,
                spaces_after: 0,
                missed_writes: in_window.iter().filter(|e| !e.accepted).count(),
                flags: vec![Flag::NotReached, Flag::Aborted],
            });
            continue;
        }
        // The pose asked for: each servo's last write in the window.
        let mut intended: BTreeMap<u8, f64> = BTreeMap::new();
        for e in &in_window {
            intended.insert(e.id, e.goal_deg);
        }
        let mut reached: Option<Nanos> = command;
        for (&id, &goal) in &intended {
            let arrival = goal_at(goals, id, *hi)
                .filter(|g| (g.goal_deg - goal).abs() <= limits.tolerance_deg)
                .and_then(|g| g.arrival);
            reached = match (reached, arrival) {
                (Some(r), Some(a)) => Some(r.max(a)),
                _ => None,
            };
        }
        if let (Some(r), Some(end)) = (reached, next_start)
            && r > end
        {
            reached = None;
        }
        let mut flags = Vec::new();
        let held = match (reached, next_start) {
            (Some(r), Some(end)) => Some(end - r),
            _ => None,
        };
        if reached.is_none() && (next_start.is_some() || command.is_none()) {
            flags.push(Flag::NotReached);
        }
        if held.is_some_and(|h| h < limits.min_held_ns) {
            flags.push(Flag::ShortHold);
        }
        per_letter.push(LetterTiming {
            letter: letter.clone(),
            command_ms: command.map(ms),
            reached_ms: reached.map(ms),
            reach_ms: reached.zip(command).map(|(r, c)| ms(r - c)),
            hold_ms: next_start.map(|end| ms(end - hi)),
            held_ms: held.map(ms),
            spaces_after: spaces.get(i).copied().unwrap_or(0),
            missed_writes: in_window.iter().filter(|e| !e.accepted).count(),
            flags,
        });
    }
    let missed_writes = goals
        .iter()
        .filter(|e| !e.accepted && e.t > sentence.started)
        .filter(|e| sentence.ended.is_none_or(|end| e.t <= end))
        .count();
    SentenceTiming {
        seq: sentence.seq,
        text: sentence.text.clone(),
        letters_match: letters == text_letters,
        letters,
        hold_ms: span(
            per_letter
                .iter()
                .filter(|l| l.spaces_after == 0)
                .filter_map(|l| l.hold_ms),
        ),
        spaced_hold_ms: span(
            per_letter
                .iter()
                .filter(|l| l.spaces_after == 1)
                .filter_map(|l| l.hold_ms),
        ),
        max_reach_ms: per_letter
            .iter()
            .filter_map(|l| l.reach_ms)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v)))),
        flagged: per_letter.iter().filter(|l| !l.flags.is_empty()).count(),
        per_letter,
        missed_writes,
        finished: sentence.ended.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinrig_sim::MILLIS;

    const LIMITS: TimingLimits = TimingLimits {
        tolerance_deg: 2.0,
        min_held_ns: 500 * MILLIS,
    };

    /// A bus log whose write packets are exactly the goal writes.
    fn log(goals: &[GoalEvent]) -> BusLog<'_> {
        let writes: &'static [Nanos] = goals.iter().map(|g| g.t).collect::<Vec<_>>().leak();
        BusLog { goals, writes }
    }

    fn goal(t_ms: u64, id: u8, deg: f64, accepted: bool, arrive_ms: u64) -> GoalEvent {
        GoalEvent {
            t: t_ms * MILLIS,
            id,
            goal_deg: deg,
            accepted,
            arrival: accepted.then_some(arrive_ms * MILLIS),
        }
    }

    #[test]
    fn spaces_are_counted_between_letters_only() {
        assert_eq!(
            text_letters("Hi, yo  u!"),
            ("HIYOU".to_string(), vec![0, 1, 0, 2, 0])
        );
        assert_eq!(text_letters(" a "), ("A".to_string(), vec![0]));
    }

    #[test]
    fn holds_reach_and_spaces_are_measured() {
        // "A B": A commanded at 10 ms (reached 200), state at 30; B commanded
        // at 1230 (reached 1400), state at 1250; message ends at 2050.
        let goals = [
            goal(10, 1, 40.0, true, 200),
            goal(20, 2, -40.0, true, 150),
            goal(1230, 1, 0.0, true, 1400),
        ];
        let s = SentenceLog {
            seq: 0,
            text: "A B".into(),
            started: 0,
            states: vec![(30 * MILLIS, "A".into()), (1250 * MILLIS, "B".into())],
            ended: Some(2050 * MILLIS),
        };
        let r = sentence_timing(&s, log(&goals), LIMITS);
        assert!(r.letters_match && r.finished);
        assert_eq!(r.flagged, 0, "{r:?}");
        let a = &r.per_letter[0];
        assert_eq!(
            (a.command_ms, a.reached_ms, a.reach_ms),
            (Some(10.0), Some(200.0), Some(190.0))
        );
        assert_eq!(
            (a.hold_ms, a.held_ms, a.spaces_after),
            (Some(1200.0), Some(1030.0), 1)
        );
        let b = &r.per_letter[1];
        assert_eq!((b.hold_ms, b.held_ms), (Some(800.0), Some(650.0)));
        assert_eq!(
            r.hold_ms,
            Some(Span {
                min: 800.0,
                max: 800.0
            })
        );
        assert_eq!(
            r.spaced_hold_ms,
            Some(Span {
                min: 1200.0,
                max: 1200.0
            })
        );
        assert_eq!(r.max_reach_ms, Some(190.0));
    }

    #[test]
    fn a_missed_goal_write_flags_the_letter_not_reached() {
        let goals = [
            goal(10, 1, 40.0, true, 100),
            // Servo 2 was busy: its goal stays at the power-on 0 degrees.
            goal(11, 2, -40.0, false, 0),
        ];
        let s = SentenceLog {
            seq: 3,
            text: "a".into(),
            started: 0,
            states: vec![(20 * MILLIS, "A".into())],
            ended: Some(820 * MILLIS),
        };
        let r = sentence_timing(&s, log(&goals), LIMITS);
        assert_eq!(r.flagged, 1);
        assert_eq!(r.per_letter[0].flags, vec![Flag::NotReached]);
        assert_eq!(r.per_letter[0].missed_writes, 1);
        assert_eq!(r.missed_writes, 1);
        assert_eq!(r.per_letter[0].reached_ms, None);
    }

    #[test]
    fn a_pose_reached_late_is_a_short_hold() {
        let goals = [goal(10, 1, 90.0, true, 700)];
        let s = SentenceLog {
            seq: 0,
            text: "A".into(),
            started: 0,
            states: vec![(20 * MILLIS, "A".into())],
            ended: Some(820 * MILLIS),
        };
        let r = sentence_timing(&s, log(&goals), LIMITS);
        assert_eq!(r.per_letter[0].flags, vec![Flag::ShortHold]);
        assert_eq!(r.per_letter[0].held_ms, Some(120.0));
    }

    #[test]
    fn a_repeated_letter_needs_no_motion_and_is_reached_at_once() {
        // L L: the second L writes the goal the servo already has.
        let goals = [goal(10, 1, 30.0, true, 100), goal(830, 1, 30.0, true, 830)];
        let s = SentenceLog {
            seq: 0,
            text: "LL".into(),
            started: 0,
            states: vec![(20 * MILLIS, "L".into()), (840 * MILLIS, "L".into())],
            ended: Some(1640 * MILLIS),
        };
        let r = sentence_timing(&s, log(&goals), LIMITS);
        assert_eq!(r.flagged, 0, "{r:?}");
        assert_eq!(r.per_letter[1].reach_ms, Some(0.0));
        assert_eq!(
            r.hold_ms,
            Some(Span {
                min: 800.0,
                max: 810.0
            })
        );
    }

    #[test]
    fn a_letter_cut_short_by_a_driver_error_is_flagged_aborted() {
        // "AB": A done; B's first write at 830 ms, then the message ends at 850.
        let goals = [
            goal(10, 1, 40.0, true, 100),
            goal(830, 1, 10.0, true, 900),
            goal(831, 2, 10.0, false, 0),
        ];
        let s = SentenceLog {
            seq: 0,
            text: "ab".into(),
            started: 0,
            states: vec![(20 * MILLIS, "A".into())],
            ended: Some(850 * MILLIS),
        };
        let r = sentence_timing(&s, log(&goals), LIMITS);
        assert_eq!(r.per_letter.len(), 2);
        let b = &r.per_letter[1];
        assert_eq!(b.letter, "B");
        assert_eq!(b.flags, vec![Flag::NotReached, Flag::Aborted]);
        assert_eq!((b.command_ms, b.missed_writes), (Some(830.0), 1));
        assert_eq!(r.flagged, 1);
        assert!(!r.letters_match);
    }

    #[test]
    fn letters_that_differ_from_the_text_are_reported() {
        let s = SentenceLog {
            seq: 0,
            text: "AB".into(),
            started: 0,
            states: vec![(20 * MILLIS, "A".into())],
            ended: Some(820 * MILLIS),
        };
        let r = sentence_timing(&s, log(&[]), LIMITS);
        assert!(!r.letters_match);
        assert_eq!(r.letters, "A");
    }
}
