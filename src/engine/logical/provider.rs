//! The striped table as clients see it: a DataFusion table in the schema
//! `koios.public`, which holds Koios's in-memory tables too.
//!
//! Each lookup of a logical table's name resolves its members through
//! their sources ([`LogicalTableProvider`] is that snapshot): a member whose source
//! is down carries its error (08006) instead of a table, and the planner
//! ([`super::expand`]) refuses the query — or, with
//! `koios.allow_partial_results`, leaves that member out with a warning.
//! The table's columns take the members' type where they all agree (so no
//! cast stands between a filter and the member it is pushed into), else
//! the declared type.

use std::sync::{Arc, Weak};

use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::{Constraint, Constraints};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use koios_connector::sqlstate::SqlStateError;

use super::LogicalTable;
use super::definition::MemberName;
use crate::engine::Engine;
use crate::engine::error::codes;
use crate::engine::sources::health::SourceHealth;

/// `koios.public`: Koios's in-memory tables and its logical tables.
#[derive(Debug)]
pub struct KoiosSchema {
    memory: Arc<MemorySchemaProvider>,
    engine: Weak<Engine>,
    name: String,
}

impl KoiosSchema {
    pub fn new(memory: Arc<MemorySchemaProvider>, engine: Weak<Engine>, name: &str) -> KoiosSchema {
        KoiosSchema {
            memory,
            engine,
            name: name.to_string(),
        }
    }
}

#[async_trait]
impl SchemaProvider for KoiosSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.memory.table_names();
        if let Some(engine) = self.engine.upgrade() {
            for table in engine.logical_tables().values() {
                if table.definition.schema == self.name {
                    names.push(table.definition.table.clone());
                }
            }
        }
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(engine) = self.engine.upgrade()
            && let Some(table) = engine.logical_table(&self.name, name)
        {
            return Ok(Some(Arc::new(
                LogicalTableProvider::resolve(&engine, table).await?,
            )));
        }
        self.memory.table(name).await
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(engine) = self.engine.upgrade()
            && engine.logical_table(&self.name, &name).is_some()
        {
            return koios_connector::sql_err!(
                codes::DUPLICATE_TABLE,
                "relation \"{name}\" already exists (a striped table)"
            );
        }
        self.memory.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.memory.deregister_table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.memory.table_exist(name)
            || self
                .engine
                .upgrade()
                .is_some_and(|e| e.logical_table(&self.name, name).is_some())
    }
}

/// Why a member could not be read.
#[derive(Debug, Clone)]
pub struct MemberError {
    pub code: &'static str,
    pub message: String,
}

impl MemberError {
    /// The error of a query that needed this member of `table` (as
    /// [`LogicalTable::described`] names it).
    pub fn to_error(&self, table: &str, member: &MemberName) -> DataFusionError {
        SqlStateError::new(
            self.code,
            format!("{table}: member {member} is unavailable: {}", self.message),
        )
        .into_datafusion()
    }
}

/// One member as resolved for a query.
#[derive(Debug, Clone)]
pub struct ResolvedMember {
    pub name: MemberName,
    /// Its position among the table's members (placement counts in it).
    pub index: usize,
    pub provider: std::result::Result<Arc<dyn TableProvider>, MemberError>,
    /// Its source's health, read when a query runs (mirrored reads choose
    /// a copy by it); `None` if the source is unknown.
    pub health: Option<Arc<SourceHealth>>,
}

/// A striped table with its members resolved.
#[derive(Debug)]
pub struct LogicalTableProvider {
    pub table: Arc<LogicalTable>,
    pub members: Vec<ResolvedMember>,
    schema: SchemaRef,
    /// The declared primary key (clients' catalogs show it).
    constraints: Option<Constraints>,
}

