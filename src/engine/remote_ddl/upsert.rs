//! `INSERT … ON CONFLICT (key) DO NOTHING | DO UPDATE SET …` into a
//! source's table.
//!
//! DataFusion plans inserts but refuses the clause, so the session plans
//! the statement without it ([`split_conflict`]) and wraps the resulting
//! insert's input in an [`UpsertNode`] carrying the clause, read into
//! backend-neutral terms ([`OnConflict`]). The node's physical plan comes
//! from the connector that made the table ([`UpsertPlanner`], asking
//! `Capabilities::plan_upsert`), so parameters, `EXPLAIN`, metering and
//! transaction blocks work as for any insert.
//!
//! The new values of `DO UPDATE` are the proposed row's (`EXCLUDED.col`)
//! or constants; anything else (an expression over the existing row, a
//! `WHERE` on the update, `ON CONSTRAINT`) is refused with 0A000 rather
//! than carried out differently.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::common::DFSchemaRef;
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    DmlStatement, Expr, Extension, LogicalPlan, LogicalPlanBuilder, UserDefinedLogicalNode,
    UserDefinedLogicalNodeCore, WriteOp,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, ConflictTarget, Expr as SqlExpr, OnConflictAction, OnInsert,
    Statement as SqlStatement,
};
use koios_connector::upsert::{ConflictAction, OnConflict, UpsertValue};
use koios_connector::{Capabilities, sql_err, sql_error};

use super::statement::normalize;
use crate::engine::error::codes;

/// An `INSERT … ON CONFLICT` (or its `EXPLAIN`) taken apart.
pub struct ConflictStatement {
    /// The insert without its clause, for DataFusion to plan.
    pub insert: DfStatement,
    pub clause: OnInsert,
    /// `EXPLAIN [VERBOSE] [ANALYZE]` around it: (verbose, analyze).
    pub explain: Option<(bool, bool)>,
}

/// `statement` taken apart, when it is an `INSERT … ON CONFLICT` or the
/// `EXPLAIN` of one.
pub fn split_conflict(statement: &DfStatement) -> Result<Option<ConflictStatement>> {
    let (statement, explain) = match statement {
        DfStatement::Explain(explain) => (
            explain.statement.as_ref(),
            Some((explain.options.verbose, explain.options.analyze)),
        ),
        other => (other, None),
    };
    let DfStatement::Statement(sql) = statement else {
        return Ok(None);
    };
    let SqlStatement::Insert(insert) = sql.as_ref() else {
        return Ok(None);
    };
    let Some(clause) = insert.on.clone() else {
        return Ok(None);
    };
    if insert.returning.is_some() {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "INSERT … ON CONFLICT … RETURNING is not supported"
        );
    }
    let mut stripped = insert.clone();
    stripped.on = None;
    Ok(Some(ConflictStatement {
        insert: DfStatement::Statement(Box::new(SqlStatement::Insert(stripped))),
        clause,
        explain,
    }))
}

/// The plan of `statement`: the upsert of `insert` (the statement planned
/// without its clause), explained if it was.
pub fn plan_statement(
    statement: ConflictStatement,
    insert: LogicalPlan,
    state: &SessionState,
    capabilities: &Capabilities,
) -> Result<LogicalPlan> {
    let upsert = plan(insert, statement.clause, state, capabilities)?;
    match statement.explain {
        Some((verbose, analyze)) => LogicalPlanBuilder::from(upsert)
            .explain(verbose, analyze)?
            .build(),
        None => Ok(upsert),
    }
}

/// The upsert plan of `insert` (the statement planned without its clause).
fn plan(
    insert: LogicalPlan,
    clause: OnInsert,
    state: &SessionState,
    capabilities: &Capabilities,
) -> Result<LogicalPlan> {
    let LogicalPlan::Dml(DmlStatement {
        table_name,
        target,
        op: WriteOp::Insert(_),
        input,
        output_schema,
    }) = insert
    else {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "ON CONFLICT belongs to an INSERT"
        );
    };
    let table = source_as_provider(&target)?;
    let key = match capabilities.table(table.as_ref()) {
        Some(found) => found.primary_key,
        None => {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "INSERT … ON CONFLICT into {table_name} is not supported: only a source's tables take it"
            );
        }
    };
    let on_conflict = read_clause(clause, key, state, &table_name.to_string())?;
    Ok(LogicalPlan::Extension(Extension {
        node: Arc::new(UpsertNode {
            table_name: table_name.to_string(),
            table,
            on_conflict,
            input: Arc::unwrap_or_clone(input),
            schema: output_schema,
        }),
    }))
}

