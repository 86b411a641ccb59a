//! The logical node of a write Koios plans itself around DataFusion's
//! (an upsert, a change by primary key, an insert of some columns or with
//! `RETURNING`) and its physical planner, which asks the connector that
//! made the table (`Capabilities::plan_upsert`, `plan_keyed_change`,
//! `plan_insert`).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::common::DFSchemaRef;
use datafusion::error::Result;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use koios_connector::insert::ColumnInsert;
use koios_connector::remote_sql::KeyedChange;
use koios_connector::upsert::OnConflict;
use koios_connector::{Capabilities, sql_err, sql_error};

use crate::engine::error::codes;
use crate::engine::logical::provider::LogicalTableProvider;
use crate::engine::logical::upsert::MemberUpsert;
use crate::engine::logical::write::plan_insert;

/// What the node writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub enum RemoteWrite {
    /// `INSERT … ON CONFLICT` of the input's rows (the table's columns).
    Upsert(OnConflict),
    /// A change of the rows whose key the input lists (the key's columns,
    /// then an update's new values).
    ByKey(KeyedChange),
    /// An insert of the input's rows into some columns, the others left to
    /// the backend; returning the stored rows if asked.
    Insert(ColumnInsert),
}

impl RemoteWrite {
    fn describe(&self) -> String {
        match self {
            RemoteWrite::Upsert(on_conflict) => on_conflict.describe(),
            RemoteWrite::ByKey(KeyedChange::Delete) => "DELETE by key".into(),
            RemoteWrite::ByKey(KeyedChange::Update(set)) => {
                format!("UPDATE {} by key", set.join(", "))
            }
            RemoteWrite::Insert(insert) => insert.describe(),
        }
    }
}

/// A write of `input`'s rows into `table`.
pub struct RemoteWriteNode {
    table_name: String,
    table: Arc<dyn TableProvider>,
    write: RemoteWrite,
    input: LogicalPlan,
    /// One `count` column, as DataFusion's writes have.
    schema: DFSchemaRef,
}

impl RemoteWriteNode {
    /// The node as a plan.
    pub fn plan(
        table_name: String,
        table: Arc<dyn TableProvider>,
        write: RemoteWrite,
        input: LogicalPlan,
        schema: DFSchemaRef,
    ) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(RemoteWriteNode {
                table_name,
                table,
                write,
                input,
                schema,
            }),
        })
    }
}

impl fmt::Debug for RemoteWriteNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteWriteNode")
            .field("table", &self.table_name)
            .field("write", &self.write)
            .finish_non_exhaustive()
    }
}

impl PartialEq for RemoteWriteNode {
    fn eq(&self, other: &Self) -> bool {
        self.table_name == other.table_name
            && Arc::ptr_eq(&self.table, &other.table)
            && self.write == other.write
            && self.input == other.input
    }
}

impl Eq for RemoteWriteNode {}

impl Hash for RemoteWriteNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.table_name.hash(state);
        self.write.hash(state);
        self.input.hash(state);
    }
}

impl PartialOrd for RemoteWriteNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.table_name.partial_cmp(&other.table_name) {
            Some(Ordering::Equal) => self.write.partial_cmp(&other.write),
            order => order,
        }
    }
}

impl UserDefinedLogicalNodeCore for RemoteWriteNode {
    fn name(&self) -> &str {
        match self.write {
            RemoteWrite::Upsert(_) => "RemoteUpsert",
            RemoteWrite::ByKey(_) => "RemoteKeyedChange",
            RemoteWrite::Insert(_) => "RemoteInsert",
        }
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}: table={}, {}",
            UserDefinedLogicalNodeCore::name(self),
            self.table_name,
            self.write.describe()
        )
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let input = inputs
            .into_iter()
            .next()
            .ok_or_else(|| sql_error!(codes::INTERNAL_ERROR, "a write without its input"))?;
        Ok(RemoteWriteNode {
            table_name: self.table_name.clone(),
            table: Arc::clone(&self.table),
            write: self.write.clone(),
            input,
            schema: Arc::clone(&self.schema),
        })
    }
}

/// Plans [`RemoteWriteNode`]s with the connector that made the table.
#[derive(Debug)]
pub struct RemoteWritePlanner {
    capabilities: Capabilities,
}

impl RemoteWritePlanner {
    pub fn new(capabilities: Capabilities) -> Self {
        Self { capabilities }
    }
}

#[async_trait]
impl ExtensionPlanner for RemoteWritePlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn datafusion::catalog::Session,
        _planning: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(write) = node.as_any().downcast_ref::<RemoteWriteNode>() else {
            return Ok(None);
        };
        let Some(input) = physical_inputs.first() else {
            return sql_err!(codes::INTERNAL_ERROR, "a write without its input");
        };
        let table = write.table.as_ref();
        let input = Arc::clone(input);
        let planned = match &write.write {
            RemoteWrite::Upsert(on_conflict) => {
                if let Some(logical) = table.downcast_ref::<LogicalTableProvider>() {
                    let upsert = MemberUpsert {
                        on_conflict,
                        capabilities: &self.capabilities,
                    };
                    return plan_insert(logical, session, input, Some(upsert))
                        .await
                        .map(Some);
                }
                self.capabilities.plan_upsert(table, input, on_conflict)
            }
            RemoteWrite::ByKey(change) => self.capabilities.plan_keyed_change(table, input, change),
            RemoteWrite::Insert(insert) => self.capabilities.plan_insert(table, input, insert),
        };
        match planned {
            Some(plan) => plan.map(Some),
            None if matches!(write.write, RemoteWrite::Insert(_)) => sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "INSERT … RETURNING into {} is not supported by its source (PostgreSQL and MariaDB sources have it)",
                write.table_name
            ),
            None => sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "{} {} is not supported by its source",
                write.write.describe(),
                write.table_name
            ),
        }
    }
}
