//! Discovery from `information_schema`: the databases a source exposes
//! (as schemas), their tables, and each table's columns, codecs,
//! collations, keys and row estimate.

use std::sync::Arc;

use datafusion::arrow::datatypes::*;
use datafusion::error::Result;
use koios_connector_sql::defaults::{DefaultQuoting, constant_default};
use koios_connector_sql::{RemoteColumn, RemoteTable, RemoteTableName};
use mysql_async::prelude::Queryable;

use crate::backend::MyBackend;
use crate::error::remote_error;
use crate::types::MyCodec;

/// Databases that hold the server's own metadata.
const SYSTEM_DATABASES: &[&str] = &["information_schema", "mysql", "performance_schema", "sys"];

impl MyBackend {
    pub(crate) async fn list_schemas(&self) -> Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let all: Vec<String> = conn
            .exec(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1",
                (),
            )
            .await
            .map_err(|e| remote_error(&self.context("listing databases"), &e))?;
        Ok(koios_connector::catalog::exposed_databases(
            all,
            self.options.databases.as_deref(),
            self.url_database.as_deref(),
            SYSTEM_DATABASES,
        ))
    }

    pub(crate) async fn list_tables(&self, schema: &str) -> Result<Vec<String>> {
        let mut conn = self.conn().await?;
        conn.exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1",
            (schema,),
        )
        .await
        .map_err(|e| remote_error(&self.context("listing tables"), &e))
    }

    pub(crate) async fn describe_table(
        &self,
        name: &RemoteTableName,
    ) -> Result<Option<RemoteTable<MyCodec>>> {
        let mut conn = self.conn().await?;
        let context = self.context(&format!("describing {name}"));
        let table: Option<(String, Option<u64>)> = conn
            .exec_first(
                "SELECT TABLE_TYPE, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&name.schema, &name.table),
            )
            .await
            .map_err(|e| remote_error(&context, &e))?;
        let Some((table_type, rows)) = table else {
            return Ok(None);
        };
        type ColumnRow = (
            String,
            String,
            String,
            Option<u64>,
            Option<u64>,
            Option<String>,
            String,
            Option<String>,
            String,
        );
        let described: Vec<ColumnRow> = conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, COLLATION_NAME, IS_NULLABLE, COLUMN_DEFAULT, EXTRA \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (&name.schema, &name.table),
            )
            .await
            .map_err(|e| remote_error(&context, &e))?;
        let mut columns = Vec::with_capacity(described.len());
        for (
            column,
            data_type,
            column_type,
            precision,
            scale,
            collation,
            nullable,
            default,
            extra,
        ) in described
        {
            let data_type = data_type.to_ascii_lowercase();
            let mapped = MyCodec::for_column(
                &data_type,
                &column_type,
                precision,
                scale,
                collation.as_deref(),
            );
            let Some(codec) = self.options.sql.column_codec(
                mapped,
                || MyCodec::Cast,
                &self.source,
                &name.to_string(),
                &column,
                &column_type,
            )?
            else {
                continue;
            };
            let field = Arc::new(Field::new(&column, codec.data_type(), nullable == "YES"));
            // MariaDB reports a missing default as the text NULL.
            let default = default.filter(|text| !text.eq_ignore_ascii_case("null"));
            let constant = default.as_deref().and_then(|text| {
                constant_default(text, field.data_type(), DefaultQuoting::BackslashEscapes)
            });
            // `auto_increment`, `VIRTUAL GENERATED`, `STORED GENERATED`.
            let extra = extra.to_ascii_lowercase();
            let computed = extra.contains("auto_increment") || extra.contains("generated");
            columns.push(RemoteColumn {
                name: column,
                remote_type: column_type,
                field,
                codec,
                server_default: computed || (default.is_some() && constant.is_none()),
                default: constant,
            });
        }
        let keys: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY'",
                (&name.schema, &name.table),
            )
            .await
            .map_err(|e| remote_error(&context, &e))?;
        let split_column = match keys.as_slice() {
            [key]
                if columns
                    .iter()
                    .any(|c| &c.name == key && matches!(c.codec, MyCodec::Int { .. })) =>
            {
                Some(key.clone())
            }
            _ => None,
        };
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Arc::clone(&c.field))
                .collect::<Vec<_>>(),
        ));
        let is_view = table_type.eq_ignore_ascii_case("VIEW");
        Ok(Some(RemoteTable {
            source: self.source.clone(),
            name: name.clone(),
            columns,
            schema,
            pseudo_columns: Vec::new(),
            row_estimate: rows,
            split_column,
            primary_key: keys,
            is_view,
        }))
    }
}
