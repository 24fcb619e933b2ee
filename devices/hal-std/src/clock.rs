//! The OS monotonic clock and tokio's timer.

use std::time::{Duration, Instant};

use embedded_hal_async::delay::DelayNs;
use twinrig_hal::Clock;

/// Time since this clock was created, on [`Instant`] (CLOCK_MONOTONIC on
/// Linux: never goes backwards, does not jump with the wall clock).
///
/// As [`DelayNs`] it sleeps on tokio's timer, so delays must be awaited
/// inside a tokio runtime with time enabled (`enable_time`, or
/// `enable_all`); a current-thread runtime is enough. The timer has
/// millisecond resolution: a delay sleeps at least as long as asked, and
/// up to about a millisecond more.
#[derive(Debug, Clone, Copy)]
pub struct StdClock {
    start: Instant,
}

impl StdClock {
    /// A clock reading 0 now.
    pub fn new() -> Self {
        StdClock {
            start: Instant::now(),
        }
    }

    /// The instant this clock reads 0 at.
    pub fn start(&self) -> Instant {
        self.start
    }
}

impl Default for StdClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for StdClock {
    fn now_ns(&self) -> u64 {
        // u64 nanoseconds last 584 years: saturating is never reached in practice.
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl DelayNs for StdClock {
    async fn delay_ns(&mut self, ns: u32) {
        tokio::time::sleep(Duration::from_nanos(u64::from(ns))).await;
    }

    async fn delay_us(&mut self, us: u32) {
        tokio::time::sleep(Duration::from_micros(u64::from(us))).await;
    }

    async fn delay_ms(&mut self, ms: u32) {
        tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards() {
        let clock = StdClock::new();
        let mut last = clock.now_ns();
        for _ in 0..1000 {
            let now = clock.now_ns();
            assert!(now >= last, "{now} < {last}");
            last = now;
        }
        assert_eq!(clock.now_ms(), clock.now_ns() / 1_000_000);
    }

    #[tokio::test]
    async fn a_delay_lasts_at_least_as_long_as_asked() {
        let mut clock = StdClock::new();
        let before = clock.now_ns();
        clock.delay_ms(20).await;
        // A lower bound only: sleeping never ends early (no upper bound on a busy machine).
        assert!(clock.now_ns() - before >= 20_000_000);
        let before = clock.now_ns();
        clock.delay_us(1500).await;
        assert!(clock.now_ns() - before >= 1_500_000);
        let before = clock.now_ns();
        clock.delay_ns(300_000).await;
        assert!(clock.now_ns() - before >= 300_000);
    }
}
