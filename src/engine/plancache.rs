//! A session's cache of physical plans for repeated read-only queries.
//!
//! Planning a small query (SQL → logical plan → optimized → physical plan)
//! costs more than running it when a source answers it from an index, so a
//! session keeps the physical plan of each query it ran, by SQL text, and
//! runs it again as it is.
//!
//! Only plans that are safe to run again are kept: plans whose every node is
//! a stateless operator over Koios's remote scans (which read the source
//! afresh each time), from queries without functions whose value changes
//! between runs (`now()` is folded into the plan; `random()` is not
//! immutable either). A cached plan is dropped when the engine's catalog
//! generation moves (a source attached or refreshed, DDL in any session)
//! and the whole cache when the session changes a setting. DML needs
//! neither: no cached plan holds rows of a table, so it reads what was
//! written.
//!
//! A prepared statement with parameters gets a *generic* plan at its first
//! execution: planned with its placeholders left in, kept when every
//! placeholder landed in a remote scan's pushed filters (which send it to
//! the server as a parameter of their own query). Each execution binds its
//! values into that plan ([`koios_connector::QueryParams`]); a statement
//! with a placeholder anywhere else is planned with its values each time.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_plan::ExecutionPlan;
use koios_connector::{Capabilities, QueryParams};

/// At most this many plans per session; a full cache starts over.
const CAPACITY: usize = 256;

/// Operators that hold no state between runs, so a plan made of them (over
/// remote scans) can be executed again. Joins, sorts and aggregates are not
/// here: they keep dynamic filters or spill state in the plan itself.
const STATELESS_OPERATORS: &[&str] = &[
    "ProjectionExec",
    "FilterExec",
    "CoalesceBatchesExec",
    "CoalescePartitionsExec",
    "GlobalLimitExec",
    "LocalLimitExec",
    "SortPreservingMergeExec",
    "RepartitionExec",
    "CooperativeExec",
    "UnionExec",
    // A striped table's member gate: its state is the bound values.
    "MemberGateExec",
    // A mirrored table's read: which copy runs is chosen at each run.
    "FailoverExec",
];

/// Leaves of constant rows. A query that names a table and still plans to
/// one was answered from what the table said when planned (a file's exact
/// row count, `WHERE false`): not cached.
const CONSTANT_LEAVES: &[&str] = &["PlaceholderRowExec", "EmptyExec"];

/// A parameterized statement's plan with its placeholders left in: each
/// placeholder is compared in a remote scan, which sends it to its server
/// as a parameter of its own query.
#[derive(Clone)]
pub struct GenericPlan {
    pub cached: CachedPlan,
    /// The type each placeholder (`$1` first) has in the plan; `None` where
    /// the statement does not use it.
    pub param_types: ParamTypes,
}

/// The type of each placeholder, `$1` first; `None` where unused.
pub type ParamTypes = Vec<Option<DataType>>;

impl GenericPlan {
    /// Whether this execution's values can be bound as they are: each of
    /// the placeholder's type (or NULL), text without NUL (which PostgreSQL
    /// text cannot hold). Other values are planned into the statement.
    pub fn binds(&self, values: &[ScalarValue]) -> bool {
        values.len() >= self.param_types.len()
            && values.iter().enumerate().all(|(i, value)| {
                let typed = match self.param_types.get(i) {
                    Some(Some(data_type)) => value.is_null() || value.data_type() == *data_type,
                    _ => true,
                };
                let nul_free = match value {
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::Utf8View(Some(s))
                    | ScalarValue::LargeUtf8(Some(s)) => !s.contains('\0'),
                    _ => true,
                };
                typed && nul_free
            })
    }
}

/// One cached query.
#[derive(Clone)]
pub struct CachedPlan {
    /// The engine's catalog generation when the plan was made.
    pub generation: u64,
    pub plan: Arc<dyn ExecutionPlan>,
    /// The output schema with PostgreSQL's column names.
    pub schema: SchemaRef,
    /// The command tag (`SELECT`).
    pub tag: String,
}

