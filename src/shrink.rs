//! Shrinking a failing seed (`twinrig sweep --shrink`): its drawn fault
//! schedule becomes a fixed one, then faults are dropped, shortened and
//! moved later (toward the failure) and steps dropped, each change kept only if the run still fails the same way,
//! and what is left is written as a plain scenario: a regression test to
//! commit.
//!
//! "The same way" is the first failed assertion's description and detail
//! with every number masked (`broken at #.#s: expected at most #, got #`), so
//! a change that makes the run fail for another reason (a `wait_for` left
//! without the `publish` it waited for) is not taken.

use crate::runner::{Outcome, RunOptions};
use crate::scenario::Scenario;
use crate::scenario::chaos::Chaos;
use crate::suite::{self, Loaded};
use crate::sweep::with_seed;

/// Runs a shrink may make before it settles for what it has.
pub const DEFAULT_BUDGET: usize = 200;

/// Halvings of a fault's duration tried at most.
const HALVINGS: usize = 8;

/// What shrinking a seed gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Shrunk {
    /// The scenario that still fails: the fixed schedule, fewer steps.
    pub scenario: Scenario,
    /// It, as a scenario file.
    pub yaml: String,
    /// Faults before and after.
    pub faults: (usize, usize),
    /// Steps before and after.
    pub steps: (usize, usize),
    /// Runs made.
    pub runs: usize,
    /// How it fails.
    pub failure: String,
}

/// Shrinks `loaded`'s run under `seed` within `budget` runs.
pub fn shrink(loaded: &Loaded, seed: u64, budget: usize) -> Result<Shrunk, String> {
    let base = with_seed(loaded, seed);
    let mut runs = 0;
    let first = run(&base, &mut runs);
    let Some(target) = signature(&first) else {
        return Err(format!("seed {seed} passes: there is nothing to shrink"));
    };
    let mut best = base.scenario.clone();
    if !first.faults.is_empty() {
        best.chaos = Some(Chaos {
            window: None,
            faults: Vec::new(),
            schedule: first.faults.clone(),
        });
    }
    let mut shrinker = Shrinker {
        loaded,
        target,
        runs,
        budget,
    };
    if !shrinker.still_fails(&best) {
        return Err(format!(
            "seed {seed}: the failure does not come back with its fault schedule fixed"
        ));
    }
    let faults_before = schedule_len(&best);
    let steps_before = best.steps.len();
    // Steps after the failing one cannot have caused it.
    if let Some(step) = failing_step(&first)
        && step < best.steps.len()
    {
        let mut c = best.clone();
        c.steps.truncate(step.max(1));
        shrinker.take_if_fails(&mut best, c);
    }
    // Fewer faults, until none can go.
    loop {
        let mut dropped = false;
        for i in (0..schedule_len(&best)).rev() {
            let mut c = best.clone();
            if let Some(chaos) = c.chaos.as_mut() {
                chaos.schedule.remove(i);
                if chaos.schedule.is_empty() {
                    c.chaos = None;
                }
            }
            dropped |= shrinker.take_if_fails(&mut best, c);
        }
        if !dropped || shrinker.spent() {
            break;
        }
    }
    // Shorter faults.
    for i in 0..schedule_len(&best) {
        for _ in 0..HALVINGS {
            let mut c = best.clone();
            let Some(f) = c.chaos.as_mut().and_then(|ch| ch.schedule.get_mut(i)) else {
                break;
            };
            if !halve(&mut f.fault) {
                break;
            }
            if !shrinker.take_if_fails(&mut best, c) {
                break;
            }
        }
    }
    // Later faults: each start moved toward the moment the run first
    // failed (a fault after it cannot have caused it), halfway at a time,
    // so the regression shows the fault next to the failure it causes.
    if let Some(failed_at) = first_failure_at(&first) {
        for i in 0..schedule_len(&best) {
            for _ in 0..HALVINGS {
                let mut c = best.clone();
                let Some(f) = c.chaos.as_mut().and_then(|ch| ch.schedule.get_mut(i)) else {
                    break;
                };
                let at = f.at.nanos();
                let later = at + failed_at.saturating_sub(at) / 2;
                // Whole milliseconds, so the written scenario reads well.
                let later = later / 1_000_000 * 1_000_000;
                if later <= at {
                    break;
                }
                f.at = crate::scenario::Duration::from_nanos(later);
                if !shrinker.take_if_fails(&mut best, c) {
                    break;
                }
            }
        }
    }
    // Fewer steps: each one, last first.
    for i in (0..best.steps.len()).rev() {
        if best.steps.len() == 1 {
            break;
        }
        let mut c = best.clone();
        c.steps.remove(i);
        shrinker.take_if_fails(&mut best, c);
    }
    best.name = format!("{} (seed {seed}, shrunk)", base.scenario.name);
    best.description = Some(format!(
        "Shrunk by `twinrig sweep --shrink` from {} seed {seed}: {faults_before} fault(s) -> {}, \
         {steps_before} step(s) -> {}. It fails with: {}",
        loaded.path.display(),
        schedule_len(&best),
        best.steps.len(),
        shrinker.target
    ));
    let yaml = serde_saphyr::to_string(&best).map_err(|e| e.to_string())?;
    Ok(Shrunk {
        faults: (faults_before, schedule_len(&best)),
        steps: (steps_before, best.steps.len()),
        runs: shrinker.runs,
        failure: shrinker.target.clone(),
        scenario: best,
        yaml,
    })
}

