//! What `/metrics` reads at scrape time rather than counts: the query
//! memory pool, spill files on disk, and each source's connection pool.

use crate::engine::catalog::{Engine, SourceState};
use crate::engine::metrics::Scraped;

impl Engine {
    /// Every metric in Prometheus' text format, with the values read at
    /// scrape time brought up to date.
    pub fn render_metrics(&self) -> String {
        let runtime = self.runtime();
        let pools = self
            .sources()
            .into_iter()
            .filter_map(|(name, _, state)| match state {
                SourceState::Ready(source) => Some((name, source.pool_status()?)),
                SourceState::Unavailable(_) => None,
            })
            .collect();
        self.metrics().render(&Scraped {
            memory_reserved: runtime.memory_pool.reserved(),
            spilled: runtime.disk_manager.used_disk_space(),
            pools,
        })
    }
}
