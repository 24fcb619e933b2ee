//! The HAL clock and delay traits bound to virtual time.

use crate::SimHandle;

/// `twinrig_hal::Clock` on virtual time.
#[derive(Clone)]
pub struct SimClock {
    handle: SimHandle,
}

impl SimClock {
    pub(crate) fn new(handle: SimHandle) -> Self {
        SimClock { handle }
    }
}

impl twinrig_hal::Clock for SimClock {
    fn now_ns(&self) -> u64 {
        self.handle.now()
    }
}

/// `embedded_hal_async::delay::DelayNs` on virtual time.
#[derive(Clone)]
pub struct SimDelay {
    handle: SimHandle,
}

impl SimDelay {
    pub(crate) fn new(handle: SimHandle) -> Self {
        SimDelay { handle }
    }
}

impl embedded_hal_async::delay::DelayNs for SimDelay {
    async fn delay_ns(&mut self, ns: u32) {
        self.handle.sleep(u64::from(ns)).await;
    }
    async fn delay_us(&mut self, us: u32) {
        self.handle.sleep(u64::from(us) * 1_000).await;
    }
    async fn delay_ms(&mut self, ms: u32) {
        self.handle.sleep(u64::from(ms) * 1_000_000).await;
    }
}

#[cfg(test)]
mod tests {
    use crate::{MILLIS, Sim};
    use embedded_hal_async::delay::DelayNs;
    use twinrig_hal::Clock;

    #[test]
    fn delay_and_clock_follow_virtual_time() {
        let mut sim = Sim::new(0);
        let h = sim.handle();
        let seen = std::rc::Rc::new(std::cell::Cell::new(0));
        let s = seen.clone();
        sim.spawn("dev", async move {
            let clock = h.clock();
            let mut delay = h.delay();
            delay.delay_ms(250).await;
            delay.delay_us(500).await;
            s.set(clock.now_ns());
        });
        sim.run_until(u64::MAX, |_| false).unwrap();
        assert_eq!(seen.get(), 250 * MILLIS + 500_000);
    }
}
