//! Monotonic time as the device sees it.

/// A monotonic clock in nanoseconds since the device booted (or the run started).
///
/// The simulator binds it to virtual time; a board binds it to its system timer.
/// Delays use `embedded_hal_async::delay::DelayNs`, not this trait.
pub trait Clock {
    /// Nanoseconds since boot. Never goes backwards.
    fn now_ns(&self) -> u64;

    /// Milliseconds since boot, for protocols that stamp in ms.
    fn now_ms(&self) -> u64 {
        self.now_ns() / 1_000_000
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}
