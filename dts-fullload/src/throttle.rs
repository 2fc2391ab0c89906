//! A task-wide rate limit on rows and bytes per second.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits the average rate of rows and bytes since the throttle was created. Shared by all
/// workers; each batch acquires its rows and bytes before it is written.
#[derive(Debug)]
pub struct Throttle {
    rows_per_second: Option<u64>,
    bytes_per_second: Option<u64>,
    state: Mutex<(Instant, u64, u64)>,
}

impl Throttle {
    /// A throttle with optional limits; with none, [`Throttle::acquire`] returns at once.
    pub fn new(rows_per_second: Option<u64>, bytes_per_second: Option<u64>) -> Self {
        Self {
            rows_per_second: rows_per_second.filter(|r| *r > 0),
            bytes_per_second: bytes_per_second.filter(|b| *b > 0),
            state: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// How long to wait before `rows` more rows and `bytes` more bytes keep within the
    /// limits; records them as used.
    fn reserve(&self, rows: u64, bytes: u64) -> Duration {
        let Ok(mut s) = self.state.lock() else {
            return Duration::ZERO;
        };
        s.1 += rows;
        s.2 += bytes;
        let elapsed = s.0.elapsed();
        let due = |used: u64, limit: Option<u64>| -> Duration {
            limit.map_or(Duration::ZERO, |l| {
                #[allow(clippy::cast_precision_loss)]
                let secs = used as f64 / l as f64;
                Duration::from_secs_f64(secs)
            })
        };
        let wait_until = due(s.1, self.rows_per_second).max(due(s.2, self.bytes_per_second));
        wait_until.saturating_sub(elapsed)
    }

    /// Waits as long as needed to keep `rows` and `bytes` more within the limits.
    pub async fn acquire(&self, rows: u64, bytes: u64) {
        if self.rows_per_second.is_none() && self.bytes_per_second.is_none() {
            return;
        }
        let wait = self.reserve(rows, bytes);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_spreads_rows_over_time() {
        let t = Throttle::new(Some(1000), None);
        assert!(t.reserve(10, 0) <= Duration::from_millis(10));
        // 2000 rows at 1000 rows/s are due after about two seconds.
        let w = t.reserve(1990, 0);
        assert!(
            w > Duration::from_millis(1900) && w <= Duration::from_secs(2),
            "{w:?}"
        );
        let b = Throttle::new(None, Some(100));
        assert!(b.reserve(0, 1000) > Duration::from_secs(9));
        let none = Throttle::new(None, None);
        assert_eq!(none.reserve(1_000_000, 1_000_000), Duration::ZERO);
    }
}
