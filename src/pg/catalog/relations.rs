//! `pg_catalog` for one database (catalog): the relation tables built from the
//! live catalog at scan time, the fixed PostgreSQL 15 tables, and the lookup
//! behind `pg_get_indexdef` / `pg_get_constraintdef`.
//!
//! OIDs of user objects are a hash of their names ([`stable_oid`]): the same
//! table has the same OID in every session and after a restart, which pooled
//! clients (JDBC, DBeaver) rely on when they cache what they resolved.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemTable, SchemaProvider, Session, TableProvider};
use datafusion::common::{Constraint, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::{PG_CATALOG_TABLES, PgCatalogSchemaProvider};
use postgres_types::Type;

use super::{INFORMATION_SCHEMA, PG_CATALOG, SystemContext, table_or_none};
use crate::engine::settings::quote_ident;
use crate::pg::types::{innermost, pg_type, type_size};

/// OID of the `pg_catalog` namespace in every PostgreSQL cluster.
pub const PG_CATALOG_NAMESPACE: i32 = 11;
/// OID of `public` in every PostgreSQL database.
pub const PUBLIC_NAMESPACE: i32 = 2200;
/// OID of the bootstrap superuser, the owner of everything.
pub const OWNER: i32 = 10;
/// `pg_am` OID of btree, the access method primary keys are reported with.
const BTREE: i32 = 403;
/// `pg_collation` OID of the database default collation.
const DEFAULT_COLLATION: i32 = 100;

/// An OID for a named object: FNV-1a over `kind` and the name parts, in the
/// user range (≥ 16384) so it never meets a built-in OID.
pub fn stable_oid(kind: &str, parts: &[&str]) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for part in std::iter::once(kind).chain(parts.iter().copied()) {
        for byte in part.bytes().chain([0u8]) {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    const FIRST_USER_OID: u32 = 16384;
    (FIRST_USER_OID + hash % (i32::MAX as u32 - FIRST_USER_OID)) as i32
}

/// OID of a schema of `database`.
pub fn namespace_oid(database: &str, schema: &str) -> i32 {
    match schema {
        PG_CATALOG => PG_CATALOG_NAMESPACE,
        "public" => PUBLIC_NAMESPACE,
        _ => stable_oid("namespace", &[database, schema]),
    }
}

/// One relation (table, view or primary-key index) of a database.
#[derive(Debug, Clone)]
pub struct Relation {
    pub oid: i32,
    pub schema: String,
    pub name: String,
    /// `r` table, `v` view, `i` index.
    pub kind: char,
    pub fields: SchemaRef,
    /// Primary-key columns (1-based), for tables that have one.
    pub primary_key: Vec<i16>,
    /// For an index: the table it indexes.
    pub indexes: Option<i32>,
    pub rows: Option<usize>,
}

impl Relation {
    pub(super) fn pk_index_name(&self) -> String {
        format!("{}_pkey", self.name)
    }

    fn key_names(&self) -> Vec<String> {
        self.primary_key
            .iter()
            .filter_map(|n| self.fields.fields().get((*n as usize).wrapping_sub(1)))
            .map(|f| quote_ident(f.name()))
            .collect()
    }
}

/// Definitions of indexes and constraints by OID, filled whenever the
/// relation tables are scanned (a query calling `pg_get_indexdef` reads
/// `pg_index` or `pg_class` to find the OID in the first place).
pub fn definitions() -> &'static Mutex<HashMap<i32, Definition>> {
    static DEFINITIONS: OnceLock<Mutex<HashMap<i32, Definition>>> = OnceLock::new();
    DEFINITIONS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Names of relations and schemas by OID, for `::regclass::text` and
/// `::regnamespace::text`; filled like [`definitions`].
pub fn object_names() -> &'static Mutex<HashMap<i32, String>> {
    static NAMES: OnceLock<Mutex<HashMap<i32, String>>> = OnceLock::new();
    NAMES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The schema of each relation by OID, for `pg_table_is_visible`.
pub fn relation_schemas() -> &'static Mutex<HashMap<i32, String>> {
    static SCHEMAS: OnceLock<Mutex<HashMap<i32, String>>> = OnceLock::new();
    SCHEMAS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// What `pg_get_indexdef` / `pg_get_constraintdef` return for one OID.
#[derive(Debug, Clone)]
pub struct Definition {
    pub text: String,
    /// Column names, for `pg_get_indexdef(oid, column, pretty)`.
    pub columns: Vec<String>,
}

/// Every relation of `database`, system schemas included.
pub async fn relations(database: &str, context: &SystemContext) -> Vec<Relation> {
    let mut out = Vec::new();
    let Some(catalog) = context.catalogs.catalog(database) else {
        return out;
    };
    let mut schema_names = catalog.schema_names();
    schema_names.sort();
    for schema_name in schema_names {
        if schema_name == PG_CATALOG || schema_name == INFORMATION_SCHEMA {
            continue;
        }
        let Some(schema) = catalog.schema(&schema_name) else {
            continue;
        };
        let mut names = schema.table_names();
        names.sort();
        for name in names {
            let Some(table) = table_or_none(&schema, &name).await else {
                continue;
            };
            let oid = stable_oid("class", &[database, &schema_name, &name]);
            let primary_key: Vec<i16> = table
                .constraints()
                .and_then(|c| {
                    c.iter().find_map(|c| match c {
                        Constraint::PrimaryKey(columns) => Some(columns.clone()),
                        Constraint::Unique(_) => None,
                    })
                })
                .unwrap_or_default()
                .into_iter()
                .map(|i| i as i16 + 1)
                .collect();
            let rows = table
                .statistics()
                .and_then(|s| s.num_rows.get_value().copied());
            let kind = match table.table_type() {
                TableType::View => 'v',
                _ => 'r',
            };
            let relation = Relation {
                oid,
                schema: schema_name.clone(),
                name: name.clone(),
                kind,
                fields: table.schema(),
                primary_key,
                indexes: None,
                rows,
            };
            if !relation.primary_key.is_empty() {
                let index_name = relation.pk_index_name();
                let keys: Vec<Arc<Field>> = relation
                    .primary_key
                    .iter()
                    .filter_map(|n| relation.fields.fields().get(*n as usize - 1).cloned())
                    .collect();
                out.push(Relation {
                    oid: stable_oid("index", &[database, &schema_name, &name]),
                    schema: schema_name.clone(),
                    name: index_name,
                    kind: 'i',
                    fields: Arc::new(Schema::new(keys)),
                    primary_key: Vec::new(),
                    indexes: Some(oid),
                    rows: None,
                });
            }
            out.push(relation);
        }
    }
    // The system tables themselves, so `\d pg_class` and regclass casts work.
    for name in system_table_names() {
        let name = name.clone();
        let schema = system_schema(&name);
        out.push(Relation {
            oid: stable_oid("class", &["", PG_CATALOG, &name]),
            schema: PG_CATALOG.into(),
            name,
            kind: 'v',
            fields: schema,
            primary_key: Vec::new(),
            indexes: None,
            rows: None,
        });
    }
    register_definitions(database, &out);
    out
}

fn register_definitions(database: &str, relations: &[Relation]) {
    {
        let mut names = object_names().lock().unwrap_or_else(|p| p.into_inner());
        for r in relations {
            let name = if r.schema == "public" || r.schema == PG_CATALOG {
                quote_ident(&r.name)
            } else {
                format!("{}.{}", quote_ident(&r.schema), quote_ident(&r.name))
            };
            names.insert(r.oid, name);
            relation_schemas()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(r.oid, r.schema.clone());
            names.insert(namespace_oid(database, &r.schema), quote_ident(&r.schema));
        }
    }
    let by_oid: HashMap<i32, &Relation> = relations.iter().map(|r| (r.oid, r)).collect();
    let mut definitions = definitions().lock().unwrap_or_else(|p| p.into_inner());
    for index in relations.iter().filter(|r| r.kind == 'i') {
        let Some(table) = index.indexes.and_then(|t| by_oid.get(&t)) else {
            continue;
        };
        let keys = table.key_names();
        definitions.insert(
            index.oid,
            Definition {
                text: format!(
                    "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
                    quote_ident(&index.name),
                    quote_ident(&table.schema),
                    quote_ident(&table.name),
                    keys.join(", ")
                ),
                columns: keys.clone(),
            },
        );
        definitions.insert(
            constraint_oid(table),
            Definition {
                text: format!("PRIMARY KEY ({})", keys.join(", ")),
                columns: keys,
            },
        );
    }
}

pub(super) fn constraint_oid(table: &Relation) -> i32 {
    stable_oid("constraint", &[&table.schema, &table.name, "pkey"])
}

/// Names of the tables `pg_catalog` offers.
pub fn system_table_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<String> = PG_CATALOG_TABLES.iter().map(|s| s.to_string()).collect();
        for extra in ["pg_user", "pg_indexes"] {
            names.push(extra.to_string());
        }
        names.sort();
        names.dedup();
        names
    })
}