/// The plans of one session, by SQL text.
#[derive(Default)]
pub struct PlanCache {
    entries: HashMap<String, CachedPlan>,
    /// Generic plans of parameterized statements, by statement text: `None`
    /// when the statement was found not to have one (a placeholder outside
    /// the remote scans), so it is not tried at every execution.
    generic: HashMap<String, Option<GenericPlan>>,
    /// Shape keys (of `generic`) by text template: see
    /// [`crate::engine::literals::Template`].
    templates: HashMap<String, String>,
    /// The task context plans run with; the session's configuration only
    /// changes through statements that clear this cache.
    task: Option<Arc<TaskContext>>,
    /// Which connector leaves read their rows when executed.
    capabilities: Capabilities,
}

impl PlanCache {
    /// An empty cache; `capabilities` tell which connector leaves read
    /// their rows when executed (plans of such leaves can run again).
    pub fn new(capabilities: Capabilities) -> PlanCache {
        PlanCache {
            capabilities,
            ..Default::default()
        }
    }

    /// The plan cached for `sql`, if it was made in `generation`. A plan of
    /// an older generation is dropped.
    pub fn get(&mut self, sql: &str, generation: u64) -> Option<CachedPlan> {
        let entry = self.entries.get(sql)?;
        if entry.generation == generation {
            return Some(entry.clone());
        }
        self.entries.remove(sql);
        None
    }

    /// Keeps `plan` for `sql` if it can be run again (see the module doc).
    /// `reads_tables`: whether the query names any table.
    pub fn insert(
        &mut self,
        sql: &str,
        generation: u64,
        plan: &Arc<dyn ExecutionPlan>,
        schema: &SchemaRef,
        tag: &str,
        reads_tables: bool,
    ) {
        if !can_run_again(plan, reads_tables, &self.capabilities) {
            return;
        }
        if self.entries.len() >= CAPACITY {
            self.entries.clear();
        }
        self.entries.insert(
            sql.to_string(),
            CachedPlan {
                generation,
                plan: Arc::clone(plan),
                schema: Arc::clone(schema),
                tag: tag.to_string(),
            },
        );
    }

    /// The generic plan of the parameterized statement `sql`: `None` if it
    /// was not tried in `generation`, `Some(None)` if it has none.
    pub fn generic(&mut self, sql: &str, generation: u64) -> Option<Option<GenericPlan>> {
        let entry = self.generic.get(sql)?;
        match entry {
            Some(plan) if plan.cached.generation != generation => {
                self.generic.remove(sql);
                None
            }
            // A statement without a generic plan stays without one until
            // the cache is cleared: what it reads does not change that.
            _ => Some(entry.clone()),
        }
    }

    /// Keeps the generic plan `planned` for the parameterized statement
    /// `sql` if it can be run again, or notes that it has none.
    pub fn insert_generic(
        &mut self,
        sql: &str,
        generation: u64,
        planned: Option<(&Arc<dyn ExecutionPlan>, ParamTypes)>,
        schema: &SchemaRef,
        tag: &str,
    ) {
        let plan = planned
            .filter(|(plan, _)| can_run_again(plan, true, &self.capabilities))
            .map(|(plan, param_types)| GenericPlan {
                cached: CachedPlan {
                    generation,
                    plan: Arc::clone(plan),
                    schema: Arc::clone(schema),
                    tag: tag.to_string(),
                },
                param_types,
            });
        if self.generic.len() >= CAPACITY {
            self.generic.clear();
        }
        self.generic.insert(sql.to_string(), plan);
    }

    /// The shape key texts of `template` were found to have.
    pub fn template(&self, template: &str) -> Option<String> {
        self.templates.get(template).cloned()
    }

    /// Notes that texts of `template` have the shape `shape_key`.
    pub fn insert_template(&mut self, template: &str, shape_key: &str) {
        if self.templates.len() >= CAPACITY {
            self.templates.clear();
        }
        self.templates
            .insert(template.to_string(), shape_key.to_string());
    }