fn read_clause(
    clause: OnInsert,
    key: Vec<String>,
    state: &SessionState,
    table: &str,
) -> Result<OnConflict> {
    let OnInsert::OnConflict(clause) = clause else {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "ON DUPLICATE KEY UPDATE is MySQL's spelling: write ON CONFLICT (key) DO UPDATE SET …"
        );
    };
    let target = match clause.conflict_target {
        Some(ConflictTarget::Columns(columns)) => columns.iter().map(normalize).collect(),
        Some(ConflictTarget::OnConstraint(name)) => {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "ON CONFLICT ON CONSTRAINT {name} is not supported: name the key's columns"
            );
        }
        // PostgreSQL takes any unique constraint; Koios knows the primary key.
        None if !key.is_empty() && matches!(clause.action, OnConflictAction::DoNothing) => key,
        None => {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "ON CONFLICT needs its key's columns here: ON CONFLICT (column, …) (table {table})"
            );
        }
    };
    let action = match clause.action {
        OnConflictAction::DoNothing => ConflictAction::Nothing,
        OnConflictAction::DoUpdate(update) => {
            if let Some(condition) = update.selection {
                return sql_err!(
                    codes::FEATURE_NOT_SUPPORTED,
                    "ON CONFLICT … DO UPDATE … WHERE {condition} is not supported"
                );
            }
            let mut assignments = Vec::with_capacity(update.assignments.len());
            for assignment in update.assignments {
                let AssignmentTarget::ColumnName(name) = &assignment.target else {
                    return sql_err!(
                        codes::FEATURE_NOT_SUPPORTED,
                        "ON CONFLICT … DO UPDATE SET (a, b) = … is not supported: set each column"
                    );
                };
                let column = match name.0.as_slice() {
                    [part] => part.as_ident().map(normalize),
                    _ => None,
                }
                .ok_or_else(|| {
                    sql_error!(
                        codes::SYNTAX_ERROR,
                        "invalid column name {name} in DO UPDATE"
                    )
                })?;
                let value = new_value(&column, assignment.value, state)?;
                assignments.push((column, value));
            }
            ConflictAction::Update(assignments)
        }
    };
    Ok(OnConflict { target, action })
}

/// `EXCLUDED.col`, or a constant.
fn new_value(column: &str, value: SqlExpr, state: &SessionState) -> Result<UpsertValue> {
    if let SqlExpr::CompoundIdentifier(parts) = &value
        && let [from, name] = parts.as_slice()
        && from.value.eq_ignore_ascii_case("excluded")
    {
        return Ok(UpsertValue::Proposed(normalize(name)));
    }
    if !super::is_constant(&value) {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "ON CONFLICT … DO UPDATE SET {column} = {value} is not supported: a new value is EXCLUDED.column or a constant"
        );
    }
    super::constant(state, column, value).map(UpsertValue::Constant)
}

/// The insert of `input`'s rows into `table` with `on_conflict`.
pub struct UpsertNode {
    table_name: String,
    table: Arc<dyn TableProvider>,
    on_conflict: OnConflict,
    input: LogicalPlan,
    /// One `count` column, as an insert's.
    schema: DFSchemaRef,
}

impl fmt::Debug for UpsertNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpsertNode")
            .field("table", &self.table_name)
            .field("on_conflict", &self.on_conflict)
            .finish_non_exhaustive()
    }
}

impl PartialEq for UpsertNode {
    fn eq(&self, other: &Self) -> bool {
        self.table_name == other.table_name
            && Arc::ptr_eq(&self.table, &other.table)
            && self.on_conflict == other.on_conflict
            && self.input == other.input
    }
}

impl Eq for UpsertNode {}

impl Hash for UpsertNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.table_name.hash(state);
        self.on_conflict.hash(state);
        self.input.hash(state);
    }
}

impl PartialOrd for UpsertNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.table_name.partial_cmp(&other.table_name) {
            Some(Ordering::Equal) => self.on_conflict.partial_cmp(&other.on_conflict),
            order => order,
        }
    }
}

impl UserDefinedLogicalNodeCore for UpsertNode {
    fn name(&self) -> &str {
        "RemoteUpsert"
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
            "RemoteUpsert: table={}, {}",
            self.table_name,
            self.on_conflict.describe()
        )
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let input = inputs
            .into_iter()
            .next()
            .ok_or_else(|| sql_error!(codes::INTERNAL_ERROR, "an upsert without its input"))?;
        Ok(UpsertNode {
            table_name: self.table_name.clone(),
            table: Arc::clone(&self.table),
            on_conflict: self.on_conflict.clone(),
            input,
            schema: Arc::clone(&self.schema),
        })
    }
}

/// Plans [`UpsertNode`]s with the connector that made the table.
#[derive(Debug)]
pub struct UpsertPlanner {
    capabilities: Capabilities,
}

impl UpsertPlanner {
    pub fn new(capabilities: Capabilities) -> Self {
        Self { capabilities }
    }
}

#[async_trait]
impl ExtensionPlanner for UpsertPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn datafusion::catalog::Session,
        _planning: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(upsert) = node.as_any().downcast_ref::<UpsertNode>() else {
            return Ok(None);
        };
        let Some(input) = physical_inputs.first() else {
            return sql_err!(codes::INTERNAL_ERROR, "an upsert without its input");
        };
        match self.capabilities.plan_upsert(
            upsert.table.as_ref(),
            Arc::clone(input),
            &upsert.on_conflict,
        ) {
            Some(plan) => plan.map(Some),
            None => sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "INSERT … ON CONFLICT into {} is not supported by its source",
                upsert.table_name
            ),
        }
    }
}