impl LogicalTableProvider {
    /// Looks every member up in its source.
    pub async fn resolve(
        engine: &Engine,
        table: Arc<LogicalTable>,
    ) -> Result<LogicalTableProvider> {
        let lookups = table
            .definition
            .members
            .iter()
            .map(|member| resolve_member(engine, member));
        let providers = futures::future::join_all(lookups).await;
        let members: Vec<ResolvedMember> = table
            .definition
            .members
            .iter()
            .zip(providers)
            .enumerate()
            .map(|(index, (name, provider))| ResolvedMember {
                health: engine.source_health(&name.source),
                name: name.clone(),
                index,
                provider,
            })
            .collect();
        let schema = Self::schema_over(&table, &members);
        let key: Option<Vec<usize>> = table
            .definition
            .primary_key
            .iter()
            .map(|k| schema.index_of(k).ok())
            .collect();
        let constraints = key
            .filter(|k| !k.is_empty())
            .map(|k| Constraints::new_unverified(vec![Constraint::PrimaryKey(k)]));
        Ok(LogicalTableProvider {
            table,
            members,
            schema,
            constraints,
        })
    }

    /// Each column in the type every available member gives it, or the
    /// declared type where they differ.
    fn schema_over(table: &LogicalTable, members: &[ResolvedMember]) -> SchemaRef {
        let fields = table
            .declared
            .fields()
            .iter()
            .map(|declared| {
                let mut types = members.iter().filter_map(|m| {
                    let provider = m.provider.as_ref().ok()?;
                    let schema = provider.schema();
                    schema
                        .field_with_name(declared.name())
                        .ok()
                        .map(|f| f.data_type().clone())
                });
                let data_type = match types.next() {
                    Some(first) if types.all(|t| t == first) => first,
                    _ => declared.data_type().clone(),
                };
                let nullable = table
                    .definition
                    .columns
                    .iter()
                    .find(|c| &c.name == declared.name())
                    .is_none_or(|c| c.nullable);
                Field::new(declared.name(), data_type, nullable)
            })
            .collect::<Vec<_>>();
        Arc::new(Schema::new(fields))
    }

    /// `koios.schema.table`.
    pub fn display_name(&self) -> String {
        self.table.display_name()
    }

    /// `striped table koios.schema.table` / `mirrored table …`.
    pub fn described(&self) -> String {
        self.table.definition.described()
    }
}

pub(super) async fn resolve_member(
    engine: &Engine,
    member: &MemberName,
) -> std::result::Result<Arc<dyn TableProvider>, MemberError> {
    let failed = |e: DataFusionError| {
        let error = crate::engine::error::sqlstate(&e);
        MemberError {
            code: if error.code.starts_with("08") {
                codes::CONNECTION_FAILURE
            } else if error.code == codes::UNDEFINED_OBJECT {
                codes::UNDEFINED_OBJECT
            } else {
                codes::CONNECTION_FAILURE
            },
            message: error.message,
        }
    };
    let source = engine.live_source(&member.source).map_err(failed)?;
    let lookup = || async {
        match source.catalog().schema(&member.schema) {
            Some(schema) => schema.table(&member.table).await,
            None => Ok(None),
        }
    };
    let mut table = lookup().await.map_err(failed)?;
    if table.is_none() {
        // Created since the source's tables were listed (by another Koios
        // server sharing the metadata store, say): list them again once.
        source.refresh().await.map_err(failed)?;
        engine.catalog_changed();
        table = lookup().await.map_err(failed)?;
    }
    table.ok_or_else(|| MemberError {
        code: codes::UNDEFINED_TABLE,
        message: "the table does not exist in its source (dropped outside Koios?)".into(),
    })
}

#[async_trait]
impl TableProvider for LogicalTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.constraints.as_ref()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Exact: the expansion puts every filter above each member's scan,
        // where it is pushed further or evaluated.
        Ok(vec![TableProviderFilterPushDown::Exact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // The planner expands scans of striped tables before this is
        // reached (super::expand); a plan built another way reads through
        // the same expansion here.
        super::expand::scan_plan(self, state, projection, filters, limit).await
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        koios_connector::append_only(insert_op, &self.display_name())?;
        super::write::plan_insert(self, state, input, None).await
    }

    async fn delete_from(
        &self,
        state: &dyn Session,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        super::change::plan_change(self, state, filters, None).await
    }

    async fn update(
        &self,
        state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        super::change::plan_change(self, state, filters, Some(assignments)).await
    }
}
