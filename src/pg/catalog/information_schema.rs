//! `information_schema` as PostgreSQL presents it (`columns.udt_name`,
//! `table_constraints`, `key_column_usage` …), over every catalog.
//!
//! Like DataFusion's own, which it replaces, it lists every catalog
//! (`table_catalog` tells them apart), not only the session's database. Koios
//! adds one column, `columns.arrow_type`: the Arrow type DataFusion computes
//! with. DataFusion's `df_settings`, `routines` and `parameters` are kept.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use postgres_types::Type;

use super::relations::relations;
use super::rows::{BuiltTable, Col, NULL, Row, RowSource, int4, is_list, schema_of, text};
use super::{INFORMATION_SCHEMA, PG_CATALOG, SystemContext};
use crate::pg::types::{innermost, pg_type};

/// Tables Koios builds; the rest come from DataFusion.
const OWN_TABLES: &[&str] = &[
    "schemata",
    "tables",
    "columns",
    "views",
    "table_constraints",
    "key_column_usage",
];

use Col::*;

const SCHEMATA: &[(&str, Col)] = &[
    ("catalog_name", Name),
    ("schema_name", Name),
    ("schema_owner", Name),
    ("default_character_set_catalog", Name),
    ("default_character_set_schema", Name),
    ("default_character_set_name", Name),
    ("sql_path", Text),
];

const TABLES: &[(&str, Col)] = &[
    ("table_catalog", Name),
    ("table_schema", Name),
    ("table_name", Name),
    ("table_type", Text),
    ("self_referencing_column_name", Name),
    ("reference_generation", Text),
    ("user_defined_type_catalog", Name),
    ("user_defined_type_schema", Name),
    ("user_defined_type_name", Name),
    ("is_insertable_into", Text),
    ("is_typed", Text),
    ("commit_action", Text),
];

const COLUMNS: &[(&str, Col)] = &[
    ("table_catalog", Name),
    ("table_schema", Name),
    ("table_name", Name),
    ("column_name", Name),
    ("ordinal_position", Int4),
    ("column_default", Text),
    ("is_nullable", Text),
    ("data_type", Text),
    ("character_maximum_length", Int4),
    ("character_octet_length", Int4),
    ("numeric_precision", Int4),
    ("numeric_precision_radix", Int4),
    ("numeric_scale", Int4),
    ("datetime_precision", Int4),
    ("interval_type", Text),
    ("interval_precision", Int4),
    ("collation_name", Name),
    ("domain_name", Name),
    ("udt_catalog", Name),
    ("udt_schema", Name),
    ("udt_name", Name),
    ("dtd_identifier", Name),
    ("is_self_referencing", Text),
    ("is_identity", Text),
    ("identity_generation", Text),
    ("is_generated", Text),
    ("generation_expression", Text),
    ("is_updatable", Text),
    ("arrow_type", Text),
];

const VIEWS: &[(&str, Col)] = &[
    ("table_catalog", Name),
    ("table_schema", Name),
    ("table_name", Name),
    ("view_definition", Text),
    ("check_option", Text),
    ("is_updatable", Text),
    ("is_insertable_into", Text),
    ("is_trigger_updatable", Text),
    ("is_trigger_deletable", Text),
    ("is_trigger_insertable_into", Text),
];

const TABLE_CONSTRAINTS: &[(&str, Col)] = &[
    ("constraint_catalog", Name),
    ("constraint_schema", Name),
    ("constraint_name", Name),
    ("table_catalog", Name),
    ("table_schema", Name),
    ("table_name", Name),
    ("constraint_type", Text),
    ("is_deferrable", Text),
    ("initially_deferred", Text),
    ("enforced", Text),
    ("nulls_distinct", Text),
];

const KEY_COLUMN_USAGE: &[(&str, Col)] = &[
    ("constraint_catalog", Name),
    ("constraint_schema", Name),
    ("constraint_name", Name),
    ("table_catalog", Name),
    ("table_schema", Name),
    ("table_name", Name),
    ("column_name", Name),
    ("ordinal_position", Int4),
    ("position_in_unique_constraint", Int4),
];

fn columns_of(name: &str) -> Option<&'static [(&'static str, Col)]> {
    Some(match name {
        "schemata" => SCHEMATA,
        "tables" => TABLES,
        "columns" => COLUMNS,
        "views" => VIEWS,
        "table_constraints" => TABLE_CONSTRAINTS,
        "key_column_usage" => KEY_COLUMN_USAGE,
        _ => return None,
    })
}

/// The `information_schema` schema.
#[derive(Debug)]
pub struct InformationSchema {
    context: Arc<SystemContext>,
}

impl InformationSchema {
    pub fn new(context: Arc<SystemContext>) -> Self {
        Self { context }
    }

    fn datafusion(&self) -> InformationSchemaProvider {
        InformationSchemaProvider::new(Arc::clone(&self.context.catalogs))
    }
}

#[async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.datafusion().table_names();
        names.extend(OWN_TABLES.iter().map(|s| s.to_string()));
        names.sort();
        names.dedup();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let name = name.to_ascii_lowercase();
        match columns_of(&name) {
            Some(columns) => Ok(Some(Arc::new(BuiltTable {
                schema: schema_of(columns),
                source: InformationTable {
                    name,
                    context: Arc::clone(&self.context),
                },
            }))),
            None => self.datafusion().table(&name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        columns_of(&name).is_some() || self.datafusion().table_exist(&name)
    }
}

/// An `information_schema` table (over every catalog).
#[derive(Debug)]
struct InformationTable {
    name: String,
    context: Arc<SystemContext>,
}

