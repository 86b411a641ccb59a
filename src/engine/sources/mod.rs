//! The sources the engine serves: where each came from (the configuration
//! file or `CREATE SOURCE`), whether it is attached, and its health.
//!
//! * [`statements`]: Koios's source statements (`CREATE SOURCE` …), parsed.
//! * [`ddl`]: what they do — checked, stored in the metadata store, then
//!   applied to the running engine.
//! * [`health`]: the background checks that mark sources down and
//!   re-attach them when they come back.
//! * [`guard`]: the catalogs clients see of a source that is down.
//!
//! Every change of what a name resolves to bumps the engine's catalog
//! generation, so sessions drop plans cached before it.

pub mod ddl;
pub(crate) mod guard;
pub mod health;
pub mod statements;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use datafusion::catalog::{CatalogProvider, CatalogProviderList};
use datafusion::error::Result;
use koios_connector::{Source, SourceSpec, redact_url, sql_err};

use crate::engine::Engine;
use crate::engine::error::codes;
use crate::engine::metadata::StoredSource;
use guard::{GuardedCatalog, UnattachedCatalog};
use health::SourceHealth;

/// Longest wait for a backend to accept a new source's connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a source is defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceOrigin {
    /// A `[[source]]` of the configuration file (named here, for messages).
    File(String),
    /// `CREATE SOURCE`, kept in the metadata store.
    Sql,
}

impl SourceOrigin {
    pub fn label(&self) -> &'static str {
        match self {
            SourceOrigin::File(_) => "file",
            SourceOrigin::Sql => "sql",
        }
    }
}

/// One source the engine serves.
#[derive(Debug, Clone)]
pub(crate) struct SourceEntry {
    /// What the connector was given (`${VAR}`s expanded).
    pub spec: SourceSpec,
    pub origin: SourceOrigin,
    /// As stored, for sources created by SQL.
    pub stored: Option<StoredSource>,
    /// The live source; `None` until it could be attached.
    pub attached: Option<Arc<dyn Source>>,
    pub health: Arc<SourceHealth>,
    /// Changes whenever the entry is replaced, so a health check that
    /// started before a DDL statement does not undo it.
    pub id: u64,
}

/// What `SHOW SOURCES`, `koios.system.sources` and the admin endpoint show
/// of a source: never a password.
#[derive(Debug, Clone)]
pub struct SourceStatus {
    pub name: String,
    pub kind: String,
    /// `file` or `sql`.
    pub origin: &'static str,
    /// The URL with any password replaced by `***`.
    pub url: String,
    /// `ready` or `down`.
    pub state: &'static str,
    pub since: SystemTime,
    pub last_error: Option<String>,
    pub latency_ms: Option<f64>,
    /// Tables the source exposes; `None` while it is not attached.
    pub tables: Option<usize>,
}

impl Engine {
    /// Connects a source, bounded by [`CONNECT_TIMEOUT`].
    pub(crate) async fn connect_source(&self, spec: &SourceSpec) -> Result<Arc<dyn Source>> {
        let Some(connector) = self.connectors.get(spec.kind.as_str()) else {
            return Err(self.unknown_kind(&spec.kind));
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(spec, &self.runtime)).await {
            Ok(result) => result,
            Err(_) => sql_err!(
                codes::UNABLE_TO_CONNECT,
                "source '{}': no answer within {} s",
                spec.name,
                CONNECT_TIMEOUT.as_secs()
            ),
        }
    }

    /// The error for a kind no connector of this build handles (42704).
    pub(crate) fn unknown_kind(&self, kind: &str) -> datafusion::error::DataFusionError {
        koios_connector::sql_error!(
            codes::UNDEFINED_OBJECT,
            "unknown source kind '{kind}'; this build knows: {}",
            self.connector_kinds().join(", ")
        )
    }