fn system_schema(name: &str) -> SchemaRef {
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

/// Where a system table's rows come from, computed at each scan.
#[async_trait]
pub(super) trait RowSource: std::fmt::Debug + Send + Sync + 'static {
    async fn rows(&self) -> Result<Vec<Row>>;
}

/// A system table whose rows are built from the live catalog when scanned.
#[derive(Debug)]
pub(super) struct BuiltTable<S> {
    pub schema: SchemaRef,
    pub source: S,
}

#[async_trait]
impl<S: RowSource> TableProvider for BuiltTable<S> {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = self.source.rows().await?;
        let batch = to_batch(&self.schema, rows)?;
        let table = MemTable::try_new(Arc::clone(&self.schema), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}

/// A `pg_catalog` table of one database.
#[derive(Debug)]
struct CatalogTable {
    name: String,
    database: String,
    context: Arc<SystemContext>,
}

pub(super) type Row = Vec<ScalarValue>;

pub(super) fn text(value: impl Into<String>) -> ScalarValue {
    ScalarValue::Utf8(Some(value.into()))
}

fn int2(value: i16) -> ScalarValue {
    ScalarValue::Int16(Some(value))
}

pub(super) fn int4(value: i32) -> ScalarValue {
    ScalarValue::Int32(Some(value))
}

fn int8(value: i64) -> ScalarValue {
    ScalarValue::Int64(Some(value))
}

fn boolean(value: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(value))
}