    /// Forgets every plan (the session changed a setting).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.generic.clear();
        self.templates.clear();
        self.task = None;
    }

    /// The session's task context, made once per cache lifetime.
    pub fn task_context(&mut self, make: impl FnOnce() -> Arc<TaskContext>) -> Arc<TaskContext> {
        Arc::clone(self.task.get_or_insert_with(make))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Whether a query's logical plan (before optimization) may be cached: a
/// read-only query whose functions all give the same result every time.
pub fn is_repeatable_query(plan: &LogicalPlan) -> bool {
    if matches!(
        plan,
        LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::DescribeTable(_)
    ) {
        return false;
    }
    let mut repeatable = true;
    let _ = plan.apply_with_subqueries(|node| {
        // A write under a projection (`INSERT … RETURNING`) is no query.
        if matches!(
            node,
            LogicalPlan::RecursiveQuery(_) | LogicalPlan::Dml(_) | LogicalPlan::Extension(_)
        ) {
            repeatable = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && f.func.signature().volatility != Volatility::Immutable
                {
                    repeatable = false;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if repeatable {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    repeatable
}

/// Whether a logical plan names any table.
pub fn reads_tables(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        found = matches!(node, LogicalPlan::TableScan(_));
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Whether every node of `plan` is a stateless operator or a connector's
/// leaf that reads when executed (or a constant one, for a query naming no
/// table).
fn can_run_again(
    plan: &Arc<dyn ExecutionPlan>,
    reads_tables: bool,
    capabilities: &Capabilities,
) -> bool {
    let name = plan.name();
    let known = if plan.children().is_empty() {
        capabilities.reads_when_executed(plan.as_ref())
            || (!reads_tables && CONSTANT_LEAVES.contains(&name))
    } else {
        STATELESS_OPERATORS.contains(&name)
    };
    known
        && plan
            .children()
            .into_iter()
            .all(|child| can_run_again(child, reads_tables, capabilities))
}

/// A fresh copy of `plan` with any state a node keeps reset, and `params`
/// (if any) bound into the scans that compare with placeholders.
pub fn bind(
    plan: &Arc<dyn ExecutionPlan>,
    params: Option<QueryParams>,
) -> Result<Arc<dyn ExecutionPlan>> {
    match params {
        None => datafusion::physical_plan::execution_plan::reset_plan_states(Arc::clone(plan)),
        Some(values) => {
            let values: Arc<dyn std::any::Any + Send + Sync> = Arc::new(values);
            Arc::clone(plan)
                .transform_up(|node| {
                    let node = node.reset_state()?;
                    Ok(Transformed::yes(
                        node.with_new_state(Arc::clone(&values)).unwrap_or(node),
                    ))
                })
                .map(|t| t.data)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn logical(sql: &str) -> LogicalPlan {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t (a INT)").await.expect("ddl");
        ctx.state().create_logical_plan(sql).await.expect("plans")
    }

    #[tokio::test]
    async fn only_repeatable_queries_are_cached() {
        assert!(is_repeatable_query(
            &logical("SELECT a + 1 FROM t WHERE a = 3").await
        ));
        assert!(is_repeatable_query(&logical("SELECT upper('x')").await));
        for sql in [
            "SELECT now()",
            "SELECT a FROM t WHERE random() < 0.5",
            "SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE random() < 1)",
            "INSERT INTO t VALUES (1)",
            "CREATE VIEW v AS SELECT 1",
            "EXPLAIN SELECT 1",
        ] {
            assert!(!is_repeatable_query(&logical(sql).await), "{sql}");
        }
    }

    #[tokio::test]
    async fn only_plans_over_live_leaves_are_kept() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t (a INT) AS VALUES (1), (2)")
            .await
            .expect("ddl");
        let physical = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                ctx.sql(sql)
                    .await
                    .expect("plans")
                    .create_physical_plan()
                    .await
                    .expect("physical")
            }
        };
        let schema: SchemaRef = Arc::new(arrow::datatypes::Schema::empty());
        let mut cache = PlanCache::default();
        // A table held in memory is read when planned: never cached; nor
        // is its row count, taken from its statistics when planned.
        for sql in ["SELECT a FROM t", "SELECT count(*) FROM t"] {
            cache.insert(sql, 1, &physical(sql).await, &schema, "SELECT", true);
        }
        assert_eq!(cache.len(), 0);
        let constant = physical("SELECT 1 + 1").await;
        cache.insert("constant", 1, &constant, &schema, "SELECT", false);
        assert_eq!(cache.len(), 1);
        assert!(cache.get("constant", 1).is_some());
        // Another generation: dropped.
        assert!(cache.get("constant", 2).is_none());
        assert_eq!(cache.len(), 0);
    }
}
