//! The simulator's time for its rules (rate limits, the 24-hour window, download URL life): the
//! machine's monotonic time, or a manual clock that moves only when told, so tests of those rules
//! never race wall-clock windows. Webhook delivery and status pacing keep real time.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How far back the simulator's time line reaches at start, so a user can have written up to this
/// long ago even on a machine that booted a minute ago (`Instant` cannot go before boot).
const HISTORY: Duration = Duration::from_secs(400 * 24 * 3600);

/// The simulator's clock; clones share one time line.
#[derive(Debug, Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    origin: Instant,
    manual: bool,
    advanced: Mutex<Duration>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    fn with(manual: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                origin: Instant::now(),
                manual,
                advanced: Mutex::new(Duration::ZERO),
            }),
        }
    }

    /// Follows the machine's time (plus any [`advance`](Self::advance)).
    pub fn system() -> Self {
        Self::with(false)
    }

    /// Stands still until [`advance`](Self::advance) moves it.
    pub fn manual() -> Self {
        Self::with(true)
    }

    /// `true` for a clock that moves only when told.
    pub fn is_manual(&self) -> bool {
        self.inner.manual
    }

    /// Now, on the simulator's time line.
    pub fn now(&self) -> Instant {
        let advanced = *self
            .inner
            .advanced
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let running = if self.inner.manual {
            Duration::ZERO
        } else {
            self.inner.origin.elapsed()
        };
        self.inner.origin + HISTORY + advanced + running
    }

    /// Moves time forward by `by` (as if that much time passed at once).
    pub fn advance(&self, by: Duration) {
        *self
            .inner
            .advanced
            .lock()
            .unwrap_or_else(PoisonError::into_inner) += by;
    }

    /// `now` minus `ago`; the time line reaches [`HISTORY`] back, and no further.
    pub fn ago(&self, ago: Duration) -> Instant {
        let now = self.now();
        now.checked_sub(ago.min(HISTORY)).unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_advanced() {
        let clock = Clock::manual();
        let t0 = clock.now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::from_secs(6));
        assert_eq!(clock.now(), t0 + Duration::from_secs(6));
        assert_eq!(
            clock.clone().now(),
            clock.now(),
            "clones share one time line"
        );
    }

    #[test]
    fn a_day_ago_exists_even_right_after_boot() {
        let clock = Clock::manual();
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(clock.now().duration_since(clock.ago(day)), day);
    }

    #[test]
    fn the_system_clock_moves_and_can_jump_ahead() {
        let clock = Clock::system();
        let t0 = clock.now();
        clock.advance(Duration::from_secs(300));
        assert!(clock.now() >= t0 + Duration::from_secs(300));
    }
}