fn int2_list(values: &[i16]) -> ScalarValue {
    let scalars: Vec<ScalarValue> = values.iter().map(|v| int2(*v)).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&scalars, &DataType::Int16))
}

fn int4_list(values: &[i32]) -> ScalarValue {
    let scalars: Vec<ScalarValue> = values.iter().map(|v| int4(*v)).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&scalars, &DataType::Int32))
}

pub(super) const NULL: ScalarValue = ScalarValue::Null;

/// Transposes rows into a batch; `NULL` takes each column's type.
pub(super) fn to_batch(schema: &SchemaRef, rows: Vec<Row>) -> Result<RecordBatch> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let typed_null = ScalarValue::try_from(field.data_type())?;
        let values = rows.iter().map(|row| match row.get(i) {
            Some(ScalarValue::Null) | None => typed_null.clone(),
            Some(value) => value.clone(),
        });
        columns.push(if rows.is_empty() {
            datafusion::arrow::array::new_empty_array(field.data_type())
        } else {
            ScalarValue::iter_to_array(values)?
        });
    }
    let options =
        datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

/// Column kinds of the tables below, in PostgreSQL's terms.
#[derive(Clone, Copy)]
pub(super) enum Col {
    Oid,
    Name,
    Int2,
    Int4,
    Int8,
    Float4,
    Bool,
    Text,
    TextArray,
    Int2Vector,
    OidVector,
    Timestamptz,
}

