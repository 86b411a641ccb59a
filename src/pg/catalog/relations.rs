//! The relations of one database (catalog) as PostgreSQL describes them —
//! tables, views, their primary-key indexes and constraints — with their
//! OIDs, and the lookups behind `pg_get_indexdef` / `pg_get_constraintdef`
//! and `::regclass::text`.
//!
//! OIDs of user objects are a hash of their names ([`stable_oid`]): the same
//! table has the same OID in every session and after a restart, which pooled
//! clients (JDBC, DBeaver) rely on when they cache what they resolved.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::Constraint;
use datafusion::datasource::TableType;

use super::pg_catalog::{system_schema, system_table_names};
use super::{INFORMATION_SCHEMA, PG_CATALOG, SystemContext, table_or_none};
use crate::engine::settings::quote_ident;

/// OID of the `pg_catalog` namespace in every PostgreSQL cluster.
pub const PG_CATALOG_NAMESPACE: i32 = 11;
/// OID of `public` in every PostgreSQL database.
pub const PUBLIC_NAMESPACE: i32 = 2200;
/// OID of the bootstrap superuser, the owner of everything.
pub const OWNER: i32 = 10;
/// `pg_am` OID of btree, the access method primary keys are reported with.
pub(super) const BTREE: i32 = 403;
/// `pg_collation` OID of the database default collation.
pub(super) const DEFAULT_COLLATION: i32 = 100;

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
}
