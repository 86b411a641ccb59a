//! The `pg_catalog` schema of one database: which tables it offers, their
//! column layouts, and the fixed tables of PostgreSQL 15 that
//! `datafusion-pg-catalog` provides.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::Result;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::{PG_CATALOG_TABLES, PgCatalogSchemaProvider};

use super::SystemContext;
use super::rows::{BuiltTable, Col, schema_of};

/// Names of the tables `pg_catalog` offers.
pub fn system_table_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<String> = PG_CATALOG_TABLES.iter().map(|s| s.to_string()).collect();
        for extra in ["pg_user", "pg_indexes", "pg_stat_activity"] {
            names.push(extra.to_string());
        }
        names.sort();
        names.dedup();
        names
    })
}

pub(super) fn system_schema(name: &str) -> SchemaRef {
    if let Some(schema) = own_schema(name) {
        return schema;
    }
    static_provider()
        .ok()
        .and_then(|p| p.build_table_by_name(name).ok().flatten())
        .map(|t| t.schema())
        .unwrap_or_else(|| Arc::new(Schema::empty()))
}

type StaticProvider = PgCatalogSchemaProvider<
    Arc<dyn datafusion::catalog::CatalogProviderList>,
    EmptyContextProvider,
>;

/// The crate's provider, used for the tables Koios does not build itself
/// (its relation tables are never asked for: it sees no catalogs).
fn static_provider() -> Result<Arc<StaticProvider>> {
    static PROVIDER: OnceLock<std::result::Result<Arc<StaticProvider>, String>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let empty: Arc<dyn datafusion::catalog::CatalogProviderList> =
                Arc::new(datafusion::catalog::MemoryCatalogProviderList::new());
            let tables = super::static_tables().map_err(|e| e.to_string())?;
            PgCatalogSchemaProvider::try_new(empty, tables, EmptyContextProvider)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(datafusion::error::DataFusionError::Internal)
}

/// The `pg_catalog` schema of one database.
#[derive(Debug)]
pub struct PgCatalogSchema {
    database: String,
    context: Arc<SystemContext>,
}

impl PgCatalogSchema {
    pub fn new(database: String, context: Arc<SystemContext>) -> Self {
        Self { database, context }
    }
}