pub(super) fn schema_of(columns: &[(&str, Col)]) -> SchemaRef {
    let list = |dt: DataType| DataType::List(Arc::new(Field::new_list_field(dt, true)));
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, col)| {
                let dt = match col {
                    Col::Oid | Col::Int4 => DataType::Int32,
                    Col::Name | Col::Text => DataType::Utf8,
                    Col::Int2 => DataType::Int16,
                    Col::Int8 => DataType::Int64,
                    Col::Float4 => DataType::Float32,
                    Col::Bool => DataType::Boolean,
                    Col::TextArray => list(DataType::Utf8),
                    Col::Int2Vector => list(DataType::Int16),
                    Col::OidVector => list(DataType::Int32),
                    Col::Timestamptz => {
                        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
                    }
                };
                Field::new(*name, dt, true)
            })
            .collect::<Vec<_>>(),
    ))
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
        _ => return None,
    })
}

fn own_schema(name: &str) -> Option<SchemaRef> {
    own_columns(name).map(schema_of)
}

/// `atttypmod` of a column: numeric precision and scale as PostgreSQL packs them.
fn type_modifier(dt: &DataType) -> i32 {
    match dt {
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => ((i32::from(*p) << 16) | (i32::from(*s) & 0xffff)) + 4,
        _ => -1,
    }
}

pub(super) fn is_list(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(_, _)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
    )
}

pub(super) fn collatable(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::TEXT_ARRAY
    )
}

