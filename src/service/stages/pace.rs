//! How many produced records the stages may hold unacknowledged.
//!
//! A clean stop waits until every record produced so far is acknowledged, so what is in flight
//! when a SIGTERM comes must drain within `service.shutdown_timeout`. librdkafka's own bound
//! is a count (100 000 by default), which a slow broker takes minutes to acknowledge; this one
//! follows the broker: it is what the last measured delivery acknowledged in a quarter of the
//! shutdown timeout, and the consumer is held back while more is in flight.

use std::time::Duration;

/// Never fewer: a round trip's worth on any broker.
const FLOOR: usize = 1_000;
/// Never more: librdkafka's default `queue.buffering.max.messages`.
const CEILING: usize = 100_000;
/// A delivery shorter than this, or of fewer records, says nothing reliable about the rate.
const MEASURABLE_TIME: Duration = Duration::from_millis(20);
const MEASURABLE_RECORDS: usize = 200;

#[derive(Debug, Clone)]
pub struct InFlight {
    budget: Duration,
    limit: usize,
}

impl InFlight {
    /// Records in flight drain within about a quarter of `shutdown_timeout` (the rest is for
    /// dead letters and checkpoints).
    pub fn new(shutdown_timeout: Duration) -> InFlight {
        InFlight {
            budget: shutdown_timeout / 4,
            limit: FLOOR,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A delivery waited `took` for the `records` that were in flight when it began.
    pub fn delivered(&mut self, records: usize, took: Duration) {
        let limit = if took >= MEASURABLE_TIME && records >= MEASURABLE_RECORDS {
            let per_second = records as f64 / took.as_secs_f64();
            (per_second * self.budget.as_secs_f64()) as usize
        } else if records * 2 >= self.limit {
            // The broker kept up with a full window: allow more.
            self.limit.saturating_mul(2)
        } else {
            self.limit
        };
        self.limit = limit.clamp(FLOOR, CEILING);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_slow_broker_gets_what_it_acknowledges_in_a_quarter_of_the_shutdown_timeout() {
        let mut pace = InFlight::new(Duration::from_secs(20));
        assert_eq!(pace.limit(), FLOOR);
        // Tansu with one record per batch: 500 a second.
        pace.delivered(5_000, Duration::from_secs(10));
        assert_eq!(pace.limit(), 2_500);
        // Slower still: never below the floor.
        pace.delivered(1_000, Duration::from_secs(20));
        assert_eq!(pace.limit(), FLOOR);
    }

    #[test]
    fn a_fast_broker_grows_the_window_up_to_librdkafkas_own_bound() {
        let mut pace = InFlight::new(Duration::from_secs(30));
        // Acknowledged as fast as produced: too quick to measure, so the window doubles.
        pace.delivered(900, MS(3));
        assert_eq!(pace.limit(), 2 * FLOOR);
        pace.delivered(100, MS(1));
        assert_eq!(pace.limit(), 2 * FLOOR, "a small batch says nothing");
        // 400 000 a second for 7.5 s would be 3 M: capped.
        pace.delivered(40_000, MS(100));
        assert_eq!(pace.limit(), CEILING);
    }
}