#[async_trait]
impl SchemaProvider for PgCatalogSchema {
    fn table_names(&self) -> Vec<String> {
        system_table_names().to_vec()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let name = name.to_ascii_lowercase();
        if let Some(schema) = own_schema(&name) {
            return Ok(Some(Arc::new(BuiltTable {
                schema,
                source: CatalogTable {
                    name,
                    database: self.database.clone(),
                    context: Arc::clone(&self.context),
                },
            })));
        }
        match static_provider()?.build_table_by_name(&name)? {
            Some(table) => Ok(Some(table.try_into_table_provider()?)),
            None => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        system_table_names().contains(&name.to_ascii_lowercase())
    }
}

/// A `pg_catalog` table of one database.
#[derive(Debug)]
pub(super) struct CatalogTable {
    pub(super) name: String,
    pub(super) database: String,
    pub(super) context: Arc<SystemContext>,
}

use Col::*;

const PG_NAMESPACE: &[(&str, Col)] = &[
    ("oid", Oid),
    ("nspname", Name),
    ("nspowner", Oid),
    ("nspacl", TextArray),
];

const PG_CLASS: &[(&str, Col)] = &[
    ("oid", Oid),
    ("relname", Name),
    ("relnamespace", Oid),
    ("reltype", Oid),
    ("reloftype", Oid),
    ("relowner", Oid),
    ("relam", Oid),
    ("relfilenode", Oid),
    ("reltablespace", Oid),
    ("relpages", Int4),
    ("reltuples", Float4),
    ("relallvisible", Int4),
    ("reltoastrelid", Oid),
    ("relhasindex", Bool),
    ("relisshared", Bool),
    ("relpersistence", Text),
    ("relkind", Text),
    ("relnatts", Int2),
    ("relchecks", Int2),
    ("relhasrules", Bool),
    ("relhastriggers", Bool),
    ("relhassubclass", Bool),
    ("relrowsecurity", Bool),
    ("relforcerowsecurity", Bool),
    ("relispopulated", Bool),
    ("relreplident", Text),
    ("relispartition", Bool),
    ("relrewrite", Oid),
    ("relfrozenxid", Int4),
    ("relminmxid", Int4),
    ("relacl", TextArray),
    ("reloptions", TextArray),
    ("relpartbound", Text),
];

const PG_ATTRIBUTE: &[(&str, Col)] = &[
    ("attrelid", Oid),
    ("attname", Name),
    ("atttypid", Oid),
    ("attstattarget", Int4),
    ("attlen", Int2),
    ("attnum", Int2),
    ("attndims", Int4),
    ("attcacheoff", Int4),
    ("atttypmod", Int4),
    ("attbyval", Bool),
    ("attalign", Text),
    ("attstorage", Text),
    ("attcompression", Text),
    ("attnotnull", Bool),
    ("atthasdef", Bool),
    ("atthasmissing", Bool),
    ("attidentity", Text),
    ("attgenerated", Text),
    ("attisdropped", Bool),
    ("attislocal", Bool),
    ("attinhcount", Int4),
    ("attcollation", Oid),
    ("attacl", TextArray),
    ("attoptions", TextArray),
    ("attfdwoptions", TextArray),
    ("attmissingval", Text),
];

const PG_INDEX: &[(&str, Col)] = &[
    ("indexrelid", Oid),
    ("indrelid", Oid),
    ("indnatts", Int2),
    ("indnkeyatts", Int2),
    ("indisunique", Bool),
    ("indnullsnotdistinct", Bool),
    ("indisprimary", Bool),
    ("indisexclusion", Bool),
    ("indimmediate", Bool),
    ("indisclustered", Bool),
    ("indisvalid", Bool),
    ("indcheckxmin", Bool),
    ("indisready", Bool),
    ("indislive", Bool),
    ("indisreplident", Bool),
    ("indkey", Int2Vector),
    ("indcollation", OidVector),
    ("indclass", OidVector),
    ("indoption", Int2Vector),
    ("indexprs", Text),
    ("indpred", Text),
];

const PG_CONSTRAINT: &[(&str, Col)] = &[
    ("oid", Oid),
    ("conname", Name),
    ("connamespace", Oid),
    ("contype", Text),
    ("condeferrable", Bool),
    ("condeferred", Bool),
    ("convalidated", Bool),
    ("conrelid", Oid),
    ("contypid", Oid),
    ("conindid", Oid),
    ("conparentid", Oid),
    ("confrelid", Oid),
    ("confupdtype", Text),
    ("confdeltype", Text),
    ("confmatchtype", Text),
    ("conislocal", Bool),
    ("coninhcount", Int4),
    ("connoinherit", Bool),
    ("conkey", Int2Vector),
    ("confkey", Int2Vector),
    ("conpfeqop", OidVector),
    ("conppeqop", OidVector),
    ("conffeqop", OidVector),
    ("confdelsetcols", Int2Vector),
    ("conexclop", OidVector),
    ("conbin", Text),
];

const PG_DATABASE: &[(&str, Col)] = &[
    ("oid", Oid),
    ("datname", Name),
    ("datdba", Oid),
    ("encoding", Int4),
    ("datlocprovider", Text),
    ("datistemplate", Bool),
    ("datallowconn", Bool),
    ("datconnlimit", Int4),
    ("datfrozenxid", Int4),
    ("datminmxid", Int4),
    ("dattablespace", Oid),
    ("datcollate", Text),
    ("datctype", Text),
    ("daticulocale", Text),
    ("datcollversion", Text),
    ("datacl", TextArray),
];

const PG_TABLES: &[(&str, Col)] = &[
    ("schemaname", Name),
    ("tablename", Name),
    ("tableowner", Name),
    ("tablespace", Name),
    ("hasindexes", Bool),
    ("hasrules", Bool),
    ("hastriggers", Bool),
    ("rowsecurity", Bool),
];

const PG_VIEWS: &[(&str, Col)] = &[
    ("schemaname", Name),
    ("viewname", Name),
    ("viewowner", Name),
    ("definition", Text),
];

const PG_INDEXES: &[(&str, Col)] = &[
    ("schemaname", Name),
    ("tablename", Name),
    ("indexname", Name),
    ("tablespace", Name),
    ("indexdef", Text),
];

const PG_STAT_USER_TABLES: &[(&str, Col)] = &[
    ("relid", Oid),
    ("schemaname", Name),
    ("relname", Name),
    ("seq_scan", Int8),
    ("seq_tup_read", Int8),
    ("idx_scan", Int8),
    ("idx_tup_fetch", Int8),
    ("n_tup_ins", Int8),
    ("n_tup_upd", Int8),
    ("n_tup_del", Int8),
    ("n_tup_hot_upd", Int8),
    ("n_live_tup", Int8),
    ("n_dead_tup", Int8),
    ("n_mod_since_analyze", Int8),
    ("n_ins_since_vacuum", Int8),
    ("last_vacuum", Timestamptz),
    ("last_autovacuum", Timestamptz),
    ("last_analyze", Timestamptz),
    ("last_autoanalyze", Timestamptz),
    ("vacuum_count", Int8),
    ("autovacuum_count", Int8),
    ("analyze_count", Int8),
    ("autoanalyze_count", Int8),
];

const PG_ROLES: &[(&str, Col)] = &[
    ("rolname", Name),
    ("rolsuper", Bool),
    ("rolinherit", Bool),
    ("rolcreaterole", Bool),
    ("rolcreatedb", Bool),
    ("rolcanlogin", Bool),
    ("rolreplication", Bool),
    ("rolconnlimit", Int4),
    ("rolpassword", Text),
    ("rolvaliduntil", Timestamptz),
    ("rolbypassrls", Bool),
    ("rolconfig", TextArray),
    ("oid", Oid),
];

const PG_USER: &[(&str, Col)] = &[
    ("usename", Name),
    ("usesysid", Oid),
    ("usecreatedb", Bool),
    ("usesuper", Bool),
    ("userepl", Bool),
    ("usebypassrls", Bool),
    ("passwd", Text),
    ("valuntil", Timestamptz),
    ("useconfig", TextArray),
];

const PG_SETTINGS: &[(&str, Col)] = &[
    ("name", Text),
    ("setting", Text),
    ("unit", Text),
    ("category", Text),
    ("short_desc", Text),
    ("extra_desc", Text),
    ("context", Text),
    ("vartype", Text),
    ("source", Text),
    ("min_val", Text),
    ("max_val", Text),
    ("enumvals", TextArray),
    ("boot_val", Text),
    ("reset_val", Text),
    ("sourcefile", Text),
    ("sourceline", Int4),
    ("pending_restart", Bool),
];

const PG_ATTRDEF: &[(&str, Col)] = &[
    ("oid", Oid),
    ("adrelid", Oid),
    ("adnum", Int2),
    ("adbin", Text),
];

const PG_DESCRIPTION: &[(&str, Col)] = &[
    ("objoid", Oid),
    ("classoid", Oid),
    ("objsubid", Int4),
    ("description", Text),
];

const PG_INHERITS: &[(&str, Col)] = &[
    ("inhrelid", Oid),
    ("inhparent", Oid),
    ("inhseqno", Int4),
    ("inhdetachpending", Bool),
];

/// The column layout of a table Koios builds, `None` for the fixed ones.
fn own_columns(name: &str) -> Option<&'static [(&'static str, Col)]> {
    Some(match name {
        "pg_namespace" => PG_NAMESPACE,
        "pg_class" => PG_CLASS,
        "pg_attribute" => PG_ATTRIBUTE,
        "pg_index" => PG_INDEX,
        "pg_constraint" => PG_CONSTRAINT,
        "pg_database" => PG_DATABASE,
        "pg_tables" => PG_TABLES,
        "pg_views" => PG_VIEWS,
        "pg_indexes" => PG_INDEXES,
        "pg_stat_user_tables" => PG_STAT_USER_TABLES,
        "pg_roles" => PG_ROLES,
        "pg_user" => PG_USER,
        "pg_settings" => PG_SETTINGS,
        // User objects have no defaults, comments or inheritance; the fixed
        // export's rows describe another server's objects.
        "pg_attrdef" => PG_ATTRDEF,
        "pg_description" => PG_DESCRIPTION,
        "pg_inherits" => PG_INHERITS,
        "pg_stat_activity" => super::pg_stat_activity::COLUMNS,
        _ => return None,
    })
}

fn own_schema(name: &str) -> Option<SchemaRef> {
    own_columns(name).map(schema_of)
}
