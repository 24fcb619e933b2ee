//! The checks of a scenario's `chaos:` section.

use super::super::chaos::{Chaos, ChaosFault, Range};
use super::super::duration::Duration;
use super::{Checker, P};

/// Most faults one distribution may draw per run (a schedule stays readable
/// and a run's work bounded).
pub const MAX_CHAOS_COUNT: u32 = 100;

impl Checker<'_> {
    pub(super) fn chaos(&mut self, c: &Chaos, limit: Duration, p: &P) {
        if let Some(w) = c.window {
            let wp = p.k("window");
            self.ordered(w, &wp, "`chaos.window`");
            if w.max > limit {
                self.err(
                    &wp,
                    format!(
                        "`chaos.window` ends at {}, after the duration limit {limit}",
                        w.max
                    ),
                );
            }
        }
        if c.faults.is_empty() && c.schedule.is_empty() {
            self.err(
                p,
                "`chaos` needs `faults` (distributions) or a `schedule` (faults at fixed times)"
                    .to_owned(),
            );
        }
        for (i, f) in c.schedule.iter().enumerate() {
            let sp = p.k("schedule").i(i);
            let what = format!("chaos schedule {}", i + 1);
            if f.at > limit {
                self.err(
                    &sp.k("at"),
                    format!("{what}: `at` {} is after the duration limit {limit}", f.at),
                );
            }
            self.fault(&f.fault, &sp.k("fault"), &what);
        }
        for (i, f) in c.faults.iter().enumerate() {
            self.chaos_fault(f, &p.k("faults").i(i), &format!("chaos fault {}", i + 1));
        }
    }

    fn chaos_fault(&mut self, f: &ChaosFault, p: &P, what: &str) {
        let kind = f.kind.name();
        match (&f.uart, &f.link) {
            (Some(_), Some(_)) | (None, None) => {
                self.err(
                    p,
                    format!("{what}: give exactly one of `uart: DEVICE` or `link: DEVICE`"),
                );
            }
            (Some(d), None) => {
                self.known_device(d, &p.k("uart"), what);
                if !f.kind.is_uart() {
                    self.err(
                        &p.k("kind"),
                        format!("{what}: `{kind}` is a link fault: use `link: {d}`"),
                    );
                }
            }
            (None, Some(d)) => {
                self.known_device(d, &p.k("link"), what);
                if f.kind.is_uart() {
                    self.err(
                        &p.k("kind"),
                        format!("{what}: `{kind}` is a UART fault: use `uart: {d}`"),
                    );
                }
                if f.direction.is_some() {
                    self.err(
                        &p.k("direction"),
                        format!("{what}: a link fault has no `direction`"),
                    );
                }
            }
        }
        self.ordered(f.count, &p.k("count"), &format!("{what}: `count`"));
        if f.count.max > MAX_CHAOS_COUNT {
            self.err(
                &p.k("count"),
                format!(
                    "{what}: `count` is at most {MAX_CHAOS_COUNT}, got {}",
                    f.count.max
                ),
            );
        }
        self.ordered(f.duration, &p.k("duration"), &format!("{what}: `duration`"));
        self.nonzero(
            f.duration.min,
            &p.k("duration"),
            &format!("{what}: `duration`"),
        );
        // The figure the kind needs, and no other.
        let given = [
            ("rate", f.rate.is_some()),
            ("probability", f.probability.is_some()),
            ("latency", f.latency.is_some()),
        ];
        for (name, present) in given {
            let needed = f.kind.needs() == Some(name);
            if needed && !present {
                self.err(
                    p,
                    format!("{what}: `{kind}` needs `{name}` (a value or a range A..B)"),
                );
            } else if present && !needed {
                self.err(&p.k(name), format!("{what}: `{kind}` takes no `{name}`"));
            }
        }
        for (name, range) in [("rate", f.rate), ("probability", f.probability)] {
            if let Some(r) = range {
                let rp = p.k(name);
                let label = format!("{what}: `{name}`");
                self.ordered(r, &rp, &label);
                self.unit_interval(r.min, &rp, &label);
                self.unit_interval(r.max, &rp, &label);
            }
        }
        if let Some(r) = f.latency {
            self.ordered(r, &p.k("latency"), &format!("{what}: `latency`"));
        }
    }

    fn ordered<T: PartialOrd + std::fmt::Display>(&mut self, r: Range<T>, p: &P, what: &str) {
        if r.min > r.max {
            self.err(
                p,
                format!(
                    "{what}: the range {}..{} is empty (A must not exceed B)",
                    r.min, r.max
                ),
            );
        }
    }
}
