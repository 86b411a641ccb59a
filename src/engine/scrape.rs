//! What `/metrics` reads at scrape time rather than counts: the query
//! memory pool, spill files on disk, each source's connection pool, and
//! the progress of background jobs.

use crate::engine::catalog::Engine;
use crate::engine::jobs::JobState;
use crate::engine::metrics::{Scraped, ScrapedJob};

impl Engine {
    /// Every metric in Prometheus' text format, with the values read at
    /// scrape time brought up to date.
    pub fn render_metrics(&self) -> String {
        let runtime = self.runtime();
        let pools = self
            .read_sources()
            .iter()
            .filter_map(|(name, entry)| {
                Some((name.clone(), entry.attached.as_ref()?.pool_status()?))
            })
            .collect();
        let jobs = self
            .jobs()
            .list()
            .iter()
            .map(|job| {
                let row = job.view().row;
                ScrapedJob {
                    running: row.state == JobState::Running.as_str(),
                    id: row.id,
                    kind: row.kind,
                    rows_done: row.rows_done,
                    rows_total: row.rows_total,
                    bytes: row.bytes,
                }
            })
            .collect();
        self.metrics().render(&Scraped {
            memory_reserved: runtime.memory_pool.reserved(),
            spilled: runtime.disk_manager.used_disk_space(),
            pools,
            jobs,
        })
    }
}
