//! The rows of the `pg_catalog` tables Koios builds itself (`pg_class`,
//! `pg_attribute`, `pg_index`, `pg_settings` …), computed from the live
//! catalog at each scan.

use std::collections::HashMap;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use postgres_types::Type;

use super::pg_catalog::CatalogTable;
use super::relations::{
    BTREE, DEFAULT_COLLATION, OWNER, Relation, constraint_oid, definitions, namespace_oid,
    relations, stable_oid,
};
use super::rows::{
    NULL, Row, RowSource, boolean, collatable, int2, int2_list, int4, int4_list, int8, is_list,
    text,
};
use super::{INFORMATION_SCHEMA, PG_CATALOG};
use crate::pg::types::{innermost, pg_type, type_size};

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
            "pg_stat_activity" => super::pg_stat_activity::rows(&self.context),
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
    fn numeric_type_modifier_packs_precision_and_scale() {
        // PostgreSQL: numeric(10,2) has atttypmod ((10 << 16) | 2) + 4.
        assert_eq!(type_modifier(&DataType::Decimal128(10, 2)), 655366);
        assert_eq!(type_modifier(&DataType::Utf8), -1);
    }
}
