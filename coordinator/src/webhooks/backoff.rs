//! When a failed delivery is tried again: exponential backoff from a base delay
//! (`--webhook-retry-base-ms`, 1 s by default), doubling after each failure, until the
//! last attempt. Without jitter: deliveries fail for a receiver's reasons, not because
//! many of them collide, and a fixed schedule is one the operator can read in the log.

use std::time::Duration;

/// No wait between attempts grows beyond this, whatever base and attempt count say.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// The wait after failed attempt `attempt` (counting from 1) before the next one, or
/// `None` when that was the last of `max_attempts`.
pub fn delay_after(attempt: u32, base: Duration, max_attempts: u32) -> Option<Duration> {
    if attempt == 0 || attempt >= max_attempts {
        return None;
    }
    let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
    Some(base.saturating_mul(factor).min(MAX_DELAY))
}

/// Every wait of a delivery that keeps failing, in order.
pub fn schedule(base: Duration, max_attempts: u32) -> Vec<Duration> {
    (1..max_attempts)
        .filter_map(|attempt| delay_after(attempt, base, max_attempts))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_base_until_the_last_attempt() {
        let secs = |s: &[u64]| {
            s.iter()
                .map(|s| Duration::from_secs(*s))
                .collect::<Vec<_>>()
        };
        assert_eq!(schedule(Duration::from_secs(1), 6), secs(&[1, 2, 4, 8, 16]));
        assert_eq!(delay_after(6, Duration::from_secs(1), 6), None);
        assert_eq!(delay_after(0, Duration::from_secs(1), 6), None);
        assert_eq!(schedule(Duration::from_secs(1), 1), Vec::<Duration>::new());
        assert_eq!(
            schedule(Duration::from_millis(200), 4),
            [200, 400, 800].map(Duration::from_millis).to_vec()
        );
    }

    #[test]
    fn waits_are_capped() {
        assert_eq!(
            delay_after(40, Duration::from_secs(1), 100),
            Some(MAX_DELAY)
        );
        assert_eq!(
            delay_after(3, Duration::from_secs(3000), 10),
            Some(MAX_DELAY)
        );
    }
}
