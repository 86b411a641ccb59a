//! Discovery from `pg_catalog`: the schemas and tables a source exposes,
//! and each table's columns, codecs, collations, keys and row estimate.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::Result;
use koios_connector_sql::defaults::{DefaultQuoting, constant_default};
use koios_connector_sql::{RemoteColumn, RemoteTable, RemoteTableName};

use crate::backend::PgBackend;
use crate::transaction::Pinned;
use crate::types::PgCodec;

/// Collations under which PostgreSQL orders text as DataFusion does (by bytes).
const BYTEWISE_COLLATIONS: &[&str] = &["C", "POSIX", "C.UTF-8", "C.utf8", "ucs_basic"];

impl PgBackend {
    pub(crate) async fn list_schemas(&self) -> Result<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT nspname::text FROM pg_catalog.pg_namespace \
                 WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
                   AND nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%' \
                 ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| self.db_error("listing schemas", e))?;
        Ok(rows
            .iter()
            .map(|r| r.get::<_, String>(0))
            .filter(|s| {
                self.options
                    .schemas
                    .as_ref()
                    .is_none_or(|wanted| wanted.contains(s))
            })
            .collect())
    }

    pub(crate) async fn list_tables(&self, schema: &str) -> Result<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.relname::text FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'p', 'f') ORDER BY 1",
                &[&schema],
            )
            .await
            .map_err(|e| self.db_error("listing tables", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub(crate) async fn describe_table(
        &self,
        name: &RemoteTableName,
        pinned: Option<Arc<Pinned>>,
    ) -> Result<Option<RemoteTable<PgCodec>>> {
        let connection = self.connection(pinned).await?;
        let client = connection.client()?;
        let Some(relation) = client
            .query_opt(
                "SELECT c.oid, c.relkind::text, greatest(c.reltuples, 0)::float8 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'v', 'm', 'p', 'f')",
                &[&name.schema, &name.table],
            )
            .await
            .map_err(|e| self.db_error(&format!("describing {name}"), e))?
        else {
            return Ok(None);
        };
        let oid: u32 = relation.get(0);
        let kind: String = relation.get(1);
        let estimate: f64 = relation.get(2);
        let database_bytewise = self.database_collation_bytewise(client).await?;
        let rows = client
            .query(
                "SELECT a.attname::text, \
                        CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END AS type_oid, \
                        CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS typmod, \
                        format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                        coalesce(bt.typtype, t.typtype)::text, coalesce(bt.typname, t.typname)::text, \
                        coalesce(bt.typcategory, t.typcategory)::text, coalesce(bt.typelem, t.typelem), \
                        coalesce(et.typname::text, ''), coalesce(et.typtype::text, ''), \
                        coalesce(co.collname::text, ''), coalesce(co.collisdeterministic, true), \
                        pg_catalog.pg_get_expr(d.adbin, d.adrelid), \
                        a.attidentity <> '' OR a.attgenerated <> '' \
                 FROM pg_catalog.pg_attribute a \
                 JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_catalog.pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
                 LEFT JOIN pg_catalog.pg_type et ON et.oid = coalesce(bt.typelem, t.typelem) AND coalesce(bt.typcategory, t.typcategory) = 'A' \
                 LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
                 LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&oid],
            )
            .await
            .map_err(|e| self.db_error(&format!("describing {name}"), e))?;
        let mut columns = Vec::with_capacity(rows.len());
        for row in &rows {
            let column: String = row.get(0);
            let type_oid: u32 = row.get(1);
            let typmod: i32 = row.get(2);
            let written: String = row.get(3);
            let not_null: bool = row.get(4);
            let typtype: String = row.get(5);
            let typname: String = row.get(6);
            let category: String = row.get(7);
            let element_oid: u32 = row.get(8);
            let element_name: String = row.get(9);
            let element_typtype: String = row.get(10);
            let collation: String = row.get(11);
            let deterministic: bool = row.get(12);
            let default: Option<String> = row.get(13);
            let identity_or_generated: bool = row.get(14);
            let bytewise = match collation.as_str() {
                "" | "default" => database_bytewise,
                c => BYTEWISE_COLLATIONS.contains(&c),
            };
            let codec = if category == "A" && element_oid != 0 {
                PgCodec::for_type(
                    element_oid,
                    &element_name,
                    &element_typtype,
                    -1,
                    bytewise,
                    deterministic,
                )
                .map(|e| PgCodec::Array {
                    element: Box::new(e),
                    element_oid,
                })
            } else {
                PgCodec::for_type(
                    type_oid,
                    &typname,
                    &typtype,
                    typmod,
                    bytewise,
                    deterministic,
                )
            };
            let Some(codec) = self.options.sql.column_codec(
                codec,
                PgCodec::as_text,
                &self.source,
                &name.to_string(),
                &column,
                &written,
            )?
            else {
                continue;
            };
            let field = Arc::new(Field::new(&column, codec.data_type(), !not_null));
            let constant = default.as_deref().and_then(|text| {
                constant_default(text, field.data_type(), DefaultQuoting::Standard)
            });
            columns.push(RemoteColumn {
                name: column,
                remote_type: written,
                field,
                codec,
                server_default: identity_or_generated || (default.is_some() && constant.is_none()),
                default: constant,
            });
        }
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Arc::clone(&c.field))
                .collect::<Vec<_>>(),
        ));
        let is_view = kind == "v";
        let primary_key = client
            .query(
                "SELECT a.attname::text FROM pg_catalog.pg_index i \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = $1 AND i.indisprimary",
                &[&oid],
            )
            .await
            .map_err(|e| self.db_error(&format!("describing {name}"), e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(Some(RemoteTable {
            source: self.source.clone(),
            name: name.clone(),
            columns,
            schema,
            pseudo_columns: if is_view {
                Vec::new()
            } else {
                vec![Field::new("ctid", DataType::Utf8, false)]
            },
            // reltuples is -1 until the table is first vacuumed or analyzed.
            row_estimate: (!is_view && estimate >= 0.0).then_some(estimate as u64),
            split_column: None,
            primary_key,
            is_view,
        }))
    }

    async fn database_collation_bytewise(&self, client: &tokio_postgres::Client) -> Result<bool> {
        let row = client
            .query_one(
                "SELECT datcollate FROM pg_database WHERE datname = current_database()",
                &[],
            )
            .await
            .map_err(|e| self.db_error("reading the database collation", e))?;
        let collate: String = row.get(0);
        Ok(BYTEWISE_COLLATIONS.contains(&collate.as_str()))
    }
}
