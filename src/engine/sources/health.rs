//! Health of every source, watched continuously.
//!
//! One background task per engine checks each source every
//! `[server] health_interval` with one cheap round trip
//! ([`koios_connector::Source::ping`]), records `ready`/`down` with the last
//! error, since when and the round-trip latency, and:
//! - marks a source down at its first failed check (queries touching it then
//!   fail at once with 08006, see [`super::guard`]);
//! - retries a down source with exponential backoff, from a quarter of the
//!   interval up to the interval itself (so a source that comes back is seen
//!   within one interval), and re-attaches it — a new connection pool and a
//!   fresh table list — as soon as it answers, with no command issued;
//! - attaches a source that was down when Koios started in the same way.
//!
//! Query paths read only [`SourceHealth::is_up`], an atomic.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::engine::Engine;

/// What the last check of a source found.
#[derive(Debug, Clone)]
pub struct HealthDetail {
    /// When the source last changed between up and down.
    pub since: SystemTime,
    /// Why the source is down (or was, last); `None` if it never failed.
    pub last_error: Option<String>,
    /// The last successful round trip.
    pub latency: Option<Duration>,
}

/// The health of one source, shared by its catalog guard and the checker.
#[derive(Debug)]
pub struct SourceHealth {
    up: AtomicBool,
    detail: Mutex<HealthDetail>,
}

impl SourceHealth {
    pub fn new(up: bool, error: Option<String>) -> SourceHealth {
        SourceHealth {
            up: AtomicBool::new(up),
            detail: Mutex::new(HealthDetail {
                since: SystemTime::now(),
                last_error: error,
                latency: None,
            }),
        }
    }

    /// Whether the source answered its last check (one atomic load).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn detail(&self) -> HealthDetail {
        self.detail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records an answer; `true` if the source was down.
    pub fn mark_up(&self, latency: Option<Duration>) -> bool {
        let mut detail = self.detail.lock().unwrap_or_else(|p| p.into_inner());
        let was_down = !self.up.swap(true, Ordering::AcqRel);
        if was_down {
            detail.since = SystemTime::now();
        }
        if latency.is_some() {
            detail.latency = latency;
        }
        was_down
    }

    /// Records a failure; `true` if the source was up.
    pub fn mark_down(&self, error: String) -> bool {
        let mut detail = self.detail.lock().unwrap_or_else(|p| p.into_inner());
        let was_up = self.up.swap(false, Ordering::AcqRel);
        if was_up {
            detail.since = SystemTime::now();
        }
        detail.last_error = Some(error);
        was_up
    }
}

/// When each source is checked next, and how many checks in a row failed.
#[derive(Debug, Default)]
struct Schedule {
    next: HashMap<String, (Instant, u32)>,
}

impl Schedule {
    fn due(&mut self, names: Vec<String>, now: Instant) -> Vec<String> {
        self.next.retain(|name, _| names.contains(name));
        names
            .into_iter()
            .filter(|name| self.next.get(name).is_none_or(|(at, _)| *at <= now))
            .collect()
    }

    fn checked(&mut self, name: String, up: bool, interval: Duration, now: Instant) {
        let failures = match (up, self.next.get(&name)) {
            (true, _) => 0,
            (false, Some((_, failures))) => failures + 1,
            (false, None) => 1,
        };
        self.next
            .insert(name, (now + retry_delay(interval, failures), failures));
    }
}

/// The wait before the next check: the interval while a source is up; after
/// `failures` failed checks in a row, a quarter of it doubled each time, at
/// most the interval.
pub fn retry_delay(interval: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return interval;
    }
    let base = interval / 4;
    base.saturating_mul(1 << (failures - 1).min(8))
        .min(interval)
}

/// Starts the checker; it ends when the engine is dropped.
pub(crate) fn spawn(engine: &Arc<Engine>, interval: Duration) {
    let weak: Weak<Engine> = Arc::downgrade(engine);
    let tick = (interval / 8).max(Duration::from_millis(20));
    tokio::spawn(async move {
        let mut schedule = Schedule::default();
        let mut reconciled = Instant::now();
        loop {
            tokio::time::sleep(tick).await;
            let Some(engine) = weak.upgrade() else {
                break;
            };
            let due = schedule.due(engine.source_names(), Instant::now());
            let checks = due.into_iter().map(|name| {
                let engine = Arc::clone(&engine);
                async move {
                    let up = engine.check_source(&name, interval).await;
                    (name, up)
                }
            });
            for (name, up) in futures::future::join_all(checks).await {
                schedule.checked(name, up, interval, Instant::now());
            }
            // Sources and logical tables another server sharing the store
            // created, changed or dropped appear here within one interval.
            if reconciled.elapsed() >= interval {
                engine.reconcile_with_store().await;
                engine.reconcile_logical_tables().await;
                reconciled = Instant::now();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_interval() {
        let interval = Duration::from_secs(8);
        let delays: Vec<_> = (0..6).map(|f| retry_delay(interval, f).as_secs()).collect();
        assert_eq!(delays, [8, 2, 4, 8, 8, 8]);
        assert_eq!(retry_delay(interval, 40), interval);
    }

    #[test]
    fn transitions_are_reported_once() {
        let health = SourceHealth::new(true, None);
        assert!(health.mark_down("refused".into()));
        assert!(!health.mark_down("refused again".into()));
        assert!(!health.is_up());
        assert_eq!(health.detail().last_error.as_deref(), Some("refused again"));
        assert!(health.mark_up(Some(Duration::from_millis(3))));
        assert!(!health.mark_up(None));
        assert_eq!(health.detail().latency, Some(Duration::from_millis(3)));
    }
}
