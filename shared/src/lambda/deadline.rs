//! The invocation's deadline, visible to every call made while handling it.
//!
//! Lambda gives each invocation a deadline; retries and waits deep inside a client (a `Retry-After`,
//! a backoff) must fit inside it and leave room to answer, or the whole batch times out and every
//! record counts a receive. The batch runner and the HTTP glue scope each unit of work with
//! [`scope`]; clients ask [`remaining`] before they sleep or retry. Outside a scope (a CLI, a unit
//! test) there is no deadline and [`remaining`] is `None`.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` as the deadline of everything it calls.
pub async fn scope<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// The deadline of the current unit of work, if one is set.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// Time left before the current deadline (zero once it has passed); `None` without a deadline.
pub fn remaining() -> Option<Duration> {
    current().map(|deadline| deadline.saturating_duration_since(Instant::now()))
}

/// Whether waiting `wait` and then spending `then` still fits before the deadline.
pub fn fits(wait: Duration, then: Duration) -> bool {
    remaining().is_none_or(|left| wait.saturating_add(then) <= left)
}

/// The tokio instant of a Lambda deadline given in Unix milliseconds (`Context::deadline`).
pub fn from_unix_ms(deadline_ms: u64) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn remaining_time_shrinks_inside_a_scope_and_is_absent_outside() {
        assert_eq!(remaining(), None);
        let deadline = Instant::now() + Duration::from_secs(10);
        scope(deadline, async {
            assert_eq!(remaining(), Some(Duration::from_secs(10)));
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert_eq!(remaining(), Some(Duration::from_secs(6)));
            assert!(fits(Duration::from_secs(5), Duration::from_secs(1)));
            assert!(!fits(Duration::from_secs(5), Duration::from_secs(2)));
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_passed_deadline_leaves_zero() {
        let deadline = Instant::now() + Duration::from_secs(1);
        scope(deadline, async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(remaining(), Some(Duration::ZERO));
        })
        .await;
    }
}