    /// The connector kinds of this build.
    pub fn connector_kinds(&self) -> Vec<&'static str> {
        self.connectors.keys().copied().collect()
    }

    /// Attaches a source and installs it (marked down, with the reason, if
    /// it cannot be attached: an unreachable source must not stop the
    /// server). Returns the error when it could not be attached.
    pub(crate) async fn attach_entry(
        &self,
        spec: SourceSpec,
        origin: SourceOrigin,
        stored: Option<StoredSource>,
    ) -> Option<String> {
        // Its metrics exist before it is attached, to count a failure.
        self.metrics().add_source(&spec.name);
        let attached = self.connect_source(&spec).await;
        let (attached, error) = match attached {
            Ok(source) => {
                tracing::info!(source = %spec.name, kind = %spec.kind, "source attached");
                (Some(source), None)
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::error!(source = %spec.name, kind = %spec.kind, %reason, "source unavailable");
                if let Some(handles) = self.metrics().source(&spec.name) {
                    handles.errors.increment(1);
                }
                (None, Some(reason))
            }
        };
        let entry = SourceEntry {
            health: Arc::new(SourceHealth::new(attached.is_some(), error.clone())),
            spec,
            origin,
            stored,
            attached,
            id: self.next_entry_id(),
        };
        if let Some(old) = self.install(entry) {
            old.close().await;
        }
        error
    }

    /// Puts `entry` in the catalog under its name, replacing any previous
    /// one; returns the source it replaced, for the caller to close.
    pub(crate) fn install(&self, entry: SourceEntry) -> Option<Arc<dyn Source>> {
        let name = entry.spec.name.clone();
        self.metrics().add_source(&name);
        self.catalogs
            .register_catalog(name.clone(), self.client_catalog(&entry));
        let old = self.write_sources().insert(name, entry);
        self.catalog_changed();
        old.and_then(|old| old.attached)
    }

    /// Removes a source from the catalog; returns its entry.
    pub(crate) fn uninstall(&self, name: &str) -> Option<SourceEntry> {
        let old = self.write_sources().remove(name);
        self.catalogs.deregister_catalog(name);
        self.catalog_changed();
        old
    }

    fn client_catalog(&self, entry: &SourceEntry) -> Arc<dyn CatalogProvider> {
        match &entry.attached {
            Some(source) => Arc::new(GuardedCatalog {
                source: entry.spec.name.clone(),
                inner: source.catalog(),
                health: Arc::clone(&entry.health),
            }),
            None => Arc::new(UnattachedCatalog {
                source: entry.spec.name.clone(),
                health: Arc::clone(&entry.health),
            }),
        }
    }

    fn next_entry_id(&self) -> u64 {
        self.entry_ids
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Re-discovers a source's tables; a source that is down is checked
    /// (and re-attached) at once.
    pub async fn refresh_source(&self, name: &str) -> Result<()> {
        let Some(entry) = self.read_sources().get(name).cloned() else {
            return sql_err!(codes::UNDEFINED_OBJECT, "source '{name}' does not exist");
        };
        if let (Some(source), true) = (&entry.attached, entry.health.is_up()) {
            let refreshed = source.refresh().await;
            self.catalog_changed();
            return refreshed;
        }
        if self.check_source(name, self.server.health_interval).await {
            return Ok(());
        }
        let detail = entry.health.detail();
        sql_err!(
            codes::CONNECTION_FAILURE,
            "source '{name}' is unavailable: {}",
            detail.last_error.as_deref().unwrap_or("not connected")
        )
    }

    /// One health check of `name` (see [`health`]); `true` if it is up.
    pub(crate) async fn check_source(&self, name: &str, interval: Duration) -> bool {
        let Some(entry) = self.read_sources().get(name).cloned() else {
            return true;
        };
        let health = &entry.health;
        let timeout = interval.clamp(Duration::from_secs(1), Duration::from_secs(5));
        let started = Instant::now();
        if let (Some(source), true) = (&entry.attached, health.is_up()) {
            let answer = tokio::time::timeout(timeout, source.ping()).await;
            return match answer {
                Ok(Ok(())) => {
                    let latency = started.elapsed();
                    health.mark_up(Some(latency));
                    self.metrics().source_latency(name, latency.as_secs_f64());
                    true
                }
                Ok(Err(e)) => self.source_down(name, health, e.to_string()),
                Err(_) => self.source_down(
                    name,
                    health,
                    format!("no answer within {} ms", timeout.as_millis()),
                ),
            };
        }
        // Down, or never attached: attach it afresh (a new pool, the
        // current table list).
        match self.connect_source(&entry.spec).await {
            Ok(source) => {
                let latency = started.elapsed();
                let old = {
                    let _ddl = self.ddl.lock().await;
                    let current = self.read_sources().get(name).map(|e| e.id);
                    if current != Some(entry.id) {
                        // A DDL statement replaced or dropped it meanwhile.
                        drop(_ddl);
                        source.close().await;
                        return true;
                    }
                    let mut fresh = entry.clone();
                    fresh.attached = Some(source);
                    self.install(fresh)
                };
                health.mark_up(Some(latency));
                self.metrics().source_latency(name, latency.as_secs_f64());
                self.catalog_changed();
                tracing::info!(source = %name, "source is ready again");
                if let Some(old) = old {
                    old.close().await;
                }
                true
            }
            Err(e) => self.source_down(name, health, e.to_string()),
        }
    }

    /// Records a failed check; returns `false` (the source is down).
    fn source_down(&self, name: &str, health: &SourceHealth, error: String) -> bool {
        if let Some(handles) = self.metrics().source(name) {
            handles.errors.increment(1);
        }
        if health.mark_down(error.clone()) {
            tracing::warn!(source = %name, %error, "source is down");
            // Plans cached while it was up would wait on it.
            self.catalog_changed();
        }
        false
    }

    /// The connectors' catalogs of the sources that are up, by name.
    pub fn ready_catalogs(&self) -> Vec<(String, Arc<dyn CatalogProvider>)> {
        self.read_sources()
            .values()
            .filter(|e| e.health.is_up())
            .filter_map(|e| Some((e.spec.name.clone(), e.attached.as_ref()?.catalog())))
            .collect()
    }

    /// Where the metadata store is (no password).
    pub fn metadata_location(&self) -> String {
        self.store.location()
    }

    /// Whether `name` is a source (attached or not).
    pub fn is_source(&self, name: &str) -> bool {
        self.read_sources().contains_key(name)
    }

    /// The attached source `name`, if it is up; 42704 if there is no such
    /// source, 08006 if it is down.
    pub fn live_source(&self, name: &str) -> Result<Arc<dyn Source>> {
        let Some(entry) = self.read_sources().get(name).cloned() else {
            return sql_err!(codes::UNDEFINED_OBJECT, "source '{name}' does not exist");
        };
        match (&entry.attached, entry.health.is_up()) {
            (Some(source), true) => Ok(Arc::clone(source)),
            _ => guard::down_error(name, &entry.health),
        }
    }

    /// The health of source `name`, shared with its checker (`None` if no
    /// such source).
    pub fn source_health(&self, name: &str) -> Option<Arc<SourceHealth>> {
        self.read_sources()
            .get(name)
            .map(|entry| Arc::clone(&entry.health))
    }

    /// Names of all sources.
    pub fn source_names(&self) -> Vec<String> {
        self.read_sources().keys().cloned().collect()
    }

    /// What every source looks like now, by name.
    pub fn source_statuses(&self) -> Vec<SourceStatus> {
        self.read_sources()
            .values()
            .map(|entry| {
                let detail = entry.health.detail();
                let up = entry.attached.is_some() && entry.health.is_up();
                let url = match &entry.stored {
                    Some(stored) => &stored.url,
                    None => &entry.spec.url,
                };
                SourceStatus {
                    name: entry.spec.name.clone(),
                    kind: entry.spec.kind.clone(),
                    origin: entry.origin.label(),
                    url: redact_url(url),
                    state: if up { "ready" } else { "down" },
                    since: detail.since,
                    last_error: detail.last_error,
                    latency_ms: detail.latency.map(|d| d.as_secs_f64() * 1000.0),
                    tables: entry.attached.as_ref().map(|s| count_tables(s.as_ref())),
                }
            })
            .collect()
    }

    /// Closes every attached source (before the process exits).
    pub async fn close(&self) {
        let attached: Vec<Arc<dyn Source>> = self
            .read_sources()
            .values()
            .filter_map(|entry| entry.attached.clone())
            .collect();
        for source in attached {
            source.close().await;
        }
    }

    pub(crate) fn read_sources(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, std::collections::BTreeMap<String, SourceEntry>> {
        self.sources.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write_sources(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, std::collections::BTreeMap<String, SourceEntry>> {
        self.sources.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Tables a source exposes (names are known once it is attached).
fn count_tables(source: &dyn Source) -> usize {
    let catalog = source.catalog();
    catalog
        .schema_names()
        .iter()
        .filter_map(|name| catalog.schema(name))
        .map(|schema| schema.table_names().len())
        .sum()
}