struct Shrinker<'a> {
    loaded: &'a Loaded,
    target: String,
    runs: usize,
    budget: usize,
}

impl Shrinker<'_> {
    fn spent(&self) -> bool {
        self.runs >= self.budget
    }

    /// Whether `candidate` is a valid scenario that fails as the original did.
    fn still_fails(&mut self, candidate: &Scenario) -> bool {
        if self.spent() {
            return false;
        }
        // Written and read back as a user's file would be: a candidate that
        // does not validate (a step others refer to, gone) is no candidate.
        let Ok(yaml) = serde_saphyr::to_string(candidate) else {
            return false;
        };
        let Ok(l) = suite::parse(yaml, &self.loaded.path) else {
            return false;
        };
        let outcome = run(&l, &mut self.runs);
        signature(&outcome).as_deref() == Some(self.target.as_str())
    }

    /// Takes `candidate` as the best so far if it still fails.
    fn take_if_fails(&mut self, best: &mut Scenario, candidate: Scenario) -> bool {
        if self.still_fails(&candidate) {
            *best = candidate;
            true
        } else {
            false
        }
    }
}

fn run(l: &Loaded, runs: &mut usize) -> Outcome {
    *runs += 1;
    suite::run_with(l, &RunOptions::untraced(), |_| {})
}

fn schedule_len(s: &Scenario) -> usize {
    s.chaos.as_ref().map_or(0, |c| c.schedule.len())
}

/// The step the first failed assertion belongs to (1-based).
fn failing_step(o: &Outcome) -> Option<usize> {
    o.assertions.iter().find(|a| !a.passed).map(|a| a.step)
}

/// When the run's first failed assertion was made, ns.
fn first_failure_at(o: &Outcome) -> Option<u64> {
    o.assertions.iter().find(|a| !a.passed).map(|a| a.at_ns)
}

/// How a run failed, numbers masked (None: it passed).
fn signature(o: &Outcome) -> Option<String> {
    if o.passed() {
        return None;
    }
    let text = match o.assertions.iter().find(|a| !a.passed) {
        Some(a) => format!("{}: {}", a.description, without_link_notes(&a.detail)),
        None => o.failure.clone().unwrap_or_default(),
    };
    Some(mask_numbers(&text))
}

/// A failure's detail without the notes on links that had faults while it
/// waited (`the link of rvr-1 was down (outage) from ...`): context, not
/// the failure, so a fault is not kept only because a note names it.
fn without_link_notes(detail: &str) -> String {
    detail
        .split("; ")
        .filter(|part| !part.starts_with("the link of "))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `text` with every run of digits (and the points and exponents inside
/// numbers) replaced by `#`. All of it counts: a wait that fails because the
/// message never came is not the same failure as one whose message came
/// with the wrong status, though both begin alike.
fn mask_numbers(text: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in text.chars() {
        let numeric = c.is_ascii_digit() || (in_number && (c == '.' || c == 'e'));
        if numeric {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// Halves a fault's duration (false: nothing left to halve).
fn halve(f: &mut crate::scenario::Fault) -> bool {
    use crate::scenario::{Duration, Fault, LinkFaultKind, UartFaultKind};
    let d: &mut Duration = match f {
        Fault::Uart(u) => match &mut u.kind {
            UartFaultKind::BitErrors { duration, .. }
            | UartFaultKind::DropBytes { duration, .. } => duration,
            UartFaultKind::LineBreak(d) | UartFaultKind::Disconnect(d) => d,
            UartFaultKind::Inject(_) => return false,
        },
        Fault::Link(l) => match &mut l.kind {
            LinkFaultKind::Outage(d) => d,
            LinkFaultKind::Loss { duration, .. } | LinkFaultKind::ExtraLatency { duration, .. } => {
                duration
            }
        },
    };
    // Not below a millisecond: shorter than that says nothing more.
    if d.nanos() < 2_000_000 {
        return false;
    }
    *d = Duration::from_nanos(d.nanos() / 2);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_on_faulty_links_are_not_part_of_the_failure() {
        assert_eq!(
            without_link_notes(
                "no matching message; the closest: got \"failed\"; the link of rvr-1 was down (outage) from 1s to 2s"
            ),
            "no matching message; the closest: got \"failed\""
        );
    }

    #[test]
    fn numbers_are_masked_so_a_failure_is_the_same_at_another_time() {
        assert_eq!(
            mask_numbers("broken at 2.120000000s: expected at most 0.1, got 0.109999"),
            "broken at #s: expected at most #, got #"
        );
        assert_eq!(
            mask_numbers("step 12 body rvr-1 X: 3 of 14"),
            "step # body rvr-# X: # of #"
        );
        assert_eq!(mask_numbers("v1.2e5"), "v#");
    }
}
