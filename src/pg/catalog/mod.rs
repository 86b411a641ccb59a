//! PostgreSQL's system catalogs (`pg_catalog`, `information_schema`) over
//! Koios's federated catalog, so that psql, JDBC, SQLAlchemy and other
//! clients can introspect it.
//!
//! Every catalog (source) is a database to clients. In each session every
//! catalog gains ([`PgSystemSchemas`]) a `pg_catalog` schema describing
//! *that* database — like PostgreSQL, where `pg_class` lists the current
//! database's relations — and an
//! `information_schema` (which, as DataFusion's always did, lists every
//! catalog; `table_catalog` tells them apart).
//!
//! The relation tables (`pg_namespace`, `pg_class`, `pg_attribute`,
//! `pg_index`, `pg_constraint`, `pg_database`, `pg_tables`, …) are built at
//! scan time from the live catalog, with each column's mapped PostgreSQL type
//! and OIDs derived from names, so they are stable across sessions and
//! restarts. The fixed tables of PostgreSQL 15 (`pg_type`, `pg_proc`, `pg_am`,
//! `pg_collation`, `pg_range` …) come from `datafusion-pg-catalog`'s export of
//! a real server. `pg_stat_activity` lists the engine's client sessions.

mod information_schema;
mod pg_catalog;
mod pg_catalog_rows;
mod pg_stat_activity;
mod relations;
mod rewrite;
mod rows;

use std::sync::{Arc, Mutex, OnceLock};

use datafusion::catalog::{CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::error::Result;
use datafusion_pg_catalog::pg_catalog::PgCatalogStaticTables;

use crate::engine::activity::ActivityRegistry;
use crate::engine::extension::SystemSchemas;
use crate::engine::settings::Settings;

pub use crate::engine::settings::quote_ident;
pub use relations::{definitions, object_names, relation_schemas, stable_oid};
pub use rewrite::rewrite_catalog_query;

/// Schema names every catalog gains.
pub const PG_CATALOG: &str = "pg_catalog";
pub const INFORMATION_SCHEMA: &str = "information_schema";

/// What the system tables of one session need.
#[derive(Debug, Clone)]
pub struct SystemContext {
    /// The engine's catalogs (without system schemas).
    pub catalogs: Arc<dyn CatalogProviderList>,
    /// The session's parameters, for `pg_settings`.
    pub settings: Arc<Mutex<Settings>>,
    /// The connected user, for `pg_roles` and owners.
    pub user: String,
    /// Every client session, for `pg_stat_activity`.
    pub sessions: Arc<ActivityRegistry>,
}

/// PostgreSQL 15's fixed catalog rows, decoded once per process.
pub fn static_tables() -> Result<Arc<PgCatalogStaticTables>> {
    static TABLES: OnceLock<std::result::Result<Arc<PgCatalogStaticTables>, String>> =
        OnceLock::new();
    TABLES
        .get_or_init(|| {
            PgCatalogStaticTables::try_new()
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(datafusion::error::DataFusionError::Internal)
}

/// `pg_catalog` and `information_schema` in every catalog of one session.
#[derive(Debug)]
pub struct PgSystemSchemas {
    context: Arc<SystemContext>,
}

impl PgSystemSchemas {
    pub fn new(context: SystemContext) -> Self {
        Self {
            context: Arc::new(context),
        }
    }
}

impl SystemSchemas for PgSystemSchemas {
    fn names(&self) -> &[&'static str] {
        &[PG_CATALOG, INFORMATION_SCHEMA]
    }

    fn schema(&self, database: &str, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match name {
            PG_CATALOG => Some(Arc::new(pg_catalog::PgCatalogSchema::new(
                database.to_string(),
                Arc::clone(&self.context),
            ))),
            INFORMATION_SCHEMA => Some(Arc::new(information_schema::InformationSchema::new(
                Arc::clone(&self.context),
            ))),
            _ => None,
        }
    }
}

/// Looks a table up, treating an unavailable source as "no table" so one
/// broken source never breaks introspection of the others.
async fn table_or_none(
    schema: &Arc<dyn SchemaProvider>,
    name: &str,
) -> Option<Arc<dyn TableProvider>> {
    match schema.table(name).await {
        Ok(table) => table,
        Err(e) => {
            tracing::debug!(table = name, error = %e, "table skipped in the system catalogs");
            None
        }
    }
}