#[async_trait]
impl RowSource for CatalogTable {
    async fn rows(&self) -> Result<Vec<Row>> {
        let user = self.context.user.clone();
        let database = self.database.as_str();
        Ok(match self.name.as_str() {
            "pg_namespace" => {
                let mut names: Vec<String> = self
                    .context
                    .catalogs
                    .catalog(database)
                    .map(|c| c.schema_names())
                    .unwrap_or_default();
                names.retain(|n| n != PG_CATALOG && n != INFORMATION_SCHEMA);
                names.push(PG_CATALOG.into());
                names.push(INFORMATION_SCHEMA.into());
                names.sort();
                names
                    .iter()
                    .map(|n| vec![int4(namespace_oid(database, n)), text(n), int4(OWNER), NULL])
                    .collect()
            }
            "pg_class" => relations(database, &self.context)
                .await
                .iter()
                .map(|r| {
                    vec![
                        int4(r.oid),
                        text(&r.name),
                        int4(namespace_oid(database, &r.schema)),
                        int4(0),
                        int4(0),
                        int4(OWNER),
                        int4(if r.kind == 'i' { BTREE } else { 0 }),
                        int4(0),
                        int4(0),
                        int4(0),
                        ScalarValue::Float32(Some(r.rows.map(|n| n as f32).unwrap_or(-1.0))),
                        int4(0),
                        int4(0),
                        boolean(!r.primary_key.is_empty()),
                        boolean(false),
                        text("p"),
                        text(r.kind.to_string()),
                        int2(r.fields.fields().len() as i16),
                        int2(0),
                        boolean(false),
                        boolean(false),
                        boolean(false),
                        boolean(false),
                        boolean(false),
                        boolean(true),
                        text("d"),
                        boolean(false),
                        int4(0),
                        int4(0),
                        int4(0),
                        NULL,
                        NULL,
                        NULL,
                    ]
                })
                .collect(),
            "pg_attribute" => {
                let mut rows = Vec::new();
                for r in relations(database, &self.context).await {
                    for (i, field) in r.fields.fields().iter().enumerate() {
                        let ty = pg_type(field.data_type());
                        let len = type_size(&ty);
                        let dims = if is_list(field.data_type()) { 1 } else { 0 };
                        let modifier = type_modifier(innermost(field).data_type());
                        rows.push(vec![
                            int4(r.oid),
                            text(field.name()),
                            int4(ty.oid() as i32),
                            int4(-1),
                            int2(len),
                            int2(i as i16 + 1),
                            int4(dims),
                            int4(-1),
                            int4(modifier),
                            boolean(matches!(len, 1 | 2 | 4 | 8)),
                            text(if len == 8 { "d" } else { "i" }),
                            text(match (len, &ty) {
                                (_, &Type::NUMERIC) => "m",
                                (-1, _) => "x",
                                _ => "p",
                            }),
                            text(""),
                            boolean(!field.is_nullable()),
                            boolean(false),
                            boolean(false),
                            text(""),
                            text(""),
                            boolean(false),
                            boolean(true),
                            int4(0),
                            int4(if collatable(&ty) {
                                DEFAULT_COLLATION
                            } else {
                                0
                            }),
                            NULL,
                            NULL,
                            NULL,
                            NULL,
                        ]);
                    }
                }
                rows
            }
            "pg_index" => {
                let all = relations(database, &self.context).await;
                let by_oid: HashMap<i32, &Relation> = all.iter().map(|r| (r.oid, r)).collect();
                all.iter()
                    .filter(|r| r.kind == 'i')
                    .filter_map(|index| {
                        let table = by_oid.get(&index.indexes?)?;
                        let n = table.primary_key.len();
                        Some(vec![
                            int4(index.oid),
                            int4(table.oid),
                            int2(n as i16),
                            int2(n as i16),
                            boolean(true),
                            boolean(false),
                            boolean(true),
                            boolean(false),
                            boolean(true),
                            boolean(false),
                            boolean(true),
                            boolean(false),
                            boolean(true),
                            boolean(true),
                            boolean(false),
                            int2_list(&table.primary_key),
                            int4_list(&vec![0; n]),
                            int4_list(&vec![0; n]),
                            int2_list(&vec![0; n]),
                            NULL,
                            NULL,
                        ])
                    })
                    .collect()
            }
            "pg_constraint" => relations(database, &self.context)
                .await
                .iter()
                .filter(|r| !r.primary_key.is_empty())
                .map(|table| {
                    vec![
                        int4(constraint_oid(table)),
                        text(table.pk_index_name()),
                        int4(namespace_oid(database, &table.schema)),
                        text("p"),
                        boolean(false),
                        boolean(false),
                        boolean(true),
                        int4(table.oid),
                        int4(0),
                        int4(stable_oid("index", &[database, &table.schema, &table.name])),
                        int4(0),
                        int4(0),
                        text(" "),
                        text(" "),
                        text(" "),
                        boolean(true),
                        int4(0),
                        boolean(true),
                        int2_list(&table.primary_key),
                        NULL,
                        NULL,
                        NULL,
                        NULL,
                        NULL,
                        NULL,
                        NULL,
                    ]
                })
                .collect(),
            "pg_database" => {
                let mut names = self.context.catalogs.catalog_names();
                names.sort();
                names
                    .iter()
                    .map(|n| {
                        vec![
                            int4(stable_oid("database", &[n])),
                            text(n),
                            int4(OWNER),
                            int4(6), // UTF8
                            text("c"),
                            boolean(false),
                            boolean(true),
                            int4(-1),
                            int4(0),
                            int4(0),
                            int4(1663),
                            text("C"),
                            text("C"),
                            NULL,
                            NULL,
                            NULL,
                        ]
                    })
                    .collect()
            }
            "pg_tables" => relations(database, &self.context)
                .await
                .iter()
                .filter(|r| r.kind == 'r')
                .map(|r| {
                    vec![
                        text(&r.schema),
                        text(&r.name),
                        text(&user),
                        NULL,
                        boolean(!r.primary_key.is_empty()),
                        boolean(false),
                        boolean(false),
                        boolean(false),
                    ]
                })
                .collect(),
            "pg_views" => relations(database, &self.context)
                .await
                .iter()
                .filter(|r| r.kind == 'v' && r.schema != PG_CATALOG)
                .map(|r| vec![text(&r.schema), text(&r.name), text(&user), NULL])
                .collect(),
            "pg_indexes" => {
                let all = relations(database, &self.context).await;
                let by_oid: HashMap<i32, &Relation> = all.iter().map(|r| (r.oid, r)).collect();
                let definitions = definitions()
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                all.iter()
                    .filter(|r| r.kind == 'i')
                    .filter_map(|index| {
                        let table = by_oid.get(&index.indexes?)?;
                        Some(vec![
                            text(&table.schema),
                            text(&table.name),
                            text(&index.name),
                            NULL,
                            definitions
                                .get(&index.oid)
                                .map(|d| text(&d.text))
                                .unwrap_or(NULL),
                        ])
                    })
                    .collect()
            }
            "pg_stat_user_tables" => relations(database, &self.context)
                .await
                .iter()
                .filter(|r| r.kind == 'r')
                .map(|r| {
                    let mut row = vec![int4(r.oid), text(&r.schema), text(&r.name)];
                    row.extend((0..8).map(|_| int8(0)));
                    row.push(int8(r.rows.map(|n| n as i64).unwrap_or(0)));
                    row.extend((0..3).map(|_| int8(0)));
                    row.extend((0..4).map(|_| NULL));
                    row.extend((0..4).map(|_| int8(0)));
                    row
                })
                .collect(),
            "pg_roles" => vec![vec![
                text(&user),
                boolean(true),
                boolean(true),
                boolean(true),
                boolean(true),
                boolean(true),
                boolean(false),
                int4(-1),
                text("********"),
                NULL,
                boolean(true),
                NULL,
                int4(OWNER),
            ]],
            "pg_user" => vec![vec![
                text(&user),
                int4(OWNER),
                boolean(true),
                boolean(true),
                boolean(false),
                boolean(true),
                text("********"),
                NULL,
                NULL,
            ]],
            "pg_settings" => {
                let settings = self
                    .context
                    .settings
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                settings
                    .iter()
                    .map(|(name, value)| {
                        vec![
                            text(name),
                            text(value),
                            NULL,
                            text("Koios"),
                            text(""),
                            NULL,
                            text("user"),
                            text("string"),
                            text("session"),
                            NULL,
                            NULL,
                            NULL,
                            text(value),
                            text(value),
                            NULL,
                            NULL,
                            boolean(false),
                        ]
                    })
                    .collect()
            }
            _ => Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_depend_only_on_names() {
        let oid = stable_oid("class", &["pg", "public", "nation_stats"]);
        // A constant: the same in every process, session and release.
        assert_eq!(oid, stable_oid("class", &["pg", "public", "nation_stats"]));
        assert!(oid >= 16384);
        assert_ne!(oid, stable_oid("class", &["pg", "public", "nation_stat"]));
        // Parts are separated: ("ab", "c") is not ("a", "bc").
        assert_ne!(
            stable_oid("class", &["ab", "c"]),
            stable_oid("class", &["a", "bc"])
        );
        assert_eq!(namespace_oid("any", "public"), PUBLIC_NAMESPACE);
        assert_eq!(namespace_oid("any", "pg_catalog"), PG_CATALOG_NAMESPACE);
    }

    #[test]
    fn numeric_type_modifier_packs_precision_and_scale() {
        // PostgreSQL: numeric(10,2) has atttypmod ((10 << 16) | 2) + 4.
        assert_eq!(type_modifier(&DataType::Decimal128(10, 2)), 655366);
        assert_eq!(type_modifier(&DataType::Utf8), -1);
    }

    #[test]
    fn identifiers_are_quoted_like_postgresql() {
        assert_eq!(quote_ident("plain_1"), "plain_1");
        assert_eq!(quote_ident("Mixed"), "\"Mixed\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
