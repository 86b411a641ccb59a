//! What `/metrics` reads at scrape time rather than counts: the query
//! memory pool, spill files on disk, and each source's connection pool.

use crate::engine::catalog::Engine;
use crate::engine::metrics::Scraped;

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
        self.metrics().render(&Scraped {
            memory_reserved: runtime.memory_pool.reserved(),
            spilled: runtime.disk_manager.used_disk_space(),
            pools,
        })
    }
}
