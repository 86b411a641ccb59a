//! Logical tables of the configuration file (`[[table]]`), put in place at
//! start: the entry is read as the same `CREATE TABLE … STRIPED` would be;
//! a table the metadata store does not hold yet is created (members
//! checked or created) and stored, so its round-robin pointer is kept like
//! any other; a stored one whose definition differs takes the file's (the
//! file is the operator's word) and keeps its pointer. While a member's
//! source is down, the table is served from its definition and its reads
//! name that member.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::ast::helpers::stmt_create_table::CreateTableBuilder;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::ddl::{LogicalWork, prepare_logical};
use super::statement::{LogicalStatement, Striping};
use super::{LogicalTable, TableOrigin};
use crate::engine::Engine;
use crate::engine::catalog::{DEFAULT_SCHEMA, KOIOS_CATALOG};
use crate::engine::config::{DeclaredStriping, TableSpec};
use crate::engine::error::{KoiosError, Result as KoiosResult};
use crate::engine::metadata::StoredLogicalTable;
use crate::engine::remote_ddl::Names;

/// `spec` as the statement that would create it.
fn statement(spec: &TableSpec) -> std::result::Result<LogicalStatement, String> {
    let dialect = PostgreSqlDialect {};
    let parser = |text: &str| {
        Parser::new(&dialect)
            .try_with_sql(text)
            .map_err(|e| e.to_string())
    };
    let name = parser(&spec.name)?
        .parse_object_name(false)
        .map_err(|e| format!("table.name: {e}"))?;
    // The column list as `CREATE TABLE (…)` reads it.
    let (columns, constraints) = parser(&format!("({})", spec.columns.join(", ")))?
        .parse_columns()
        .map_err(|e| format!("table.columns: {e}"))?;
    let members = spec
        .members
        .iter()
        .map(|m| {
            parser(m)?
                .parse_object_name(false)
                .map_err(|e| format!("table.members: {e}"))
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    let create = CreateTableBuilder::new(name)
        .columns(columns)
        .constraints(constraints)
        .build();
    Ok(LogicalStatement::CreateStriped {
        create: Box::new(create),
        striping: match &spec.striping {
            DeclaredStriping::Hash { key, copies } => {
                let options = match copies {
                    Some(c) => {
                        let mut options = vec![(
                            "copies".to_string(),
                            ast::Value::Number(c.copies.to_string(), false),
                        )];
                        options.extend(copy_options(c.write_quorum, c.read.as_deref()));
                        options
                    }
                    None => Vec::new(),
                };
                Striping::Hash(key.to_lowercase(), options)
            }
            DeclaredStriping::RoundRobin => Striping::RoundRobin,
            DeclaredStriping::Mirrored { write_quorum, read } => {
                Striping::Mirrored(copy_options(*write_quorum, read.as_deref()))
            }
        },
        members,
    })
}

/// `write_quorum` and `read` as the options of `WITH (…)`.
fn copy_options(write_quorum: Option<u32>, read: Option<&str>) -> Vec<(String, ast::Value)> {
    let mut options = Vec::new();
    if let Some(quorum) = write_quorum {
        options.push((
            "write_quorum".to_string(),
            ast::Value::Number(quorum.to_string(), false),
        ));
    }
    if let Some(read) = read {
        options.push((
            "read".to_string(),
            ast::Value::SingleQuotedString(read.to_string()),
        ));
    }
    options
}

impl Engine {
    /// Puts the file's logical tables in place (see the module's doc).
    pub(crate) async fn declare_tables(&self, specs: &[TableSpec]) -> KoiosResult<()> {
        for spec in specs {
            let failed = |e: String| KoiosError::Config(format!("{}: [[table]]: {e}", spec.at));
            let statement = statement(spec).map_err(failed)?;
            let work = {
                let is_source = |name: &str| self.is_source(name);
                let names = Names {
                    database: KOIOS_CATALOG,
                    current_schema: DEFAULT_SCHEMA,
                    is_source: &is_source,
                };
                prepare_logical(&statement, &names, &is_source)
                    .map_err(|e| failed(crate::engine::error::sqlstate(&e).message))?
            };
            let LogicalWork::Create { definition, .. } = work else {
                return Err(failed("not a CREATE".into()));
            };
            let key = definition.key();
            let stored = self.logical_table(&definition.schema, &definition.table);
            let all_up = definition
                .members
                .iter()
                .all(|m| self.live_source(&m.source).is_ok());
            match stored {
                Some(existing) if existing.definition == definition => {}
                None if all_up => {
                    self.run_logical(LogicalWork::Create {
                        definition: definition.clone(),
                        if_not_exists: false,
                    })
                    .await
                    .map_err(|e| failed(crate::engine::error::sqlstate(&e).message))?;
                }
                existing => {
                    // Replaced, or served unchecked while a source is down.
                    let position = existing
                        .as_ref()
                        .map(|t| t.position.load(std::sync::atomic::Ordering::Acquire))
                        .unwrap_or(0);
                    let created_at = existing
                        .as_ref()
                        .map(|t| t.created_at.clone())
                        .unwrap_or_else(|| {
                            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
                        });
                    self.store.delete_logical_table(&key).await?;
                    self.store
                        .insert_logical_table(&StoredLogicalTable {
                            name: key.clone(),
                            definition: definition.to_json()?,
                            position,
                            created_at,
                        })
                        .await?;
                    if !all_up {
                        tracing::warn!(table = %definition.display_name(), "a member's source is down: the [[table]] is served without checking its members");
                    }
                }
            }
            let logical = self.logical_table(&definition.schema, &definition.table);
            let (position, created_at) = logical
                .map(|t| {
                    (
                        t.position.load(std::sync::atomic::Ordering::Acquire),
                        t.created_at.clone(),
                    )
                })
                .unwrap_or_else(|| {
                    (
                        0,
                        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    )
                });
            let table = LogicalTable::new(
                definition,
                position,
                TableOrigin::File,
                created_at,
                Arc::clone(&self.store),
            )?;
            self.logical
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, Arc::new(table));
        }
        Ok(())
    }
}