/// `information_schema.columns.data_type` of a PostgreSQL type.
pub fn sql_type_name(ty: &Type, dt: &DataType) -> &'static str {
    if is_list(dt) {
        return "ARRAY";
    }
    match *ty {
        Type::BOOL => "boolean",
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double precision",
        Type::NUMERIC => "numeric",
        Type::TEXT => "text",
        Type::BYTEA => "bytea",
        Type::DATE => "date",
        Type::TIME => "time without time zone",
        Type::TIMESTAMP => "timestamp without time zone",
        Type::TIMESTAMPTZ => "timestamp with time zone",
        Type::INTERVAL => "interval",
        Type::UUID => "uuid",
        Type::JSON => "json",
        Type::JSONB => "jsonb",
        _ => "USER-DEFINED",
    }
}

fn yes_no(value: bool) -> ScalarValue {
    text(if value { "YES" } else { "NO" })
}

#[async_trait]
impl RowSource for InformationTable {
    async fn rows(&self) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        let mut databases = self.context.catalogs.catalog_names();
        databases.sort();
        for database in databases {
            let db = database.as_str();
            if self.name == "schemata" {
                let mut names = self
                    .context
                    .catalogs
                    .catalog(db)
                    .map(|c| c.schema_names())
                    .unwrap_or_default();
                names.retain(|n| n != PG_CATALOG && n != INFORMATION_SCHEMA);
                names.extend([PG_CATALOG.to_string(), INFORMATION_SCHEMA.to_string()]);
                names.sort();
                for schema in names {
                    rows.push(vec![
                        text(db),
                        text(schema),
                        text(&self.context.user),
                        NULL,
                        NULL,
                        NULL,
                        NULL,
                    ]);
                }
                continue;
            }
            let user_relations = relations(db, &self.context)
                .await
                .into_iter()
                .filter(|r| r.schema != PG_CATALOG && r.kind != 'i');
            for r in user_relations {
                let (schema, name) = (r.schema.as_str(), r.name.as_str());
                match self.name.as_str() {
                    "tables" => rows.push(vec![
                        text(db),
                        text(schema),
                        text(name),
                        text(if r.kind == 'v' { "VIEW" } else { "BASE TABLE" }),
                        NULL,
                        NULL,
                        NULL,
                        NULL,
                        NULL,
                        yes_no(r.kind == 'r'),
                        text("NO"),
                        NULL,
                    ]),
                    "views" if r.kind == 'v' => rows.push(vec![
                        text(db),
                        text(schema),
                        text(name),
                        NULL,
                        text("NONE"),
                        text("NO"),
                        text("NO"),
                        text("NO"),
                        text("NO"),
                        text("NO"),
                    ]),
                    "columns" => {
                        for (i, field) in r.fields.fields().iter().enumerate() {
                            let dt = field.data_type();
                            let ty = pg_type(dt);
                            let (precision, radix, scale) = match innermost(field).data_type() {
                                _ if is_list(dt) => (NULL, NULL, NULL),
                                DataType::Int16 | DataType::Int8 | DataType::UInt8 => {
                                    (int4(16), int4(2), int4(0))
                                }
                                DataType::Int32 | DataType::UInt16 => (int4(32), int4(2), int4(0)),
                                DataType::Int64 | DataType::UInt32 => (int4(64), int4(2), int4(0)),
                                DataType::Float16 | DataType::Float32 => (int4(24), int4(2), NULL),
                                DataType::Float64 => (int4(53), int4(2), NULL),
                                DataType::Decimal32(p, s)
                                | DataType::Decimal64(p, s)
                                | DataType::Decimal128(p, s)
                                | DataType::Decimal256(p, s) => {
                                    (int4(i32::from(*p)), int4(10), int4(i32::from(*s)))
                                }
                                _ => (NULL, NULL, NULL),
                            };
                            let datetime_precision = match ty {
                                Type::DATE => int4(0),
                                Type::TIME
                                | Type::TIMESTAMP
                                | Type::TIMESTAMPTZ
                                | Type::INTERVAL => int4(6),
                                _ => NULL,
                            };
                            rows.push(vec![
                                text(db),
                                text(schema),
                                text(name),
                                text(field.name()),
                                int4(i as i32 + 1),
                                NULL,
                                yes_no(field.is_nullable()),
                                text(sql_type_name(&ty, dt)),
                                NULL,
                                if ty == Type::TEXT {
                                    int4(1_073_741_824)
                                } else {
                                    NULL
                                },
                                precision,
                                radix,
                                scale,
                                datetime_precision,
                                NULL,
                                NULL,
                                NULL,
                                NULL,
                                text(db),
                                text(PG_CATALOG),
                                text(ty.name()),
                                text((i + 1).to_string()),
                                text("NO"),
                                text("NO"),
                                NULL,
                                text("NEVER"),
                                NULL,
                                yes_no(r.kind == 'r'),
                                text(dt.to_string()),
                            ]);
                        }
                    }
                    "table_constraints" if !r.primary_key.is_empty() => rows.push(vec![
                        text(db),
                        text(schema),
                        text(r.pk_index_name()),
                        text(db),
                        text(schema),
                        text(name),
                        text("PRIMARY KEY"),
                        text("NO"),
                        text("NO"),
                        text("YES"),
                        text("YES"),
                    ]),
                    "key_column_usage" => {
                        for (position, attnum) in r.primary_key.iter().enumerate() {
                            let Some(field) = r.fields.fields().get(*attnum as usize - 1) else {
                                continue;
                            };
                            rows.push(vec![
                                text(db),
                                text(schema),
                                text(r.pk_index_name()),
                                text(db),
                                text(schema),
                                text(name),
                                text(field.name()),
                                int4(position as i32 + 1),
                                NULL,
                            ]);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(rows)
    }
}
